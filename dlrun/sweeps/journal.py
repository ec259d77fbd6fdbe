"""The sweep's Optuna journal (study.journal) as a record: checked before Optuna replays it.

The journal is append-only, one JSON operation a line. A process killed (or a disk filled) in the
middle of an append leaves a torn last line, without its newline: that unfinished write is dropped,
as a journal does, so that nothing is ever appended after it. Any other damage (a line of garbage, a
line edited by hand, a record Optuna cannot replay) is an error naming the journal, the line and how
to recover; it is never guessed around.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dlrun.errors import SweepError
from dlrun.store import names


def damaged(path: Path, where: str, why: str) -> SweepError:
    """The error for a journal that cannot be trusted: what is wrong, where, and the ways out."""
    cut = ", or delete that line and the lines after it to resume from the history before it" if where else ""
    return SweepError(f"{path}{where}: {why}; this is the sweep's search history (Optuna's journal), written only by "
                      f"dlrun, so it is damaged or was edited. Restore it from a backup{cut}, or start a new sweep")


def recover(path: Path) -> str | None:
    """Check the journal at `path` line by line; drop a torn last line (truncating the file to its last
    complete line). Returns a note saying what was dropped, or None when the journal was whole or absent.

    Raises:
        SweepError: a complete line is not an operation Optuna writes (named with its line number).
    """
    from optuna.storages.journal._storage import JournalOperation

    if not path.is_file():
        return None
    known = {int(op) for op in JournalOperation}
    whole = 0  # bytes up to the end of the last complete line
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.endswith(b"\n"):  # only the last line can lack its newline
                return _drop_torn_tail(path, whole, len(line), number)
            whole += len(line)
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise damaged(path, f":{number}", "line is not JSON" if line.strip() else "line is blank") from None
            if not isinstance(record, dict) or record.get("op_code") not in known \
                    or isinstance(record.get("op_code"), bool):
                raise damaged(path, f":{number}", "line is not an operation Optuna writes (no known op_code)")
    return None


def _drop_torn_tail(path: Path, whole: int, torn: int, number: int) -> str:
    """Truncate the journal at `path` to its first `whole` bytes (fsynced); the note for the user."""
    with open(path, "rb+") as fh:
        fh.truncate(whole)
        fh.flush()
        os.fsync(fh.fileno())
    return (f"{path}: dropped its torn last line (line {number}, {torn} bytes without a newline: a write the sweep "
            "did not finish when it was stopped); the trials' own directories say how they ended")


def unknown_trials(root: Path, known: set[str]) -> list[str]:
    """Trial directories under the sweep at `root` (each with its config) that the journal does not know: a
    seed's directory (`024-1`, sweep.repeats) is known when its point (`024`) is."""
    trials = root / names.SWEEP_TRIALS
    if not trials.is_dir():
        return []
    return sorted(p.name for p in trials.iterdir()
                  if p.name not in known and p.name.split("-")[0] not in known and (p / names.CONFIG).is_file())
