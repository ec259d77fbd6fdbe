"""`dlrun transfer`: load weights from a run or a weights file into a config's model, show and save
the layer mapping, evaluate ("before"), then train in stages (feature extraction, fine-tuning)
with a freeze policy per stage. Returns the run summary; never exits the process."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlrun import backend, rundir
from dlrun.config import LoadedConfig, dump_config
from dlrun.console import Reporter
from dlrun.data import Dataset
from dlrun.errors import ConfigError, Interrupted, RunDirError, TransferError
from dlrun.interrupts import graceful_stop
from dlrun.runs import check_resumable
from dlrun.schema import TransferConfig
from dlrun.train import ensure_loaded, evaluate_model, load_data_for, mark_failed
from dlrun.transfer_map import LOADED, TransferPlan, mapping_table, plan_transfer
from dlrun.weights import Source, read_weights

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
    from dlrun.model import build_model
    from dlrun.transfer_stages import describe_targets, leaf_layers

    cfg = lc.config
    assert cfg.transfer is not None
    backend.setup(cfg.seed, cfg.train.threads, deterministic=cfg.train.jit_compile is not True)
    base = None
    if cfg.model.base is not None:
        from dlrun.base_model import build_base

        base = build_base(lc, data.input_shape, unsafe)
    model = build_model(lc, data.input_shape, base=base.model if base else None)
    if source is not None and source.kind == "weights.h5":  # no names or order of its own: read it as this model's
        source = read_weights(source.path, model)
    layers = describe_targets(model)
    frozen_base = {layer.name for layer in layers if layer.parent} if base and not cfg.model.base.trainable else set()
    plan = plan_transfer(layers, cfg.transfer, source.layers if source else None, _label(lc, source),
                         where=lambda key: (cli or {}).get(key) or f"{lc.source.origin(key)}: {key}",
                         preloaded=base.rows if base else None, always_frozen=frozen_base)
    if source is not None:
        by_name = {name: layer for name, _, layer in leaf_layers(model)}
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
             runs_root: str | Path = rundir.DEFAULT_RUNS_ROOT, reporter: Reporter | None = None,
             resume: str | Path | None = None, unsafe: bool = False) -> dict[str, Any]:
    """Transfer weights into a new run and train its stages; or continue one (`resume`).

    Config, weights and mapping problems raise before anything is written under `runs_root`.
    """
    reporter = reporter or Reporter(live=False)
    if resume is not None:
        if overrides or source is not None or freeze is not None:
            raise TransferError("a resumed transfer keeps its own config; drop --set, --from and --freeze")
        return resume_transfer(resume, config, reporter, unsafe)
    if config is None:
        raise TransferError("give a CONFIG to transfer into, or --resume RUN_DIR")
    lc = apply_cli(ensure_loaded(config, overrides), source, freeze)
    cfg = lc.config
    assert cfg.transfer is not None
    weights = read_weights(cfg.transfer.from_) if cfg.transfer.from_ else None
    data = load_data_for(lc)
    cli = {key: f"{option} {value}" for key, option, value in
           (("transfer.from", "--from", source), ("transfer.stages.0.freeze", "--freeze", freeze)) if value is not None}
    prepared = prepare(lc, data, weights, unsafe, cli)
    run = rundir.create_run_dir(cfg.name, runs_root, run_dir)
    rundir.write_text(run / rundir.CONFIG, dump_config(cfg))
    rundir.write_json(run / rundir.TRANSFER, _transfer_json(lc, prepared))
    reporter.info(f"run directory: [bold]{run.path}[/bold]  ({data.describe()})")
    for note in data.notes + prepared.plan.notes:
        reporter.warn(note)
    stage_names = [s.name for s in cfg.transfer.stages]
    reporter.table(mapping_table(prepared.plan.rows, stage_names, f"transfer mapping: {prepared.plan.source}"))
    before = evaluate_model(prepared.model, data, cfg.train.batch_size, cfg.task)
    reporter.info("before (loaded weights, no training): " + _describe(before))
    return _run_guarded(lc, run, data, reporter, prepared, before, None)


def _describe(test: dict[str, float]) -> str:
    return "  ".join(f"{k.removeprefix('test_')} {v:.4f}" for k, v in test.items())


def _transfer_json(lc: LoadedConfig, prepared: Prepared) -> dict[str, Any]:
    cfg = lc.config
    assert cfg.transfer is not None
    source = prepared.source
    return {"from": str(source.path) if source else None, "kind": source.kind if source else None,
            "match": cfg.transfer.match, "head": cfg.transfer.head,
            "base": cfg.model.base.model_dump(mode="json", by_alias=True) if cfg.model.base else None,
            "config_stages": [s.model_dump(mode="json") for s in cfg.transfer.stages], **prepared.plan.to_json()}


def _run_guarded(lc: LoadedConfig, run: rundir.RunDir, data: Dataset, reporter: Reporter, prepared: Prepared,
                 before: dict[str, float], checkpoint: Path | None) -> dict[str, Any]:
    from dlrun.model import param_counts, summary_text
    from dlrun.transfer_stages import StageRun, resume_point, run_stages

    rundir.write_text(run / rundir.MODEL_TXT, summary_text(prepared.model))
    saved = rundir.read_json(run / rundir.TRANSFER)  # written when the run started: the source as it was then
    source = {"path": saved.get("from"), "kind": saved.get("kind")} if saved.get("from") else {"base": saved["base"]}
    base = {"params": param_counts(prepared.model), "versions": backend.versions(), "data": data.describe(),
            "notes": data.notes + prepared.plan.notes, "devices": backend.gpus() or ["cpu"], "source": source}
    with graceful_stop() as stop:
        state = StageRun(lc, run, data, reporter, stop, prepared.model, prepared.plan.stages, base, time.time(),
                         before=before)
        try:
            compiled = resume_point(state, checkpoint) if checkpoint is not None else None
            return run_stages(state, compiled)
        except (Interrupted, ConfigError, TransferError):
            raise
        except Exception as exc:
            mark_failed(run, exc)
            raise


def resume_transfer(run_dir: str | Path, config: str | Path | LoadedConfig | None = None,
                    reporter: Reporter | None = None, unsafe: bool = False) -> dict[str, Any]:
    """Continue an interrupted transfer from the last complete epoch of its current stage."""
    from dlrun.resume import run_and_config

    reporter = reporter or Reporter(live=False)
    run, lc = run_and_config(run_dir, config)
    if lc.config.transfer is None or not run.exists(rundir.TRANSFER):
        raise RunDirError(f"{run.path} is not a transfer run (no {rundir.TRANSFER}); resume it with dlrun train")
    check_resumable(run)  # interrupted, crashed or failed; not running, completed or diverged
    checkpoint = run.checkpoint / rundir.CHECKPOINT_STATE
    data = load_data_for(lc)
    if checkpoint.exists():  # the checkpoint holds every weight: the source is not needed again
        prepared = prepare(lc, data, None, unsafe)
        before: dict[str, float] = {}
        reporter.info(f"resuming {run.path}")
        return _run_guarded(lc, run, data, reporter, prepared, before, checkpoint)
    source = lc.config.transfer.from_
    prepared = prepare(lc, data, read_weights(source) if source else None, unsafe)
    before = evaluate_model(prepared.model, data, lc.config.train.batch_size, lc.config.task)
    reporter.info(f"resuming {run.path} from the start (no complete epoch was saved)")
    return _run_guarded(lc, run, data, reporter, prepared, before, None)
