"""What the commands' arguments share: the common options (--set, --json, --no-cache, --track, CONFIG)
and the shell-completion callbacks behind them. No TensorFlow here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else there.")]
TrackOpt = Annotated[str | None, typer.Option(
    "--track", metavar="mlflow[=URI]", help="Also record the run in MLflow: the local store RUNS/mlflow.db (`mlflow "
    "ui --backend-store-uri sqlite:///RUNS/mlflow.db`), or a tracking server's URI. Overrides the config's "
    "tracking: section.", show_default=False)]
ExportFormat = Literal["keras", "h5", "savedmodel"]


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


SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a config value: KEY=VALUE (dotted key, YAML value). Repeatable.", show_default=False,
    autocompletion=complete_set)]
ConfigArg = Annotated[Path, typer.Argument(help="Experiment config (YAML).", show_default=False,
                                           autocompletion=complete_config)]
NoCacheOpt = Annotated[bool, typer.Option(
    "--no-cache", help="Read and preprocess the data from its source; do not use or update the data cache.")]
