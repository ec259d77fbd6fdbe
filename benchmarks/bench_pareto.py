"""Row 9b of bench_search.py: the course's architecture sweep (hidden units 32 ... 512 x learning rate, as
configs/sweep_pareto.yaml) on the real MNIST digits, ranked on two objectives (val_accuracy: max, params:
min), pruned by front rank (`prune: asha`) against the same grid unpruned. Target: the pruned sweep's final
front keeps a hypervolume within 2 % of the unpruned front's, in <= 0.5x the wall time.

The hypervolume is Optuna's (optuna._hypervolume.compute_hypervolume, WFG; exact in 2-D), on the completed
trials' final values (pareto.csv, the same `sweep.score` on both sides), with objectives turned into
losses (-val_accuracy, params) and the reference point (val_accuracy 0.1, chance on 10 classes; params 1.1x
the largest model of the space), the same for both sweeps.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

UNITS = [32, 64, 128, 256, 512]
LRS = [0.01, 0.03, 0.1, 0.3]
REFERENCE_ACCURACY = 0.1  # chance on 10 classes
OBJECTIVES = [{"metric": "val_accuracy", "goal": "max"}, {"metric": "params", "goal": "min"}]


def pareto_configs(source: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The unpruned and the pruned two-objective grid on `source` (a data section)."""
    base: dict[str, Any] = {
        "name": "bench-pareto", "seed": 0, "data": source,
        "model": {"layers": [{"flatten": {}}, {"dense": {"units": 128, "activation": "relu"}},
                             {"dense": {"units": 10, "activation": "softmax"}}]},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "train": {"epochs": 10, "batch_size": 100},
        "sweep": {"mode": "grid", "seed": 0, "objectives": OBJECTIVES,
                  "params": {"model.layers.1.dense.units": UNITS, "optimizer.lr": LRS}},
    }
    pruned = json.loads(json.dumps(base))
    pruned["sweep"]["prune"] = {"method": "asha", "min_epochs": 1, "reduction": 3}
    return {"pareto": base, "pareto_asha": pruned}


def pareto_rows(sweep_dir: Path) -> list[dict[str, str]]:
    """The rows of the sweep's pareto.csv (every trial, with its values, front rank and on_front)."""
    with open(sweep_dir / "pareto.csv", newline="") as f:
        return list(csv.DictReader(f))


def completed_values(sweep_dir: Path) -> list[tuple[float, float]]:
    """(val_accuracy, params) of every completed trial in the sweep's pareto.csv."""
    return [(float(r["val_accuracy"]), float(r["params"])) for r in pareto_rows(sweep_dir)
            if r["status"] == "completed" and r["val_accuracy"] not in ("", "nan")]


def largest_params(sweep_dir: Path) -> float:
    """The parameter count of the largest model any trial of the sweep built (pareto.csv)."""
    return max(float(r["params"]) for r in pareto_rows(sweep_dir) if r["params"] not in ("", "nan"))


def hypervolume(points: list[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Optuna's hypervolume of (val_accuracy to maximise, params to minimise) points against `reference`
    (val_accuracy, params); points not better than the reference on both count nothing."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    losses = np.array([(-a, p) for a, p in points if a > reference[0] and p < reference[1]], dtype=float)
    if len(losses) == 0:
        return 0.0
    return float(compute_hypervolume(losses, np.array([-reference[0], reference[1]], dtype=float)))


def pareto_row(unpruned: tuple[float, Path, list[float]], pruned: tuple[float, Path, list[float]],
               name: str, target: float, tolerance: float) -> dict[str, Any]:
    """Row 9b from the two sweeps' (median wall seconds, sweep directory, every run's seconds)."""
    (grid_s, grid_dir, grid_runs), (asha_s, asha_dir, asha_runs) = unpruned, pruned
    reference = (REFERENCE_ACCURACY, 1.1 * max(largest_params(grid_dir), largest_params(asha_dir)))
    grid_hv = hypervolume(completed_values(grid_dir), reference)
    asha_hv = hypervolume(completed_values(asha_dir), reference)
    loss = 1 - asha_hv / grid_hv if grid_hv else float("nan")
    ratio = asha_s / grid_s
    summary = json.loads((asha_dir / "summary.json").read_text())
    return {"number": "9b", "name": name, "dlrun_s": round(asha_s, 1), "other_s": round(grid_s, 1),
            "ratio": round(ratio, 3), "dlrun_runs_s": [round(w, 1) for w in asha_runs],
            "other_runs_s": [round(w, 1) for w in grid_runs], "target": target,
            "hypervolume": round(asha_hv, 1), "grid_hypervolume": round(grid_hv, 1),
            "hypervolume_loss": round(loss, 4), "reference": [reference[0], round(reference[1])],
            "front": sorted(completed_front(asha_dir)), "grid_front": sorted(completed_front(grid_dir)),
            "oracle": oracle(grid_dir, asha_dir, asha_s, grid_s),
            "met": ratio <= target and loss <= tolerance, "counts": summary["counts"]}


def epoch_seconds(trial_dir: Path) -> list[float]:
    """The seconds of each epoch a trial ran (its metrics.csv)."""
    with open(trial_dir / "metrics.csv", newline="") as f:
        return [float(r["seconds"]) for r in csv.DictReader(f)]


def oracle(grid_dir: Path, asha_dir: Path, asha_s: float, grid_s: float) -> dict[str, float]:
    """What perfect pruning would take: every trial stopped after its first epoch but those on the unpruned
    front, which run all their epochs (their seconds as the unpruned sweep measured them). Its wall time is
    the pruned sweep's with the difference in epoch seconds taken off: the same fixed costs (start-up,
    tracing, records), the fewest epochs any pruner could run and keep the whole front."""
    front = {r["trial"] for r in pareto_rows(grid_dir) if r["on_front"] == "True"}
    unpruned = {t.name: epoch_seconds(t) for t in (grid_dir / "trials").iterdir() if (t / "metrics.csv").is_file()}
    best = sum(sum(s) if name in front else s[0] for name, s in unpruned.items())
    pruned = sum(sum(epoch_seconds(t)) for t in (asha_dir / "trials").iterdir() if (t / "metrics.csv").is_file())
    wall = asha_s - (pruned - best)
    return {"epoch_seconds": round(best, 2), "pruned_epoch_seconds": round(pruned, 2),
            "unpruned_epoch_seconds": round(sum(sum(s) for s in unpruned.values()), 2),
            "wall_s": round(wall, 1), "ratio": round(wall / grid_s, 3)}


def completed_front(sweep_dir: Path) -> list[tuple[int, float]]:
    """The front pareto.csv marks, as (params, val_accuracy) pairs."""
    return [(int(float(r["params"])), round(float(r["val_accuracy"]), 4)) for r in pareto_rows(sweep_dir)
            if r["on_front"] == "True"]
