"""`dlrun transfer`: load weights from a run or a weights file into a config's model, show and save
the layer mapping, evaluate ("before"), then train in stages (feature extraction, fine-tuning)
with a freeze policy per stage. Returns the run summary; never exits the process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlrun.config import LoadedConfig, dump_config, ensure_loaded
from dlrun.config.schema import TransferConfig
from dlrun.data import Dataset, load_checked
from dlrun.engine import backend
from dlrun.engine.fit import evaluate_model
from dlrun.engine.resume import check_run_writable, run_and_config
from dlrun.engine.run import write_run_records
from dlrun.errors import ConfigError, Interrupted, RunDirError, TransferError
from dlrun.interrupts import graceful_stop
from dlrun.store import files, names
from dlrun.store.files import storage_problem
from dlrun.store.lock import exclusive_lock
from dlrun.store.rundir import RunDir, check_writable, create_run_dir
from dlrun.store.status import check_resumable, fail_for_storage, mark_failed
from dlrun.store.summary import RunClock
from dlrun.tracking.live import resolve as resolve_tracking
from dlrun.tracking.live import tracked_run
from dlrun.tracking.mlflow_store import MlflowTarget
from dlrun.transfers.plan import TransferPlan, plan_transfer
from dlrun.transfers.table import mapping_table
from dlrun.ui.console import Reporter
from dlrun.weights import Source, check_model_sources, read_weights
from dlrun.weights.mapping import LOADED
from dlrun.weights.walk import leaf_layers

FREEZE_WORDS = ("none", "all", "features")


def parse_freeze(text: str) -> str | list[str]:
    """A `--freeze` value: none | all | features, or comma-separated layer names/globs."""
    text = text.strip()
    if text in FREEZE_WORDS:
        return text
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise TransferError(f"--freeze {text!r}: expected none, all, features or layer names such as conv2d,conv2d_1")
    return names


def apply_cli(lc: LoadedConfig, source: str | Path | None, freeze: str | None) -> LoadedConfig:
    """Fold `--from` and `--freeze` into the config's transfer section (a default one when absent)."""
    cfg = lc.config
    data = (cfg.transfer or TransferConfig()).model_dump(mode="json", by_alias=True)
    if source is not None:
        data["from"] = str(source)
    if freeze is not None:
        if len(data["stages"]) != 1:
            raise TransferError(f"--freeze sets the policy of a single-stage transfer; this config has "
                                f"{len(data['stages'])} stages. Set one with --set transfer.stages.N.freeze=...")
        data["stages"][0]["freeze"] = parse_freeze(freeze)
    cfg.transfer = TransferConfig.model_validate(data)
    if cfg.transfer.from_ is None and cfg.model.base is None:
        raise TransferError("no weights to transfer: set transfer.from in the config, or pass --from RUN_DIR_OR_FILE "
                            "(a run directory, .weights.h5, .keras or legacy .h5)")
    if cfg.transfer.from_ is not None and cfg.model.base is not None:
        raise TransferError("model.base brings its own weights; drop transfer.from (or --from), or drop model.base")
    return lc


@dataclass
class Prepared:
    """A model with the transferred weights in place, and the plan that put them there."""

    model: Any
    plan: TransferPlan
    source: Source | None


def prepare(lc: LoadedConfig, data: Dataset, source: Source | None, unsafe: bool = False,
            cli: dict[str, str] | None = None) -> Prepared:
    """Build the target model, plan the mapping and stages (refusing bad ones), and load the weights.
    `cli`: config keys set by options (e.g. transfer.from -> `--from X`), named in messages instead of a line."""
    from dlrun.engine.base_model import build_with_base
    from dlrun.transfers.stages import describe_targets

    cfg = lc.config
    assert cfg.transfer is not None
    check_model_sources(cfg)  # before TensorFlow loads
    backend.setup_for(cfg)
    model, base = build_with_base(lc, data.input_shape, unsafe)
    if source is not None and source.kind == "weights.h5":  # no names or order of its own: read it as this model's
        source = read_weights(source.path, model)
    layers = describe_targets(model)
    frozen_base = {layer.name for layer in layers if layer.parent} if base and not cfg.model.base.trainable else set()
    plan = plan_transfer(layers, cfg.transfer, source.layers if source else None, _label(lc, source),
                         where=lambda key: (cli or {}).get(key) or f"{lc.source.origin(key)}: {key}",
                         preloaded=base.rows if base else None, always_frozen=frozen_base)
    if source is not None:
        by_name = {leaf.name: leaf.layer for leaf in leaf_layers(model)}
        for row in plan.rows:
            if row.status == LOADED and row.source_index is not None:
                by_name[row.target].set_weights(source.layers[row.source_index].arrays)
    return Prepared(model, plan, source)


