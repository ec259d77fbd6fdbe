"""The CLI of `dlrun sweep`: parse the space and its flags, call the core, print the leaderboard (or one
JSON document). No TensorFlow here: the sweep's workers load it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from dlrun.cli.options import JsonOpt, NoCacheOpt, SetOpt, TrackOpt, complete_config, complete_sweep
from dlrun.store.names import DEFAULT_RUNS_ROOT
from dlrun.ui.console import Reporter


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
