"""Benchmarks of sweeps that search (issue 12), on the course's 8 x 8 lr x lambda grid (MLP 256-256-10,
SGD, batch 1000, 10 epochs; real MNIST digits from an idx folder, validation held out):

9.  the grid with `prune: asha` against the same grid without pruning: the same best trial or one within
    0.01 of its validation accuracy, in <= 0.4x the wall time;
10. `search: tpe` with 16 trials over the same ranges (log-uniform) against the 64-point grid: best within
    0.01, wall <= 0.3x; 10b (not an issue row, no target): the same tpe sweep with `prune: asha`;
9b. two objectives (val_accuracy: max, params: min) on the course's architecture sweep (hidden units
    32 ... 512 x lr, MLP 784-units-10, batch 100): pruned by front rank against unpruned, the final front's
    hypervolume within 2 % in <= 0.5x the wall time (bench_pareto.py: Optuna's hypervolume, the
    reference point stated there);
11. the grid with `prune: asha` against Keras Tuner's Hyperband on the same model, data, validation split
    and epoch budget (keras-tuner lives in its own --target folder, never a dependency of dlrun): wall
    time and best validation accuracy side by side, both scored as Keras Tuner scores a trial, on its best
    epoch (the dlrun side runs with `sweep.score: best`).

Each side is a fresh process; the sides run one after another in one invocation, so the ratios compare
like with like. The output also breaks one pruned sweep's seconds down (per trial: build, epochs,
evaluation, files, plots; per sweep: start-up, data, scheduling) from timers around dlrun's own functions.

    python benchmarks/bench_search.py [--data /work/shared/data/mnist-t10k] [--quick] [--kt /tmp/kt] [--repeats N]

--quick: the same grid and tpe budget with data.limit 2500 (2,500 training images, 800 validation),
so the fixed cost of a trial weighs more than on the full set: every row for a loaded machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pareto import pareto_configs, pareto_row  # noqa: E402
from bench_sweep import COURSE_VALUES, _env, course_config, run_measured  # noqa: E402

# ../shared/data/mnist-t10k beside the main checkout (a worktree lies one folder deeper)
DEFAULT_DATA = next((p / "shared" / "data" / "mnist-t10k" for p in Path(__file__).resolve().parents[1:4]
                     if (p / "shared" / "data" / "mnist-t10k").is_dir()), Path("../shared/data/mnist-t10k"))
TARGETS: dict[str, float | None] = {"9": 0.4, "10": 0.3, "10b": None, "9b": 0.5}
HV_TOLERANCE = 0.02  # row 9b: the pruned front's hypervolume within 2 % of the unpruned one's
NAMES = {"9": "sweep: 8x8 grid, prune asha vs no pruning",
         "10": "sweep: tpe 16 trials vs the 64-point grid",
         "10b": "sweep: tpe 16 trials with asha vs the 64-point grid",
         "11": "sweep: 8x8 grid with asha vs Keras Tuner Hyperband, both scored on the best epoch",
         "9b": "sweep: units x lr on val_accuracy and params, pruned by front rank vs unpruned"}

HYPERBAND = r'''
import json, sys, time
import numpy as np
import keras, keras_tuner as kt
arrays, epochs, out = sys.argv[1], int(sys.argv[3]), sys.argv[4]
values = [float(v) for v in json.loads(sys.argv[2])]  # one type, as Choice wants
d = np.load(arrays)
keras.utils.set_random_seed(0)
def build(hp):
    lr, lam = hp.Choice("lr", values), hp.Choice("lam", values)
    reg = keras.regularizers.l2(lam)
    model = keras.Sequential([keras.Input(d["x_train"].shape[1:]), keras.layers.Flatten(),
                              keras.layers.Dense(256, activation="relu", kernel_regularizer=reg),
                              keras.layers.Dense(256, activation="relu", kernel_regularizer=reg),
                              keras.layers.Dense(10, activation="softmax", kernel_regularizer=reg)])
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model
tuner = kt.Hyperband(build, objective="val_accuracy", max_epochs=epochs, factor=3, seed=0, directory=out,
                     project_name="hb", overwrite=True)
tuner.search(d["x_train"], d["y_train"], batch_size=1000, validation_data=(d["x_val"], d["y_val"]), verbose=0)
best = tuner.oracle.get_best_trials(1)[0]
print(json.dumps({"best_val_accuracy": best.score, "best": best.hyperparameters.values,
                  "trials": len(tuner.oracle.trials)}))
'''


def configs(data: Path, quick: bool) -> dict[str, dict[str, Any]]:
    """The dlrun sides: grid, grid + asha, tpe (16 trials), tpe + asha, and grid + asha scored on each trial's
    best epoch (sweep.score: best), the way Keras Tuner scores, for the Hyperband row."""
    values = COURSE_VALUES
    source: dict[str, Any] = {"source": "idx", "path": str(data)}
    if quick:
        source["limit"] = 2500  # 2,500 training images; validation (800) and test (2,000) as without it
    grid = course_config(source)
    grid["name"] = "bench-search"
    grid["sweep"] = {"mode": "grid", "params": {"optimizer.lr": values, "model.l2": values}, "seed": 0}
    asha = json.loads(json.dumps(grid))
    asha["sweep"]["prune"] = {"method": "asha", "min_epochs": 1, "reduction": 3}
    tpe = json.loads(json.dumps(grid))
    low, high = min(values), max(values)
    tpe["sweep"] = {"search": "tpe", "trials": 16, "seed": 0,
                    "params": {"optimizer.lr": {"log_uniform": [low, high]}, "model.l2": {"log_uniform": [low, high]}}}
    tpe_asha = json.loads(json.dumps(tpe))
    tpe_asha["sweep"]["prune"] = asha["sweep"]["prune"]
    asha_best = json.loads(json.dumps(asha))
    asha_best["sweep"]["score"] = "best"
    return {"grid": grid, "asha": asha, "tpe": tpe, "tpe_asha": tpe_asha, "asha_best": asha_best,
            **pareto_configs(source)}


def run_sweep(config: dict[str, Any], tmp: Path, name: str) -> tuple[float, dict[str, Any]]:
    """Wall seconds and summary of `dlrun sweep` on `config` in a fresh process."""
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    measured = run_measured([sys.executable, "-m", "dlrun", "sweep", str(path), "--sweep-dir", str(tmp / name),
                             "--json"])
    return measured.wall, json.loads(measured.stdout)


def epochs_run(summary: dict[str, Any]) -> int:
    """The epochs a sweep's trials ran, all together: what its wall time cannot fall below, whatever its
    fixed costs."""
    return sum(t.get("epochs_run") or 0 for t in summary["trials"])


def best_value(summary: dict[str, Any]) -> float:
    return float(summary["best"]["value"]) if summary.get("best") else float("nan")


def hyperband(config: dict[str, Any], tmp: Path, kt_path: Path) -> tuple[float, dict[str, Any]]:
    """Keras Tuner's Hyperband on the arrays dlrun trains on (its own train / validation split)."""
    from dlrun.config.schema import DataConfig  # importing bench_sweep put the checkout on the path
    from dlrun.data import load_dataset

    ds = load_dataset(DataConfig.model_validate(config["data"]), "classification")
    import numpy as np

    arrays = tmp / "arrays.npz"
    np.savez(arrays, x_train=ds.x_train, y_train=ds.y_train, x_val=ds.x_val, y_val=ds.y_val)
    script = tmp / "hyperband.py"
    script.write_text(HYPERBAND)
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(kt_path), env.get("PYTHONPATH", "")) if p)
    values = config["sweep"]["params"]["optimizer.lr"]
    measured = run_measured([sys.executable, str(script), str(arrays), json.dumps(values),
                             str(config["train"]["epochs"]), str(tmp / "kt")], env)
    return measured.wall, json.loads(measured.stdout.strip().splitlines()[-1])


