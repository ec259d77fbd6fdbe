"""TensorBoard event files without TensorFlow: list the ones in a folder, and write a whole file of
events at once (atomically, in TensorFlow's record format, with TensorBoard's own record writer).

A sweep writes its HParams records through this without loading TensorFlow, and a resumed run
rewrites the history it keeps through it (see tensorboard.py).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dlrun.store import files
from dlrun.store.names import TB_TRAIN, TB_VALIDATION

MARKER = ".tfevents."  # what TensorBoard looks for in a file name
FILE_VERSION = "brain.Event:2"


def event_files(folder: Path) -> list[Path]:
    """The event files directly in `folder`, in the order TensorBoard reads them (by name)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if MARKER in p.name and p.is_file() and not files.is_temp_file(p.name))


def event_file_name(stamp: float, suffix: str = "") -> str:
    """`events.out.tfevents.<seconds>.<host>.<pid><suffix>`, the name TensorFlow's writers use: files sort
    by their creation second, which is the order TensorBoard reads them in."""
    return f"events.out{MARKER}{int(stamp):010d}.{socket.gethostname()}.{os.getpid()}{suffix}"


def write_event_file(folder: Path, events: Iterable[Any], suffix: str = "", stamp: float | None = None) -> Path:
    """Write `events` (tensorboard Event protos) as one new event file in `folder`; returns its path.

    The file appears whole or not at all (written beside it, then renamed)."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    stamp = time.time() if stamp is None else stamp
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / event_file_name(stamp, suffix)
    with files.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        writer = RecordWriter(fh)
        writer.write(event_pb2.Event(wall_time=stamp, file_version=FILE_VERSION).SerializeToString())
        for event in events:
            writer.write(event.SerializeToString())
    return path


def summary_event(summary: Any, step: int = 0, wall_time: float | None = None) -> Any:
    """An Event holding `summary` (a tensorboard Summary proto) at `step`."""
    from tensorboard.compat.proto import event_pb2

    return event_pb2.Event(wall_time=time.time() if wall_time is None else wall_time, step=step, summary=summary)


def scalar_location(metric: str) -> tuple[str, str]:
    """(folder under RUN/tb, tag) of a metric, as Keras' TensorBoard callback names them: `loss` ->
    (train, epoch_loss), `val_accuracy` -> (validation, epoch_accuracy); a summary-only metric such as
    `test_loss` or `best_val_accuracy` -> ("", test_loss): RUN/tb itself, written when the run ends."""
    if metric.startswith("val_"):
        return TB_VALIDATION, f"epoch_{metric.removeprefix('val_')}"
    if metric.startswith(("test_", "best_")):
        return "", metric
    return TB_TRAIN, f"epoch_{metric}"
