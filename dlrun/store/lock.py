"""An exclusive lock on a run directory, held by whichever process trains in it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

POLL_SECONDS = 0.2


@contextlib.contextmanager
def run_lock(path: Path, give_up: Callable[[], bool]) -> Iterator[bool]:
    """Hold an exclusive lock on the directory `path`, waiting for it while `give_up()` is False.
    Yields True with the lock held, or False when `give_up()` became True first.

    A trial left running by a killed sweep's worker stops by itself within a batch; the lock makes
    a resumed sweep wait for that, so no run ever trains twice at once. Closing the descriptor
    (also when the process dies) releases the lock.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        acquired = False
        while not acquired and not give_up():
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                acquired = True
            except BlockingIOError:
                time.sleep(POLL_SECONDS)
        yield acquired
    finally:
        os.close(fd)
