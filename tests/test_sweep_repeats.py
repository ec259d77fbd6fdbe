"""Sweep numbers you can trust (issue 23): the pruner judges the running value of the ranking metric
(also a `best_` one), a trial's score is said (last or best epoch), pruned trials rank by their value,
best.yaml pins the threads a trial ran with (so a --jobs 2 sweep reproduces), and points run with
several seeds are ranked on their mean. Tiny data, 2-3 epochs."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import TINY_CNN, TINY_MLP, deep_merge, run_cli, write_config
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from dlrun.store import files, names
from dlrun.sweeps.leaderboard import leaderboard
from dlrun.sweeps.plan import plan_sweep
from dlrun.sweeps.ranking import ranked
from dlrun.sweeps.report import Outcome, entries
from dlrun.sweeps.scoring import Scoring

SMALL = deep_merge(TINY_MLP, {"data": {"image_size": [8, 8]}, "train": {"epochs": 3, "batch_size": 32}})
ASHA = {"method": "asha", "min_epochs": 1, "reduction": 2}


def csv_rows(path: Path) -> list[dict[str, str]]:
    return files.read_csv(path)


def epochs_without_seconds(run_dir: Path) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in csv_rows(run_dir / names.METRICS)]


def test_ranking_on_best_val_accuracy_with_asha_prunes_trials(tmp_path: Path) -> None:
    space = {"params": {"optimizer.lr": [1.0, 0.1, 0.01, 0.001], "model.l2": [0.0, 0.01]}, "prune": ASHA,
             "metric": "best_val_accuracy"}
    config = write_config(tmp_path, SMALL, sweep=space)
    proc = run_cli("sweep", config, "--sweep-dir", tmp_path / "s")
    assert proc.returncode == 0, proc.stderr
    assert "pruning: asha on val_accuracy (running best)" in proc.stdout
    statuses = [row["status"] for row in csv_rows(tmp_path / "s" / names.SWEEP_RESULTS)]
    assert statuses.count("pruned") >= 1 and "completed" in statuses


def test_scoring_is_a_function_of_the_epoch_rows() -> None:
    rows = [{"epoch": "1", "val_accuracy": "0.5"}, {"epoch": "2", "val_accuracy": "0.8"},
            {"epoch": "3", "val_accuracy": "0.6"}]
    assert Scoring("val_accuracy", "max", "last").score(rows) == 0.6
    assert Scoring("val_accuracy", "max", "best").score(rows) == 0.8
    assert Scoring("best_val_accuracy", "max", "last").score(rows, upto=2) == 0.8  # the pruner's running value
    assert Scoring("val_accuracy", "max", "last").score(rows, kept_epoch=2) == 0.8  # restore_best_weights
    assert Scoring("val_loss", "min", "best").score([{"val_loss": "nan"}, {"val_loss": "2"}]) == 2.0


def _outcome(plan: Any, trial: Any, status: str, accuracies: list[float], **summary: Any) -> Outcome:
    rows = [{"epoch": str(i + 1), "val_accuracy": str(a)} for i, a in enumerate(accuracies)]
    return Outcome(trial, Path("unused"), status, {"epochs_run": len(rows), **summary}, scoring=plan.scoring,
                   rows=rows)


def test_a_pruned_trial_ranks_by_its_value_above_a_worse_completed_one(tmp_path: Path) -> None:
    config = write_config(tmp_path, SMALL, sweep={"params": {"optimizer.lr": [0.1, 0.2, 0.3]}})
    plan = plan_sweep(config)
    no_learning, pruned, diverged = plan.trials
    items = [_outcome(plan, no_learning, "completed", [0.09, 0.095]),
             _outcome(plan, pruned, "pruned", [0.7, 0.8, 0.85], pruned_epoch=3),
             _outcome(plan, diverged, "diverged", [0.9], diverged_epoch=2)]
    assert [o.trial.id for o in ranked(items, "max")] == ["001", "000", "002"]
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(leaderboard(plan, items, "t"))
    lines = [line for line in console.export_text().splitlines() if "│ 1 " in line]
    assert "pruned @3" in lines[0] and "0.8500" in lines[0]


def test_points_within_one_standard_error_of_the_best_are_marked(tmp_path: Path) -> None:
    config = write_config(tmp_path, SMALL, sweep={"params": {"optimizer.lr": [0.1, 0.2, 0.3]}, "repeats": 3})
    plan = plan_sweep(config)
    finals = {"000": [0.8, 0.9, 0.85], "001": [0.83, 0.84, 0.85], "002": [0.5, 0.6, 0.55]}
    outcomes = {t.id: _outcome(plan, t, "completed", [finals[t.point_id][t.rep]]) for t in plan.trials}
    points = {p.id: p for p in entries(plan, outcomes)}
    assert [t.seed for t in plan.trials[:3]] == [0, 1, 2] and points["000"].score == pytest.approx(0.85)
    assert points["000"].std == pytest.approx(0.05)  # the best: its standard error 0.05 / sqrt(3) = 0.029
    assert [points[k].within for k in ("000", "001", "002")] == [False, True, False]
    assert [e.id for e in ranked(list(points.values()), "max")] == ["000", "001", "002"]


@pytest.fixture(scope="module")
def repeated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """2 points x 3 seeds, scored by their best epoch."""
    tmp = tmp_path_factory.mktemp("repeats")
    space = {"params": {"optimizer.lr": [0.05, 0.5]}, "score": "best"}
    config = write_config(tmp, SMALL, sweep=space)
    return tmp / "s", run_cli("sweep", config, "--repeats", "3", "--sweep-dir", tmp / "s")


@pytest.mark.xdist_group("sweep_repeats")  # the module fixture runs once, on one worker
def test_repeats_rank_points_on_the_mean_of_their_seeds(repeated: tuple[Path, Any]) -> None:
    out, proc = repeated
    assert proc.returncode == 0, proc.stderr
    assert "2 points x 3 seeds = 6 trials" in proc.stdout and "scored by the best epoch" in proc.stdout
    rows = csv_rows(out / names.SWEEP_RESULTS)
    assert [r["point"] for r in rows] == ["000", "001"]
    for row in rows:
        bests = [max(float(r["val_accuracy"]) for r in csv_rows(out / "trials" / f"{row['point']}-{k}" / names.METRICS))
                 for k in range(3)]
        assert float(row["score_mean"]) == pytest.approx(statistics.fmean(bests))
        assert float(row["score_std"]) == pytest.approx(statistics.stdev(bests))
        assert f"{statistics.fmean(bests):.4f} ± {statistics.stdev(bests):.4f}" in proc.stdout
    seeds = [files.read_json(out / "trials" / f"000-{k}" / names.SUMMARY)["seed"] for k in range(3)]
    assert seeds == [0, 1, 2]


@pytest.mark.xdist_group("sweep_repeats")  # the module fixture runs once, on one worker
def test_best_yaml_of_a_repeated_sweep_reproduces_its_first_seed(repeated: tuple[Path, Any], tmp_path: Path) -> None:
    out = repeated[0]
    best = files.read_json(out / names.SUMMARY)["best"]
    assert best["trial"] == f"{best['point']}-0" and best["seeds"] == 3
    proc = run_cli("train", out / names.SWEEP_BEST, "--runs", tmp_path, "--json")
    run = Path(json.loads(proc.stdout)["run_dir"])
    assert epochs_without_seconds(run) == epochs_without_seconds(out / "trials" / best["trial"])


@pytest.mark.xdist_group("sweep_repeats")  # the module fixture runs once, on one worker
def test_resume_of_a_repeated_sweep_reruns_no_seed(repeated: tuple[Path, Any]) -> None:
    out = repeated[0]
    before = {p.name: (p / names.SUMMARY).read_bytes() for p in (out / "trials").iterdir()}
    proc = run_cli("sweep", "--resume", out)
    assert proc.returncode == 0, proc.stderr
    assert {p.name: (p / names.SUMMARY).read_bytes() for p in (out / "trials").iterdir()} == before


@pytest.mark.slow
def test_tpe_with_repeats_and_asha_tells_optuna_each_points_mean(tmp_path: Path) -> None:
    space = {"search": "tpe", "trials": 3, "repeats": 2, "prune": ASHA,
             "params": {"optimizer.lr": {"log_uniform": [0.01, 1.0]}}}
    config = write_config(tmp_path, SMALL, sweep=space)
    proc = run_cli("sweep", config, "--sweep-dir", tmp_path / "s", "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "s" / names.SWEEP_STUDY)))
    trials = optuna.load_study(study_name=names.SWEEP_STUDY_NAME, storage=storage).get_trials()
    assert len(trials) == 3 and len(list((tmp_path / "s" / "trials").iterdir())) == 6
    rows = {r["point"]: r for r in csv_rows(tmp_path / "s" / names.SWEEP_RESULTS)}
    for trial in trials:
        point = trial.user_attrs["dlrun_trial"]
        first = [float(csv_rows(tmp_path / "s" / "trials" / f"{point}-{k}" / names.METRICS)[0]["val_accuracy"])
                 for k in range(2)]
        assert trial.intermediate_values[1] == pytest.approx(statistics.fmean(first))  # judged on the mean
        if trial.value is not None:
            assert trial.value == pytest.approx(float(rows[point]["score_mean"]))


@pytest.mark.parametrize(("where", "expected"), [("flag", "--repeats 0"), ("file", "config.yaml:")])
def test_repeats_below_one_exit_2_with_key_and_line(tmp_path: Path, where: str, expected: str) -> None:
    space = {"params": {"optimizer.lr": [0.1]}, **({"repeats": 0} if where == "file" else {})}
    config = write_config(tmp_path, SMALL, sweep=space)
    proc = run_cli("sweep", config, *(["--repeats", "0"] if where == "flag" else []), "--sweep-dir", tmp_path / "s")
    assert proc.returncode == 2 and "sweep.repeats" in proc.stderr and expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "s").exists()


@pytest.mark.slow
def test_best_yaml_of_a_jobs_2_cnn_sweep_reproduces_its_trial_exactly(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_CNN)
    sweep = run_cli("sweep", config, "--lr", "0.005,0.01", "--jobs", "2", "--sweep-dir", tmp_path / "s", "--json")
    assert sweep.returncode == 0, sweep.stderr
    best = json.loads(sweep.stdout)["best"]
    trial = files.read_json(tmp_path / "s" / "trials" / best["trial"] / names.SUMMARY)
    assert isinstance(trial["threads"], int) and isinstance(trial["inter_op_threads"], int)
    row = next(r for r in csv_rows(tmp_path / "s" / names.SWEEP_RESULTS) if r["trial"] == best["trial"])
    assert (row["threads"], row["inter_op_threads"]) == (str(trial["threads"]), str(trial["inter_op_threads"]))
    proc = run_cli("train", tmp_path / "s" / names.SWEEP_BEST, "--runs", tmp_path / "runs", "--json")
    again = json.loads(proc.stdout)
    assert epochs_without_seconds(Path(again["run_dir"])) == epochs_without_seconds(tmp_path / "s" / "trials" /
                                                                                     best["trial"])
    assert again["metrics"] == trial["metrics"] and again["threads"] == trial["threads"]
