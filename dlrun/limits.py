"""Bounds on what an input may cost: the memory budget every size check compares against, the
limits of config files, and the checks of zip archives (.npz data, .keras weights) made from their
directory alone, before any member is read. No third-party imports.

The memory budget is `$DLRUN_MEMORY_BUDGET` (bytes, or a size such as `8G`, `512M`) when set, else
70% of the memory this process may use: the machine's RAM, or less where a cgroup (a container) or
`ulimit -v` caps it. Inputs whose headers claim more than the budget are refused before anything is
allocated, with the size they would need.
"""

from __future__ import annotations

import math
import os
import posixpath
import re
import resource
import stat
import zipfile
from pathlib import Path
from typing import Any

from dlrun.errors import DlrunError

BUDGET_ENV = "DLRUN_MEMORY_BUDGET"
BUDGET_FRACTION = 0.7
MAX_CONFIG_BYTES = 1 << 20  # a config file; inline tables bigger than this belong in a csv file
MAX_YAML_NODES = 100_000  # values in a config once every alias is expanded
MAX_YAML_DEPTH = 50  # nesting levels of a config (real ones use fewer than 10)
MAX_JSON_BYTES = 64 << 20  # summary.json, transfer.json, eval.json: records dlrun wrote itself
MAX_ZIP_MEMBERS = 10_000
MAX_EPOCHS = 100_000  # every checkpoint holds one metrics row per epoch
MAX_CLASSES = 100_000  # a class list, an output unit and a confusion-matrix row per class
MAX_THREADS = 1024  # TensorFlow's CPU thread pools; no machine has more cores than this is useful for
THREAD_STACK = 8 << 20  # the address space one thread's stack reserves (glibc's default)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def format_bytes(n: float) -> str:
    """`512 B`, `3.2 MiB`, `1.5 TiB`."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # unreachable


def parse_size(text: str) -> int:
    """`8G` -> 8 GiB in bytes (K, M, G, T; an optional `iB`/`B`); a plain number is bytes. ValueError otherwise."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(text)
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _usable_memory() -> int:
    """The memory this process may use: RAM, capped by a cgroup limit and by RLIMIT_AS."""
    limits = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")]
    for name in _CGROUP_LIMITS:
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        limits.append(soft)
    return min(limits)


def memory_budget() -> int:
    """Bytes an input may need: `$DLRUN_MEMORY_BUDGET`, else 70% of usable memory. DlrunError when the
    variable is not a size."""
    text = os.environ.get(BUDGET_ENV)
    if text:
        try:
            return parse_size(text)
        except ValueError:
            raise DlrunError(f"{BUDGET_ENV}={text!r}: expected a size such as 8G, 512M or a number of "
                             "bytes") from None
    return int(_usable_memory() * BUDGET_FRACTION)


def max_threads() -> tuple[int, str]:
    """(the most CPU threads a run may ask TensorFlow for on this machine, why): MAX_THREADS, the
    kernel's threads-max and RLIMIT_NPROC, and the address space the threads' stacks would reserve."""
    bounds = [(MAX_THREADS, f"TensorFlow gains nothing from more threads than cores (this machine has "
               f"{os.cpu_count() or 1}) and dlrun starts at most {MAX_THREADS:,}")]
    try:
        kernel = int(Path("/proc/sys/kernel/threads-max").read_text())
        bounds.append((kernel, f"the kernel starts at most {kernel:,} threads (threads-max)"))
    except (OSError, ValueError):
        pass
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if nproc != resource.RLIM_INFINITY:
        bounds.append((nproc, f"this user may start at most {nproc:,} processes and threads (ulimit -u)"))
    space = resource.getrlimit(resource.RLIMIT_AS)[0]
    if space != resource.RLIM_INFINITY:
        stacks = max(1, space // 2 // THREAD_STACK)
        bounds.append((stacks, f"{stacks:,} thread stacks of {format_bytes(THREAD_STACK)} fill half of this "
                       f"process's {format_bytes(space)} address space (ulimit -v)"))
    return min(bounds)


def budget_hint() -> str:
    """How the budget was set, for messages: `the memory budget of 11.2 GiB (70% of this machine's
    memory; set DLRUN_MEMORY_BUDGET to change it)`."""
    budget = memory_budget()
    origin = (f"{BUDGET_ENV}" if os.environ.get(BUDGET_ENV)
              else f"{BUDGET_FRACTION:.0%} of this machine's memory; set {BUDGET_ENV} to change it")
    return f"the memory budget of {format_bytes(budget)} ({origin})"


def file_kind(mode: int) -> str:
    """What a stat mode that is not a regular file is, for messages: a directory, a FIFO, a device."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket" if stat.S_ISSOCK(mode) else "not a regular file"


def h5_problem(dataset: Any, file_size: int, budget: int) -> str | None:
    """Why an HDF5 dataset (an h5py Dataset) must not be read, or None: it takes its data from other
    files (virtual or external storage: a FIFO or a device could stand there), its unfiltered data
    claims more than the file holds, or it claims more than the memory budget. Reads nothing."""
    if dataset.is_virtual or dataset.external:
        return "takes its data from other files (virtual or external storage); dlrun reads the file itself only"
    nbytes = math.prod(int(d) for d in dataset.shape or ()) * dataset.dtype.itemsize
    what = f"claims a {dataset.shape} {dataset.dtype} array ({format_bytes(nbytes)})"
    filtered = dataset.id.get_create_plist().get_nfilters() > 0  # compressed data may exceed the file size
    if not filtered and nbytes > file_size:
        return f"{what} but the file is {format_bytes(file_size)}: truncated or forged"
    if nbytes > budget:
        return f"{what}, more than {budget_hint()}"
    return None


def unsafe_member_name(name: str) -> bool:
    """True for an archive member name that could land outside the folder it is extracted into:
    absolute (`/x`, `C:\\x`, `\\\\server`), with a `..` component, a backslash, or a NUL."""
    if not name or "\0" in name or "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return True
    return ".." in posixpath.normpath(name).split("/") or ".." in name.split("/")


def check_zip(archive: zipfile.ZipFile, path: Path | str, error: type[DlrunError],
              budget: int | None = None) -> list[zipfile.ZipInfo]:
    """Check an open archive from its directory alone (no member is decompressed): member names
    stay inside the archive, there are not absurdly many, and what they claim to hold, together,
    fits the memory budget. Returns the members; raises `error` naming the file and the member."""
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        raise error(f"{path}: holds {len(infos)} archive members (at most {MAX_ZIP_MEMBERS}); not a file dlrun wrote")
    for info in infos:
        if unsafe_member_name(info.filename):
            raise error(f"{path}: archive member {info.filename!r} points outside the archive (an absolute path "
                        "or '..'); refusing the whole file, nothing was extracted")
    budget = memory_budget() if budget is None else budget
    total = sum(info.file_size for info in infos)
    if total > budget:
        big = max(infos, key=lambda info: info.file_size)
        raise error(f"{path}: its members decompress to {format_bytes(total)} ({big.filename!r} alone claims "
                    f"{format_bytes(big.file_size)} from {format_bytes(big.compress_size)} stored), more than "
                    f"{budget_hint()}; refusing it before decompressing anything")
    return infos
