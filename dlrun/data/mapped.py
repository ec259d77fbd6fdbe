"""Arrays memory-mapped from files (issue 29): rows gathered from them chunk by chunk, and their pages
released, so reading a file bigger than memory never holds it. No TensorFlow here."""

from __future__ import annotations

import mmap
import zlib
from typing import Any

import numpy as np


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
