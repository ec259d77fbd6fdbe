"""Epoch checkpoints: model state (weights and RNG seed state), optimizer state and progress in one
.npz file written atomically, so a checkpoint is either the previous complete one or the new one."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from dlrun.data.guard import check_npz
from dlrun.errors import DataError, RunDirError
from dlrun.store.files import atomic_path
from dlrun.store.names import CHECKPOINT_STATE
from dlrun.store.rundir import RunDir

META_KEY = "__meta__"


def model_state(model: Any) -> list[Any]:
    """Every variable of every layer in order (weights, batch-norm statistics, dropout seed state)."""
    return [v for layer in model.layers for v in layer.variables]


def save_checkpoint(run: RunDir, model: Any, meta: dict[str, Any], name: str = CHECKPOINT_STATE) -> Path:
    """Write model and optimizer state plus `meta` (epoch, metrics so far, ...) atomically."""
    run.checkpoint.mkdir(exist_ok=True)
    arrays = {f"m{i}": np.asarray(v.numpy()) for i, v in enumerate(model_state(model))}
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and optimizer.built:
        arrays.update({f"o{i}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)})
    arrays[META_KEY] = np.array(json.dumps(meta))
    path = run.checkpoint / name
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def read_meta(path: Path) -> dict[str, Any]:
    """The metadata of a checkpoint; RunDirError when the file is missing or damaged."""
    return _read(path)[0]


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    what_to_do = ("; it cannot be resumed from. Delete it to train the run again from epoch 1 "
                  "(dlrun train --resume), or start a new run")
    try:
        check_npz(path)  # every array header against what the file holds and the memory budget
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(str(arrays.pop(META_KEY)))
        if not (isinstance(meta, dict) and isinstance(meta.get("epoch"), int)):
            raise ValueError("no progress record")
        return meta, arrays
    except DataError as exc:
        if not path.exists():
            raise RunDirError(f"{path}: no checkpoint; the run has no complete epoch to resume from") from None
        reason = re.sub(r"^\((member [^)]*)\)", r"\1", str(exc).removeprefix(str(path)).lstrip(": "))
        raise RunDirError(f"{path}: damaged checkpoint ({reason}){what_to_do}") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, RecursionError) as exc:
        raise RunDirError(f"{path}: damaged checkpoint ({exc}){what_to_do}") from None


def load_checkpoint(path: Path, model: Any, optimizer_state: bool = True) -> dict[str, Any]:
    """Restore model (and optimizer, when saved and `optimizer_state`) state from `path`; returns its metadata."""
    meta, arrays = _read(path)
    variables = model_state(model)
    stored = sorted((k for k in arrays if k.startswith("m")), key=lambda k: int(k[1:]))
    if len(stored) != len(variables):
        raise RunDirError(f"{path}: checkpoint holds {len(stored)} model variables, the model has {len(variables)}")
    if not isinstance(meta.get("rows"), list):
        raise RunDirError(f"{path}: damaged checkpoint (no metrics rows); it cannot be resumed from. Delete it to "
                          "train the run again from epoch 1 (dlrun train --resume), or start a new run")
    for variable, key in zip(variables, stored, strict=True):
        variable.assign(arrays[key])
    opt_keys = sorted((k for k in arrays if k.startswith("o")), key=lambda k: int(k[1:]))
    optimizer = getattr(model, "optimizer", None)
    if opt_keys and optimizer is not None and optimizer_state:
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        if len(opt_keys) == len(optimizer.variables):
            for variable, key in zip(optimizer.variables, opt_keys, strict=True):
                variable.assign(arrays[key])
    return meta
