"""Images: the one door to OpenCV, image sizes read from file headers, and the files of an image
folder listed without trusting them.

A decompression bomb is a small file whose header claims a huge image (a 2 KB PNG of 40000x40000
pixels decodes to 1.6 GB). dlrun reads the width and height from the header (PNG, JPEG, GIF, BMP,
WebP, PNM, TIFF) and never decodes an image of more than OPENCV_IO_MAX_IMAGE_PIXELS pixels; dlrun
sets that variable (to 2^26, e.g. 8192x8192) before OpenCV is first imported, unless it is set
already, so OpenCV itself refuses what the header reader cannot size. In a folder, such files are
skipped and counted. Symlinks are followed wherever they point (a subset of a data set made with
`ln -s ../all/0/img.png subset/zero/` is an image folder like any other), each target checked as a file
is: what cannot be an image is skipped and counted, from a stat and never opened: a link loop or a
dangling link, a FIFO, a device, a folder, and a class folder reached twice (a link to the image
folder itself or to another class folder).
"""

from __future__ import annotations

import os
import stat
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np

MAX_PIXELS_ENV = "OPENCV_IO_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 1 << 26
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
HEADER_BYTES = 64 << 10  # enough for every format's size field (JPEG: after its APP segments)


def cv2() -> ModuleType:
    """The cv2 module, with OPENCV_IO_MAX_IMAGE_PIXELS set before its first import (OpenCV reads it once)."""
    os.environ.setdefault(MAX_PIXELS_ENV, str(DEFAULT_MAX_PIXELS))
    import cv2 as module

    return module


def decode(file: Path, size: tuple[int, int], rgb: bool) -> np.ndarray | None:
    """One image file as an image folder's training data holds it: decoded by OpenCV in grey or RGB
    (OpenCV's own BGR reordered), resized to `size` (height, width) with INTER_AREA, H x W x C uint8
    (0-255). None when OpenCV cannot decode it. `dlrun predict` decodes its image files here too."""
    opencv = cv2()
    try:
        img = opencv.imread(str(file), opencv.IMREAD_COLOR if rgb else opencv.IMREAD_GRAYSCALE)
    except opencv.error:  # beyond OPENCV_IO_MAX_IMAGE_PIXELS, or a header OpenCV rejects
        return None
    if img is None:
        return None
    height, width = size
    if img.shape[:2] != (height, width):
        img = opencv.resize(img, (width, height), interpolation=opencv.INTER_AREA)
    return img[..., ::-1] if rgb else img[..., None]


PARALLEL_FROM = 256  # files: fewer decode faster in this process than worker processes start
CHUNK_FILES = 64  # files a worker decodes per task: a bounded piece of memory in flight


