"""The `dlrun` command line: parse, call the core, print. TensorFlow is imported only inside
commands that train or load weights, so `--help` and `validate` stay fast."""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, NoReturn

import typer

from dlrun import cli_runs, cli_tools
from dlrun.cli_tools import (
    ConfigArg,
    JsonOpt,
    NoCacheOpt,
    SetOpt,
    TrackOpt,
    complete_config,
    complete_run,
    complete_target,
)
from dlrun.errors import ConfigError, DlrunError, Interrupted
from dlrun.store.names import DEFAULT_RUNS_ROOT
from dlrun.ui.console import Reporter

app = typer.Typer(
    name="dlrun",
    help="A YAML-driven experiment runner for Keras: validate, train, evaluate, sweep, transfer.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish)
    pretty_exceptions_enable=False,
)

EXIT_DIVERGED = 3
EXIT_UNEXPECTED = 1

def _fail(error: DlrunError) -> NoReturn:
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
        _fail(error)
    except KeyboardInterrupt:  # a second Ctrl-C outside the training loop: files are atomic, just stop
        typer.echo("interrupted", err=True)
        raise typer.Exit(Interrupted.exit_code) from None


@app.command()
def validate(config: ConfigArg, sets: SetOpt = None, json_out: JsonOpt = False,
             no_data: Annotated[bool, typer.Option("--no-data", help="Check the config only: not the data "
                                                   "path and labels.")] = False) -> None:
    """Parse and check a config, its data path and label range, without training (fast: does not load
    TensorFlow or decode images)."""
    from dlrun.commands.validate import validate as core_validate

    result = run_command(lambda: core_validate(config, sets or [], data=not no_data))
    reporter = Reporter(json_mode=json_out)
    reporter.emit_json({k: result[k] for k in ("valid", "config", "name", "config_sha256", "checked")})
    reporter.info(f"{config}: valid ({result['name']}, {result['layers']} layers, data: {result['source']})")
    for line in result["checked"]:
        reporter.info(f"  data: {line}")
    if not no_data:
        reporter.info(f"  left to train: {'; '.join(result['train_only'])}")


@app.command()
def train(
    config: Annotated[Path | None, typer.Argument(help="Experiment config (YAML).", show_default=False,
                                                  autocompletion=complete_config)] = None,
    sets: SetOpt = None,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="Write into this (new or empty) directory.")] = None,
    runs_root: Annotated[Path, typer.Option("--runs", help="Parent of new run directories.")] = DEFAULT_RUNS_ROOT,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue an interrupted run directory.",
                                                autocompletion=complete_run)] = None,
    no_cache: NoCacheOpt = False,
    track: TrackOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Train one run; writes metrics, plots, weights and the resolved config into a run directory."""
    reporter = Reporter(json_mode=json_out)
    if resume is not None:
        from dlrun.commands.resume import resume as core_resume

        if sets or run_dir:
            _fail(DlrunError(f"{'--set' if sets else '--run-dir'} cannot be used with --resume: a resumed run "
                             "keeps its own config and directory"))
        summary = run_command(lambda: core_resume(resume, config, reporter, use_cache=not no_cache, track=track))
    elif config is None:
        _fail(DlrunError("give a CONFIG to train, or --resume RUN_DIR"))
    else:
        from dlrun.commands.train import train as core_train

        summary = run_command(lambda: core_train(config, sets or [], run_dir, runs_root, reporter,
                                                 use_cache=not no_cache, track=track))
    reporter.emit_json(summary)
    if summary["status"] == "diverged":
        epoch = summary.get("diverged_epoch")
        kept = (f"kept the checkpoint of epoch {summary['epochs_run']} (the last finite one) in {summary['run_dir']}"
                if summary["epochs_run"] else "no epoch finished with a finite loss, so no weights were saved")
        typer.echo(f"diverged at epoch {epoch} (non-finite loss); {kept}. Try a smaller optimizer.lr", err=True)
        raise typer.Exit(EXIT_DIVERGED)


@app.command()
def evaluate(
    target: Annotated[Path, typer.Argument(
        help="A run directory, or a weights file (.weights.h5, .keras, legacy .h5).", autocompletion=complete_target)],
    config: Annotated[Path | None, typer.Option(
        "--config", help="Config for the architecture and data (needed for a weights file).",
        autocompletion=complete_config)] = None,
    sets: SetOpt = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Where eval.json and confusion.png go (needed for a weights file).")] = None,
    no_cache: NoCacheOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Score saved weights on the config's test split: loss, accuracy, per-class F1, confusion."""
    from dlrun.commands.evaluate import evaluate as core_evaluate

    reporter = Reporter(json_mode=json_out)
    result = run_command(lambda: core_evaluate(target, config, sets or [], out, reporter, use_cache=not no_cache))
    reporter.emit_json(result)