def _label(lc: LoadedConfig, source: Source | None) -> str | None:
    """Where the weights come from, for the mapping table's title."""
    base = lc.config.model.base
    if source is not None:
        return str(source.path)
    if base is None:
        return None
    return base.from_ or f"{base.application} (weights: {base.weights or 'random initialisation'})"


def transfer(config: str | Path | LoadedConfig | None, overrides: list[str] | None = None,
             source: str | Path | None = None, freeze: str | None = None, run_dir: str | Path | None = None,
             runs_root: str | Path = names.DEFAULT_RUNS_ROOT, reporter: Reporter | None = None,
             resume: str | Path | None = None, unsafe: bool = False, use_cache: bool = True,
             track: str | None = None) -> dict[str, Any]:
    """Load saved weights into a config's model, show the layer mapping, then train in stages.

    Args:
        config: The target model and data: a YAML path or a loaded config (None with `resume`).
        overrides: `KEY=VALUE` strings applied after the file.
        source: `--from`: a run directory, .weights.h5, .keras or legacy Keras-2 .h5 (else transfer.from).
        track: `mlflow` or `mlflow=URI`: mirror the run to MLflow as `train` does (else the config's tracking:).
        freeze: `--freeze`: the policy of a single-stage transfer (none, all, features, or names/globs).
        run_dir: Write into this new or empty directory instead of `runs_root/<name>-<time>`.
        runs_root: The parent of new run directories.
        reporter: Where the mapping table, progress and results go (default: lines and tables on stdout, no progress
            bars; `dlrun.ui.console.Reporter(json_mode=True)` prints nothing).
        resume: Continue this interrupted transfer run instead.
        unsafe: Let a .keras base model run code it holds (trusted files only).
        use_cache: Serve prepared data from the data cache (and fill it); False reads the source.

    Returns:
        The run's summary: `before`, each stage's results, and the final metrics.

    Raises:
        TransferError: a mapping or freeze policy that cannot be applied (with the mapping table).
        ConfigError, DataError, WeightsError: before anything is written under `runs_root`.
        RunDirError: a read-only runs folder, or (resume) a run another process is training.
        StorageError: the disk filled up while training; the run is `failed`, resume it once there is space.
        Interrupted: after saving, when Ctrl-C / SIGTERM stopped training.
    """
    reporter = reporter or Reporter(live=False)
    if resume is not None:
        if overrides or source is not None or freeze is not None:
            raise TransferError("a resumed transfer keeps its own config; drop --set, --from and --freeze")
        return resume_transfer(resume, config, reporter, unsafe, use_cache)
    if config is None:
        raise TransferError("give a CONFIG to transfer into, or --resume RUN_DIR")
    lc = apply_cli(ensure_loaded(config, overrides), source, freeze)
    cfg = lc.config
    assert cfg.transfer is not None
    check_writable(run_dir, runs_root)
    tracker = resolve_tracking(cfg.tracking, track, Path(run_dir).parent if run_dir else runs_root)
    with reporter.progress() as progress:
        weights = read_weights(cfg.transfer.from_, progress=progress) if cfg.transfer.from_ else None
        data = load_checked(lc, use_cache, progress)
    cli = {key: f"{option} {value}" for key, option, value in
           (("transfer.from", "--from", source), ("transfer.stages.0.freeze", "--freeze", freeze)) if value is not None}
    prepared = prepare(lc, data, weights, unsafe, cli)
    return _start(lc, data, prepared, run_dir, runs_root, reporter, tracker)


def _start(lc: LoadedConfig, data: Dataset, prepared: Prepared, run_dir: str | Path | None, runs_root: str | Path,
           reporter: Reporter, tracker: MlflowTarget | None = None) -> dict[str, Any]:
    """Create the run directory, record the mapping, evaluate "before", then train the stages."""
    cfg = lc.config
    assert cfg.transfer is not None
    run = create_run_dir(cfg.name, runs_root, run_dir)
    with exclusive_lock(run.path, "being trained"):
        files.write_text(run / names.CONFIG, dump_config(cfg))
        files.write_json(run / names.TRANSFER, _transfer_json(lc, prepared))
        reporter.info(f"run directory: [bold]{run.path}[/bold]  ({data.describe()})")
        for note in [*data.notes, *prepared.plan.notes, *filter(None, [data.validation_warning()])]:
            reporter.warn(note)
        stage_names = [s.name for s in cfg.transfer.stages]
        reporter.table(mapping_table(prepared.plan.rows, stage_names, f"transfer mapping: {prepared.plan.source}"))
        before = evaluate_model(prepared.model, data, cfg.train.batch_size, cfg.task)
        reporter.info("before (loaded weights, no training): " + _describe(before))
        with tracked_run(tracker, run.path, reporter.warn):
            return _run_guarded(lc, run, data, reporter, prepared, before, None, RunClock())


