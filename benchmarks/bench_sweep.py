"""Benchmarks of `dlrun sweep`.

`sweep_vs_loop`: the course's 8-trial zip sweep (MLP 256-256-10, batch 1000, 10 epochs,
lr = lambda = [1e-4, 1e-3, 0.01, 0.1, 1, 10, 20, 50]) through the `dlrun sweep` CLI against a plain
Keras script doing the same 8 fits on the same arrays, each in a fresh process, alternating.
Target: dlrun <= 0.6x the plain loop's wall time. Where dlrun's time goes less: the data are loaded
once, a diverged trial stops at its first non-finite batch (the plain loop trains NaNs for all 10
epochs), and `--jobs 2` runs two trials at once in worker processes with one thread each.

`sweep_memory`: peak RSS of a 24-trial sweep against a 4-trial one (target: within 15%).

Standalone: python benchmarks/bench_sweep.py [--repeats 3] [--data /work/shared/data/mnist-t10k] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dlrun.config.schema import DataConfig  # noqa: E402
from dlrun.data import load_dataset  # noqa: E402  (needs ROOT on the path)

COURSE_VALUES = [0.0001, 0.001, 0.01, 0.1, 1, 10, 20, 50]
TARGET_RATIO = 0.6
TARGET_MEMORY = 1.15

PLAIN_LOOP = """\
# The course's loop: one model per (lr, lambda) pair, fit for 10 epochs whatever happens.
import sys
import numpy as np
import keras

data = np.load(sys.argv[1])
x, y, x_test, y_test = data["X_train"], data["y_train"], data["X_test"], data["y_test"]
values = [float(v) for v in sys.argv[2].split(",")]
for lr, lam in zip(values, values):
    model = keras.Sequential([
        keras.Input(shape=x.shape[1:]),
        keras.layers.Flatten(),
        keras.layers.Dense(256, activation="relu", kernel_regularizer=keras.regularizers.L2(lam)),
        keras.layers.Dense(256, activation="relu", kernel_regularizer=keras.regularizers.L2(lam)),
        keras.layers.Dense(10, activation="softmax", kernel_regularizer=keras.regularizers.L2(lam)),
    ])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=1000, epochs=10, validation_data=(x_test, y_test), verbose=0)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"lr={lr} lambda={lam} test_accuracy={accuracy:.4f} test_loss={loss:.4g}", flush=True)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("DLRUN_TF_LOG", os.devnull)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _data_section(data_path: str | None) -> dict[str, Any]:
    if data_path:
        return {"source": "idx", "path": str(data_path)}  # 10,000 images: 8,000 train / 2,000 test
    return {"source": "synthetic_digits", "n_train": 8000, "n_test": 2000}


def course_config(data: dict[str, Any], epochs: int = 10, batch_size: int = 1000) -> dict[str, Any]:
    """The course's MLP and zip sweep as a dlrun config."""
    return {
        "name": "bench-course-sweep", "seed": 0, "data": data,
        "model": {"layers": [{"flatten": {}}, {"dense": {"units": 256, "activation": "relu"}},
                             {"dense": {"units": 256, "activation": "relu"}},
                             {"dense": {"units": 10, "activation": "softmax"}}],
                  "l2_layers": "dense"},
        "optimizer": {"name": "sgd"},
        "train": {"epochs": epochs, "batch_size": batch_size},
        "sweep": {"mode": "zip", "params": {"optimizer.lr": COURSE_VALUES, "model.l2": COURSE_VALUES}},
    }


@dataclass
class Measured:
    """A finished command: wall seconds, CPU seconds (user + system, with its waited-for children),
    peak RSS in KiB (the largest of it and its children), and what it printed."""

    wall: float
    cpu: float
    rss_kib: int
    stdout: str


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run `cmd` (in `env`, default `_env()`) and reap it with os.wait4, so time and memory are its own,
    not the benchmark's."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env or _env(), stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:5])} ... failed ({proc.returncode}): {err.read()[-2000:]}")
        return Measured(wall, usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss), out.read())


