"""Read weights from any source dlrun accepts, without TensorFlow, and copy them into a model.

Sources: a run directory, a Keras 3 `.weights.h5`, a `.keras` archive, or a legacy Keras-2 `.h5`
(weights-only or full model). Each is read into an ordered list of weight-bearing layers, so
evaluate and transfer share one mapping with shape checks and readable errors.
"""

from __future__ import annotations

import io
import json
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dlrun.config.applications import SAVED_MODEL_FILE
from dlrun.config.schema import ExperimentConfig
from dlrun.errors import WeightsError
from dlrun.limits import MAX_JSON_BYTES, check_zip, file_kind, format_bytes, h5_problem, memory_budget
from dlrun.store.names import CONFIG, WEIGHTS
from dlrun.store.rundir import RunDir, missing_target
from dlrun.store.status import read_status
from dlrun.weights.keras3 import config_entries, model_entries, order_hint, read_keras3_h5
from dlrun.weights.source import Source, SourceLayer

Progress = Callable[[str, int, int], None]  # (what, done, total), e.g. a ui StepProgress
Tick = Callable[..., None]  # (layers read[, layers in the file])
ARCHIVE_CONFIG = "config.json"  # the members of a Keras 3 .keras archive (a zip)
ARCHIVE_WEIGHTS = "model.weights.h5"  # in the layout of a .weights.h5 file


def resolve(target: str | Path) -> tuple[Path, str]:
    """(weights file, kind) for a run directory or a weights file; WeightsError when neither."""
    path = Path(target)
    if path.is_dir():
        weights = path / WEIGHTS
        if not weights.is_file():
            raise WeightsError(_no_weights(path))
        return weights, "run"
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise WeightsError(missing_target(path, "weights file or run directory")) from None
    except OSError as exc:  # a symlink loop, a path through a file, permissions
        raise WeightsError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):  # a FIFO is never opened
        raise WeightsError(f"{path}: is {file_kind(mode)}, not a weights file or run directory")
    name = path.name.lower()
    if name.endswith(".weights.h5"):
        return path, "weights.h5"
    if name.endswith(".keras"):
        return path, "keras"
    if name.endswith((".h5", ".hdf5")):
        return path, "legacy_h5"
    raise WeightsError(f"{path}: unknown weights format; expected .weights.h5, .keras, .h5 or a run directory")


def read_weights(target: str | Path, model: Any = None, progress: Progress | None = None) -> Source:
    """Read the weight-bearing layers of `target` in model order. WeightsError on any damage.

    A bare Keras 3 `.weights.h5` files layers by class (conv2d, conv2d_1, dense, ...) without names
    or order; `model` (an architecture believed to match) then supplies both, as Keras' own
    `load_weights` would. Without it, such layers come in natural key order under their keys.
    `progress` hears (what, layers read, layers in the file or 0 when not known yet).
    """
    path, kind = resolve(target)
    tick = None if progress is None else (lambda n, total=0: progress(f"reading {path}", n, total))
    try:
        if kind == "keras":
            layers = _read_keras_archive(path, tick)
        elif kind == "legacy_h5":
            layers = _read_legacy_h5(path, tick)
        else:
            # the model, when given, knows the order inside a base too (a config only names the base: an
            # application's batch_normalization layers would be read before its Conv1)
            order = model_entries(model) if model is not None else order_hint(path) if kind == "run" else None
            with _h5(path, path) as f:
                layers = read_keras3_h5(f, order, tick)
    except WeightsError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, json.JSONDecodeError, EOFError, RecursionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsError(f"{path}: corrupt or truncated weights file ({reason})") from None
    if not layers:
        raise WeightsError(f"{path}: holds no layer weights")
    return Source(path, kind, layers)


def _no_weights(run_dir: Path) -> str:
    """Why a directory given as weights has none, and what to do: a sweep's pruned trial says so."""
    status, summary = read_status(RunDir(run_dir))
    if status == "pruned":
        return (f"{run_dir}: a trial its sweep pruned (at epoch {summary.get('pruned_epoch')}) keeps its checkpoint "
                f"and epoch metrics but no final weights; to score it, train it to the end: dlrun train "
                f"{run_dir / CONFIG}")
    return (f"{run_dir}: no {WEIGHTS}; expected a run directory from `dlrun train` (a run that finished) or a "
            "weights file")


