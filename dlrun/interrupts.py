"""Graceful Ctrl-C / SIGTERM: the first signal asks work to stop at a safe point, the second
stops at once (files are written atomically, so the last good checkpoint survives either way).

A second signal that arrives while a checkpoint is being written (inside `StopRequest.protect()`)
is held back until that block ends, so the checkpoint, metrics.csv and the in-memory epoch count
always agree about which epoch is the last complete one.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class StopRequest:
    """A flag a signal handler sets; long-running work polls `requested`."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._protected = 0
        self._abort_pending = False

    def signal_received(self, name: str) -> None:
        """Record a signal: the first asks for a graceful stop, a later one aborts now
        (raises KeyboardInterrupt), or as soon as a protected block ends."""
        if not self.requested:
            self.requested = True
            self.signal_name = name
            return
        if self._protected:
            self._abort_pending = True
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def protect(self) -> Iterator[None]:
        """A block that a second signal does not cut short (it aborts right after the block)."""
        self._protected += 1
        try:
            yield
        finally:
            self._protected -= 1
        if not self._protected and self._abort_pending:
            self._abort_pending = False
            raise KeyboardInterrupt


SIGNALLED_BEFORE: list[str] = []  # stop signals received outside any graceful_stop block (see stopped_before)


def stopped_before(name: str) -> None:
    """Record a stop signal that arrived outside a graceful_stop block. The CLI's handler records it and
    raises SystemExit to end the command, but an import in progress can swallow that exit (a library's
    `except BaseException`): the next graceful_stop block then stops before its work begins."""
    SIGNALLED_BEFORE.append(name)


@contextlib.contextmanager
def graceful_stop() -> Iterator[StopRequest]:
    """Install SIGINT/SIGTERM handlers for the duration of the block (main thread only). Raises
    KeyboardInterrupt at once when a stop signal arrived before the block (stopped_before)."""
    if SIGNALLED_BEFORE:
        raise KeyboardInterrupt
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        request.signal_received(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
