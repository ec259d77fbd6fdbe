"""The `dlrun` command line: parse, call the core, print. TensorFlow is imported only inside
commands that train or load weights, so `--help` and `validate` stay fast."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from dlrun.console import Reporter
from dlrun.errors import ConfigError, DlrunError

app = typer.Typer(
    name="dlrun",
    help="A YAML-driven experiment runner for Keras: validate, train, evaluate, sweep, transfer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_DIVERGED = 3

SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a config value: KEY=VALUE (dotted key, YAML value). Repeatable.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else there.")]
ConfigArg = Annotated[Path, typer.Argument(help="Experiment config (YAML).", show_default=False)]


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


@app.command()
def validate(config: ConfigArg, sets: SetOpt = None, json_out: JsonOpt = False) -> None:
    """Parse and check a config without training (fast: does not load TensorFlow)."""
    from dlrun.config import config_sha256, load_config

    lc = run_command(lambda: load_config(config, sets or []))
    reporter = Reporter(json_mode=json_out)
    reporter.emit_json({"valid": True, "config": str(config), "name": lc.config.name,
                        "config_sha256": config_sha256(lc.config)})
    reporter.info(f"{config}: valid ({lc.config.name}, {len(lc.config.model.layers)} layers, "
                  f"data: {lc.config.data.source})")


@app.command()
def train(
    config: Annotated[Path | None, typer.Argument(help="Experiment config (YAML).", show_default=False)] = None,
    sets: SetOpt = None,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="Write into this (new or empty) directory.")] = None,
    runs_root: Annotated[Path, typer.Option("--runs", help="Parent of new run directories.")] = Path("runs"),
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue an interrupted run directory.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Train one run; writes metrics, plots, weights and the resolved config into a run directory."""
    from dlrun import train as core

    reporter = Reporter(json_mode=json_out)
    if resume is not None:
        if sets:
            _fail(DlrunError("--set cannot change a resumed run; it keeps its own config"))
        summary = run_command(lambda: core.resume(resume, config, reporter))
    elif config is None:
        _fail(DlrunError("give a CONFIG to train, or --resume RUN_DIR"))
    else:
        summary = run_command(lambda: core.train(config, sets or [], run_dir, runs_root, reporter))
    reporter.emit_json(summary)
    if summary["status"] == "diverged":
        typer.echo(f"diverged at epoch {summary.get('diverged_epoch')} (non-finite loss); "
                   f"kept the last finite checkpoint in {summary['run_dir']}", err=True)
        raise typer.Exit(EXIT_DIVERGED)


@app.command()
def evaluate(
    target: Annotated[Path, typer.Argument(help="A run directory, or a weights file (.weights.h5, .keras, legacy .h5).")],
    config: Annotated[Path | None, typer.Option("--config", help="Config for the architecture and data (needed for a weights file).")] = None,
    sets: SetOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Where eval.json and confusion.png go (needed for a weights file).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Score saved weights on the config's test split: loss, accuracy, per-class F1, confusion."""
    from dlrun.evaluate import evaluate as core_evaluate

    reporter = Reporter(json_mode=json_out)
    result = run_command(lambda: core_evaluate(target, config, sets or [], out, reporter))
    reporter.emit_json(result)


@app.command()
def sweep(
    config: Annotated[Path | None, typer.Argument(help="Experiment config (YAML) with a `sweep:` section, "
                                                  "or flags below.", show_default=False)] = None,
    sets: SetOpt = None,
    lr: Annotated[str | None, typer.Option("--lr", help="Learning rates to try (sweeps optimizer.lr), "
                                           "comma-separated, e.g. 1e-4,1e-3,0.01.")] = None,
    lam: Annotated[str | None, typer.Option("--lambda", help="L2 strengths to try (sweeps model.l2), "
                                            "comma-separated, e.g. 0,1e-3,0.01.")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="grid: every combination; zip: pairwise, "
                                             "lists of equal length. Overrides sweep.mode.")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", min=1, help="Trials at once, in worker processes "
                                             "(default: 1 on CPU, one per GPU).")] = None,
    sweep_dir: Annotated[Path | None, typer.Option("--sweep-dir", help="Write into this (new or empty) "
                                                   "directory.")] = None,
    runs_root: Annotated[Path, typer.Option("--runs", help="Where new sweep directories go.")] = Path("runs"),
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue an interrupted sweep directory: "
                                                "runs only the trials that have not ended.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Train one run per point of a parameter space (grid or zip); rank them, keep going past
    diverged trials, resume after an interruption."""
    from dlrun.sweep import sweep as core_sweep

    reporter = Reporter(json_mode=json_out)
    summary = run_command(lambda: core_sweep(config, sets or [], lr, lam, mode, jobs, sweep_dir, resume,
                                             reporter, runs_root=runs_root))
    reporter.emit_json(summary)


def main() -> None:
    """Console entry point."""
    from dlrun import backend

    backend.silence_native_logs()
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
