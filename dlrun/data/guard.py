"""Data files checked before they are read: the path is a regular file (a FIFO is never opened, a
device never read), and what an array header claims is compared with what the file holds and with
the memory budget (dlrun.limits) before anything is allocated. A header that claims a terabyte in a
file of a few bytes, a gzip stream that inflates without end, or an HDF5 dataset stored in another
file is refused with one line naming the file."""

from __future__ import annotations

import gzip
import math
import os
import stat
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy_format

from dlrun.errors import DataError
from dlrun.limits import budget_hint, check_zip, file_kind, format_bytes, h5_problem, memory_budget

IDX_MAX_DIMS = 4


def require(path: Path, what: str, kind: str = "file") -> os.stat_result:
    """stat `path` without opening it: it must exist and be a regular file (`kind` "file"), a
    directory ("dir") or either ("any"). DataError naming the path otherwise."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found; check data.path (relative paths start at {Path.cwd()})") from None
    except OSError as exc:  # a symlink loop, a path through a file, permissions
        raise DataError(f"{path}: {what} cannot be read ({exc.strerror or exc})") from None
    wanted = {"file": stat.S_ISREG(st.st_mode), "dir": stat.S_ISDIR(st.st_mode),
              "any": stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)}[kind]
    if not wanted:
        expected = {"file": "a file", "dir": "a folder", "any": "a file or a folder"}[kind]
        actual = "a file" if stat.S_ISREG(st.st_mode) else file_kind(st.st_mode)
        raise DataError(f"{path}: {what} is {actual}; expected {expected}. Check data.path")
    return st


def claimed_bytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Bytes an array of this shape and dtype holds (Python integers: no overflow)."""
    return math.prod(int(d) for d in shape) * dtype.itemsize


def _too_big(origin: str, what: str, nbytes: int, budget: int) -> DataError:
    return DataError(f"{origin}: {what} needs {format_bytes(nbytes)}, more than {budget_hint()}; use a smaller "
                     "file or data.limit, or raise the budget if the machine has the memory")


def npy_header(fh: IO[bytes], origin: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from the header of a .npy stream, leaving `fh` at the first data byte."""
    try:
        version = npy_format.read_magic(fh)
        reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, _, dtype = reader(fh)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise DataError(f"{origin}: not a readable .npy array ({exc}); save it with numpy.save") from None
    if dtype.hasobject:
        raise DataError(f"{origin}: holds Python objects (a pickle), which dlrun never loads; save plain numbers")
    return tuple(int(d) for d in shape), dtype


def check_npy(path: Path) -> tuple[int, ...]:
    """The header of a .npy file must claim no more than the file holds, and fit the memory budget.
    Returns the shape it claims."""
    size = require(path, "array file").st_size
    with open(path, "rb") as fh:
        shape, dtype = npy_header(fh, str(path))
        held = size - fh.tell()
    nbytes = claimed_bytes(shape, dtype)
    if nbytes > held:
        raise DataError(f"{path}: the header claims a {shape} {dtype} array ({format_bytes(nbytes)}) but the file "
                        f"holds {format_bytes(held)} of data: truncated or forged; save it again with numpy.save")
    budget = memory_budget()
    if nbytes > budget:
        raise _too_big(str(path), f"the {shape} {dtype} array", nbytes, budget)
    return shape


def check_npz(path: Path) -> None:
    """Every .npy member of an .npz must claim no more than the archive says it holds, and together
    they must fit the memory budget; checked from the zip directory and each member's header."""
    require(path, "npz file")
    budget = memory_budget()
    try:
        with zipfile.ZipFile(path) as archive:
            total = 0
            for info in check_zip(archive, path, DataError, budget):
                if not info.filename.endswith(".npy"):
                    continue
                origin = f"{path} (member {info.filename})"
                with archive.open(info) as member:
                    shape, dtype = npy_header(member, origin)
                    held = info.file_size - member.tell()
                nbytes = claimed_bytes(shape, dtype)
                if nbytes > held:
                    raise DataError(f"{origin}: the header claims a {shape} {dtype} array ({format_bytes(nbytes)}) "
                                    f"but the member holds {format_bytes(held)}: truncated or forged")
                total += nbytes
            if total > budget:
                raise _too_big(str(path), "its arrays", total, budget)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None


def read_h5(dataset: Any, path: Path) -> np.ndarray:
    """Read an HDF5 dataset once limits.h5_problem finds nothing wrong with it (stored in this file,
    claiming no more than the file holds, fitting the memory budget)."""
    problem = h5_problem(dataset, path.stat().st_size, memory_budget())
    if problem:
        raise DataError(f"{path}: dataset {dataset.name} {problem}")
    return dataset[()]


def read_idx(path: Path) -> np.ndarray:
    """One MNIST idx file (gzipped or not), its header checked first: unsigned bytes, at most 4
    dimensions, a size the file holds and the budget allows. A gzip stream is inflated only as far as
    the header says (plus one byte, to catch padding), so a gzip bomb costs nothing."""
    size = require(path, "idx file").st_size
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(4)
            if len(head) < 4 or head[:3] != b"\0\0\x08":
                raise DataError(f"{path}: not an idx file of unsigned bytes (bad magic number)")
            ndim = head[3]
            if not 1 <= ndim <= IDX_MAX_DIMS:
                raise DataError(f"{path}: the idx header claims {ndim} dimensions (expected 1 to {IDX_MAX_DIMS})")
            raw = fh.read(4 * ndim)
            dims = tuple(int.from_bytes(raw[4 * i: 4 * i + 4], "big") for i in range(len(raw) // 4))
            expected = 4 + 4 * ndim + math.prod(dims)
            if len(dims) != ndim or (opener is open and expected != size):
                raise DataError(f"{path}: truncated or padded idx file ({size} bytes, header says {expected})")
            budget = memory_budget()
            if expected > budget:
                raise _too_big(str(path), f"the {dims} array its header claims", expected, budget)
            data = fh.read(expected - 4 - 4 * ndim + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: unreadable idx file ({exc})") from None
    if len(data) != math.prod(dims):
        got = 4 + 4 * ndim + len(data)
        detail = "more than" if len(data) > math.prod(dims) else f"{got} bytes,"
        raise DataError(f"{path}: truncated or padded idx file ({detail} the header's {expected} bytes)")
    return np.frombuffer(data, np.uint8).reshape(dims)


def check_prepared(origin: str, n: int, item_shape: tuple[int, ...], itemsize: int = 4) -> None:
    """The prepared arrays of `n` examples shaped `item_shape` (float32, or uint8 pixels with
    `itemsize` 1) must fit the memory budget."""
    nbytes = itemsize * n * math.prod(int(d) for d in item_shape)
    budget = memory_budget()
    if nbytes > budget:
        shown = "x".join(str(d) for d in item_shape)
        kind = "uint8" if itemsize == 1 else "float32"
        raise _too_big(origin, f"{n:,} examples of {shown} {kind} values", nbytes, budget)
