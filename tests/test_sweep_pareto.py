"""Sweeps on several objectives (issue 28): the non-dominated sort, a grid and an NSGA-II search on
accuracy against model size, their Pareto records (pareto.csv, pareto.png, pareto/, best.yaml by the
pick rule), resume with no trial run twice, and the bad inputs refused at their YAML line. Tiny data."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import ROOT, TINY_MLP, deep_merge, run_cli, write_config
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from dlrun import sweep
from dlrun.config import load_config
from dlrun.config.sweep_schema import PickRule
from dlrun.errors import Interrupted, RunDirError
from dlrun.store import files, names
from dlrun.sweeps.executors import SequentialExecutor, TrialResult, TrialTask
from dlrun.sweeps.executors.processes import ProcessExecutor
from dlrun.sweeps.pareto import crowding_distances, front_ranks, rung_keeps
from dlrun.ui.pareto_plot import pareto_plot

pytestmark = pytest.mark.xdist_group("sweep_pareto")  # the module fixtures run once, on one worker

SMALL = deep_merge(TINY_MLP, {"data": {"image_size": [8, 8]}, "train": {"epochs": 2, "batch_size": 32}})
UNITS = "model.layers.1.dense.units"
OBJECTIVES = [{"metric": "val_accuracy", "goal": "max"}, {"metric": "params", "goal": "min"}]
PICK = {"rule": "within", "objective": "val_accuracy", "tolerance": 0.05, "then": "params"}
GRID = {"params": {UNITS: [4, 16, 64], "optimizer.lr": [0.01, 0.3]}, "objectives": OBJECTIVES, "pick": PICK}
NSGA2 = {"search": "nsga2", "trials": 4, "seed": 0, "params": {UNITS: [4, 16, 64], "optimizer.lr": [0.01, 0.3]},
         "objectives": [*OBJECTIVES, {"metric": "predict_ms", "goal": "min"}]}


def dominates(a: list[float], b: list[float], goals: list[str]) -> bool:
    """a is at least as good as b on every objective and better on one (written out, for the checks)."""
    better = [x > y if g == "max" else x < y for x, y, g in zip(a, b, goals, strict=True)]
    worse = [x < y if g == "max" else x > y for x, y, g in zip(a, b, goals, strict=True)]
    return any(better) and not any(worse)


# --- the non-dominated sort and the plot ---------------------------------------------------------------

def test_front_ranks_layers_the_points_by_domination() -> None:
    values = [[0.9, 1000], [0.8, 100], [0.85, 1000], [0.7, 100], [0.9, 1000], [0.6, 5000]]
    assert front_ranks(values, ["max", "min"]) == [1, 1, 2, 2, 1, 3]
    assert front_ranks(values, ["min", "min"]) == [4, 2, 3, 1, 4, 1]
    assert front_ranks([], ["max", "min"]) == []


def test_a_whole_front_at_a_rung_is_cut_to_its_share_by_crowding_distance() -> None:
    """Accuracy against size where every point is on the front (each size's most accurate trial): only
    1/reduction go on, the front's two ends first, not the whole tied front."""
    at_rung = {f"{n:03d}": [acc, size] for n, (acc, size) in
               enumerate([(0.5, 100), (0.6, 200), (0.7, 400), (0.8, 800), (0.85, 1600), (0.9, 3200)])}
    kept = {p for p in at_rung if rung_keeps(at_rung, p, ["max", "min"], 3)}
    assert kept == {"000", "005"}
    values = list(at_rung.values())
    assert [oracle_keeps(values, n, 3) for n in range(6)] == [p in kept for p in at_rung]


def test_crowding_distances_agree_with_optunas_nsga2() -> None:
    values = [[0.9, 1000.0], [0.8, 100.0], [0.85, 300.0], [0.7, 50.0], [0.88, 700.0]]
    from optuna.samplers.nsgaii._elite_population_selection_strategy import _calc_crowding_distance
    trials = [optuna.trial.create_trial(values=v, distributions={}, params={}) for v in values]
    for n, trial in enumerate(trials):
        trial.number = n
    theirs = _calc_crowding_distance(list(trials))
    assert crowding_distances(values) == pytest.approx([theirs[n] for n in range(len(values))])


def test_pareto_plot_draws_every_point(tmp_path: Path) -> None:
    points = [(100.0, 0.8, "completed", 1), (1000.0, 0.9, "completed", 1), (1000.0, 0.7, "completed", 2),
              (300.0, 0.5, "pruned", None), (300.0, None, "diverged", None)]
    drawn = pareto_plot(tmp_path / "p.png", points, ("params", "min"), ("val_accuracy", "max"), "t")
    assert drawn == len(points)
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- a grid on two objectives ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("pareto-grid")
    sweep(write_config(tmp, SMALL, sweep=GRID), sweep_dir=tmp / "s")
    return tmp / "s"


def test_pareto_csv_ranks_every_trial_by_front(grid: Path) -> None:
    rows = files.read_csv(grid / names.SWEEP_PARETO)
    assert list(rows[0]) == ["trial", UNITS, "optimizer.lr", "status", "val_accuracy", "params", "front_rank",
                             "on_front", "picked"]
    assert sorted(r["trial"] for r in rows) == [f"{n:03d}" for n in range(6)]
    values = {r["trial"]: [float(r["val_accuracy"]), float(r["params"])] for r in rows}
    for r in rows:
        beaten = any(dominates(v, values[r["trial"]], ["max", "min"]) for v in values.values())
        assert (r["front_rank"] == "1") == (not beaten) == (r["on_front"] == "True")
    assert [int(r["front_rank"]) for r in rows] == sorted(int(r["front_rank"]) for r in rows)
    # params is the model's own count: 8x8 inputs -> units -> 10
    assert {int(r[UNITS]): int(r["params"]) for r in rows} == {u: 64 * u + u + 10 * u + 10 for u in (4, 16, 64)}


def test_best_yaml_is_the_front_point_the_pick_rule_names(grid: Path) -> None:
    rows = [r for r in files.read_csv(grid / names.SWEEP_PARETO) if r["on_front"] == "True"]
    top = max(float(r["val_accuracy"]) for r in rows)
    close = [r for r in rows if float(r["val_accuracy"]) >= top - 0.05 - 1e-9]
    chosen = min(close, key=lambda r: (int(r["params"]), -float(r["val_accuracy"])))
    assert [r["trial"] for r in rows if r["picked"] == "True"] == [chosen["trial"]]
    summary = files.read_json(grid / names.SUMMARY)
    assert summary["best"]["trial"] == summary["pareto"]["picked"] == chosen["trial"]
    best = load_config(grid / names.SWEEP_BEST).config
    assert best.model.layers[1].dense.units == int(chosen[UNITS])  # type: ignore[union-attr]
    assert "within 0.05 of the best val_accuracy" in (grid / names.SWEEP_BEST).read_text()


def test_each_front_point_has_a_config_that_reads_back(grid: Path) -> None:
    front = {r["trial"]: r for r in files.read_csv(grid / names.SWEEP_PARETO) if r["on_front"] == "True"}
    folder = grid / names.SWEEP_PARETO_CONFIGS
    assert sorted(p.stem for p in folder.glob("*.yaml")) == sorted(front)
    for trial, row in front.items():
        cfg = load_config(folder / f"{trial}.yaml").config
        assert cfg.model.layers[1].dense.units == int(row[UNITS])  # type: ignore[union-attr]
        assert cfg.optimizer.lr == float(row["optimizer.lr"]) and cfg.sweep is None
    assert (grid / names.SWEEP_PARETO_PLOT).read_bytes()[:4] == b"\x89PNG"


def test_every_trial_records_the_time_to_predict_a_batch(grid: Path) -> None:
    for trial in (grid / names.SWEEP_TRIALS).iterdir():
        predict_ms = json.loads((trial / names.SUMMARY).read_text())["predict_ms"]
        assert isinstance(predict_ms, float) and 0 < predict_ms < 10_000


def test_pick_best_takes_the_best_of_its_objective() -> None:
    from dlrun.sweeps.pareto import pick

    class E:
        def __init__(self, id_: str, acc: float, params: int):
            self.id, self.status, self.rows, self.kept_epoch = id_, "completed", [{"val_accuracy": acc}], None
            self.summary = {"params": {"total": params}}

    front = [E("a", 0.90, 1000), E("b", 0.895, 100), E("c", 0.80, 10)]
    objectives = [("val_accuracy", "max"), ("params", "min")]
    assert pick(front, objectives, PickRule(), "last").id == "a"  # type: ignore[arg-type,union-attr]
    rule = PickRule(rule="within", tolerance=0.01, then="params")
    assert pick(front, objectives, rule, "last").id == "b"  # type: ignore[arg-type,union-attr]
    assert pick(front, objectives, PickRule(objective="params"), "last").id == "c"  # type: ignore[arg-type,union-attr]


# --- NSGA-II: the study, and resume --------------------------------------------------------------------

class StopAfter(SequentialExecutor):
    """The in-process executor, asked to stop (as by Ctrl-C) once `count` trials have ended."""

    def __init__(self, count: int):
        self.count = count

    def run(self, tasks: Any, datasets: Any, events: Any, stop: Any) -> None:
        outer, done = self, []

        class Counting:
            def started(self, task: TrialTask) -> None:
                events.started(task)

            def epoch_ended(self, trial_id: str, epoch: int, row: dict[str, Any]) -> bool:
                return events.epoch_ended(trial_id, epoch, row)

            def finished(self, result: TrialResult) -> None:
                events.finished(result)
                done.append(result.trial_id)
                stop.requested = len(done) >= outer.count

        super().run(tasks, datasets, Counting(), stop)


def test_nsga2_resumes_without_running_a_trial_twice(tmp_path: Path) -> None:
    config = write_config(tmp_path, SMALL, sweep=NSGA2)
    out = tmp_path / "s"
    with pytest.raises(Interrupted):
        sweep(config, sweep_dir=out, executor=StopAfter(2))
    before = {t.name: (t / names.SUMMARY).read_bytes() for t in (out / names.SWEEP_TRIALS).iterdir()}
    assert len(before) == 2
    summary = sweep(None, resume=out)
    assert summary["status"] == "completed" and summary["counts"]["completed"] == 4
    assert {k: (out / names.SWEEP_TRIALS / k / names.SUMMARY).read_bytes() for k in before} == before
    storage = JournalStorage(JournalFileBackend(str(out / names.SWEEP_STUDY)))
    study = optuna.load_study(study_name=names.SWEEP_STUDY_NAME, storage=storage)
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, *[optuna.study.StudyDirection.MINIMIZE] * 2]
    told = {t.user_attrs["dlrun_trial"]: t.values for t in study.get_trials()}
    assert sorted(told) == ["000", "001", "002", "003"]
    rows = {r["trial"]: r for r in files.read_csv(out / names.SWEEP_PARETO)}
    for trial, values in told.items():
        assert values == pytest.approx([float(rows[trial][m]) for m in ("val_accuracy", "params", "predict_ms")])


