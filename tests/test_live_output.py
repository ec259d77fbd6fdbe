"""Output through a pipe (`dlrun train | cat`, `!dlrun train` in a notebook cell): one line per finished
epoch, trial or stage arrives while the run still goes on, read from a real pipe with arrival times;
--json keeps stdout one JSON document."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import LIVE_CNN, TINY_MLP, cli_env, deep_merge, run_cli, write_config

EPOCH = re.compile(r"^epoch (\d+)/(\d+)  .*loss \d+\.\d+.*\((\d+\.\d)s\)$")


def timed_lines(*args: str | Path, timeout: float = 300) -> tuple[list[tuple[float, bool, str]], float, str]:
    """Run `dlrun ARGS` with stdout on a pipe; each stdout line with its arrival time and whether the
    process was still running then, the time it exited, and its stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "dlrun", *map(str, args)], env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[tuple[float, bool, str]] = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        lines.append((time.monotonic(), proc.poll() is None, line.rstrip("\n")))
        assert time.monotonic() < deadline
    proc.wait(timeout=timeout)
    ended = time.monotonic()
    err = proc.stderr.read()
    assert proc.returncode == 0, err
    return lines, ended, err


def epoch_lines(lines: list[tuple[float, bool, str]]) -> list[tuple[float, bool, re.Match[str]]]:
    return [(t, alive, m) for t, alive, line in lines if (m := EPOCH.match(line))]


def test_train_through_a_pipe_prints_each_epoch_as_it_ends(tmp_path: Path) -> None:
    config = write_config(tmp_path, deep_merge(LIVE_CNN, {"train": {"epochs": 5}}))
    lines, ended, _ = timed_lines("train", config, "--runs", tmp_path / "runs")
    epochs = epoch_lines(lines)
    assert [int(m[1]) for _, _, m in epochs] == [1, 2, 3, 4, 5] and {m[2] for _, _, m in epochs} == {"5"}
    first, last = epochs[0][0], epochs[-1][0]
    assert epochs[0][1], "the first epoch line arrived only after the process had ended"
    # epochs 2..5 took the seconds their lines report; lines held back until the end arrive together
    trained = sum(float(m[3]) for _, _, m in epochs[1:])
    assert last - first >= 0.5 * trained > 0
    assert ended - first > last - first


def test_json_stays_one_document_and_prints_no_epoch_lines(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP)
    proc = run_cli("train", config, "--runs", tmp_path / "runs", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "completed"
    assert "epoch 1/2" not in proc.stderr


def test_sweep_through_a_pipe_prints_each_trial_as_it_ends(tmp_path: Path) -> None:
    config = write_config(tmp_path, deep_merge(TINY_MLP, {"train": {"epochs": 3}}))
    lines, ended, _ = timed_lines("sweep", config, "--lr", "0.01,0.05,0.1", "--lambda", "0",
                                  "--sweep-dir", tmp_path / "s")
    trials = [(t, alive, line) for t, alive, line in lines if line.startswith("trial ")]
    assert len(trials) == 3
    assert all(re.search(r"completed +val_accuracy \d\.\d{4} .*optimizer\.lr=", line) for _, _, line in trials)
    assert trials[0][1] and trials[-1][0] - trials[0][0] > 0
    assert not any(EPOCH.match(line) for _, _, line in lines), "a trial's epochs stay out of the sweep's output"


@pytest.fixture(scope="module")
def source_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("live-source")
    proc = run_cli("train", write_config(directory, deep_merge(TINY_MLP, {"train": {"epochs": 1}})),
                   "--run-dir", directory / "run")
    assert proc.returncode == 0, proc.stderr
    return directory / "run"


def test_transfer_through_a_pipe_prints_each_stage_and_epoch(source_run: Path, tmp_path: Path) -> None:
    stages = [{"name": "head", "freeze": "features", "epochs": 2},
              {"name": "all", "freeze": "none", "epochs": 2, "optimizer": {"lr": 0.01}}]
    config = write_config(tmp_path, deep_merge(TINY_MLP, {"transfer": {"stages": stages}}))
    lines, _, _ = timed_lines("transfer", config, "--from", source_run, "--runs", tmp_path / "runs")
    text = [line for _, _, line in lines]
    head, whole = (next(i for i, line in enumerate(text) if line.startswith(f"stage {name}:"))
                   for name in ("head", "all"))
    assert [m[1] for m in map(EPOCH.match, text[head + 1:whole]) if m] == ["1", "2"]
    assert [m[1] for m in map(EPOCH.match, text[whole + 1:]) if m] == ["3", "4"]
    assert lines[head][1], "the first stage's line arrived only after the process had ended"
