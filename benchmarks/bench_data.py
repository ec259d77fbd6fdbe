"""Benchmark 5: a folder of JPEGs, first load (decode + resize) vs the second (data cache), and the
peak memory of loading against the size of the arrays it produces."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import yaml
from common import PY, ROOT, BenchError, Row, bench_env, median

from dlrun.data.synthetic import synthetic_digits

SPEEDUP_TARGET = 10.0
MEMORY_TARGET = 2.0


def make_jpeg_folder(root: Path, n: int, size: int = 100) -> Path:
    """`n` colour JPEGs of street-style digits, size x size, one sub-folder per class."""
    images, labels = synthetic_digits(n, "street", 0, size)
    rng = np.random.default_rng(0)
    for digit in range(10):
        (root / str(digit)).mkdir(parents=True, exist_ok=True)
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        tint = rng.uniform(0.6, 1.0, 3)
        colour = np.clip(img[..., None] * tint, 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / str(label) / f"{i:05d}.jpg"), colour, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return root


def write_config(folder: Path, work: Path) -> Path:
    """A config whose data section loads the folder at 64x64 grey."""
    config = {"name": "bench-folder", "data": {"source": "folder", "path": str(folder), "image_size": [64, 64],
                                               "color": "grayscale"},
              "model": {"layers": [{"flatten": {}}, {"dense": {"units": 10, "activation": "softmax"}}]}}
    path = work / "bench-folder.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def probe(config: Path, cache: Path, *flags: str) -> dict[str, float]:
    """Run data_probe.py in a fresh process and return its measurements."""
    proc = subprocess.run([PY, ROOT / "benchmarks" / "data_probe.py", config, *flags], env=bench_env(cache),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"data_probe.py {config} {' '.join(flags)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def data_rows(work: Path, repeats: int, n_images: int) -> list[Row]:
    """Rows 5a (cached load speed-up) and 5b (peak memory of loading / final arrays)."""
    folder = make_jpeg_folder(work / "jpegs", n_images)
    config = write_config(folder, work)
    first, second = [], []
    for i in range(repeats):
        cache = work / f"cache-folder-{i}"  # fresh: the first load decodes, the second hits
        first.append(probe(config, cache))
        second.append(probe(config, cache))
    if {r["cache"] for r in first} != {"miss"} or {r["cache"] for r in second} != {"hit"}:
        raise BenchError(f"unexpected cache states: first {[r['cache'] for r in first]}, "
                         f"second {[r['cache'] for r in second]}")
    t1, t2 = median([r["seconds"] for r in first]), median([r["seconds"] for r in second])
    speedup = t1 / t2
    what = f"{n_images} JPEGs 100x100 -> 64x64 grey"
    rows = [Row("5a", f"data: {what}, first load vs second (cached)", f"{t1:.3f} s / {t2:.3f} s", "—",
                f"{speedup:.1f}x faster", f"≥ {SPEEDUP_TARGET:.0f}x", speedup >= SPEEDUP_TARGET,
                f"load_dataset time in a fresh process, cv2 imported before the clock; n={repeats}")]
    cache = work / "cache-memory"
    cold, warm = probe(config, cache, "--memory"), probe(config, cache, "--memory")
    final = cold["final_bytes"]
    worst = max(cold["traced_peak"], cold["rss_growth"], warm["traced_peak"], warm["rss_growth"]) / final
    mib = 1 << 20
    rows.append(Row("5b", f"data: {what}, peak memory of loading / final arrays",
                    f"{cold['traced_peak'] / mib:.1f} MiB traced, {cold['rss_growth'] / mib:.1f} MiB RSS",
                    f"arrays {final / mib:.1f} MiB", f"{worst:.2f}", f"≤ {MEMORY_TARGET:.0f}", worst <= MEMORY_TARGET,
                    f"first load; cached load {warm['traced_peak'] / mib:.1f} MiB traced, "
                    f"{warm['rss_growth'] / mib:.1f} MiB RSS; ratio is the worst of the four"))
    return rows