# --- bad input ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("objectives", "prune", "key", "says"), [
    ([{"metric": "val_accuracy", "goal": "max"}, {"metric": "params"}], None, "sweep.objectives.1.goal",
     "required"),
    ([{"metric": "val_accuracy", "goal": "max"}, {"metric": "val_accuracy", "goal": "min"}], None,
     "sweep.objectives.1.metric", "both on val_accuracy"),
    ([OBJECTIVES[0], {"metric": "predict_ms", "goal": "min"}], {"method": "asha"}, "sweep.objectives.1.metric",
     "measured once, at the end of a trial"),
    ([OBJECTIVES[0], {"metric": "val_loss", "goal": "min"}], {"method": "median"}, "sweep.prune.method",
     "successive halving on Pareto front rank"),
])
def test_bad_objectives_exit_2_naming_the_key_and_line(tmp_path: Path, objectives: list[Any],
                                                       prune: dict[str, Any] | None, key: str, says: str) -> None:
    changes = {"params": {"optimizer.lr": [0.01, 0.1]}, "objectives": objectives}
    config = write_config(tmp_path, deep_merge(SMALL, {"train": {"epochs": 3}}),
                          sweep={**changes, **({"prune": prune} if prune else {})})
    proc = run_cli("validate", config)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    text = config.read_text().splitlines()
    line = next(n for n, t in enumerate(text, 1) if t.strip().startswith("objectives:" if prune is None
                                                                        or "objectives" in key else "prune:"))
    assert key in proc.stderr and says in proc.stderr, proc.stderr
    assert f"{config}:" in proc.stderr and any(f":{n}" in proc.stderr for n in range(line, line + 6))


