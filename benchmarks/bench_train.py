"""Benchmarks 1 and 2: `dlrun train` against the same training in a hand-written Keras script."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from common import PY, ROOT, Row, alternate, bench_env, ratio_row

from dlrun.data.sources import load_idx_folder
from dlrun.data.synthetic import synthetic_digits

MODELS: dict[str, list[dict[str, Any]]] = {
    "mlp": [{"flatten": {}}, {"dense": {"units": 128, "activation": "relu"}},
            {"dense": {"units": 10, "activation": "softmax"}}],
    "cnn": [{"conv2d": {"filters": 32, "kernel_size": 3, "activation": "relu"}},
            {"conv2d": {"filters": 32, "kernel_size": 3, "activation": "relu"}},
            {"max_pool2d": {"pool_size": 2}}, {"dropout": {"rate": 0.25}}, {"flatten": {}},
            {"dense": {"units": 128, "activation": "relu"}}, {"dense": {"units": 10, "activation": "softmax"}}],
    "cnn16": [{"conv2d": {"filters": 16, "kernel_size": 3, "activation": "relu"}}, {"max_pool2d": {"pool_size": 2}},
              {"conv2d": {"filters": 32, "kernel_size": 3, "activation": "relu"}}, {"max_pool2d": {"pool_size": 2}},
              {"flatten": {}}, {"dense": {"units": 64, "activation": "relu"}},
              {"dense": {"units": 10, "activation": "softmax"}}],  # configs/mnist_cnn.yaml's layers
}
CASES = {  # number: (model, optimizer, lr, batch size, epochs, title)
    "1": ("mlp", "sgd", 0.01, 32, 5, "train MLP 128 (sgd, batch 32, 5 epochs)"),
    "2": ("cnn", "adam", 0.001, 32, 2, "train CNN 32-32-pool-dropout-128 (adam, batch 32, 2 epochs)"),
}
TARGET = 1.05


def prepare_arrays(data: Path | None, work: Path, limit: int | None = None) -> tuple[Path, str]:
    """One .npz (uint8 images, int labels; train and test) both sides read; and where it came from.

    An idx folder with only the t10k pair is split into its first 80% (train) and last 20% (test).
    Without `data`, the built-in synthetic digits (8,000 train, 2,000 test) are used.
    """
    if data is not None:
        raw = load_idx_folder(data)
        if raw.x_test is not None and raw.y_test is not None:
            x, y, xt, yt = raw.x_train, raw.y_train, raw.x_test, raw.y_test
        else:
            cut = int(len(raw.x_train) * 0.8)
            x, y, xt, yt = raw.x_train[:cut], raw.y_train[:cut], raw.x_train[cut:], raw.y_train[cut:]
        source = f"MNIST idx folder {data}"
    else:
        x, y = synthetic_digits(8000, "clean", 0, 28, offset=0)
        xt, yt = synthetic_digits(2000, "clean", 0, 28, offset=10_000_000)
        source = "built-in synthetic digits"
    if limit:
        x, y = x[:limit], y[:limit]
    path = work / "arrays.npz"
    np.savez(path, x_train=x, y_train=y.astype(np.int64), x_test=xt, y_test=yt.astype(np.int64))
    return path, f"{source}: {len(x)} train / {len(xt)} test images {x.shape[1]}x{x.shape[2]}"


def write_config(case: str, arrays: Path, work: Path, threads: int, **settings: Any) -> Path:
    """The dlrun config equivalent to plain_train.py's arguments for `case` (a CASES key, or any
    name with `settings` kind, optimizer, lr, batch and epochs). Validation on the test arrays, as
    plain_train.py's validation_data, whatever dlrun's default."""
    if settings:
        kind, optimizer, lr = settings["kind"], settings["optimizer"], settings["lr"]
        batch, epochs = settings["batch"], settings["epochs"]
    else:
        kind, optimizer, lr, batch, epochs, _ = CASES[case]
    config = {
        "name": f"bench-{kind}", "seed": 0,
        "data": {"source": "npz", "path": str(arrays), "validation": "test",
                 "keys": {"x_train": "x_train", "y_train": "y_train", "x_test": "x_test", "y_test": "y_test"}},
        "model": {"layers": MODELS[kind]},
        "optimizer": {"name": optimizer, "lr": lr},
        "train": {"epochs": epochs, "batch_size": batch, "threads": threads},
    }
    path = work / f"bench-{case}-{kind}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def train_rows(cases: list[str], arrays: Path, work: Path, repeats: int, source: str) -> list[Row]:
    """Run each case's dlrun command and plain script alternately; one row per case."""
    threads = os.cpu_count() or 1
    env = bench_env(work / "cache")
    rows = []
    for case in cases:
        kind, optimizer, lr, batch, epochs, title = CASES[case]
        config = write_config(case, arrays, work, threads)
        plain_args = ["--data", arrays, "--model", kind, "--epochs", str(epochs), "--batch-size", str(batch),
                      "--optimizer", optimizer, "--lr", str(lr), "--seed", "0", "--threads", str(threads)]
        commands = {
            "dlrun": lambda c=config: [PY, "-m", "dlrun", "train", c, "--runs", work / "runs"],
            "plain": lambda a=plain_args: [PY, ROOT / "benchmarks" / "plain_train.py", *a, "--out", work / "plain"],
        }
        timings = alternate(commands, env, repeats, label=f"benchmark {case}")
        note = f"{source}; {threads} threads both; wall incl. process start"
        rows.append(ratio_row(case, title, timings, TARGET, note))
    return rows
