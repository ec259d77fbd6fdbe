"""The Ray Tune side of bench_ray.py's row 15: a dlrun sweep config's grid run by Ray Tune itself.

    TUNE_PYTHON benchmarks/tune_sweep.py CONFIG --address HOST:PORT --storage DIR [--cpus-per-trial 1]

`tune.Tuner` with a function trainable doing the Keras fit a dlrun trial does: the config's data (prepared
here by dlrun's loader, as the sweep process does, and handed to the trials through the object store with
`tune.with_parameters`), its model (flatten, dense 64 relu, dense 10 softmax, L2 on both kernels), SGD with
the trial's lr, batch size, epochs, seed, validation each epoch and the test split at the end; TensorFlow's
threads capped to the CPUs a trial reserves. No scheduler, no search algorithm (a grid search over the
config's `sweep.params`), `reuse_actors=True`. Prints one JSON line: trials, errors, the best validation
accuracy, how many processes ran the trials. Needs Ray Tune (`ray[tune]`), which dlrun never depends on:
run it with the Python of the benchmark's own environment (bench_ray.py's docstring says how to build
it); its Ray actors run that Python too (`runtime_env.py_executable`), whichever Python started the cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def trainable(config: dict[str, Any], data: dict[str, Any]) -> None:
    """One trial: the Keras fit of a dlrun trial of the bench's config, each epoch reported to Tune."""
    import keras
    import tensorflow as tf
    from ray import tune

    with contextlib.suppress(RuntimeError):  # a reused actor keeps the thread pools of its first trial
        tf.config.threading.set_intra_op_parallelism_threads(config["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(min(config["threads"], 2))
    keras.backend.clear_session()  # a reused actor's previous model goes, as a fresh process would have none
    keras.utils.set_random_seed(config["seed"])
    x, x_val, x_test = (data[k].astype("float32") / 255.0 for k in ("x_train", "x_val", "x_test"))
    l2 = keras.regularizers.L2(config["l2"]) if config["l2"] > 0 else None
    model = keras.Sequential([keras.Input(shape=x.shape[1:]), keras.layers.Flatten(),
                              keras.layers.Dense(64, activation="relu", kernel_regularizer=l2),
                              keras.layers.Dense(10, activation="softmax", kernel_regularizer=l2)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=config["lr"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class Report(keras.callbacks.Callback):  # every epoch but the last; the last with the test split's metrics
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.last = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
            if epoch + 1 < config["epochs"]:
                tune.report(self.last)

    report = Report()
    model.fit(x, data["y_train"], batch_size=config["batch_size"], epochs=config["epochs"], verbose=0,
              validation_data=(x_val, data["y_val"]), callbacks=[report])
    test = model.evaluate(x_test, data["y_test"], verbose=0, return_dict=True)
    tune.report({**report.last, **{f"test_{k}": float(v) for k, v in test.items()}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("--address", required=True)
    parser.add_argument("--storage", type=Path, required=True)
    parser.add_argument("--cpus-per-trial", type=int, default=1)
    args = parser.parse_args()
    import ray
    from ray import tune

    from dlrun.config.schema import DataConfig
    from dlrun.data import load_dataset

    cfg = yaml.safe_load(args.config.read_text())
    d = load_dataset(DataConfig(**cfg["data"]))
    data = {"x_train": d.x_train, "y_train": d.y_train, "x_val": d.x_val, "y_val": d.y_val,
            "x_test": d.x_test, "y_test": d.y_test}
    ray.init(address=args.address, log_to_driver=False, logging_level="ERROR",
             runtime_env={"py_executable": sys.executable})
    space = {"lr": tune.grid_search(cfg["sweep"]["params"]["optimizer.lr"]),
             "l2": tune.grid_search(cfg["sweep"]["params"]["model.l2"]),
             "seed": cfg["seed"], "epochs": cfg["train"]["epochs"], "batch_size": cfg["train"]["batch_size"],
             "threads": args.cpus_per_trial}
    tuner = tune.Tuner(tune.with_resources(tune.with_parameters(trainable, data=data), {"cpu": args.cpus_per_trial}),
                       param_space=space, tune_config=tune.TuneConfig(reuse_actors=True),
                       run_config=tune.RunConfig(storage_path=str(args.storage.resolve()), name="bench", verbose=0))
    results = tuner.fit()
    best = max((r.metrics.get("val_accuracy", 0.0) for r in results if r.metrics), default=0.0)
    pids = {r.metrics.get("pid") for r in results if r.metrics}  # reuse_actors: fewer processes than trials
    print(json.dumps({"trials": len(results), "errors": results.num_errors, "processes": len(pids),
                      "best_val_accuracy": best}))
    ray.shutdown()


if __name__ == "__main__":
    main()
