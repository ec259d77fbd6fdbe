"""Benchmark 7e (issue 29): what each local sweep worker holds of a memory-mapped data set.

A `dlrun sweep --jobs 2` (2 trials) on uint8 images whose cache entry is several times the memory budget
set for the sweep (`DLRUN_MEMORY_BUDGET`, so the entry is memory-mapped), while it runs: each worker's
peak RSS and PSS (/proc/PID/smaps_rollup), what of the cache file is resident in it (/proc/PID/smaps),
and the sweep process's own peak RSS (peaks: VmHWM; PSS: the largest sample). `--checkout` measures another
dlrun checkout (the before of a change).

Run: `PYTHONPATH=. python benchmarks/bench_shared_data.py [--mib 192] [--budget 48M] [--checkout PATH]`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import PY, ROOT, bench_env, write_npy_images

SIDE = 128
KIB = 1024


def peak_rss_kib(pid: int) -> int:
    """The process' peak resident memory so far (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def smaps_kib(pid: int, path: str | None = None) -> dict[str, int]:
    """Rss and Pss (KiB) of the whole process, or of its mappings of file `path`."""
    source = f"/proc/{pid}/smaps" if path else f"/proc/{pid}/smaps_rollup"
    totals, counting = {"Rss": 0, "Pss": 0}, path is None
    with open(source) as fh:
        for line in fh:
            head = line.split()
            if path and len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):
                counting = line.rstrip().endswith(path)
            elif counting and head and head[0].rstrip(":") in totals:
                totals[head[0].rstrip(":")] += int(head[1])
    return totals


def workers(pid: int) -> list[int]:
    """The sweep's spawned trial workers (not multiprocessing's resource tracker)."""
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return [k for k in kids if b"resource_tracker" not in Path(f"/proc/{k}/cmdline").read_bytes()]


def watch(cmd: list[str], env: dict[str, str], entry: str, cwd: Path) -> dict[str, object]:
    """Run the sweep, sampling its workers every 0.2 s: peaks per worker, and the sweep's peak RSS."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peaks: dict[int, dict[str, int]] = {}
    sweep_rss = 0
    while proc.poll() is None:
        try:
            sweep_rss = max(sweep_rss, peak_rss_kib(proc.pid))
            for pid in workers(proc.pid):
                whole, mapped = smaps_kib(pid), smaps_kib(pid, entry)
                peak = peaks.setdefault(pid, {"Rss": 0, "Pss": 0, "file Rss": 0, "maps file": 0})
                peak.update(Rss=max(peak["Rss"], peak_rss_kib(pid)), Pss=max(peak["Pss"], whole["Pss"]),
                            **{"file Rss": max(peak["file Rss"], mapped["Rss"])})
                peak["maps file"] |= int(_maps(pid, entry))
        except (OSError, ValueError):  # a process ended between two reads
            pass
        time.sleep(0.2)
    if proc.returncode:
        raise SystemExit(proc.stderr.read()[-3000:] if proc.stderr else "sweep failed")
    statuses = [line.split(",") for line in (cwd / "sweep" / "results.csv").read_text().splitlines()]
    column = statuses[0].index("status")
    return {"workers": peaks, "sweep Rss": sweep_rss, "statuses": [row[column] for row in statuses[1:]]}


def _maps(pid: int, path: str) -> bool:
    return any(line.rstrip().endswith(path) for line in Path(f"/proc/{pid}/maps").read_text().splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=192, help="MiB of uint8 pixels in the data set")
    parser.add_argument("--budget", default="48M", help="DLRUN_MEMORY_BUDGET of the sweep")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the dlrun checkout to measure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        n = write_npy_images(work, args.mib, SIDE)
        cfg = {"name": "bench-shared", "seed": 0,
               "data": {"source": "npy", "path": str(work), "test_split": 0.1, "validation": 0.1},
               "model": {"layers": [{"max_pool2d": {"pool_size": 8}}, {"flatten": {}},
                                    {"dense": {"units": 10, "activation": "softmax"}}]},
               "optimizer": {"name": "adam", "lr": 0.001}, "train": {"epochs": 3, "batch_size": 64}}
        (work / "c.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        env = bench_env(work / "cache", DLRUN_MEMORY_BUDGET="4G")
        env["PYTHONPATH"] = f"{args.checkout.resolve()}{os.pathsep}{env['PYTHONPATH']}"
        # the cache entry is written under a budget it fits, then the sweep maps it under the small one
        # run from `work`: `python -m` would import the dlrun of the current directory before PYTHONPATH's
        subprocess.run([PY, "-m", "dlrun", "train", str(work / "c.yaml"), "--runs", str(work / "runs")], env=env,
                       cwd=work, check=True, capture_output=True)
        entry = str(next((work / "cache" / "data").glob("*.bin")))
        env["DLRUN_MEMORY_BUDGET"] = args.budget
        cmd = [PY, "-m", "dlrun", "sweep", str(work / "c.yaml"), "--lr", "0.001,0.002", "--lambda", "0",
               "--mode", "grid", "--jobs", "2", "--sweep-dir", str(work / "sweep")]
        found = watch(cmd, env, entry, work)
    print(f"checkout {args.checkout}: {n} images {SIDE}x{SIDE}x3 uint8 ({args.mib} MiB), "
          f"DLRUN_MEMORY_BUDGET={args.budget}, load {os.getloadavg()[0]:.1f}")
    for pid, peak in found["workers"].items():  # type: ignore[union-attr]
        print(f"  worker {pid}: peak RSS {peak['Rss'] / KIB:.0f} MiB, PSS {peak['Pss'] / KIB:.0f} MiB, "
              f"cache file resident {peak['file Rss'] / KIB:.1f} MiB, maps the cache file: {bool(peak['maps file'])}")
    print(f"  sweep process: peak RSS {found['sweep Rss'] / KIB:.0f} MiB; trials {found['statuses']}")  # type: ignore[operator]


if __name__ == "__main__":
    sys.exit(main())