def search_rows(data: Path, quick: bool, kt_path: Path | None,
                numbers: tuple[str, ...] = ("9", "10", "10b", "9b", "11"), repeats: int = 1) -> list[dict[str, Any]]:
    """Rows `numbers` of 9, 10, 11 as dicts (seconds, best validation accuracy, ratio, target, met); only the
    sweeps those rows compare run (the grid for 9 and 10, asha for 9 and 11, tpe for 10), `repeats` times in
    turn, each side's median wall time counted (a shared machine's speed drifts by tens of percent within
    minutes). Row 11 needs `kt_path` (a folder with keras-tuner); without it the row says so."""
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-search-") as name:
        tmp = Path(name)
        sides = configs(data, quick)
        walls: dict[str, list[float]] = {}
        runs: dict[str, tuple[float, dict[str, Any]]] = {}
        for attempt in range(repeats):
            for side, rows in (("grid", {"9", "10", "10b"}), ("asha", {"9"}), ("tpe", {"10"}),
                               ("tpe_asha", {"10b"}), ("asha_best", {"11"}), ("pareto", {"9b"}),
                               ("pareto_asha", {"9b"})):
                if rows & set(numbers):
                    seconds, summary = run_sweep(sides[side], tmp, f"{side}-{attempt}")
                    walls.setdefault(side, []).append(seconds)
                    runs[side] = statistics.median(walls[side]), summary
                    print(json.dumps({"side": side, "attempt": attempt, "seconds": round(seconds, 1),
                                      "best": best_value(summary), "counts": summary["counts"]}), file=sys.stderr)
        for number, side in (("9", "asha"), ("10", "tpe"), ("10b", "tpe_asha")):
            if number not in numbers:
                continue
            (seconds, summary), (grid_s, grid) = runs[side], runs["grid"]
            gap, target = best_value(grid) - best_value(summary), TARGETS[number]
            out.append({"number": number, "name": NAMES[number], "dlrun_s": round(seconds, 1),
                        "other_s": round(grid_s, 1), "ratio": round(seconds / grid_s, 3),
                        "dlrun_runs_s": [round(w, 1) for w in walls[side]],
                        "other_runs_s": [round(w, 1) for w in walls["grid"]],
                        "target": target, "best": round(best_value(summary), 4),
                        "grid_best": round(best_value(grid), 4), "gap": round(gap, 4),
                        "met": None if target is None else seconds / grid_s <= target and gap <= 0.01,
                        "epochs": [epochs_run(summary), epochs_run(grid)], "counts": summary["counts"]})
        if "9b" in numbers:  # the last attempt's fronts (the sweeps are deterministic on CPU), median seconds
            last = repeats - 1
            out.append(pareto_row((runs["pareto"][0], tmp / f"pareto-{last}", walls["pareto"]),
                                  (runs["pareto_asha"][0], tmp / f"pareto_asha-{last}", walls["pareto_asha"]),
                                  NAMES["9b"], TARGETS["9b"] or 0.5, HV_TOLERANCE))
        if "11" in numbers and kt_path is None:
            out.append({"number": "11", "name": NAMES["11"], "skipped": "needs --kt DIR (pip install --target DIR "
                                                                      "keras-tuner kt-legacy)"})
        elif "11" in numbers:
            asha_s, asha = runs["asha_best"]  # scored as Keras Tuner scores: each trial's best epoch
            hb_s, hb = hyperband(sides["asha_best"], tmp, kt_path)
            out.append({"number": "11", "name": NAMES["11"], "dlrun_s": round(asha_s, 1), "other_s": round(hb_s, 1),
                        "ratio": round(asha_s / hb_s, 3), "target": None, "best": round(best_value(asha), 4),
                        "other_best": round(float(hb["best_val_accuracy"]), 4), "met": None,
                        "hyperband_trials": hb["trials"]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="an MNIST idx folder")
    parser.add_argument("--quick", action="store_true", help="data.limit 2500 (a loaded machine)")
    parser.add_argument("--kt", type=Path, help="a folder with keras-tuner installed (pip install --target)")
    parser.add_argument("--breakdown", action="store_true", help="only the seconds of one pruned sweep")
    parser.add_argument("--no-breakdown", action="store_true", help="only the rows")
    parser.add_argument("--repeats", type=int, default=1, help="run the sides in turn N times; median wall times")
    parser.add_argument("--rows", default="9,10,10b,9b,11", help="the rows to measure, comma-separated")
    args = parser.parse_args()
    started = time.time()
    if not args.breakdown:
        rows = tuple(args.rows.split(","))
        for row in search_rows(args.data, args.quick, args.kt, numbers=rows, repeats=args.repeats):
            print(json.dumps(row))
    from bench_breakdown import breakdown

    # history plots off the critical path, and in it as before
    for background in () if args.no_breakdown else (True, False):
        print(json.dumps(breakdown(configs(args.data, args.quick)["asha"], background)))
    print(f"{time.time() - started:.0f} s; load average {os.getloadavg()}", file=sys.stderr)


if __name__ == "__main__":
    main()
