"""The CLI of `dlrun transfer`: start from saved weights, print the layer mapping, fine-tune in stages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dlrun.cli.calls import EXIT_DIVERGED, run_command
from dlrun.cli.options import JsonOpt, NoCacheOpt, SetOpt, TrackOpt, complete_config, complete_run, complete_target
from dlrun.store.names import DEFAULT_RUNS_ROOT
from dlrun.ui.console import Reporter


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
