"""Graceful stop with real signals sent to this process: the first asks, the second stops now,
except inside a protected block (a checkpoint being written), where it waits for the block's end; and
SIGTERM ends a command whose work grows with the problem within seconds (evaluate at 2,000 classes)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_MLP, start, write_config

import dlrun
from dlrun.interrupts import graceful_stop


def _signal(sig: signal.Signals = signal.SIGINT) -> None:
    os.kill(os.getpid(), sig)  # CPython runs the Python handler before os.kill returns


def test_first_signal_only_asks_to_stop() -> None:
    with graceful_stop() as stop:
        _signal(signal.SIGTERM)
        assert (stop.requested, stop.signal_name) == (True, "SIGTERM")


def test_second_signal_stops_at_once() -> None:
    with graceful_stop(), pytest.raises(KeyboardInterrupt):
        _signal()
        _signal()


def test_second_signal_waits_for_a_protected_block() -> None:
    finished = []
    with graceful_stop() as stop, pytest.raises(KeyboardInterrupt):
        _signal()
        with stop.protect():
            _signal()
            finished.append("checkpoint written")
    assert finished == ["checkpoint written"]


def test_handlers_are_restored_afterwards() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with graceful_stop():
        pass
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.slow
def test_a_stop_signalled_before_the_block_whose_exit_was_swallowed_stops_the_block_before_it_starts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI ends a command on Ctrl-C outside training by raising SystemExit from its handler; an import
    in progress may swallow it (`except BaseException`), and the command would go on to train and write a
    run. The handler records the signal, so the next graceful_stop block stops before its work begins."""
    from dlrun import interrupts
    from dlrun.cli import _exit_on_signal

    monkeypatch.setattr(interrupts, "SIGNALLED_BEFORE", [])
    previous = signal.signal(signal.SIGINT, _exit_on_signal)
    try:
        with contextlib.suppress(BaseException):  # a library swallowing the exit the handler raises
            _signal()
    finally:
        signal.signal(signal.SIGINT, previous)
    started = []
    with pytest.raises(KeyboardInterrupt), graceful_stop():
        started.append(True)
    assert started == [] and interrupts.SIGNALLED_BEFORE == ["SIGINT"]


def test_sigterm_ends_an_evaluate_of_2000_classes_within_seconds(tmp_path: Path) -> None:
    """It once drew a 2,000 x 2,000 labelled confusion matrix for minutes, deaf to SIGTERM."""
    rng = np.random.default_rng(0)
    (tmp_path / "d").mkdir()
    np.save(tmp_path / "d" / "X.npy", rng.random((8000, 8, 8), np.float32))
    np.save(tmp_path / "d" / "Y.npy", np.arange(8000) % 2000)
    layers = [{"flatten": {}}, {"dense": {"units": 2000, "activation": "softmax"}}]
    config = write_config(tmp_path, TINY_MLP, data={"source": "npy", "path": str(tmp_path / "d"), "test_split": 0.5},
                          model={"layers": layers}, train={"epochs": 1, "batch_size": 256})
    dlrun.train(config, run_dir=tmp_path / "run")
    proc = start("evaluate", tmp_path / "run", cwd=tmp_path)
    time.sleep(4)  # TensorFlow loaded or loading, the evaluation under way
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    proc.wait(timeout=120)
    assert (proc.returncode, time.monotonic() - signalled < 10) == (130, True)
