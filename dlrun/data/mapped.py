"""Arrays memory-mapped from files (issue 29): rows gathered from them chunk by chunk, and their pages
released, so reading a file bigger than memory never holds it; and referred to by file, so that another
process (a sweep's worker) maps the same file instead of receiving a copy. No TensorFlow here."""

from __future__ import annotations

import mmap
import os
import zlib
from typing import Any

import numpy as np

from dlrun.errors import DataError


class Rows:
    """The rows `index` of `source` (a memory-mapped array), written to an entry chunk by chunk: never
    gathered whole in memory (data/folder_cache.py builds an image folder's entry this way)."""

    CHUNK_BYTES = 16 << 20

    def __init__(self, source: np.ndarray, index: np.ndarray):
        self.source, self.index = source, index
        self.shape = (len(index), *source.shape[1:])
        self.dtype = source.dtype
        self.nbytes = len(index) * int(np.prod(source.shape[1:], dtype=np.int64)) * source.dtype.itemsize

    def chunks(self) -> Any:
        """Contiguous copies of consecutive rows, CHUNK_BYTES at a time; the source's pages read are
        released after each (release_pages)."""
        step = max(1, self.CHUNK_BYTES // max(1, self.source[:1].nbytes))
        for start in range(0, len(self.index), step):
            yield np.ascontiguousarray(self.source[self.index[start:start + step]])
            release_pages(self.source)

    def crc32(self) -> int:
        """The CRC-32 of the rows, as zlib.crc32 of the gathered array would be."""
        crc = 0
        for chunk in self.chunks():
            crc = zlib.crc32(chunk, crc)
        return crc


def release_pages(array: np.ndarray) -> None:
    """Drop the pages of a memory-mapped array from this process (madvise DONTNEED: a read-only or
    shared file mapping loses nothing; the page cache keeps them while memory allows), so reading it
    whole never holds it whole. Nothing for an array in memory."""
    mapping = getattr(array, "_mmap", None)
    if mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


def file_reference(array: Any) -> tuple[Any, ...] | None:
    """What another process needs to map the same file as `array` (a read-only memory map of a whole
    file region, as cache.read_entry makes): (file, dtype, offset, shape, device, inode, size); None for
    anything else (an array in memory, a view of a map), which has to be sent by value."""
    if not (isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap) and array.filename
            and array.mode == "r" and array.flags.c_contiguous):
        return None
    try:
        st = os.stat(array.filename)
    except OSError:
        return None
    return (str(array.filename), array.dtype.str, int(array.offset), tuple(array.shape), st.st_dev, st.st_ino,
            st.st_size)


def reopen(filename: str, dtype: str, offset: int, shape: tuple[int, ...], device: int, inode: int,
           size: int) -> np.memmap:
    """The array of a `file_reference`, mapped read-only in this process: the same pages of the page cache
    as in every other process mapping that file, no copy.

    Raises:
        DataError: the file is gone or is not the one referred to (replaced since, or changed in size).
    """
    try:
        with open(filename, "rb") as fh:
            st = os.fstat(fh.fileno())
            if (st.st_dev, st.st_ino, st.st_size) == (device, inode, size):
                return np.memmap(fh, np.dtype(dtype), "r", offset, shape)
            problem = "was replaced or changed in size"
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc})"
    raise DataError(f"{filename}: the data cache entry this sweep maps {problem} while the sweep used it; "
                    "run the sweep again (--resume continues it)")
