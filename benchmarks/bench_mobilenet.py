"""Benchmark 7f (issue 29): the course's MobileNet base on a 224 x 224 image folder, epoch time of `dlrun train`
against Keras' `image_dataset_from_directory` + `fit` on the same folder.

Both sides build the same model: `keras.applications.MobileNet(include_top=False)` with random weights
(`weights=None`: ImageNet weights cannot be downloaded here; the arithmetic is the same), frozen, then global
average pooling and a softmax dense layer; Adam 0.001, batch 32, pixels scaled to [0, 1], no validation, the
same CPU threads. dlrun decodes the folder once into its data cache (an untimed first run) and streams batches
from it; Keras decodes and resizes the JPEGs in every epoch, as `image_dataset_from_directory` does, with
`prefetch(AUTOTUNE)` as Keras' tutorials add. Each side runs in fresh processes, alternating; the row is the
median of epochs 2..N over the runs (the first epoch traces the graphs), each epoch timed from its begin to
its end (dlrun's metrics.csv `seconds`; a callback on the Keras side).

Run: `PYTHONPATH=. python benchmarks/bench_mobilenet.py [--images 320] [--epochs 4] [--repeats 2]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from common import PY, Row, bench_env, markdown, median

SIDE = 224
SOURCE_SIDE = 256  # the JPEGs are resized to SIDE on both sides, as photos are
CLASSES = 5
BATCH = 32


def make_folder(root: Path, n: int) -> Path:
    """`n` colour JPEGs SOURCE_SIDE x SOURCE_SIDE in CLASSES class folders (smooth noise, like a photo)."""
    import cv2

    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"class{i % CLASSES}"
        folder.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        image = cv2.resize(small, (SOURCE_SIDE, SOURCE_SIDE), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return root


def dlrun_config(folder: Path, work: Path, epochs: int, threads: int) -> Path:
    """The dlrun side: the MobileNet base (random weights, frozen) under pooling and a dense layer."""
    cfg = {"name": "bench-mobilenet", "seed": 0,
           "data": {"source": "folder", "path": str(folder), "image_size": [SIDE, SIDE], "color": "rgb",
                    "test_split": 0, "validation": 0},
           "model": {"base": {"application": "mobilenet", "weights": None, "include_top": False, "trainable": False},
                     "layers": [{"global_avg_pool2d": {}}, {"dense": {"units": CLASSES, "activation": "softmax"}}]},
           "optimizer": {"name": "adam", "lr": 0.001},
           "train": {"epochs": epochs, "batch_size": BATCH, "threads": threads}}
    path = work / f"mobilenet-{epochs}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def dlrun_epochs(cfg: Path, runs: Path, env: dict[str, str]) -> list[float]:
    """Seconds of each epoch of one `dlrun train` (metrics.csv)."""
    proc = subprocess.run([PY, "-m", "dlrun", "train", str(cfg), "--runs", str(runs)], env=env, capture_output=True,
                          text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    run = max(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    lines = (run / "metrics.csv").read_text().splitlines()
    column = lines[0].split(",").index("seconds")
    return [float(line.split(",")[column]) for line in lines[1:]]


def keras_epochs(folder: Path, epochs: int, threads: int, env: dict[str, str], out: Path) -> list[float]:
    """Seconds of each epoch of the Keras side (this file with --keras-side, in a fresh process)."""
    proc = subprocess.run([PY, __file__, "--keras-side", str(folder), "--epochs", str(epochs), "--threads",
                           str(threads), "--out", str(out)], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(out.read_text())["seconds"]


def keras_side(folder: str, epochs: int, threads: int, out: str) -> None:
    """What a person writes with Keras: image_dataset_from_directory, the base frozen under a new head, fit."""
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    keras.utils.set_random_seed(0)
    train = keras.utils.image_dataset_from_directory(folder, image_size=(SIDE, SIDE), batch_size=BATCH, seed=0)
    train = train.prefetch(tf.data.AUTOTUNE)
    base = keras.applications.MobileNet(input_shape=(SIDE, SIDE, 3), include_top=False, weights=None)
    base.trainable = False
    model = keras.Sequential([keras.Input((SIDE, SIDE, 3)), keras.layers.Rescaling(1 / 255), base,
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(CLASSES, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    seconds: list[float] = []
    began = [0.0]
    timer = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: began.__setitem__(0, time.perf_counter()),
                                           on_epoch_end=lambda e, logs: seconds.append(time.perf_counter() - began[0]))
    model.fit(train, epochs=epochs, verbose=0, callbacks=[timer])
    Path(out).write_text(json.dumps({"seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="runs a side, alternating")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keras-side", metavar="FOLDER", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.keras_side:
        keras_side(args.keras_side, args.epochs, args.threads, args.out)
        return
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = make_folder(work / "folder", args.images)
        cfg = dlrun_config(folder, work, args.epochs, args.threads)
        env = bench_env(work / "cache")
        start = time.perf_counter()
        dlrun_epochs(dlrun_config(folder, work, 1, args.threads), work / "runs-first", env)  # decodes into the cache
        first = time.perf_counter() - start
        times: dict[str, list[float]] = {"dlrun": [], "keras": []}
        for repeat in range(args.repeats):
            for side in ("dlrun", "keras") if repeat % 2 == 0 else ("keras", "dlrun"):
                if side == "dlrun":
                    epochs = dlrun_epochs(cfg, work / f"runs{repeat}", env)
                else:
                    epochs = keras_epochs(folder, args.epochs, args.threads, env, work / f"keras{repeat}.json")
                times[side] += epochs[1:]
                loads.append(os.getloadavg()[0])
                print(f"  round {repeat + 1} {side}: epochs {', '.join(f'{s:.2f}' for s in epochs)} s",
                      file=sys.stderr, flush=True)
    dl, ks = median(times["dlrun"]), median(times["keras"])
    note = (f"{args.images} JPEGs {SOURCE_SIDE}->{SIDE}, {CLASSES} classes, batch {BATCH}, {args.threads} threads, "
            f"weights=None; median of epochs 2-{args.epochs} of {args.repeats} alternating runs a side; dlrun's "
            f"untimed first run (decode into the cache + 1 epoch) {first:.1f} s; load average "
            f"{min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores")
    print(markdown([Row("7f", "MobileNet base (frozen) on a 224 x 224 folder, epoch time vs "
                               "image_dataset_from_directory + fit", f"{dl:.2f} s", f"{ks:.2f} s", f"{dl / ks:.3f}",
                        "—", None, note)]))


if __name__ == "__main__":
    sys.exit(main())
