"""The CLI of `dlrun sweep` and of the tools around training: `dlrun predict`, `dlrun export`,
`dlrun schema`, `dlrun env`, `dlrun cache info | clear`, and the shell-completion callbacks of the other
commands' arguments. Parse, call the core, print; a DlrunError is turned into its message and exit code
by cli.py, which registers these commands. No TensorFlow here (predict and export load it inside their
core; `dlrun env` only to list the devices)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from dlrun.store.names import DEFAULT_RUNS_ROOT
from dlrun.ui.console import Reporter

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else there.")]
TrackOpt = Annotated[str | None, typer.Option(
    "--track", metavar="mlflow[=URI]", help="Also record the run in MLflow: the local store RUNS/mlflow.db (`mlflow "
    "ui --backend-store-uri sqlite:///RUNS/mlflow.db`), or a tracking server's URI. Overrides the config's "
    "tracking: section.", show_default=False)]
ExportFormat = Literal["keras", "h5", "savedmodel"]


def sweep(
    config: Annotated[Path | None, typer.Argument(help="Experiment config (YAML) with a `sweep:` section, "
                                                  "or flags below.", show_default=False,
                                                  autocompletion=complete_config)] = None,
    sets: SetOpt = None,
    lr: Annotated[str | None, typer.Option("--lr", help="Learning rates to try (sweeps optimizer.lr), "
                                           "comma-separated, e.g. 1e-4,1e-3,0.01; or a log-uniform range for "
                                           "--search random/tpe, e.g. 1e-5:10.")] = None,
    lam: Annotated[str | None, typer.Option("--lambda", help="L2 strengths to try (sweeps model.l2), "
                                            "comma-separated, e.g. 0,1e-3,0.01.")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="grid: every combination; zip: pairwise, "
                                             "lists of equal length. Overrides sweep.mode.")] = None,
    search: Annotated[str | None, typer.Option("--search", help="grid | zip | random | tpe (Bayesian, Optuna's "
                                               "TPE). Overrides sweep.search.")] = None,
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Trials random/tpe sample. Overrides "
                                               "sweep.trials.")] = None,
    refine: Annotated[bool, typer.Option("--refine", help="Then a refinement round: 8 trials around the best "
                                         "point (sweep.refine, when the config has none).")] = False,
    repeats: Annotated[int | None, typer.Option("--repeats", help="Seeds per point: each point trains with "
                                                "seeds seed, seed+1, ...; points ranked on the mean. Overrides "
                                                "sweep.repeats.")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", min=1, help="Trials at once, in worker processes "
                                             "(default: 1 on CPU, one per GPU).")] = None,
    sweep_dir: Annotated[Path | None, typer.Option("--sweep-dir", help="Write into this (new or empty) "
                                                   "directory.")] = None,
    runs_root: Annotated[Path, typer.Option("--runs", help="Where new sweep directories go.")] = DEFAULT_RUNS_ROOT,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue an interrupted sweep directory: "
                                                "runs only the trials that have not ended.",
                                                autocompletion=complete_sweep)] = None,
    no_cache: NoCacheOpt = False,
    backend: Annotated[Literal["local", "ray"] | None, typer.Option(
        "--backend", help="Where trials run: local processes or Ray (default: sweep.backend.name, local).")] = None,
    address: Annotated[str | None, typer.Option("--address", help="Ray: the cluster to join: auto, HOST:PORT "
                                                "or ray://HOST:PORT (default: a local Ray instance).")] = None,
    cpus_per_trial: Annotated[int | None, typer.Option("--cpus-per-trial", min=1, help="Ray: CPUs per trial "
                                                       "(its thread cap; default 1).")] = None,
    gpus_per_trial: Annotated[float | None, typer.Option("--gpus-per-trial", min=0, help="Ray: GPUs per trial "
                                                         "(default: 1 when the cluster has GPUs).")] = None,
    track: TrackOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Train one run per point of a parameter space (grid or zip) or per sampled point (random, tpe);
    prune hopeless trials (sweep.prune), refine around the best; rank them, keep going past diverged
    trials, resume after an interruption. --backend ray runs the trials on a Ray cluster."""
    from dlrun.sweeps.run import sweep as core_sweep

    reporter = Reporter(json_mode=json_out)
    summary = core_sweep(config, sets or [], lr, lam, mode, jobs, sweep_dir, resume, reporter, runs_root=runs_root,
                         use_cache=not no_cache, search=search, trials=trials, refine=refine, backend=backend,
                         address=address, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                         repeats=repeats, track=track)
    reporter.emit_json(summary)


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