def _h5(source: Path | io.BytesIO, label: Path | str) -> Any:
    """An HDF5 weights file opened for reading, its links and datasets checked first: no link to
    another file, and every dataset passes limits.h5_problem (together within the memory budget)."""
    import h5py

    f = h5py.File(source, "r")
    try:
        size = source.getbuffer().nbytes if isinstance(source, io.BytesIO) else source.stat().st_size
        budget, links = memory_budget(), []
        f.visititems_links(lambda name, link: links.append((name, link)))
        for name, link in links:
            if isinstance(link, h5py.ExternalLink):
                raise WeightsError(f"{label}: {name} links to another file ({link.filename}); weights files must "
                                   "hold their own data")
            item = f.get(name) if isinstance(link, h5py.HardLink) else None
            if isinstance(item, h5py.Dataset):
                problem = h5_problem(item, size, budget)
                if problem:
                    raise WeightsError(f"{label}: dataset {name} {problem}")
                budget -= item.size * item.dtype.itemsize
    except BaseException:
        f.close()
        raise
    return f


def _decode(value: Any) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _read_legacy_h5(path: Path, tick: Tick | None = None) -> list[SourceLayer]:
    with _h5(path, path) as f:
        group = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
        if "layer_names" not in group.attrs:
            if "layers" in group or "vars" in group:  # a Keras 3 weights file saved with a plain .h5 name
                return read_keras3_h5(group, None, tick)
            raise WeightsError(f"{path}: not a Keras weights file (no layer_names attribute)")
        layers = []
        names = [_decode(n) for n in group.attrs["layer_names"]]
        for done, name in enumerate(names, start=1):
            g = group[name]
            arrays = [np.asarray(g[_decode(w)]) for w in g.attrs.get("weight_names", [])]
            if arrays:
                layers.append(SourceLayer(name, arrays))
            if tick is not None:
                tick(done, len(names))
        return layers


def check_archive(path: Path) -> None:
    """A .keras file is checked from its zip directory before anything reads it (Keras included): no
    member may land outside the archive when extracted (absolute or `..` names), and what the members
    claim to decompress to must fit the memory budget. WeightsError naming the file otherwise."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {info.filename: info for info in check_zip(archive, path, WeightsError)}
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise WeightsError(f"{path}: corrupt or truncated .keras file ({exc})") from None
    missing = [name for name in (ARCHIVE_CONFIG, ARCHIVE_WEIGHTS) if name not in infos]
    if missing:
        raise WeightsError(f"{path}: not a Keras 3 .keras archive (no {' or '.join(missing)})")
    if (size := infos[ARCHIVE_CONFIG].file_size) > MAX_JSON_BYTES:
        raise WeightsError(f"{path}: its {ARCHIVE_CONFIG} claims {format_bytes(size)}; a model "
                           f"config is kilobytes (at most {format_bytes(MAX_JSON_BYTES)})")


def check_model_sources(cfg: ExperimentConfig) -> None:
    """Before TensorFlow is loaded: the files a model is built from (`model.base.from`, its weights)
    exist and, for .keras archives, pass check_archive. WeightsError otherwise."""
    base = cfg.model.base
    for target in (base.from_, base.weights) if base is not None else ():
        if target and Path(target, SAVED_MODEL_FILE).is_file():
            continue  # a SavedModel folder: TensorFlow reads it (saved_bases.saved_model_layer)
        if target and target != "imagenet":
            path, kind = resolve(target)
            if kind == "keras":
                check_archive(path)


def _read_keras_archive(path: Path, tick: Tick | None = None) -> list[SourceLayer]:
    check_archive(path)
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read(ARCHIVE_CONFIG))
        blob = archive.read(ARCHIVE_WEIGHTS)
    with _h5(io.BytesIO(blob), f"{path} (member {ARCHIVE_WEIGHTS})") as f:
        return read_keras3_h5(f, config_entries(config) if isinstance(config, dict) else None, tick)