def workers() -> int:
    """Processes that decode an image folder: the cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def decode_chunk(files: list[Path], size: tuple[int, int], rgb: bool) -> tuple[np.ndarray, np.ndarray]:
    """(images, decoded): the files decoded as `decode` does into one uint8 array, and which of
    them could be (an undecodable file leaves zeros)."""
    height, width = size
    out = np.zeros((len(files), height, width, 3 if rgb else 1), np.uint8)
    ok = np.zeros(len(files), bool)
    for i, file in enumerate(files):
        img = decode(file, size, rgb)
        if img is not None:
            out[i], ok[i] = img, True
    return out, ok


def decode_all(files: list[Path], size: tuple[int, int], rgb: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """decode_chunk over `files` in order, CHUNK_FILES at a time: in worker processes (spawned, so a
    parent holding TensorFlow's threads is never forked) when there are PARALLEL_FROM files or more and
    more than one core, else here, file by file. At most two chunks per worker are in flight."""
    count = workers()
    if len(files) < PARALLEL_FROM or count < 2:  # one file a chunk: progress is told file by file
        yield from (decode_chunk([file], size, rgb) for file in files)
        return
    chunks = [files[i:i + CHUNK_FILES] for i in range(0, len(files), CHUNK_FILES)]
    import multiprocessing
    from concurrent.futures import Future, ProcessPoolExecutor

    with ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: list[Future[tuple[np.ndarray, np.ndarray]]] = []
        for chunk in chunks:
            pending.append(pool.submit(decode_chunk, chunk, size, rgb))
            if len(pending) >= 2 * count:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


def max_pixels() -> int:
    """The largest image (width x height) dlrun decodes."""
    text = os.environ.get(MAX_PIXELS_ENV, "")
    return int(text) if text.isdigit() and int(text) > 0 else DEFAULT_MAX_PIXELS


def _jpeg(head: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 <= len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame segment
            height, width = struct.unpack(">HH", head[i + 5:i + 9])
            return width, height
        i += 2 + struct.unpack(">H", head[i + 2:i + 4])[0]
    return None


def _webp(head: bytes) -> tuple[int, int] | None:
    kind = head[12:16]
    if kind == b"VP8X":
        return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
    if kind == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if kind == b"VP8 ":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _tiff(head: bytes) -> tuple[int, int] | None:
    order = "<" if head[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", head[4:8])
    if offset + 2 > len(head):
        return None
    (count,) = struct.unpack(order + "H", head[offset:offset + 2])
    found: dict[int, int] = {}
    for k in range(count):
        entry = head[offset + 2 + 12 * k: offset + 14 + 12 * k]
        if len(entry) < 12:
            break
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):
            short = kind == 3  # SHORT, else LONG
            found[tag] = struct.unpack(order + ("H" if short else "I"), entry[8:10] if short else entry[8:12])[0]
    return (found[256], found[257]) if len(found) == 2 else None


def _pnm(head: bytes) -> tuple[int, int] | None:
    tokens: list[bytes] = []
    for line in head[2:].split(b"\n"):
        tokens += line.split(b"#", 1)[0].split()
        if len(tokens) >= 2:
            return (int(tokens[0]), int(tokens[1])) if tokens[0].isdigit() and tokens[1].isdigit() else None
    return None


def dimensions(head: bytes) -> tuple[int, int] | None:
    """(width, height) from the first bytes of an image file; None when the format is not known."""
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            return struct.unpack(">II", head[16:24])
        if head.startswith(b"\xff\xd8"):
            return _jpeg(head)
        if head[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", head[6:10])
        if head.startswith(b"BM"):
            if int.from_bytes(head[14:18], "little") == 12:  # the old OS/2 header: 16-bit sizes
                return struct.unpack("<HH", head[18:22])
            width, height = struct.unpack("<ii", head[18:26])
            return abs(width), abs(height)
        if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
            return _webp(head)
        if head[:4] in (b"II*\0", b"MM\0*"):
            return _tiff(head)
        if head[:1] == b"P" and head[1:2] in b"123456" and len(head) > 2:
            return _pnm(head)
    except (struct.error, ValueError):
        return None
    return None


LOOP = "a symlink loop or a dangling symlink"
NOT_A_FILE = "not a regular file (a FIFO, a device or a folder)"
FOLDER_TWICE = "a folder reached twice (a link to the image folder or to another class folder)"


def why_skip(file: Path) -> str | None:
    """Why an entry of an image folder is not decoded (None: decode it). A symlink is followed wherever it
    points; its target must be a regular image file within the size bound, as any file must."""
    if file.suffix.lower() not in IMAGE_SUFFIXES:
        return "not an image"
    try:
        target = file.resolve(strict=True)
        st = target.stat()
    except (OSError, RuntimeError):
        return LOOP if file.is_symlink() else "unreadable"
    if not stat.S_ISREG(st.st_mode):
        return NOT_A_FILE
    try:
        with open(target, "rb") as fh:
            size = dimensions(fh.read(HEADER_BYTES))
    except OSError:
        return "unreadable"
    if size is not None and size[0] * size[1] > max_pixels():
        return f"a decompression bomb ({size[0]}x{size[1]} pixels claimed, more than {MAX_PIXELS_ENV}={max_pixels()})"
    return None


def class_folders(root: Path, skipped: Counter[str]) -> list[str]:
    """The class sub-folders of an image folder, sorted. Linked ones are followed wherever they point,
    unless they reach a folder already read (the image folder itself, another class folder: skipped and
    counted, real folders kept before links), as are link loops and dangling links."""
    targets: dict[str, Path] = {}
    for entry in sorted(root.iterdir()):
        try:
            if entry.is_dir():
                targets[entry.name] = entry.resolve(strict=True)
        except (OSError, RuntimeError):
            skipped[LOOP] += 1
    reached = {root.resolve()}
    classes = []
    for name in sorted(targets, key=lambda n: ((root / n).is_symlink(), n)):
        if targets[name] in reached:
            skipped[FOLDER_TWICE] += 1
        else:
            reached.add(targets[name])
            classes.append(name)
    return sorted(classes)


def describe_skipped(skipped: Counter[str], root: Path) -> str:
    """`skipped 3 file(s) under ROOT: 2 not an image or unreadable, 1 a symlink loop or a dangling symlink`."""
    total = sum(skipped.values())
    reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"skipped {total} file(s) under {root}: {reasons}"
