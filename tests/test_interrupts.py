"""Graceful stop with real signals sent to this process: the first asks, the second stops now,
except inside a protected block (a checkpoint being written), where it waits for the block's end."""

from __future__ import annotations

import os
import signal

import pytest

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