def schema(out: Annotated[Path | None, typer.Option(
        "--out", help="Write the schema to this file instead of printing it.", show_default=False)] = None) -> None:
    """Print the JSON Schema of a config file, for editors that complete and check YAML keys
    (VS Code, any YAML language server)."""
    from dlrun.commands.schema import export_schema

    text = export_schema(out)
    if out is None:
        typer.echo(text, nl=False)
    else:
        typer.echo(f"wrote {out}", err=True)


def env(runs_root: Annotated[Path, typer.Option("--runs", help="The folder that holds run directories.")]
        = DEFAULT_RUNS_ROOT, json_out: JsonOpt = False) -> None:
    """Versions, devices, thread settings and where the data cache and runs are: one block to paste
    into a bug report."""
    from dlrun.commands.environment import device_lines, devices, environment, report_lines

    reporter = Reporter(json_mode=json_out)
    report = environment(runs_root, with_devices=json_out)
    if json_out:
        reporter.emit_json(report)
        return
    for line in report_lines(report):  # at once: only the device list waits for TensorFlow
        reporter.info(line)
    for line in device_lines(devices()):
        reporter.info(line)


def cache(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """The data cache: `info` (the default) lists its entries, `clear` removes them."""
    if ctx.invoked_subcommand is None:
        cache_info(json_out)


def cache_info(json_out: JsonOpt = False) -> None:
    """Where the data cache is, its size, and each entry: source, settings, size, last used."""
    from dlrun.commands.cache import info_table
    from dlrun.data.cache_admin import cache_info as core_info

    info = core_info()
    reporter = Reporter(json_mode=json_out)
    reporter.emit_json(info)
    if not info["entries"]:
        reporter.info(f"data cache: {info['location']} is empty")
        return
    if not reporter.out.is_terminal:
        reporter.out.width = max(reporter.out.width, 160)
    reporter.table(info_table(info))


def cache_clear(older_than: Annotated[float | None, typer.Option(
        "--older-than", min=0, metavar="DAYS", help="Only entries not used for this many days.",
        show_default=False)] = None, json_out: JsonOpt = False) -> None:
    """Remove every entry of the data cache, or those not used for --older-than DAYS, and the temporary
    files killed writers left. Entries that a running process uses stay; files the file system will not let
    go of are named with the reason (exit 2)."""
    from dlrun.commands.cache import clear_line, not_removed_line
    from dlrun.data.cache_admin import clear
    from dlrun.errors import DataError

    result = clear(older_than)
    reporter = Reporter(json_mode=json_out)
    reporter.emit_json(result)
    reporter.info(clear_line(result))
    if refused := not_removed_line(result):
        raise DataError(refused)


def complete_set(ctx: typer.Context, incomplete: str) -> list[str]:
    """`--set` keys and values (list items from the command's CONFIG, when one is on the line)."""
    from dlrun.commands.complete import CONFIG_SUFFIXES, set_keys

    typed = [(ctx.params or {}).get("config"), *ctx.args]
    config = next((str(a) for a in typed if a is not None and str(a).endswith(CONFIG_SUFFIXES)), None)
    return set_keys(incomplete, config)


def complete_config(incomplete: str) -> list[str]:
    """Config files (.yaml)."""
    from dlrun.commands.complete import config_files

    return config_files(incomplete)


def complete_run(incomplete: str) -> list[str]:
    """Run directories under runs/ (a sweep's trials too)."""
    from dlrun.commands.complete import run_dirs

    return run_dirs(incomplete)


def complete_target(incomplete: str) -> list[str]:
    """Run directories and weights files."""
    from dlrun.commands.complete import eval_targets

    return eval_targets(incomplete)


def complete_sweep(incomplete: str) -> list[str]:
    """Sweep directories."""
    from dlrun.commands.complete import sweep_dirs

    return sweep_dirs(incomplete)


# after the complete_* functions: the commands' signatures are read when cli.py registers them, by then these
# exist (cli.py takes them from here too)
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a config value: KEY=VALUE (dotted key, YAML value). Repeatable.", show_default=False,
    autocompletion=complete_set)]
ConfigArg = Annotated[Path, typer.Argument(help="Experiment config (YAML).", show_default=False,
                                           autocompletion=complete_config)]
NoCacheOpt = Annotated[bool, typer.Option(
    "--no-cache", help="Read and preprocess the data from its source; do not use or update the data cache.")]
