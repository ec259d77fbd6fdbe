"""The CLI of one run: `dlrun validate`, `train`, `evaluate`, `predict` and `export`. Parse, call the core,
print; TensorFlow is imported only inside the core of the commands that train or load weights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dlrun.cli.calls import EXIT_DIVERGED, fail, run_command
from dlrun.cli.options import (
    ConfigArg,
    ExportFormat,
    JsonOpt,
    NoCacheOpt,
    SetOpt,
    TrackOpt,
    complete_config,
    complete_run,
    complete_target,
)
from dlrun.errors import DlrunError
from dlrun.store.names import DEFAULT_RUNS_ROOT
from dlrun.ui.console import Reporter


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
            fail(DlrunError(f"{'--set' if sets else '--run-dir'} cannot be used with --resume: a resumed run "
                             "keeps its own config and directory"))
        summary = run_command(lambda: core_resume(resume, config, reporter, use_cache=not no_cache, track=track))
    elif config is None:
        fail(DlrunError("give a CONFIG to train, or --resume RUN_DIR"))
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


def predict(
    target: Annotated[Path, typer.Argument(
        help="A run directory, or a weights file (.weights.h5, .keras, legacy .h5) with --config.",
        autocompletion=complete_target)],
    inputs: Annotated[list[Path], typer.Argument(
        help="Image files, image folders, .npy arrays of examples, .csv files of feature rows.", show_default=False)],
    config: Annotated[Path | None, typer.Option(
        "--config", help="Config for the architecture and data (needed for a weights file).",
        autocompletion=complete_config)] = None,
    sets: SetOpt = None,
    top: Annotated[int, typer.Option("--top", min=1, help="List the K most probable classes per input.")] = 3,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the predictions as CSV (a new file).")] = None,
    grid: Annotated[Path | None, typer.Option(
        "--grid", help="Also draw the image inputs with their predicted labels (PNG, at most 5x5).")] = None,
    no_cache: Annotated[bool, typer.Option(
        "--no-cache", help="Read the data (only needed for a weights file) without the data cache.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Predict the class (or value) of new inputs, prepared exactly as the run's training data was."""
    from dlrun.commands.predict import predict as core_predict

    reporter = Reporter(json_mode=json_out)
    if not reporter.out.is_terminal:  # piped or redirected: whole paths rather than 80 columns
        reporter.out.width = max(reporter.out.width, 200)
    result = core_predict(target, list(inputs), config, sets or [], top, out, grid, reporter, use_cache=not no_cache)
    reporter.emit_json(result)


def export(
    run_dir: Annotated[Path, typer.Argument(help="The run directory whose model is exported.",
                                            autocompletion=complete_run)],
    fmt: Annotated[ExportFormat, typer.Option(
        "--format", help="keras: a Keras 3 .keras file; h5: a legacy Keras-2 .h5 (tf-keras load_model); "
        "savedmodel: a TensorFlow SavedModel folder for serving.")] = "keras",
    out: Annotated[Path | None, typer.Option(
        "--out", help="Where to write it (a new path; default: in the run directory).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Hand the trained model to the next tool: a .keras file, a Keras-2 .h5 or a SavedModel."""
    from dlrun.commands.export import export as core_export

    reporter = Reporter(json_mode=json_out)
    result = core_export(run_dir, fmt, out, reporter)
    reporter.emit_json(result)
