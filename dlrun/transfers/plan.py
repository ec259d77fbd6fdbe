"""Transfer planning without TensorFlow: which source layer feeds which target layer, and which
layers train in each stage. Every refusal is a TransferError that shows the mapping table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from dlrun.config.schema import LastN, StageConfig, TransferConfig
from dlrun.errors import TransferError
from dlrun.transfers.table import mapping_table, table_text
from dlrun.weights.mapping import LOADED, MISMATCH, REINIT, MapRow, Shapes
from dlrun.weights.source import SourceLayer, describe_shapes

Where = Callable[[str], str]


@dataclass
class TargetLayer:
    """A layer of the target model as the planner sees it. Layers inside a base model are named
    `base/<name>` and have `parent` set, so a pattern can name the whole base."""

    name: str
    kind: str
    shapes: Shapes = field(default_factory=list)
    parent: str | None = None

    @property
    def weighted(self) -> bool:
        return bool(self.shapes)


@dataclass
class StagePlan:
    """The layers a stage freezes (all kinds) and the weight-bearing layers it trains."""

    name: str
    frozen: list[str]
    trainable: list[str]


@dataclass
class TransferPlan:
    """The whole mapping: rows, stages and notes (unused source layers, re-initialised heads)."""

    source: str | None
    rows: list[MapRow]
    stages: list[StagePlan]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """transfer.json content."""
        return {"source": self.source, "layers": [asdict(r) for r in self.rows],
                "stages": [asdict(s) for s in self.stages], "notes": self.notes}


def _pair(target: TargetLayer, src: SourceLayer, index: int) -> MapRow:
    row = MapRow(target.name, target.kind, target.shapes, src.name, src.shapes, LOADED, source_index=index)
    if src.shapes != target.shapes:
        row.status = MISMATCH
    return row


def _head(row: MapRow, head: str) -> None:
    """Apply the head policy to the output layer's row: `reinit` always, `auto` when it does not fit."""
    if row.source is None or head == "keep" or (head == "auto" and row.status != MISMATCH):
        return
    # the last array of a dense layer (bias, else kernel) ends in its unit count: the classes
    source, target = (row.source_shapes or [()])[-1], row.target_shapes[-1]
    other_classes = head == "auto" and bool(source) and bool(target) and source[-1] != target[-1]
    row.note = f"class count {source[-1]} -> {target[-1]}" if other_classes else "output layer re-initialised"
    row.status, row.source_index = REINIT, None


def _pairs(weighted: list[TargetLayer], source: list[SourceLayer], match: str) -> list[tuple[int, int]]:
    """(target index, source index) pairs: by name, or by order with the output layers paired last."""
    if match == "by_name":
        by_name = {s.name: i for i, s in enumerate(source)}
        found = ((k, by_name.get(t.name.split("/")[-1])) for k, t in enumerate(weighted))
        return [(k, i) for k, i in found if i is not None]
    body = min(len(weighted), len(source)) - 1
    return [(k, k) for k in range(body)] + [(len(weighted) - 1, len(source) - 1)]


def match_layers(targets: list[TargetLayer], source: list[SourceLayer], match: str,
                 head: str) -> tuple[list[MapRow], list[str]]:
    """Rows for the weight-bearing `targets` fed from `source`, plus notes. Shapes are not yet
    enforced here (see `check_rows`): a MISMATCH row marks each pair that does not fit."""
    weighted = [t for t in targets if t.weighted]
    rows = [MapRow(t.name, t.kind, t.shapes) for t in weighted]
    if not weighted or not source:
        return rows, []
    pairs = _pairs(weighted, source, match)
    for k, i in pairs:
        rows[k] = _pair(weighted[k], source[i], i)
    used = {i for _, i in pairs}
    _head(rows[-1], head)
    notes = [f"{r.target}: {r.note}" for r in rows if r.note]
    unused = [s.name for i, s in enumerate(source) if i not in used]
    if unused:
        notes.append(f"source layers not used: {', '.join(unused)}")
    return rows, notes


def check_rows(rows: list[MapRow], where: str, match: str, head: str) -> None:
    """Refuse (TransferError with the table) when a pair's shapes differ or by_name found nothing."""
    bad = next((r for r in rows if r.status == MISMATCH), None)
    if bad is not None:
        fix = ("head: reinit re-initialises the output layer" if bad is rows[-1] and head == "keep" else
               "use a config whose layers match the source's, or match: by_name to pair layers by name")
        message = (f"{where}: cannot map the source weights: target '{bad.target}' expects "
                   f"{describe_shapes(bad.target_shapes)} but source '{bad.source}' has "
                   f"{describe_shapes(bad.source_shapes or [])} (match: {match}). Fix: {fix}")
        raise TransferError(message + "\n" + table_text(mapping_table(rows, [])))
    if match == "by_name" and rows and all(r.source is None for r in rows):
        raise TransferError(f"{where}: match: by_name found no source layer with a target layer's name; "
                            "use match: auto (by order)\n" + table_text(mapping_table(rows, [])))


