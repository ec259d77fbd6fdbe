"""The pipe between the sweep and a local worker process (processes.py, worker.py): the data sets sent
once, pickled so that a memory-mapped array goes as a reference to its file, and messages queued
behind them."""

from __future__ import annotations

import contextlib
import io
import threading
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Any

from dlrun.data import Dataset
from dlrun.data.mapped import file_reference, reopen


class _DataPickler(ForkingPickler):
    """Connection.send's pickler, but a memory-mapped array goes as its file reference (mapped.reopen
    maps it in the worker) instead of as its bytes."""

    def reducer_override(self, obj: Any) -> Any:
        reference = file_reference(obj)
        return NotImplemented if reference is None else (reopen, reference)


def serialized(datasets: dict[str, Dataset]) -> Any:
    """The data sets as the worker's recv() reads them back (see _DataPickler)."""
    buffer = io.BytesIO()
    _DataPickler(buffer).dump(datasets)
    return buffer.getbuffer()


def send_data(conn: Connection, payload: Any) -> None:
    """Send the pickled data sets (a worker that died before reading: its trial is reported lost)."""
    with contextlib.suppress(OSError):
        conn.send_bytes(payload)


def send_after(previous: threading.Thread, conn: Connection, message: Any) -> None:
    """Send `message` once the send in `previous` (a thread) has ended."""
    previous.join()
    with contextlib.suppress(OSError):
        conn.send(message)


def receive(conn: Connection) -> Any:
    """The next message on `conn`, or None when there is none or the worker is gone."""
    if not conn.poll():
        return None
    try:
        return conn.recv()
    except (EOFError, OSError):
        return None
