"""Benchmark 7 (issue 29): an image folder whose float32 arrays are 3x the memory budget trains to the end.

- 7a: peak RSS of `dlrun train` from the memory-mapped cache, for a folder N and 2N images (it must not grow
  with the data set's size), and of the first run, which decodes the folder and writes the cache;
- 7b: first-pass decode rate in worker processes against OpenCV's single-process rate x cores;
- 7c: steady epoch time (epochs 2+, metrics.csv) from the memory-mapped cache against the same cache read
  into memory (target: throughput >= 0.9x);
- 7d: cache size against the float32 arrays it replaces.

Run: `PYTHONPATH=. python benchmarks/bench_memmap.py [--images 3072] [--budget 48M]`; prints Markdown rows.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import yaml
from common import PY, Row, bench_env, markdown, median

from dlrun.data import images
from dlrun.limits import format_bytes, parse_size

SIDE = 64
RSS_PROBE = ("import resource, subprocess, sys\nsubprocess.run(sys.argv[1:], check=True, capture_output=True)\n"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def make_folder(root: Path, n: int) -> Path:
    """`n` colour PNGs SIDE x SIDE in 10 class folders (smooth noise: decodes like a photo, not a blank)."""
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / str(i % 10)
        folder.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        img = cv2.resize(small, (SIDE * 2, SIDE * 2), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"{i:06d}.png"), img)
    return root


def config(folder: Path, work: Path, epochs: int) -> Path:
    """A small CNN on the folder at SIDE x SIDE colour (decoded from 2*SIDE: every image is resized)."""
    cfg = {"name": "bench-memmap", "seed": 0,
           "data": {"source": "folder", "path": str(folder), "image_size": [SIDE, SIDE], "color": "rgb",
                    "test_split": 0.1, "validation": 0.1},
           "model": {"layers": [{"max_pool2d": {"pool_size": 2}}, {"conv2d": {"filters": 8, "kernel_size": 3,
                                                                              "activation": "relu"}},
                                {"max_pool2d": {"pool_size": 2}}, {"flatten": {}},
                                {"dense": {"units": 10, "activation": "softmax"}}]},
           "optimizer": {"name": "adam", "lr": 0.001}, "train": {"epochs": epochs, "batch_size": 64}}
    path = work / f"{folder.name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def train(cfg: Path, runs: Path, env: dict[str, str]) -> tuple[int, list[float], str]:
    """(peak RSS in bytes, seconds of each epoch, data_cache) of one `dlrun train` in a fresh process."""
    probe = subprocess.run([PY, "-c", RSS_PROBE, PY, "-m", "dlrun", "train", str(cfg), "--runs", str(runs)],
                           env=env, capture_output=True, text=True)
    if probe.returncode:
        raise SystemExit(probe.stderr[-3000:])
    run = max(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    with open(run / "metrics.csv") as fh:
        seconds = [float(row["seconds"]) for row in csv.DictReader(fh)]
    cache = "hit" if '"data_cache": "hit"' in (run / "summary.json").read_text() else "miss"
    return int(probe.stdout.split()[-1]) * 1024, seconds, cache


def decode_rates(folder: Path) -> tuple[float, float]:
    """(images/s decoding in this process, images/s with images.decode_all's worker processes)."""
    files = sorted(folder.rglob("*.png"))
    start = time.perf_counter()
    images.decode_chunk(files, (SIDE, SIDE), True)
    single = len(files) / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in images.decode_all(files, (SIDE, SIDE), True):
        pass
    return single, len(files) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budget", default="48M", help="DLRUN_MEMORY_BUDGET of the runs")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per side for 7c")
    args = parser.parse_args()
    budget = parse_size(args.budget)
    n = 3 * budget // (SIDE * SIDE * 3 * 4)  # float32 arrays 3x the budget
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        peaks, epoch_times = {}, {}
        for label, count in (("N", n), ("2N", 2 * n)):
            folder = make_folder(work / f"folder{count}", count)
            cfg = config(folder, work, args.epochs)
            env = bench_env(work / f"cache{count}", DLRUN_MEMORY_BUDGET=args.budget)
            first = train(cfg, work / f"runs{count}a", env)  # decodes into the cache entry (data/folder_cache.py)
            mapped = train(cfg, work / f"runs{count}b", env)
            assert (first[2], mapped[2]) == ("miss", "hit"), (first[2], mapped[2])
            peaks[label] = (first[0], mapped[0], count)
            if label == "N":  # alternate mapped / in memory (the machine's default budget) runs
                steady: dict[str, list[float]] = {"mapped": [], "memory": []}
                for repeat in range(args.repeats):
                    steady["mapped"] += train(cfg, work / f"runs{count}m{repeat}", env)[1][1:]
                    in_memory = bench_env(work / f"cache{count}")
                    steady["memory"] += train(cfg, work / f"runs{count}c{repeat}", in_memory)[1][1:]
                epoch_times = {side: median(times) for side, times in steady.items()}
                single, parallel = decode_rates(folder)
                cache_bytes = sum(p.stat().st_size for p in (work / f"cache{count}").rglob("*.bin"))
                float_bytes = count * SIDE * SIDE * 3 * 4
        (f1, m1, c1), (f2, m2, c2) = peaks["N"], peaks["2N"]
        rows.append(Row("7a", f"peak RSS training from the memory-mapped cache, {c1} vs {c2} images {SIDE}x{SIDE}x3 "
                              f"(float32 {format_bytes(c1 * SIDE * SIDE * 12)} = 3x the budget, and 6x)",
                        f"{c2}: {m2 / 2**20:.1f} MiB", f"{c1}: {m1 / 2**20:.1f} MiB", f"{m2 / m1:.3f}", "≤ 1.15",
                        m2 / m1 <= 1.15, f"DLRUN_MEMORY_BUDGET={args.budget}; first runs (decode into the cache, then "
                                         f"train): {f1 / 2**20:.1f} / {f2 / 2**20:.1f} MiB"))
        cores = images.workers()
        rows.append(Row("7b", f"first-pass decode, {c1} PNGs {2 * SIDE}->{SIDE} colour", f"{parallel:.0f} img/s",
                        f"{single:.0f} img/s x {cores} cores", f"{parallel / (single * cores):.3f}", "—", None,
                        f"worker processes (spawned) vs OpenCV in one process; {cores} cores"))
        ratio = epoch_times["memory"] / epoch_times["mapped"]
        rows.append(Row("7c", "steady epoch throughput, memory-mapped cache vs in memory",
                        f"{epoch_times['mapped']:.3f} s/epoch", f"{epoch_times['memory']:.3f} s/epoch (in memory)",
                        f"{ratio:.3f}", "≥ 0.9", ratio >= 0.9,
                        f"median of epochs 2-{args.epochs} of {args.repeats} alternating runs a side, {c1} images"))
        rows.append(Row("7d", "cache size vs float32 arrays", format_bytes(cache_bytes), format_bytes(float_bytes),
                        f"{cache_bytes / float_bytes:.3f}", "≈ 0.25", cache_bytes / float_bytes <= 0.26))
    print(markdown(rows))


if __name__ == "__main__":
    sys.exit(main())
