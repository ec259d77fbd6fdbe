"""The `dlrun` command and `python -m dlrun`. Ctrl-C / SIGTERM mean exit 130 from the first instant:
the handlers go in before the command line's imports (Typer, rich), which can take a second on a
busy machine; `dlrun.cli.main` then takes over with the same behaviour."""

from __future__ import annotations

import signal
import sys
from types import FrameType

INTERRUPTED = 130  # dlrun.errors.Interrupted.exit_code; not imported here, to keep this instant


def _interrupted(signum: int, frame: FrameType | None) -> None:
    sys.stderr.write("interrupted\n")
    raise SystemExit(INTERRUPTED)


def main() -> None:
    """Install the signal handlers, then run the command line."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupted)
    from dlrun.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