def _matches(layer: TargetLayer, pattern: str) -> bool:
    return fnmatchcase(layer.name, pattern) or (layer.parent is not None and fnmatchcase(layer.parent, pattern))


def _resolve(layers: list[TargetLayer], patterns: list[str], key: str, where: Where, table: str) -> set[str]:
    names: set[str] = set()
    for pattern in patterns:
        hits = {layer.name for layer in layers if _matches(layer, pattern)}
        if not hits:
            known = ", ".join(layer.name for layer in layers)
            raise TransferError(f"{where(key)}: '{pattern}' matches no layer (layers: {known}); "
                                f"use a layer name or a glob such as 'conv2d*'\n{table}")
        names |= hits
    return names


def plan_stage(layers: list[TargetLayer], stage: StageConfig, index: int, always_frozen: set[str],
               where: Where, table: str) -> StagePlan:
    """Resolve one stage's freeze/unfreeze into frozen and trainable layer names."""
    key = f"transfer.stages.{index}"
    if stage.freeze == "none":
        frozen: set[str] = set()
    elif stage.freeze == "all":
        frozen = {layer.name for layer in layers}
    elif stage.freeze == "features":
        first_dense = next((i for i, layer in enumerate(layers) if layer.kind == "Dense"), len(layers))
        frozen = {layer.name for layer in layers[:first_dense]}
    else:
        frozen = _resolve(layers, list(stage.freeze), f"{key}.freeze", where, table)
    frozen |= always_frozen
    if isinstance(stage.unfreeze, LastN):
        frozen_weighted = [layer.name for layer in layers if layer.weighted and layer.name in frozen]
        if stage.unfreeze.last > len(frozen_weighted):
            raise TransferError(f"{where(key + '.unfreeze.last')}: last: {stage.unfreeze.last} but only "
                                f"{len(frozen_weighted)} weight-bearing layer(s) are frozen "
                                f"({', '.join(frozen_weighted) or 'none'})\n{table}")
        frozen -= set(frozen_weighted[len(frozen_weighted) - stage.unfreeze.last:])
    elif stage.unfreeze:
        frozen -= _resolve(layers, stage.unfreeze, f"{key}.unfreeze", where, table)
    trainable = [layer.name for layer in layers if layer.weighted and layer.name not in frozen]
    if not trainable:
        raise TransferError(f"{where(key)}: stage '{stage.name}' leaves nothing trainable (freeze: "
                            f"{stage.freeze}); freeze fewer layers or add unfreeze: [NAME] or unfreeze: {{last: 1}}"
                            f"\n{table}")
    return StagePlan(stage.name, [layer.name for layer in layers if layer.name in frozen], trainable)


def plan_transfer(layers: list[TargetLayer], transfer: TransferConfig, source: list[SourceLayer] | None,
                  source_label: str | None, where: Where = lambda key: key,
                  preloaded: dict[str, MapRow] | None = None, always_frozen: set[str] | None = None) -> TransferPlan:
    """The full plan; raises TransferError (message, then the table) on any refusal.

    `preloaded` holds rows for layers whose weights already came with the model (a base model);
    the rest are matched against `source` (None: they start new).
    """
    preloaded = preloaded or {}
    open_layers = [layer for layer in layers if layer.name not in preloaded]
    notes: list[str] = []
    if source is not None:
        matched, notes = match_layers(open_layers, source, transfer.match, transfer.head)
        check_rows(matched, where("transfer.from"), transfer.match, transfer.head)
    else:
        matched = [MapRow(t.name, t.kind, t.shapes) for t in open_layers if t.weighted]
    by_target = {row.target: row for row in matched} | preloaded
    rows = [by_target[layer.name] for layer in layers if layer.weighted]
    table = table_text(mapping_table(rows, []))
    stages = [plan_stage(layers, stage, i, always_frozen or set(), where, table)
              for i, stage in enumerate(transfer.stages)]
    for row in rows:
        row.trainable = {stage.name: row.target in stage.trainable for stage in stages}
    return TransferPlan(source_label, rows, stages, notes)
