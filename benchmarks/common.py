"""Shared benchmark plumbing: timed subprocesses run alternately, medians, result rows, Markdown."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


class BenchError(RuntimeError):
    """A benchmarked command failed; carries the end of its output."""


@dataclass
class Timing:
    """Wall-clock and CPU (user + system) seconds of one subprocess."""

    wall: float
    cpu: float


@dataclass
class Row:
    """One line of the results table. `met` is None where there is no target to meet."""

    number: str
    name: str
    dlrun: str
    plain: str
    ratio: str
    target: str
    met: bool | None
    note: str = ""


def write_npy_images(folder: Path, mib: int, side: int) -> int:
    """About `mib` MiB of random `side` x `side` RGB uint8 images as X.npy / Y.npy in `folder` (labels 0-9
    in turn); returns how many images."""
    import numpy as np

    n = mib * 2**20 // (side * side * 3)
    rng = np.random.default_rng(0)
    np.save(folder / "X.npy", rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8))
    np.save(folder / "Y.npy", np.arange(n) % 10)
    return n


def bench_env(cache_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for benchmarked processes: this checkout's dlrun, a private data cache, quiet TF."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["DLRUN_CACHE"] = str(cache_dir)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("DLRUN_TF_LOG", os.devnull)
    env.update(extra)
    return env


def run_timed(cmd: Sequence[str | Path], env: dict[str, str], cwd: Path | None = None) -> Timing:
    """Run `cmd` to completion; its wall time (process start included) and CPU time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-2000:]
        raise BenchError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{tail}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall, cpu)


def alternate(commands: dict[str, Callable[[], Sequence[str | Path]]], env: dict[str, str], repeats: int,
              warmup: bool = True, label: str = "") -> dict[str, list[Timing]]:
    """Run each command `repeats` times, alternating which goes first in each round, after one untimed
    warm-up round (page cache, data cache, Python bytecode). Returns the timings per command; each is
    also logged on stderr as it comes."""
    names = list(commands)
    if warmup:
        for name in names:
            run_timed(commands[name](), env)
    timings: dict[str, list[Timing]] = {name: [] for name in names}
    for i in range(repeats):
        for name in names if i % 2 == 0 else reversed(names):
            t = run_timed(commands[name](), env)
            timings[name].append(t)
            print(f"  {label} round {i + 1}/{repeats} {name}: {t.wall:.2f} s wall, {t.cpu:.2f} s CPU",
                  file=sys.stderr, flush=True)
    return timings


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    return float(statistics.median(values))


def seconds(values: Sequence[float]) -> str:
    """`1.23 s` (median) for a table cell."""
    return f"{median(values):.2f} s"


def ratio_row(number: str, name: str, timings: dict[str, list[Timing]], target: float, note: str = "") -> Row:
    """A dlrun-vs-plain row: median wall times and their ratio against a `<= target` goal."""
    dl, plain = [t.wall for t in timings["dlrun"]], [t.wall for t in timings["plain"]]
    ratio = median(dl) / median(plain)
    cpu = median([t.cpu for t in timings["dlrun"]]) / median([t.cpu for t in timings["plain"]])
    extra = f"CPU-time ratio {cpu:.3f}; n={len(dl)}"
    return Row(number, name, seconds(dl), seconds(plain), f"{ratio:.3f}", f"≤ {target}", ratio <= target,
               f"{note}; {extra}" if note else extra)


def machine() -> str:
    """The machine and software versions, in one line."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for package in ("tensorflow", "keras", "numpy"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return (f"{cpu}, {os.cpu_count()} CPU cores, no GPU used; {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, {', '.join(versions)}")


def markdown(rows: list[Row]) -> str:
    """The results as a Markdown table."""
    lines = ["| # | benchmark | dlrun | plain Keras | ratio | target | met | notes |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        met = "—" if r.met is None else ("yes" if r.met else "**NO**")
        lines.append(f"| {r.number} | {r.name} | {r.dlrun} | {r.plain} | {r.ratio} | {r.target} | {met} | {r.note} |")
    return "\n".join(lines)
