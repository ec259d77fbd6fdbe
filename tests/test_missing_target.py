"""`dlrun evaluate` / `predict` / `transfer --from` on a path that does not exist: say so, and name the
closest run directories (never "a bare weights file needs --config" or "give --out DIR")."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli

from dlrun.store import names


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """Two run directories (a config.yaml is what makes one) and a folder that is not a run."""
    root = tmp_path / "runs"
    for name in ("mnist-cnn-20260101-120000", "mnist-cnn-20260102-090000", "notes"):
        (root / name).mkdir(parents=True)
    for name in ("mnist-cnn-20260101-120000", "mnist-cnn-20260102-090000"):
        (root / name / names.CONFIG).write_text("name: x\n")
    return root


@pytest.mark.parametrize("args", [
    ("evaluate", "{typo}"),
    ("evaluate", "{typo}", "--config", "c.yaml"),
    ("predict", "{typo}", "img.png"),
])
def test_a_missing_target_is_named_with_the_closest_runs(runs: Path, args: tuple[str, ...]) -> None:
    typo = runs / "mnist-cnn-20260101-1200"
    proc = run_cli(*[a.format(typo=typo) for a in args], cwd=runs.parent)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{typo}: no such run directory or weights file (the path does not exist)" in proc.stderr
    assert str(runs / "mnist-cnn-20260101-120000") in proc.stderr and "notes" not in proc.stderr
    assert "--config" not in proc.stderr and "--out" not in proc.stderr


def test_transfer_from_a_missing_path_names_the_closest_runs(runs: Path, tiny_config: Path) -> None:
    proc = run_cli("transfer", tiny_config, "--from", runs / "mnist-cnn-2026010", "--runs", runs)
    assert proc.returncode == 2, proc.stderr
    assert "(the path does not exist); the closest run directories:" in proc.stderr