def _describe(test: dict[str, float]) -> str:
    return "  ".join(f"{k.split('_', 1)[1]} {v:.4f}" for k, v in test.items())


def _transfer_json(lc: LoadedConfig, prepared: Prepared) -> dict[str, Any]:
    cfg = lc.config
    assert cfg.transfer is not None
    source = prepared.source
    return {"from": str(source.path) if source else None, "kind": source.kind if source else None,
            "match": cfg.transfer.match, "head": cfg.transfer.head,
            "base": cfg.model.base.model_dump(mode="json", by_alias=True) if cfg.model.base else None,
            "config_stages": [s.model_dump(mode="json") for s in cfg.transfer.stages], **prepared.plan.to_json()}


def _run_guarded(lc: LoadedConfig, run: RunDir, data: Dataset, reporter: Reporter, prepared: Prepared,
                 before: dict[str, float], checkpoint: Path | None, clock: RunClock) -> dict[str, Any]:
    from dlrun.engine.distribute import distribution
    from dlrun.engine.model import param_counts
    from dlrun.transfers.stages import StageRun, resume_point, run_stages

    write_run_records(run, lc, data, prepared.model)
    saved = files.read_json(run / names.TRANSFER)  # written when the run started: the source as it was then
    source = {"path": saved.get("from"), "kind": saved.get("kind")} if saved.get("from") else {"base": saved["base"]}
    base = {"params": param_counts(prepared.model), "versions": backend.versions(), **data.summary_fields(),
            "notes": data.notes + prepared.plan.notes, "devices": backend.gpus() or ["cpu"],
            "threads": backend.threads(), "source": source, **distribution(prepared.model, lc.config.train.batch_size)}
    with graceful_stop() as stop:
        state = StageRun(lc, run, data, reporter, stop, prepared.model, prepared.plan.stages, base, clock,
                         before=before)
        try:
            compiled = resume_point(state, checkpoint) if checkpoint is not None else None
            return run_stages(state, compiled)
        except (Interrupted, ConfigError, TransferError):
            raise
        except OSError as exc:
            if storage_problem(exc) is None:
                mark_failed(run, exc)
                raise
            raise fail_for_storage(run, exc, f"dlrun transfer --resume {run.path}") from None
        except Exception as exc:
            mark_failed(run, exc)
            raise


def resume_transfer(run_dir: str | Path, config: str | Path | LoadedConfig | None = None,
                    reporter: Reporter | None = None, unsafe: bool = False, use_cache: bool = True) -> dict[str, Any]:
    """Continue an interrupted transfer from the last complete epoch of its current stage (its start
    time stays the original one)."""
    reporter = reporter or Reporter(live=False)
    run, lc = run_and_config(run_dir, config)
    if lc.config.transfer is None or not run.exists(names.TRANSFER):
        raise RunDirError(f"{run.path} is not a transfer run (no {names.TRANSFER}); resume it with dlrun train")
    with exclusive_lock(run.path, "being trained"):  # of two resumes of one run, exactly one goes on
        return _resume_locked(run, lc, reporter, unsafe, use_cache)


def _resume_locked(run: RunDir, lc: LoadedConfig, reporter: Reporter, unsafe: bool,
                   use_cache: bool) -> dict[str, Any]:
    check_resumable(run)  # interrupted, crashed or failed; not running, completed or diverged
    check_run_writable(run)
    checkpoint = run.checkpoint / names.CHECKPOINT_STATE
    with reporter.progress() as progress:
        data = load_checked(lc, use_cache, progress)
    clock = RunClock.started_at(run.read_summary().get("started") if run.exists(names.SUMMARY) else None)
    if checkpoint.exists():  # the checkpoint holds every weight: the source is not needed again
        prepared = prepare(lc, data, None, unsafe)
        before: dict[str, float] = {}
        reporter.info(f"resuming {run.path}")
        return _run_guarded(lc, run, data, reporter, prepared, before, checkpoint, clock)
    source = lc.config.transfer.from_
    prepared = prepare(lc, data, read_weights(source) if source else None, unsafe)
    before = evaluate_model(prepared.model, data, lc.config.train.batch_size, lc.config.task)
    reporter.info(f"resuming {run.path} from the start (no complete epoch was saved)")
    return _run_guarded(lc, run, data, reporter, prepared, before, None, clock)
