"""Benchmarks 7 and 8: the steady-state epoch inside the process, dlrun defaults against plain
`model.fit` defaults on the same arrays, with the arithmetic limit beside.

The process-level rows (1, 2) are dominated by start-up and exit, where dlrun's largest win is
skipping TensorFlow's interpreter teardown. These rows time only the epochs: the median of epochs
2..N (the first one traces the graphs) of each run, from dlrun's metrics.csv `seconds` and from a
timing callback in plain_train.py (both span training and validation, on_epoch_begin to
on_epoch_end), then the median over the alternating runs. dlrun runs with its defaults
(`steps_per_execution: auto`); one more run with `steps_per_execution: 1` checks that auto changes
nothing but the time: same metrics.csv (all but seconds), same final weights.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from bench_train import write_config
from common import PY, ROOT, BenchError, Row, alternate, bench_env, median, run_timed

from dlrun.store import files, names

CASES = {  # number: (model, optimizer, lr, batch size, epochs, title, target ratio)
    "7": ("mlp", "sgd", 0.01, 32, 6, "epoch time, MLP 128 (sgd, batch 32), in-process", 0.55),
    "8": ("cnn16", "adam", 0.001, 32, 4, "epoch time, CNN 16-32-64 (adam, batch 32), in-process", 0.8),
}


def steady_seconds(epoch_seconds: list[float]) -> float:
    """The median epoch after the first (which traces the graphs), or the only one."""
    return median(epoch_seconds[1:] or epoch_seconds)


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    return files.read_csv(run_dir / names.METRICS)


def _weights(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as fh:
        fh.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def same_training(a: Path, b: Path) -> bool:
    """True when two run directories hold identical metrics.csv rows (all but seconds) and weights."""
    def rows(run: Path) -> list[dict[str, str]]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in _metrics(run)]

    wa, wb = _weights(a / names.WEIGHTS), _weights(b / names.WEIGHTS)
    return rows(a) == rows(b) and wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)


def arithmetic(config: Path, env: dict[str, str], threads: int) -> dict[str, Any]:
    """arith_probe.py's FLOPs per epoch, matmul throughput and limit for `config`."""
    proc = subprocess.run([PY, ROOT / "benchmarks" / "arith_probe.py", config, "--threads", str(threads)], env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise BenchError(f"arith_probe.py {config} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _commands(case: str, arrays: Path, work: Path, threads: int) -> tuple[dict[str, Any], list[Path], list[Path]]:
    """Command factories for `alternate`, and the lists each fills with where its run's epochs go."""
    kind, optimizer, lr, batch, epochs, _, _ = CASES[case]
    config = write_config(case, arrays, work, threads, kind=kind, optimizer=optimizer, lr=lr, batch=batch,
                          epochs=epochs)
    dlrun_runs: list[Path] = []
    plain_times: list[Path] = []

    def dlrun() -> list[str | Path]:
        dlrun_runs.append(work / f"epoch-{case}-{len(dlrun_runs)}")
        return [PY, "-m", "dlrun", "train", config, "--run-dir", dlrun_runs[-1]]

    def plain() -> list[str | Path]:
        plain_times.append(work / f"plain-epochs-{case}-{len(plain_times)}.json")
        return [PY, ROOT / "benchmarks" / "plain_train.py", "--data", arrays, "--model", kind, "--epochs",
                str(epochs), "--batch-size", str(batch), "--optimizer", optimizer, "--lr", str(lr), "--seed", "0",
                "--threads", str(threads), "--out", work / "plain", "--epoch-times", plain_times[-1]]

    return {"dlrun": dlrun, "plain": plain, "config": config}, dlrun_runs, plain_times


def epoch_rows(cases: list[str], arrays: Path, work: Path, repeats: int, source: str) -> list[Row]:
    """One row per case: steady-state epoch seconds of dlrun and of plain Keras, their ratio, the
    arithmetic limit, and whether auto trained exactly as steps_per_execution 1."""
    threads = os.cpu_count() or 1
    env = bench_env(work / "cache")
    rows = []
    for case in cases:
        kind, _, _, _, epochs, title, target = CASES[case]
        commands, dlrun_runs, plain_times = _commands(case, arrays, work, threads)
        config = commands.pop("config")
        alternate(commands, env, repeats, label=f"benchmark {case}")
        # the first run of each side is the untimed warm-up round of `alternate`
        dl = [steady_seconds([float(r["seconds"]) for r in _metrics(run)]) for run in dlrun_runs[1:]]
        pl = [steady_seconds(json.loads(p.read_text())["seconds"]) for p in plain_times[1:]]
        one = work / f"epoch-{case}-one"
        run_timed([PY, "-m", "dlrun", "train", config, "--run-dir", one, "--set", "train.steps_per_execution=1"], env)
        exact = same_training(dlrun_runs[-1], one)
        used = files.read_json(dlrun_runs[-1] / names.SUMMARY).get("steps_per_execution")
        spe1 = steady_seconds([float(r["seconds"]) for r in _metrics(one)])
        limit = arithmetic(config, env, threads)
        ratio = median(dl) / median(pl)
        note = (f"arithmetic limit {limit['limit_s']:.3f} s ({limit['epoch_flops'] / 1e9:.2f} GFLOP at "
                f"{limit['matmul_flops_per_s'] / 1e9:.0f} GFLOP/s matmul); steps_per_execution auto = {used}, "
                f"identical metrics and weights to 1: {'yes' if exact else '**NO**'}; steps_per_execution 1: "
                f"{spe1:.3f} s; epochs 2..{epochs}, n={len(dl)}; {source}")
        rows.append(Row(case, title, f"{median(dl):.3f} s", f"{median(pl):.3f} s", f"{ratio:.3f}", f"≤ {target}",
                        ratio <= target and exact, note))
    return rows
