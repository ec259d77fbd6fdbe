"""Load a config's data once, in this fresh process, and print one JSON line: seconds, peak memory
and the size of the arrays loaded. Used by bench_data.py (benchmark 5).

    python benchmarks/data_probe.py CONFIG.yaml [--memory] [--no-cache]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import tracemalloc

import cv2  # noqa: F401  imported before the clock starts: the decode is measured, not the import

from dlrun.config import load_config
from dlrun.data import load_dataset

FIELDS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def rss_bytes() -> int:
    """Resident memory of this process now (Linux /proc)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak resident memory since the last reset (VmHWM), else since the process started."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def main() -> None:
    """Parse the arguments, load once, print the measurements."""
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--memory", action="store_true", help="trace allocations (slower; not for timing)")
    parser.add_argument("--no-cache", action="store_true")
    args = parser.parse_args()
    cfg = load_config(args.config).config
    if args.memory:
        tracemalloc.start()
    reset_peak_rss()
    rss_before = rss_bytes()
    start = time.perf_counter()
    data = load_dataset(cfg.data, cfg.task, use_cache=not args.no_cache)
    seconds = time.perf_counter() - start
    traced_peak = tracemalloc.get_traced_memory()[1] if args.memory else 0
    max_rss = peak_rss_bytes()
    arrays = {id(a): a for f in FIELDS if (a := getattr(data, f)) is not None}  # x_val may be x_test
    final = sum(a.nbytes for a in arrays.values())
    print(json.dumps({"seconds": seconds, "cache": data.cache, "final_bytes": final, "traced_peak": traced_peak,
                      "rss_growth": max_rss - rss_before, "examples": len(data.x_train)}))


if __name__ == "__main__":
    main()
