"""An exclusive lock on a run or sweep directory, held by whichever process trains in it (or runs the
sweep): an flock on the directory, released when the process ends, however it ends."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from dlrun.errors import RunDirError

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


def lock_held(path: Path) -> bool:
    """True when a process holds the run lock on the directory `path` (a run trains, a sweep runs in it).

    This is how dlrun tells a live run from a crashed one: the lock ends with its process, however it
    ends, while the pid in summary.json may belong to an unrelated process by now (pids are reused,
    e.g. after a restart). Asked from a process that holds the lock itself, the answer is True too.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False  # no directory: nothing can hold it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the lock just taken
    return False


def lock_holder(path: Path) -> str | None:
    """`pid 1234 on host NAME` for the process holding the run lock on `path` (read from /proc/locks,
    Linux), or None when it cannot be told."""
    try:
        st = os.stat(path)
        wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == wanted and fields[4].isdigit():
                    return f"pid {fields[4]} on host {socket.gethostname()}"
    except OSError:
        pass
    return None


@contextlib.contextmanager
def exclusive_lock(path: Path, what: str) -> Iterator[None]:
    """Hold the run lock on the directory `path` for the block, or fail at once: RunDirError saying
    `what` the other process is doing and who it is (pid and host). The lock is the one `run_lock`
    takes, so a resume, a sweep worker and a fresh run never train in one directory at once."""
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = lock_holder(path) or "another process"
            raise RunDirError(f"{path} is {what} by another dlrun process ({who}); wait for it to end, or stop "
                              "it, then try again") from None
        yield
    finally:
        os.close(fd)
