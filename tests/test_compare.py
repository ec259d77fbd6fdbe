"""`dlrun compare`: any number of runs or a sweep's best trials; only the config keys that differ and
apply (layers matched by name and kind), final metrics side by side, and compare.png."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_MLP, deep_merge, run_cli
from test_runs import make_run

from dlrun import compare_runs
from dlrun.errors import RunDirError
from dlrun.store import files, names


def differing(*runs: Path) -> dict[str, list]:
    return {row["key"]: row["values"] for row in compare_runs(*runs)["config"]}


def test_three_runs_side_by_side(tmp_path: Path) -> None:
    runs = [make_run(tmp_path, f"r{i}", f"2026-01-0{i + 1}T10:00:00", metrics={"test_accuracy": [0.8, 0.81, 0.82][i]},
                     config=deep_merge(TINY_MLP, {"optimizer": {"lr": 0.01 * (i + 1)}})) for i in range(3)]
    result = compare_runs(*runs)
    assert (result["config"], result["metrics"]) == (
        [{"key": "optimizer.lr", "values": [0.01, 0.02, 0.03]}],
        [{"metric": "test_accuracy", "values": [0.8, 0.81, 0.82]}])


def test_layers_are_matched_by_name_and_kind_not_position(tmp_path: Path) -> None:
    layers = TINY_MLP["model"]["layers"]
    with_dropout = [layers[0], {"dropout": {"rate": 0.2}}, *layers[1:]]
    a = make_run(tmp_path, "a", "2026-01-01T10:00:00")
    b = make_run(tmp_path, "b", "2026-01-02T10:00:00", config=deep_merge(TINY_MLP, {"model": {"layers": with_dropout}}))
    assert differing(a, b) == {"model.layers.dropout": [None, "dropout"], "model.layers.dropout.rate": [None, 0.2]}


def test_settings_that_do_not_apply_are_left_out(tmp_path: Path) -> None:
    idx = deep_merge(TINY_MLP, {"data": {"source": "idx", "path": "mnist", "n_train": 50},
                                "optimizer": {"name": "adam", "momentum": 0.5}})
    a = make_run(tmp_path, "a", "2026-01-01T10:00:00", config=deep_merge(idx, {"data": {"n_train": 999}}))
    b = make_run(tmp_path, "b", "2026-01-02T10:00:00", config=deep_merge(idx, {"optimizer": {"momentum": 0.9}}))
    assert differing(a, b) == {}


def make_sweep(root: Path, values: dict[str, float | None]) -> Path:
    sweep = root / "s-sweep"
    trials = []
    for trial, value in values.items():
        run = make_run(sweep / "trials", trial, "2026-01-01T10:00:00", rows=3,
                       metrics={"val_accuracy": value} if value is not None else None)
        run.rename(sweep / "trials" / trial)
        k = len(trials) + 1  # curves of their own, so each colour shows
        files.write_csv(sweep / "trials" / trial / names.METRICS, ["epoch", "loss", "accuracy", "val_loss",
                        "val_accuracy"], [{"epoch": e, "loss": k / e, "accuracy": 0.2 * k + e / 20, "val_loss": k / e
                                           + 0.1, "val_accuracy": 0.2 * k + e / 30} for e in (1, 2, 3)])
        trials.append({"trial": trial, "status": "pruned" if trial == "002" else "completed", "val_accuracy": value})
    files.write_text(sweep / names.SWEEP_SPEC, "params: {optimizer.lr: [0.1, 0.01]}\n")
    files.write_json(sweep / names.SUMMARY, {"status": "completed", "name": "s", "metric": "val_accuracy",
                                             "goal": "max", "trials": trials})
    return sweep


def test_a_sweeps_top_k_ranks_by_value_whatever_the_status(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path, {"000": 0.5, "001": 0.7, "002": 0.9, "003": None})
    result = compare_runs(sweep, top=2)
    assert [run["label"] for run in result["runs"]] == ["trial 002", "trial 001"]


def test_fewer_than_two_runs_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="two or more"):
        compare_runs(make_run(tmp_path, "a", "2026-01-01T10:00:00"))


def test_compare_png_overlays_the_curves_a_colour_per_run(tmp_path: Path) -> None:
    import matplotlib.image

    sweep = make_sweep(tmp_path, {"000": 0.5, "001": 0.7, "002": 0.9})
    compare_runs(sweep, top=3, plot=tmp_path / "compare.png")
    pixels = matplotlib.image.imread(tmp_path / "compare.png")[..., :3]
    # tab10's first three colours (blue, orange, green) are each drawn
    for rgb in ((0.122, 0.467, 0.706), (1.0, 0.498, 0.055), (0.173, 0.627, 0.173)):
        assert (np.abs(pixels - rgb).max(axis=-1) < 0.02).sum() > 50


def test_cli_compare_json_and_picture(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path, {"000": 0.5, "001": 0.7, "002": 0.9})
    proc = run_cli("compare", sweep, "--top", "3", "--json", "--plot", tmp_path / "c.png")
    result = json.loads(proc.stdout)
    assert (len(result["runs"]), (tmp_path / "c.png").is_file()) == (3, True)


def test_cli_compare_table_names_each_run(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a", "2026-01-01T10:00:00", metrics={"test_accuracy": 0.8})
    b = make_run(tmp_path, "b", "2026-01-02T10:00:00", config=deep_merge(TINY_MLP, {"seed": 7}))
    c = make_run(tmp_path, "c", "2026-01-03T10:00:00", config=deep_merge(TINY_MLP, {"seed": 8}))
    out = run_cli("compare", a, b, c, "--no-plot").stdout
    assert all(text in out for text in ("config differences", "seed", "final metrics", str(c)))
