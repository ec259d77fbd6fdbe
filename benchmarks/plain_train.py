"""The hand-written Keras script dlrun is measured against: load arrays, build, fit, evaluate, save.

Written the way a person would write it (model.fit on NumPy arrays with validation_data), with the
same model, arrays, batch size, epochs, seed and threads as the dlrun config it is compared with.

    python benchmarks/plain_train.py --data DATA.npz --model mlp|cnn|cnn16 --epochs 5 --batch-size 32 \
        --optimizer sgd --lr 0.01 --seed 0 --threads 2 --out OUT_DIR [--epoch-times FILE.json]

`--epoch-times` also writes each epoch's wall time, from `on_epoch_begin` to `on_epoch_end` (training
and validation: the span dlrun's metrics.csv `seconds` covers), timed by a callback.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def build(kind: str, input_shape: tuple[int, ...]) -> keras.Sequential:
    """MLP 128, CNN 32-32-pool-dropout-128 or the MNIST CNN 16-32-64, as in the course notebooks."""
    if kind == "mlp":
        layers = [keras.layers.Flatten(), keras.layers.Dense(128, activation="relu")]
    elif kind == "cnn16":
        layers = [
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
        ]
    else:
        layers = [
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Dropout(0.25),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
        ]
    return keras.Sequential([keras.Input(input_shape), *layers, keras.layers.Dense(10, activation="softmax")])


class EpochTimes(keras.callbacks.Callback):
    """Wall seconds of each epoch, training and validation."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._started)


def main() -> None:
    """Parse the arguments and train once."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", choices=("mlp", "cnn", "cnn16"), default="mlp")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", default="plain-out")
    parser.add_argument("--epoch-times", help="write the epochs' wall seconds to this JSON file")
    args = parser.parse_args()

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(args.threads, 2))
    keras.utils.set_random_seed(args.seed)

    with np.load(args.data) as data:
        x_train, y_train = data["x_train"], data["y_train"]
        x_test, y_test = data["x_test"], data["y_test"]
    x_train = (x_train.astype("float32") / 255.0)[..., None]
    x_test = (x_test.astype("float32") / 255.0)[..., None]

    model = build(args.model, x_train.shape[1:])
    optimizer = keras.optimizers.SGD(args.lr) if args.optimizer == "sgd" else keras.optimizers.Adam(args.lr)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    times = EpochTimes()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
              validation_data=(x_test, y_test), verbose=2, callbacks=[times] if args.epoch_times else None)
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    print(f"test loss {loss:.4f}  test accuracy {accuracy:.4f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    if args.epoch_times:
        Path(args.epoch_times).write_text(json.dumps({"seconds": times.seconds}))


if __name__ == "__main__":
    main()
