"""How the command line runs a core call: a DlrunError becomes its message on stderr and its exit code
(2 for a user's mistake), a second Ctrl-C outside training a plain `interrupted` (130)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NoReturn

import typer

from dlrun.errors import ConfigError, DlrunError, Interrupted

EXIT_DIVERGED = 3
EXIT_UNEXPECTED = 1


def fail(error: DlrunError) -> NoReturn:
    """Print a user error on stderr (config problems one per line, as FILE:LINE: key: message)."""
    lines = error.lines()
    if not isinstance(error, ConfigError):
        lines = [f"error: {lines[0]}", *lines[1:]]
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(error.exit_code)


def run_command(action: Callable[[], Any]) -> Any:
    """Run a core call, turning user errors into a stderr message and their exit code."""
    try:
        return action()
    except DlrunError as error:
        fail(error)
    except KeyboardInterrupt:  # a second Ctrl-C outside the training loop: files are atomic, just stop
        typer.echo("interrupted", err=True)
        raise typer.Exit(Interrupted.exit_code) from None


def guarded(command: Callable[..., None]) -> Callable[..., None]:
    """`command` with its user errors printed as run_command prints them (Typer reads its signature)."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        run_command(lambda: command(*args, **kwargs))
    return wrapper
