"""Console output: the live display renders on a terminal; json mode keeps stdout clean."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from dlrun.ui.console import EpochProgress, Reporter


def test_live_epoch_progress_renders_on_a_terminal() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    with EpochProgress(console, epochs=2, steps=3, start_epoch=0) as progress:
        for epoch in range(2):
            progress.epoch_begin(epoch)
            for batch in range(3):
                progress.batch_end(batch, {"loss": 0.5, "accuracy": 0.75})
            progress.epoch_end(epoch, {"loss": 0.5, "accuracy": 0.75})
    assert "epoch 2/2" in buffer.getvalue()


def test_json_mode_prints_only_json(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = Reporter(json_mode=True)
    reporter.info("human words")
    reporter.emit_json({"a": 1})
    assert capsys.readouterr().out == '{"a": 1}\n'


def test_not_live_when_stdout_is_not_a_terminal() -> None:
    assert Reporter().live is False