def sweep_vs_loop(repeats: int = 3, data_path: str | None = None, jobs: int = 2) -> dict[str, Any]:
    """Median wall time of the course's 8-trial zip sweep through `dlrun sweep --jobs JOBS` and of a
    plain Keras loop over the same arrays, alternating `repeats` times; ratio = dlrun / plain."""
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp_name:
        tmp = Path(tmp_name)
        cfg = course_config(_data_section(data_path))
        config = tmp / "course.yaml"
        config.write_text(yaml.safe_dump(cfg, sort_keys=False))
        ds = load_dataset(DataConfig.model_validate(cfg["data"]), "classification")
        arrays = tmp / "arrays.npz"
        np.savez(arrays, X_train=ds.x_train, y_train=ds.y_train, X_test=ds.x_test, y_test=ds.y_test)
        script = tmp / "plain_loop.py"
        script.write_text(PLAIN_LOOP)
        values = ",".join(str(v) for v in COURSE_VALUES)
        dlrun: list[Measured] = []
        plain: list[Measured] = []
        for r in range(repeats):  # alternating, so a change in machine load hits both sides
            dlrun.append(run_measured([sys.executable, "-m", "dlrun", "sweep", str(config), "--jobs",
                                       str(jobs), "--sweep-dir", str(tmp / f"sweep-{r}"), "--json"]))
            plain.append(run_measured([sys.executable, str(script), str(arrays), values]))
        summary = json.loads(dlrun[-1].stdout)
    dlrun_median = statistics.median(m.wall for m in dlrun)
    plain_median = statistics.median(m.wall for m in plain)
    return {
        "benchmark": "sweep_vs_loop", "data": data_path or "synthetic_digits 8000/2000",
        "examples": {"train": len(ds.x_train), "test": 0 if ds.x_test is None else len(ds.x_test)},
        "jobs": jobs, "cores": len(os.sched_getaffinity(0)), "load_average": os.getloadavg(),
        "repeats": repeats,
        "dlrun_seconds": [round(m.wall, 2) for m in dlrun],
        "plain_seconds": [round(m.wall, 2) for m in plain],
        "dlrun_cpu_seconds": [round(m.cpu, 1) for m in dlrun],
        "plain_cpu_seconds": [round(m.cpu, 1) for m in plain],
        "dlrun_median": round(dlrun_median, 2), "plain_median": round(plain_median, 2),
        "ratio": round(dlrun_median / plain_median, 3), "target": TARGET_RATIO,
        "meets_target": dlrun_median / plain_median <= TARGET_RATIO,
        "dlrun_trials": [(t["trial"], t["status"], t.get("val_accuracy"), t.get("epochs_run"))
                         for t in summary["trials"]],
        "plain_loop_output": plain[-1].stdout.strip().splitlines(),
    }


def sweep_memory(jobs: int = 1) -> dict[str, Any]:
    """Peak RSS (KiB, the sweep process and its workers) of a 24-trial and a 4-trial sweep of the same
    small model; the ratio should stay within 15%: memory must not grow with the number of trials."""
    with tempfile.TemporaryDirectory(prefix="bench-sweep-mem-") as tmp_name:
        tmp = Path(tmp_name)
        cfg = course_config({"source": "synthetic_digits", "n_train": 1000, "n_test": 200}, epochs=2,
                            batch_size=100)
        cfg["sweep"] = {"mode": "grid", "params": {}}
        config = tmp / "mem.yaml"
        config.write_text(yaml.safe_dump(cfg, sort_keys=False))
        peaks, seconds = {}, {}
        spaces = {4: ("0.01,0.1", "0.0001,0.001"),
                  24: ("0.001,0.003,0.01,0.03,0.1,0.3", "0,0.0001,0.001,0.01")}
        for trials, (lrs, lams) in spaces.items():
            run = run_measured([sys.executable, "-m", "dlrun", "sweep", str(config), "--lr", lrs,
                                "--lambda", lams, "--jobs", str(jobs), "--sweep-dir", str(tmp / f"s{trials}"),
                                "--json"])
            if json.loads(run.stdout)["counts"]["total"] != trials:
                raise RuntimeError(f"expected {trials} trials")
            peaks[trials], seconds[trials] = run.rss_kib, round(run.wall, 1)
    ratio = peaks[24] / peaks[4]
    return {"benchmark": "sweep_memory", "jobs": jobs, "peak_rss_mib_4_trials": round(peaks[4] / 1024, 1),
            "peak_rss_mib_24_trials": round(peaks[24] / 1024, 1), "ratio": round(ratio, 3),
            "target": TARGET_MEMORY, "meets_target": ratio <= TARGET_MEMORY, "seconds": seconds}


def main() -> None:
    """Run both benchmarks and print their results as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", default=None, help="an idx folder, e.g. /work/shared/data/mnist-t10k")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(sweep_vs_loop(args.repeats, args.data, args.jobs), indent=2), flush=True)
    print(json.dumps(sweep_memory(), indent=2), flush=True)


if __name__ == "__main__":
    main()
