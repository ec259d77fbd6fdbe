"""Arrays stored by name: .npz and HDF5 files, and RawData, what every reader returns. A configured
name (`data.keys`) matches a stored one exactly or, when exactly one stored name differs only in case,
that one (said in the data notes); otherwise the error lists what the file holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlrun.config.schema import DataConfig
from dlrun.data import guard
from dlrun.errors import DataError

KERAS_KEYS = ("x_train", "y_train", "x_test", "y_test")  # keras.datasets' mnist.npz layout


@dataclass
class RawData:
    """Arrays as read from a source; the test split is None when the source has none."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    class_names: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    columns: list[str] | None = None  # a table's feature columns (csv, table)


def require(path: Path, what: str, kind: str = "file") -> Path:
    """`path` when it exists and is a regular file (`kind` "file"), a directory ("dir") or either
    ("any"); DataError naming it otherwise. Only stat: a FIFO is never opened, a device never read."""
    guard.require(path, what, kind)
    return path


def match_names(wanted: tuple[str, ...], stored: list[str], path: Path, notes: list[str]) -> dict[str, str]:
    """Configured name -> stored name, for each configured name found: exactly, else the one stored
    name equal to it ignoring case (noted). Names found nowhere, or twice ignoring case, are left out."""
    by_lower: dict[str, list[str]] = {}
    for name in stored:
        by_lower.setdefault(name.lower(), []).append(name)
    found: dict[str, str] = {}
    for name in wanted:
        candidates = by_lower.get(name.lower(), [])
        if name in stored:
            found[name] = name
        elif len(candidates) == 1:
            found[name] = candidates[0]
            notes.append(f"{path}: read '{candidates[0]}' for '{name}' (array names are matched ignoring case)")
    return found


def _missing(path: Path, names: tuple[str, ...], found: dict[str, str], stored: list[str], what: str) -> str:
    missing = [k for k in names if k not in found]
    twins = [k for k in missing if sum(s.lower() == k.lower() for s in stored) > 1]
    hint = (f" ({', '.join(twins)} matches several names ignoring case; give the exact one)" if twins else "")
    return (f"{path}: missing {what} {', '.join(missing)}; the file has {', '.join(sorted(stored)) or 'nothing'}"
            f"{hint}. Map them with data.keys, e.g. --set data.keys.x_train=NAME")


def load_npz_file(path: Path, cfg: DataConfig, split_ok: bool = True,
                  keys: tuple[str, str, str, str] | None = None) -> RawData:
    """An .npz with train (and optionally test) arrays under data.keys names (`keys`: a fixed layout)."""
    guard.check_npz(path)  # every member's header against what it holds and the budget, before reading
    names = keys or (cfg.keys.x_train, cfg.keys.y_train, cfg.keys.x_test, cfg.keys.y_test)
    notes: list[str] = []
    try:
        with np.load(path, allow_pickle=False) as npz:
            found = match_names(names, list(npz.files), path, notes)
            if not all(k in found for k in names[:2]):
                raise DataError(_missing(path, names[:2], found, list(npz.files), "key(s)"))
            arrays = {name: npz[stored] for name, stored in found.items()}
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    return _from_mapping(arrays, names, path, split_ok, notes)


def load_h5(cfg: DataConfig) -> RawData:
    """An HDF5 file (e.g. SVHN grey) with datasets named by data.keys."""
    import h5py

    path = require(Path(cfg.path or ""), "h5 file")
    names = (cfg.keys.x_train, cfg.keys.y_train, cfg.keys.x_test, cfg.keys.y_test)
    notes: list[str] = []
    try:
        with h5py.File(path, "r") as f:
            # a link's target is never opened: the file named in the config is the data (and the cache key)
            linked = {k: link for k in f if isinstance(link := f.get(k, getlink=True), h5py.ExternalLink)}
            stored = [k for k in f if k in linked or isinstance(f[k], h5py.Dataset)]
            found = match_names(names, stored, path, notes)
            external = [actual for actual in found.values() if actual in linked]
            if external:
                link = linked[external[0]]
                raise DataError(f"{path}: dataset /{external[0]} is an external link to {link.filename}:{link.path}; "
                                "dlrun reads the file itself only, so copy the data into it")
            if not all(k in found for k in names[:2]):
                raise DataError(_missing(path, names[:2], found, sorted(f.keys()), "dataset(s)"))
            arrays = {name: guard.read_h5(f[actual], path) for name, actual in found.items()}
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from None
    return _from_mapping(arrays, names, path, True, notes)


def _from_mapping(arrays: dict[str, np.ndarray], names: tuple[str, ...], path: Path, split_ok: bool,
                  notes: list[str]) -> RawData:
    x_tr, y_tr, x_te, y_te = names
    has_test = x_te in arrays and y_te in arrays
    if not has_test and not split_ok:
        raise DataError(f"{path}: missing {x_te}/{y_te} (the test split); the file has {', '.join(sorted(arrays))}")
    return RawData(arrays[x_tr], arrays[y_tr], arrays.get(x_te) if has_test else None,
                   arrays.get(y_te) if has_test else None, notes=notes)
