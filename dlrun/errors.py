"""One error hierarchy: every user mistake is a DlrunError with an actionable message."""

from __future__ import annotations

from dataclasses import dataclass


class DlrunError(Exception):
    """Base of every error a user can act on; the CLI prints it and exits with `exit_code`."""

    exit_code = 2

    def lines(self) -> list[str]:
        """The message as lines, one per problem."""
        return str(self).splitlines() or [type(self).__name__]


@dataclass(frozen=True)
class Problem:
    """One problem in a config: where (`origin`, e.g. 'cfg.yaml:12' or '--set a.b=1'), which key, what."""

    origin: str
    key: str
    message: str

    def render(self) -> str:
        """`ORIGIN: key: message` (the key is left out when empty)."""
        key = f" {self.key}:" if self.key else ""
        return f"{self.origin}:{key} {self.message}"


class ConfigError(DlrunError):
    """A config file or override is invalid; carries every problem found at once."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(p.render() for p in problems))


class DataError(DlrunError):
    """A data source is missing, unreadable or inconsistent."""


class WeightsError(DlrunError):
    """A weights file is missing, corrupt or does not fit the model."""


class RunDirError(DlrunError):
    """A run directory is missing, not a run, or cannot be created."""


class QueryError(DlrunError):
    """A `dlrun runs` filter, sort key or column that cannot be read."""


class SweepError(DlrunError):
    """A sweep cannot be planned or resumed."""


class SweepFailed(DlrunError):
    """A sweep stopped because `sweep.max_failures` trials in a row failed: something is broken beyond
    one trial's settings (exit 1, like an internal error; each trial's error.txt has its traceback)."""

    exit_code = 1


class TransferError(DlrunError):
    """A transfer mapping or freeze policy cannot be applied."""


class Interrupted(DlrunError):
    """Training was stopped by Ctrl-C/SIGTERM after its last complete epoch was saved."""

    exit_code = 130


class StorageError(DlrunError):
    """The disk is full or read-only: what was written before stays whole, the run can be resumed once
    there is space (exit 2, like every problem the user has to fix)."""