def test_the_shipped_pareto_config_validates() -> None:
    proc = run_cli("validate", ROOT / "configs" / "sweep_pareto.yaml")
    assert proc.returncode == 0, proc.stderr


# --- pruning on several objectives: successive halving on front rank, on both local executors ------------

PRUNED = {"params": {UNITS: [4, 16], "optimizer.lr": [1.0, 0.3, 0.1, 0.01]},
          "prune": {"method": "asha", "min_epochs": 1, "reduction": 2},
          "objectives": [{"metric": "val_accuracy", "goal": "max"}, {"metric": "val_loss", "goal": "min"}]}
GOALS = ["max", "min"]


def layer_ranks(values: list[list[float]]) -> list[int]:
    """Front ranks by peeling non-dominated layers, written out with `dominates`."""
    ranks, left, rank = [0] * len(values), set(range(len(values))), 0
    while left:
        rank += 1
        layer = {i for i in left if not any(dominates(values[j], values[i], GOALS) for j in left)}
        for i in layer:
            ranks[i] = rank
        left -= layer
    return ranks


def oracle_keeps(values: list[list[float]], index: int, reduction: int) -> bool:
    """Whether row `index` goes on from a rung: rows ordered by front rank (layer_ranks), then within a
    front by NSGA-II's crowding distance as Optuna's NSGA-II computes it, the first 1/reduction kept
    (and every row tied with the last kept on both)."""
    from optuna.samplers.nsgaii._elite_population_selection_strategy import _calc_crowding_distance

    ranks, crowding = layer_ranks(values), [0.0] * len(values)
    for rank in set(ranks):
        members = [optuna.trial.create_trial(values=values[n], distributions={}, params={})
                   for n, r in enumerate(ranks) if r == rank]
        numbers = [n for n, r in enumerate(ranks) if r == rank]
        for trial, n in zip(members, numbers, strict=True):
            trial.number = n
        distances = _calc_crowding_distance(list(members))
        for n in numbers:
            crowding[n] = distances[n]
    keys = sorted((ranks[n], -crowding[n]) for n in range(len(values)))
    return (ranks[index], -crowding[index]) <= keys[max(1, len(values) // reduction) - 1]


def assert_pruned_by_front_rank(out: Path) -> None:
    """Every decision of the sweep in `out`, re-derived rung by rung from the trials' metrics.csv in the
    order they ran (the study's): a trial was pruned at a rung exactly when its front rank among the trials
    there so far, then its crowding distance in its front, put it outside the best half."""
    storage = JournalStorage(JournalFileBackend(str(out / names.SWEEP_STUDY)))
    study = optuna.load_study(study_name=names.SWEEP_STUDY_NAME, storage=storage)
    order = [t.user_attrs["dlrun_trial"] for t in sorted(study.get_trials(), key=lambda t: t.number)]  # run order
    rows = {t: files.read_csv(out / names.SWEEP_TRIALS / t / names.METRICS) for t in order}
    status = {r["trial"]: r for r in files.read_csv(out / names.SWEEP_RESULTS)}
    assert {r["status"] for r in status.values()} == {"completed", "pruned"}
    for n, trial in enumerate(order):
        for epoch in (1, 2):  # the rungs: min_epochs 1, then 1 x reduction 2 (epoch 3 is the last)
            if len(rows[trial]) < epoch:
                continue
            there = [t for t in order[:n + 1] if len(rows[t]) >= epoch]
            values = [[float(rows[t][epoch - 1]["val_accuracy"]), float(rows[t][epoch - 1]["val_loss"])]
                      for t in there]
            keeps = oracle_keeps(values, there.index(trial), 2)
            pruned_here = status[trial]["status"] == "pruned" and status[trial]["pruned_epoch"] == str(epoch)
            assert keeps != pruned_here, (trial, epoch, there, values)
    front = [r for r in files.read_csv(out / names.SWEEP_PARETO) if r["on_front"] == "True"]
    assert front and all(status[r["trial"]]["status"] == "completed" for r in front)


@pytest.mark.parametrize("executor", ["in-process", "process"])
def test_several_objectives_prune_by_front_rank_at_each_rung(tmp_path: Path, executor: str) -> None:
    from dlrun.sweeps.executors.processes import ProcessExecutor

    config = write_config(tmp_path, deep_merge(SMALL, {"train": {"epochs": 3}}), sweep=PRUNED)
    sweep(config, sweep_dir=tmp_path / "s",
          executor=SequentialExecutor() if executor == "in-process" else ProcessExecutor(1))
    assert_pruned_by_front_rank(tmp_path / "s")


def test_a_resumed_pruned_sweep_judges_from_the_same_rows_and_runs_no_trial_twice(tmp_path: Path) -> None:
    config = write_config(tmp_path, deep_merge(SMALL, {"train": {"epochs": 3}}), sweep=PRUNED)
    out = tmp_path / "s"
    with pytest.raises(Interrupted):
        sweep(config, sweep_dir=out, executor=StopAfter(3))
    before = {t.name: (t / names.SUMMARY).read_bytes() for t in (out / names.SWEEP_TRIALS).iterdir()
              if (t / names.SUMMARY).is_file()
              and json.loads((t / names.SUMMARY).read_text())["status"] in ("completed", "pruned")}
    assert len(before) == 3
    assert sweep(None, resume=out)["status"] == "completed"
    assert {k: (out / names.SWEEP_TRIALS / k / names.SUMMARY).read_bytes() for k in before} == before
    assert_pruned_by_front_rank(out)


def test_accuracy_against_size_prunes_on_the_size_each_trial_wrote_as_it_started(tmp_path: Path) -> None:
    """params is known before the first epoch (the summary a trial writes as it starts), so the rung judge
    ranks it with the epoch's accuracy: a small model that learns little is dominated and stopped."""
    pruned = {**PRUNED, "objectives": OBJECTIVES}
    config = write_config(tmp_path, deep_merge(SMALL, {"train": {"epochs": 3}}), sweep=pruned)
    sweep(config, sweep_dir=tmp_path / "s", executor=SequentialExecutor())
    results = files.read_csv(tmp_path / "s" / names.SWEEP_RESULTS)
    assert {r["status"] for r in results} == {"completed", "pruned"}, results
    assert (tmp_path / "s" / names.SWEEP_PARETO).is_file()


class Watched(ProcessExecutor):
    """Worker processes (two trials at once), each verdict recorded with what the trials' metrics.csv
    held at that rung just before and just after the sweep judged (a worker may write a row meanwhile)."""

    def __init__(self, jobs: int, out: Path):
        super().__init__(jobs)
        self.out, self.verdicts = out, []  # (trial, epoch, kept, there before, there after)

    def at_rung(self, epoch: int) -> dict[str, list[float]]:
        there = {}
        for trial in sorted((self.out / names.SWEEP_TRIALS).iterdir()):
            with contextlib.suppress(RunDirError, FileNotFoundError):
                rows = files.read_csv(trial / names.METRICS)
                if len(rows) >= epoch:
                    there[trial.name] = [float(rows[epoch - 1][m]) for m in ("val_accuracy", "val_loss")]
        return there

    def run(self, tasks: Any, datasets: Any, events: Any, stop: Any) -> None:
        outer = self

        class Watching:
            def started(self, task: TrialTask) -> None:
                events.started(task)

            def epoch_ended(self, trial_id: str, epoch: int, row: dict[str, Any]) -> bool:
                before = outer.at_rung(epoch)
                kept = events.epoch_ended(trial_id, epoch, row)
                outer.verdicts.append((trial_id, epoch, kept, before, outer.at_rung(epoch)))
                return kept

            def finished(self, result: TrialResult) -> None:
                events.finished(result)

        super().run(tasks, datasets, Watching(), stop)


def test_two_jobs_prune_by_front_rank_among_the_trials_at_the_rung_when_judged(tmp_path: Path) -> None:
    """Two trials at once: which trials reached a rung when one is judged depends on timing, so each
    verdict is re-derived from the rows the trials had written then (before or after the judgement)."""
    config = write_config(tmp_path, deep_merge(SMALL, {"train": {"epochs": 3}}), sweep=PRUNED)
    executor = Watched(2, tmp_path / "s")
    summary = sweep(config, sweep_dir=tmp_path / "s", executor=executor)
    assert summary["jobs"] == 2 and {t["status"] for t in summary["trials"]} == {"completed", "pruned"}
    judged = [v for v in executor.verdicts if v[1] in (1, 2)]  # the rungs; epoch 3 is the last, never judged
    assert judged and any(not kept for _, _, kept, _, _ in judged)
    for trial, epoch, kept, *seen in judged:
        derived = set()
        for there in seen:
            ids = list(there)
            derived.add(oracle_keeps([there[i] for i in ids], ids.index(trial), 2))
        assert kept in derived, (trial, epoch, seen)
    pruned = {t["trial"] for t in summary["trials"] if t["status"] == "pruned"}
    assert pruned == {t for t, _, kept, _, _ in judged if not kept}
