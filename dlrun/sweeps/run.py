"""`dlrun sweep`: many trainings over a parameter space (grid or zip), durable and resumable.

Layout of a sweep directory (names in store/names.py):
  sweep.yaml      the resolved base config with its parameter space (`dlrun sweep` runs it again)
  trials/NNN/     one full run directory per trial, exactly as `dlrun train` writes it
  results.csv     one row per trial; summary.json (counts, best, seconds); best.yaml; heatmap.png
  pareto.csv      with sweep.objectives: every trial's values and front rank; pareto.png; pareto/ID.yaml

A config error stops the sweep before anything is written. A diverged or failed trial is recorded
and the sweep goes on. Ctrl-C / SIGTERM stops after the trials in flight saved their last epoch;
`--resume` runs only trials that have not ended, from their checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlrun.data import Dataset
from dlrun.errors import Interrupted, RunDirError, StorageError, SweepError, SweepFailed
from dlrun.interrupts import graceful_stop
from dlrun.store import files, names
from dlrun.store.files import storage_problem
from dlrun.store.lock import exclusive_lock
from dlrun.store.rundir import check_writable, create_run_dir
from dlrun.sweeps import board
from dlrun.sweeps.data import load_sweep_data
from dlrun.sweeps.executors import SequentialExecutor, TrialExecutor, make_executor, thread_setting
from dlrun.sweeps.live import pruning_said, sweep_size
from dlrun.sweeps.plan import SweepPlan, plan_sweep
from dlrun.sweeps.reopen import open_search, reopen, sweep_root
from dlrun.sweeps.rounds import TrialSource
from dlrun.sweeps.session import SweepSession
from dlrun.tracking.live import SweepMirror, track_sweep
from dlrun.tracking.live import resolve as resolve_tracking
from dlrun.tracking.mlflow_store import MlflowTarget
from dlrun.ui.console import Reporter
from dlrun.ui.plots import drawn_in_background, import_soon

BACKEND_KEYS = ("name", "address", "cpus_per_trial", "gpus_per_trial")  # sweep.backend keys with a flag

if TYPE_CHECKING:
    from dlrun.sweeps.search import Search


def _create(plan: SweepPlan, runs_root: str | Path, sweep_dir: str | Path | None) -> Path:
    root = create_run_dir(f"{plan.base.config.name}-sweep", runs_root, sweep_dir).path
    files.write_text(root / names.SWEEP_SPEC, plan.spec_yaml())
    (root / names.SWEEP_TRIALS).mkdir()  # each trial's directory is made as it starts (rounds.TrialSource)
    return root


def sweep(config: str | Path | None, overrides: list[str] | None = None, lr: str | None = None,
          lam: str | None = None, mode: str | None = None, jobs: int | None = None,
          sweep_dir: str | Path | None = None, resume: str | Path | None = None,
          reporter: Reporter | None = None, *, runs_root: str | Path = names.DEFAULT_RUNS_ROOT,
          executor: TrialExecutor | None = None, use_cache: bool = True, search: str | None = None,
          trials: int | None = None, refine: bool = False, backend: str | None = None,
          address: str | None = None, cpus_per_trial: int | None = None,
          gpus_per_trial: float | None = None, repeats: int | None = None,
          track: str | None = None) -> dict[str, Any]:
    """Train one run per point of a parameter space, rank them, and keep going past diverged trials.

    Args:
        config: A YAML path with a `sweep:` section (or flags below); None with `resume`.
        overrides: `KEY=VALUE` strings applied after the file.
        lr: `--lr` values, comma-separated: a shorthand for sweeping optimizer.lr (`1e-5:10`: a
            log-uniform range, for search random or tpe).
        lam: `--lambda` values: a shorthand for sweeping model.l2.
        mode: grid or zip, replacing sweep.mode.
        jobs: Trials at once in worker processes (default: 1 on CPU, one per GPU).
        sweep_dir: Write into this new or empty directory instead of `runs_root/<name>-sweep-<time>`.
        resume: Continue this sweep directory: only trials that have not ended run.
        reporter: Progress and the leaderboard (default: on stdout; `dlrun.ui.console.Reporter(json_mode=True)`: none).
        runs_root: The parent of new sweep directories.
        executor: Run the trials with this executor instead of the one `jobs` picks.
        use_cache: Serve prepared data from the data cache (and fill it); False reads the source.
        search: grid, zip, random or tpe, replacing sweep.search.
        trials: How many trials random and tpe sample, replacing sweep.trials.
        refine: Add one refinement round of 8 trials when the config has no sweep.refine.
        backend: local or ray, replacing sweep.backend.name (also on --resume: a sweep continues on either).
        address: The Ray cluster to join (auto, HOST:PORT, ray://HOST:PORT), replacing sweep.backend.address.
        cpus_per_trial, gpus_per_trial: What a Ray trial reserves, replacing sweep.backend's settings.
        repeats: Seeds per point, replacing sweep.repeats (points ranked on their seeds' mean).
        track: `mlflow` or `mlflow=URI`: mirror the sweep to MLflow, a parent run with a nested run per trial
            sent as it ends (default: the config's `tracking:`, or the store a resumed sweep used).

    Returns:
        The sweep's summary (as in summary.json): counts, the best trial, every trial.

    Raises:
        ConfigError: the space or any trial's config is invalid, before anything is written.
        SweepError: bad arguments, a sweep directory that cannot be resumed, a Ray cluster that cannot be used.
        RunDirError: another process is running or resuming this sweep directory (named in the message).
        StorageError: the disk filled up; the trials keep their checkpoints, resume once there is space.
        Interrupted: stopped by Ctrl-C / SIGTERM (or a killed worker) once the trials in flight saved their state.
        SweepFailed: `sweep.max_failures` trials in a row failed (exit 1); the sweep stopped.
    """
    reporter = reporter or Reporter(live=False)
    flags = (backend, address, cpus_per_trial, gpus_per_trial)
    if resume is not None:
        _resume_takes_no_plan(config, overrides, lr, lam, mode, sweep_dir, search, trials, refine, repeats)
        where = resolve_tracking(None, track, Path(resume).parent, resumed=Path(resume))
        return _mirrored(_resume(Path(resume), reporter, jobs, executor, flags, use_cache, where), where, reporter)
    if config is None:
        raise SweepError("give a CONFIG to sweep, or --resume SWEEP_DIR")
    plan = plan_sweep(config, overrides, lr, lam, mode, search=search, trials=trials, refine=refine,
                      repeats=repeats)
    check_writable(sweep_dir, runs_root, "--sweep-dir")
    where = resolve_tracking(plan.base.config.tracking, track, runs_root)
    return _mirrored(_new(plan, runs_root, sweep_dir, reporter, jobs, executor, flags, use_cache, where), where,
                     reporter)


def _resume_takes_no_plan(config: Any, *planning: Any) -> None:
    """--resume continues a sweep as its sweep.yaml says: refuse CONFIG and every flag that plans a sweep."""
    if config is not None or any(p for p in planning[:-1]) or planning[-1] is not None:
        raise SweepError("--resume continues a sweep with its own sweep.yaml; drop CONFIG, --set, --lr, "
                         "--lambda, --mode, --search, --trials, --refine, --repeats and --sweep-dir")


def _mirrored(summary: dict[str, Any], where: MlflowTarget | None, reporter: Reporter) -> dict[str, Any]:
    """The sweep's summary, after mirroring the sweep to MLflow when tracked."""
    track_sweep(where, Path(summary["sweep_dir"]), reporter.warn)
    return summary


def _new(plan: SweepPlan, runs_root: str | Path, sweep_dir: str | Path | None, reporter: Reporter,
         jobs: int | None, executor: TrialExecutor | None, flags: tuple[Any, ...], use_cache: bool,
         where: MlflowTarget | None) -> dict[str, Any]:
    """Load the data, write a new sweep directory and run its trials."""
    datasets, key_of = load_sweep_data(plan, reporter, use_cache, _copies(plan, flags, jobs))
    executor = executor or _executor(plan, flags, jobs, datasets) or make_executor(jobs, plan.planned)
    try:
        _start(executor, datasets, plan, plan.planned)  # workers load TensorFlow while the directory is written
        root = _create(plan, runs_root, sweep_dir)
        with exclusive_lock(root, "being swept"):
            return _run(plan, root, datasets, key_of, reporter, jobs, executor, open_search(plan, root), resumed=False,
                        where=where)
    finally:
        _close(executor)


def _resume(resume: Path, reporter: Reporter, jobs: int | None, executor: TrialExecutor | None,
            flags: tuple[Any, ...], use_cache: bool, where: MlflowTarget | None) -> dict[str, Any]:
    """Continue a sweep directory with its own sweep.yaml and study: only trials that have not ended run."""
    root = sweep_root(resume)
    with exclusive_lock(root, "being swept"):  # of two resumes of one sweep, exactly one goes on
        # a killed sweep can leave an atomic write's temporary file, even in a trial folder it had just made
        files.remove_temp_files(root)
        plan, engine = reopen(root, reporter)
        datasets, key_of = load_sweep_data(plan, reporter, use_cache, _copies(plan, flags, jobs))
        executor = executor or _executor(plan, flags, jobs, datasets)
        return _run(plan, root, datasets, key_of, reporter, jobs, executor, engine, resumed=True, where=where)


def _start(executor: TrialExecutor, datasets: dict[str, Dataset], plan: SweepPlan, trials: int) -> None:
    """Start an executor's workers ahead of the trials, kept for every round: local worker processes
    (ProcessExecutor.start), Ray worker actors (RayExecutor.start); the in-process executor has none."""
    if callable(start := getattr(executor, "start", None)):
        start(datasets, plan.base.config.train.threads, trials)


def _close(executor: TrialExecutor | None, soon: bool = False) -> None:
    """End what an executor keeps across rounds: worker processes, a Ray connection. `soon`: a Ray executor
    disconnects in the background (RayExecutor.close_soon); the next `_close` waits for it."""
    if callable(close := getattr(executor, "close_soon" if soon else "close", None)
                or getattr(executor, "close", None)):
        close()


def _copies(plan: SweepPlan, flags: tuple[Any, ...], jobs: int | None) -> int:
    """How many local worker processes would each hold a copy of a data set kept in memory: --jobs, none
    on Ray (its nodes read the object store)."""
    assert plan.base.config.sweep is not None
    return 1 if (flags[0] or plan.base.config.sweep.backend.name) == "ray" else max(1, jobs or 1)


def _executor(plan: SweepPlan, flags: tuple[Any, ...], jobs: int | None,
              datasets: dict[str, Dataset]) -> TrialExecutor | None:
    """The Ray executor when sweep.backend (with the command line's `flags`, BACKEND_KEYS, over it) names ray;
    else None (`--jobs` picks a local one)."""
    assert plan.base.config.sweep is not None
    choice = {k: v for k, v in zip(BACKEND_KEYS, flags, strict=True) if v is not None}
    settings = plan.base.config.sweep.backend.model_copy(update=choice)
    settings = type(settings).model_validate(settings.model_dump())  # the command line's values checked too
    if settings.name != "ray":
        return None
    size = sum(a.nbytes for d in datasets.values() for a in vars(d).values() if hasattr(a, "nbytes"))
    return make_executor(jobs, backend=settings, data_bytes=size)


def _run(plan: SweepPlan, root: Path, datasets: dict[str, Dataset], key_of: dict[str, str], reporter: Reporter,
         jobs: int | None, executor: TrialExecutor | None, search: Search | None, resumed: bool,
         where: MlflowTarget | None = None) -> dict[str, Any]:
    """Run every trial that has not ended, recording as they go (and mirroring each to MLflow as it ends
    when `where` is set); the final summary."""
    try:  # the sweep's summary is rebuilt from its trials; a damaged one only loses the seconds so far
        previous = files.read_json(root / names.SUMMARY) if (root / names.SUMMARY).exists() else {}
    except RunDirError as exc:
        reporter.warn(f"{exc}; rebuilding it from the trials")
        previous = {}
    first = next(iter(datasets.values()))
    session = SweepSession(plan, root, reporter, float(previous.get("seconds", 0.0)), first, search)
    session.tracker = SweepMirror(where, root, reporter.warn) if where is not None else None
    threads = plan.base.config.train.threads
    ended = sum(o.final for o in session.outcomes.values())
    if executor is None:  # a resumed sweep: its executor fits the trials left
        executor = make_executor(jobs, plan.planned - ended)
        _start(executor, datasets, plan, plan.planned - ended)
    if (plan.draws_heatmap or plan.objectives) and not isinstance(executor, SequentialExecutor):
        import_soon()  # the trials start elsewhere: matplotlib is imported for the final plots meanwhile
    try:
        session.jobs, session.threads = executor.jobs, thread_setting(executor, threads)
        reporter.info(f"sweep directory: [bold]{root}[/bold]  ({sweep_size(plan)}, {plan.mode} over "
                      f"{', '.join(plan.keys)}{pruning_said(plan)}; "
                      f"{first.describe()}; jobs {executor.jobs}, "
                      f"threads per trial: {session.threads['threads']} ({session.threads['from']}))")
        if resumed:
            reporter.info(f"resuming: {ended} of {plan.planned} trials ended before; {plan.planned - ended} to run")
        summary = _execute(session, executor, datasets, key_of, reporter)
    except OSError as exc:  # results.csv or summary.json could not be written
        if storage_problem(exc) is None:
            raise
        session.storage = f"{storage_problem(exc)} (writing {exc.filename})"
        _record_stopped(session)
    finally:
        _close(executor)  # also when the sweep stops before its first round
    left = max(plan.planned, len(plan.trials)) - sum(o.final for o in session.outcomes.values())
    if session.failure is not None:
        raise SweepFailed(f"{session.failure}; the sweep stopped. Fix the cause, then run the remaining trials "
                          f"with: dlrun sweep --resume {root} (failed trials are not run again), or raise "
                          "sweep.max_failures")
    if session.storage:
        kept = (f"with {left} trial(s) left, each keeping its last complete epoch" if left else
                "after every trial ended, before its final records (results, best.yaml, heat map) were all written")
        raise StorageError(f"{session.storage}; the sweep stopped {kept}. Free some space, then resume: "
                           f"dlrun sweep --resume {root}")
    if summary["status"] != "completed":
        raise Interrupted(f"sweep interrupted with {left} trial(s) left; "
                          f"resume with: dlrun sweep --resume {root}")
    return summary


def _record_stopped(session: SweepSession) -> None:
    """The disk stopped the sweep's own records: say `interrupted` in its summary if the disk lets it (the writes
    that failed freed their temporary files), so that it does not stay `running`; `--resume` rebuilds the rest."""
    for outcome in session.outcomes.values():
        if outcome.status == "running":
            outcome.status = "interrupted"
    try:
        session.write("interrupted")
    except OSError as exc:
        if storage_problem(exc) is None:
            raise


def _execute(session: SweepSession, executor: TrialExecutor, datasets: dict[str, Dataset], key_of: dict[str, str],
             reporter: Reporter) -> dict[str, Any]:
    """Run each round's trials with the live display and graceful Ctrl-C, then write the final records."""
    session.write("running")
    if session.tracker is not None:
        session.tracker.open()  # the parent run, visible in MLflow while the trials run
    board.sweep_started(session.plan, session.root, reporter)  # the HParams experiment, each trial's values
    with drawn_in_background():  # the last trials' history plots (Ray's) are drawn beside the final records
        with session.display, graceful_stop() as stop:
            session.stop = stop  # a trial that finds the disk full stops the sweep
            source = TrialSource(session, session.search, datasets, key_of, stop)
            try:
                for round_ in range(source.rounds):
                    if stop.requested or not source.ready(round_):
                        break
                    executor.run(source.tasks(round_), datasets, session, stop)
            except KeyboardInterrupt:  # a second Ctrl-C outside training: the state on disk is still whole
                stop.requested = True
            finally:  # after the last round: workers end, a Ray executor disconnects beside the final records
                _close(executor, soon=True)
        return session.finish(reporter)
