"""The `dlrun` command line: parse, call the core, print; exit codes live here and in calls.py. One module
per family of commands (one run, sweep, transfer, many runs, tools), registered below in the order
`dlrun --help` lists them. TensorFlow is imported only inside commands that train or load weights, so
`--help` and `validate` stay fast."""

from __future__ import annotations

import os
import signal
from types import FrameType

import typer

from dlrun import interrupts
from dlrun.cli import runs, single, sweep, tools, transfer
from dlrun.cli.calls import EXIT_UNEXPECTED, guarded
from dlrun.errors import Interrupted

app = typer.Typer(
    name="dlrun",
    help="A YAML-driven experiment runner for Keras: validate, train, evaluate, sweep, transfer.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish)
    pretty_exceptions_enable=False,
)

app.command()(single.validate)
app.command()(single.train)
app.command()(single.evaluate)
app.command()(transfer.transfer)
app.command()(guarded(sweep.sweep))
app.command()(guarded(runs.runs))
app.command()(guarded(runs.compare))
app.command()(guarded(runs.track))
app.command()(guarded(single.predict))
app.command()(guarded(single.export))
app.command()(guarded(tools.schema))
app.command()(guarded(tools.env))
cache_app = typer.Typer(name="cache", help="The data cache: `info` (the default) lists its entries, `clear` "
                        "removes them.", invoke_without_command=True)
cache_app.callback()(guarded(tools.cache))
cache_app.command("info")(guarded(tools.cache_info))
cache_app.command("clear")(guarded(tools.cache_clear))
app.add_typer(cache_app)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    # Outside training (which installs its own graceful handler) Ctrl-C / SIGTERM end the command with
    # 130. SystemExit, unlike KeyboardInterrupt, is not turned into click's "Aborted!" (exit 1).
    interrupts.stopped_before(signal.Signals(signum).name)
    typer.echo("interrupted", err=True)
    raise SystemExit(Interrupted.exit_code)


def main() -> None:
    """Console entry point. Anything unexpected becomes a one-line error (exit 1); set DLRUN_DEBUG=1
    for the traceback."""
    from dlrun.engine import backend

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_on_signal)
    backend.own_process()
    backend.silence_native_logs()
    try:
        app(prog_name="dlrun")  # also under `python -m dlrun`: usage and completion say dlrun
        code = 0
    except SystemExit as stop:
        code = _exit_code(stop.code)
    except Exception as exc:
        # a stop that arrived inside native code (an import of TensorFlow), which re-raised it as an error
        if interrupts.SIGNALLED_BEFORE:  # of its own: still a stop, not a bug
            code = Interrupted.exit_code
            backend.exit_now(code)
        if os.environ.get("DLRUN_DEBUG"):
            raise
        reason = str(exc).splitlines()[0] if str(exc) else ""
        typer.echo(f"error: unexpected {type(exc).__name__}: {reason}", err=True)
        typer.echo("this is a bug in dlrun (or an input it does not check yet); rerun with DLRUN_DEBUG=1 "
                   "for the traceback and report it", err=True)
        code = EXIT_UNEXPECTED
    backend.exit_now(code)


def _exit_code(code: object) -> int:
    """The exit status sys.exit(code) would give."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    typer.echo(str(code), err=True)
    return 1
