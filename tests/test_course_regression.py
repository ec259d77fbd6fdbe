"""The course's regression table ships as configs/regression_course.yaml with the notebook's numbers, and
`dlrun train` ends like the notebook: the final weights and bias, with the least-squares optimum beside."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import ROOT, run_cli

from dlrun.config import load_config

CONFIG = ROOT / "configs" / "regression_course.yaml"
INPUTS = [[18, 1.5, 1.5], [21, 3, 1.2], [29, 7, 2.5], [29, 11, 1.5], [17, 1, 1.5], [22, 2, 2.5], [31, 12, 1.5],
          [30, 8, 2.5]]
TARGETS = [5, 6, 9, 13, 4.8, 5.5, 13.2, 10.5]


def numbers(line: str) -> list[float]:
    return [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", line)]


def test_shipped_config_is_the_notebooks() -> None:
    cfg = load_config(CONFIG).config
    rows = [[*x, y] for x, y in zip(INPUTS, TARGETS, strict=True)]
    assert (cfg.data.table.rows, cfg.data.target, cfg.data.test_split, cfg.data.validation, cfg.loss,
            [item.model_dump() for item in cfg.model.layers], cfg.optimizer.name, cfg.optimizer.lr,
            cfg.train.epochs, cfg.train.batch_size) == (
        rows, "out", 0, 0, "sse", [{"dense": {"units": 1, "use_bias": True}}], "adam", 0.01, 1000, 8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    run = tmp_path_factory.mktemp("course") / "run"
    proc = run_cli("train", CONFIG, "--run-dir", run)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, json.loads((run / "summary.json").read_text())


def test_train_prints_the_final_weights_and_bias(trained: tuple[str, dict]) -> None:
    stdout, summary = trained
    final = numbers(next(line for line in stdout.splitlines() if line.startswith("final:")))
    fit = summary["coefficients"]
    assert (final == pytest.approx([*fit["weights"], fit["bias"], fit["sse"]], rel=1e-3),
            fit["sse"] == pytest.approx(summary["metrics"]["train_loss"], rel=1e-4), fit["sse"] < 2.1) == (
        True, True, True)


def test_train_prints_the_least_squares_optimum_beside(trained: tuple[str, dict]) -> None:
    stdout, _ = trained
    shown = numbers(next(line for line in stdout.splitlines() if line.startswith("least squares:")))
    design = np.column_stack([INPUTS, np.ones(len(INPUTS))])
    solution, *_ = np.linalg.lstsq(design, TARGETS, rcond=None)
    sse = float(np.sum((design @ solution - TARGETS) ** 2))
    assert shown == pytest.approx([*solution, sse], rel=1e-3)
