"""The arithmetic limit of an epoch: a config's floating-point work per epoch and this machine's
measured matmul throughput, printed as one JSON line. Used by bench_epoch.py (benchmarks 7, 8).

    python benchmarks/arith_probe.py CONFIG.yaml [--threads N]

Work per epoch: the training FLOPs of every training example plus the inference FLOPs of every
validation example (dlrun.engine.execution.flops_per_example: the kernels' multiply-adds). The
throughput is the best of several 1024 x 1024 float32 matmuls in TensorFlow with the same threads:
what the cores reach on large, regular arithmetic, which small layers never quite do.
"""

from __future__ import annotations

import argparse
import json
import time

from dlrun.config import load_config
from dlrun.data import load_checked
from dlrun.engine import backend
from dlrun.engine.execution import flops_per_example
from dlrun.engine.fit import seeded_model

SIZE = 1024


def matmul_flops_per_second(repeats: int = 20) -> float:
    """The best rate of a SIZE x SIZE float32 matmul (2 * SIZE**3 operations) over `repeats` runs."""
    tf = backend.tf()
    a = tf.random.uniform([SIZE, SIZE])
    b = tf.random.uniform([SIZE, SIZE])
    matmul = tf.function(tf.matmul)
    matmul(a, b).numpy()  # trace and warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * SIZE**3 / best


def main() -> None:
    """Print {"train_flops", "val_flops", "epoch_flops", "matmul_flops_per_s", "limit_s"} for the config."""
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    lc = load_config(args.config)
    if args.threads:
        backend.setup(lc.config.seed, args.threads)
    data = load_checked(lc)
    train_flops, inference_flops = flops_per_example(seeded_model(lc, data))
    n_val = 0 if data.x_val is None else len(data.x_val)
    epoch = train_flops * len(data.x_train) + inference_flops * n_val
    rate = matmul_flops_per_second()
    print(json.dumps({"train_flops": train_flops * len(data.x_train), "val_flops": inference_flops * n_val,
                      "epoch_flops": epoch, "matmul_flops_per_s": rate, "limit_s": epoch / rate}))


if __name__ == "__main__":
    main()
