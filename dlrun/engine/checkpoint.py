"""Epoch checkpoints: model state (weights and RNG seed state), optimizer state and progress in one
.npz file written atomically, so a checkpoint is either the previous complete one or the new one."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from dlrun.data import Dataset
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


def check_same_data(meta: dict[str, Any], data: Dataset, path: Path) -> None:
    """Refuse (DataError) to continue a run whose checkpoint was trained on other data than `data`:
    resuming would silently mix old and new examples. Checkpoints without a fingerprint pass."""
    recorded = meta.get("data_fingerprint")
    if recorded is not None and recorded != data.fingerprint():
        raise DataError(f"{path}: the data changed since this run started (data fingerprint {recorded[:12]}, now "
                        f"{data.fingerprint()[:12]}): resuming would train on a mix of old and new data. Restore "
                        "the data the run started with, or start a new run")


def _sorted_keys(arrays: dict[str, np.ndarray], prefix: str) -> list[str]:
    return sorted((k for k in arrays if k.startswith(prefix)), key=lambda k: int(k[1:]))


def _check_fits(path: Path, what: str, variables: list[Any], arrays: list[np.ndarray], fix: str) -> None:
    """Every saved array must fit its variable (count and shapes); RunDirError naming the first misfit."""
    if len(arrays) != len(variables):
        raise RunDirError(f"{path}: checkpoint holds {len(arrays)} {what} variables, the {what} has "
                          f"{len(variables)}; {fix}")
    for variable, array in zip(variables, arrays, strict=True):
        if tuple(array.shape) != tuple(variable.shape):
            raise RunDirError(f"{path}: {what} variable {getattr(variable, 'path', variable.name)} has shape "
                              f"{tuple(variable.shape)}, the checkpoint's {tuple(array.shape)}; {fix}")


def load_checkpoint(path: Path, model: Any, optimizer_state: bool = True) -> dict[str, Any]:
    """Restore model (and optimizer, when saved and `optimizer_state`) state from `path`; returns its metadata.

    Nothing is assigned unless every saved array fits: optimizer state that does not match the
    optimizer is refused (RunDirError), never skipped, since training on without it (fresh moments,
    a reset step count) would not continue the run it claims to continue.
    """
    meta, arrays = _read(path)
    variables = model_state(model)
    stored = [arrays[k] for k in _sorted_keys(arrays, "m")]
    _check_fits(path, "model", variables, stored, "the checkpoint was written for another architecture")
    if not isinstance(meta.get("rows"), list):
        raise RunDirError(f"{path}: damaged checkpoint (no metrics rows); it cannot be resumed from. Delete it to "
                          "train the run again from epoch 1 (dlrun train --resume), or start a new run")
    opt_arrays = [arrays[k] for k in _sorted_keys(arrays, "o")]
    optimizer = getattr(model, "optimizer", None)
    restore_optimizer = bool(opt_arrays) and optimizer is not None and optimizer_state
    if restore_optimizer:
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        _check_fits(path, "optimizer", list(optimizer.variables), opt_arrays,
                    f"its state cannot be restored into this {type(optimizer).__name__} (written by another optimizer "
                    "setup or Keras version), and resuming without it would not continue the same run. Resume with "
                    "the setup that wrote it, or start a new run")
    for variable, array in zip(variables, stored, strict=True):
        variable.assign(array)
    if restore_optimizer:
        for variable, array in zip(optimizer.variables, opt_arrays, strict=True):
            variable.assign(array)
    return meta