@app.command()
def transfer(
    config: Annotated[Path | None, typer.Argument(
        help="Config of the target model and data (YAML).", show_default=False, autocompletion=complete_config)] = None,
    source: Annotated[str | None, typer.Option(
        "--from", help="Weights to start from: a run directory, .weights.h5, .keras or legacy Keras-2 .h5.",
        autocompletion=complete_target)] = None,
    freeze: Annotated[str | None, typer.Option(
        "--freeze", help="Freeze policy of a single-stage transfer: none, all, features, or names/globs.")] = None,
    sets: SetOpt = None,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="Write into this (new or empty) directory.")] = None,
    runs_root: Annotated[Path, typer.Option("--runs", help="Parent of new run directories.")] = DEFAULT_RUNS_ROOT,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue an interrupted transfer run.",
                                                autocompletion=complete_run)] = None,
    unsafe: Annotated[bool, typer.Option(
        "--unsafe", help="Let a base model run code it holds (a .keras file's Lambda layers, a SavedModel's "
        "file, network or Python ops); trusted files only.")] = False,
    no_cache: NoCacheOpt = False,
    track: TrackOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Fine-tune from saved weights: print the layer mapping, evaluate, then train in stages."""
    from dlrun.transfers.run import transfer as core_transfer

    reporter = Reporter(json_mode=json_out)
    summary = run_command(lambda: core_transfer(config, sets or [], source, freeze, run_dir, runs_root, reporter,
                                                resume, unsafe, use_cache=not no_cache, track=track))
    reporter.emit_json(summary)
    if summary["status"] == "diverged":
        kept = (f"kept the last finite checkpoint in {summary['run_dir']}" if summary["epochs_run"]
                else "no epoch finished with a finite loss, so no weights were saved")
        typer.echo(f"diverged in stage {summary.get('diverged_stage')} at epoch {summary.get('diverged_epoch')} "
                   f"(non-finite loss); {kept}. Try a smaller optimizer.lr", err=True)
        raise typer.Exit(EXIT_DIVERGED)


def _guarded(command: Callable[..., None]) -> Callable[..., None]:
    """`command` with its user errors printed as run_command prints them (Typer reads its signature)."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        run_command(lambda: command(*args, **kwargs))
    return wrapper


app.command()(_guarded(cli_tools.sweep))
app.command()(_guarded(cli_runs.runs))
app.command()(_guarded(cli_runs.compare))
app.command()(_guarded(cli_runs.track))
app.command()(_guarded(cli_tools.predict))
app.command()(_guarded(cli_tools.export))
app.command()(_guarded(cli_tools.schema))
app.command()(_guarded(cli_tools.env))
cache_app = typer.Typer(name="cache", help="The data cache: `info` (the default) lists its entries, `clear` "
                        "removes them.", invoke_without_command=True)
cache_app.callback()(_guarded(cli_tools.cache))
cache_app.command("info")(_guarded(cli_tools.cache_info))
cache_app.command("clear")(_guarded(cli_tools.cache_clear))
app.add_typer(cache_app)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    # Outside training (which installs its own graceful handler) Ctrl-C / SIGTERM end the command with
    # 130. SystemExit, unlike KeyboardInterrupt, is not turned into click's "Aborted!" (exit 1).
    typer.echo("interrupted", err=True)
    raise SystemExit(Interrupted.exit_code)


def main() -> None:
    """Console entry point. Anything unexpected becomes a one-line error (exit 1); set DLRUN_DEBUG=1
    for the traceback."""
    from dlrun.engine import backend

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_on_signal)
    backend.silence_native_logs()
    try:
        app(prog_name="dlrun")  # also under `python -m dlrun`: usage and completion say dlrun
        code = 0
    except SystemExit as stop:
        code = _exit_code(stop.code)
    except Exception as exc:
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
