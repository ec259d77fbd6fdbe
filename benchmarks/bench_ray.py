"""Benchmarks of scaling out: `dlrun sweep --backend ray` and `train.distribute`.

12: a 16-trial grid sweep (4 lr x 4 lambda, MLP 64 on synthetic digits) with `--backend ray --address` a Ray
   head already running (`ray start --head --num-cpus 2`, started once, outside the timing: 1 CPU per trial,
   2 long-lived worker actors) against `--backend local --jobs 2`, each a whole `dlrun sweep` process,
   alternating. Target: ray / local <= 1.10. The note gives the same sweep with a Ray instance the sweep
   starts itself (no --address), and whether results.csv (all but seconds and threads) is the same.
13: Ray's start-up on its own: `ray.init(address="local")`, one trivial task, `ray.shutdown()` in a fresh
   process, timed from after `import ray`.
14: `dlrun train` with `train.distribute: {strategy: mirrored, devices: 2}` on 2 logical CPU devices
   (DLRUN_CPU_DEVICES=2) against one device, same global batch: median epoch seconds (epochs 2..N). No gain
   is expected on a CPU (the replicas share its cores); the point is that it trains the same model.
15: row 12's 16 trials with `--backend ray --address` against the same 16 trials in Ray Tune itself
   (tune_sweep.py: `tune.Tuner`, a function trainable doing the same Keras fit on the same data, model,
   epochs, batch, seed, threads and CPUs per trial; no scheduler, `reuse_actors=True`), each a whole
   process on the same running head (`ray start --head`, outside the timing), alternating. Target:
   dlrun / Tune <= 1.0. Needs --tune-python: the Python of an environment with Ray Tune, which dlrun never
   depends on. Build it beside dlrun's (the same packages, Ray Tune's extras added):
       python -m venv /tmp/tune-venv
       echo "$(.venv/bin/python -c 'import site; print(site.getsitepackages()[0])')" \
           > /tmp/tune-venv/lib/python3.11/site-packages/dlrun-venv.pth
       /tmp/tune-venv/bin/pip install "ray[tune]==$(.venv/bin/python -c 'import ray; print(ray.__version__)')"
   then pass --tune-python /tmp/tune-venv/bin/python.
16: a 64-trial sweep (8 lr x 8 lambda) on a running head with 2 worker actors: each actor's resident
   memory after its first trial and after its last (summary.json's `ray` record), and the replacements.
   Target: every actor's growth within WORKER_GROWTH_MIB, the limit past which a worker (local or Ray)
   is replaced.

Not measured here: the GPU rows (`--gpus-per-trial 1`), which need a GPU machine.

Standalone: python benchmarks/bench_ray.py [--repeats 3] [--quick] [--only 12,13,14,15,16] [--tune-python PY]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sweep import _env, run_measured  # noqa: E402

TARGET_RATIO = 1.10
TARGET_TUNE = 1.0
NAMES = {"12": "sweep: 16 trials, --backend ray (running head, 2 actors) vs --backend local --jobs 2",
         "13": "Ray start-up alone: ray.init + one task + shutdown",
         "14": "train.distribute mirrored on 2 logical CPU devices vs 1 device (epoch, same global batch)",
         "15": "sweep: 16 trials, dlrun --backend ray vs Ray Tune (reuse_actors) on the same running head",
         "16": "worker actor memory over a 64-trial Ray sweep: RSS growth, first trial to last"}
NO_GPU = "GPU rows (--gpus-per-trial 1) not measured: no GPU machine was lent to this run"

RAY_STARTUP = """
import time
import ray
start = time.perf_counter()
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
ray.get(ray.remote(lambda: 1).remote())
ray.shutdown()
print(time.perf_counter() - start)
"""


def _config(n_train: int, epochs: int, side: int = 4, **train: Any) -> dict[str, Any]:
    """The bench's MLP on synthetic digits and its `side` x `side` grid of lr and lambda."""
    lrs = [0.01, 0.03, 0.1, 0.3, 0.02, 0.05, 0.2, 0.005][:side]
    lambdas = [0.0, 0.0001, 0.001, 0.01, 0.0003, 0.003, 0.00003, 0.00001][:side]
    return {"name": "bench-ray", "seed": 0, "data": {"source": "synthetic_digits", "n_train": n_train, "n_test": 500},
            "model": {"layers": [{"flatten": {}}, {"dense": {"units": 64, "activation": "relu"}},
                                 {"dense": {"units": 10, "activation": "softmax"}}]},
            "optimizer": {"name": "sgd"}, "train": {"epochs": epochs, "batch_size": 32, **train},
            "sweep": {"mode": "grid", "params": {"optimizer.lr": lrs, "model.l2": lambdas}}}


def _results(sweep_dir: Path) -> list[dict[str, str]]:
    import csv

    with open(sweep_dir / "results.csv") as fh:
        return [{k: v for k, v in row.items() if k not in ("seconds", "threads", "inter_op_threads")}
                for row in csv.DictReader(fh)]


@contextlib.contextmanager
def ray_head(cpus: int = 2) -> Iterator[str]:
    """A Ray head started with `ray start --head --block` (no token authentication), its address; stopped after."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {**_env(), "RAY_AUTH_MODE": "disabled"}
    head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", f"--port={port}",
                             f"--num-cpus={cpus}", "--block", "--include-dashboard=false"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(8)  # the head's GCS and raylet up
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)


def ray_vs_local(repeats: int = 3, n_train: int = 2000, epochs: int = 3) -> dict[str, Any]:
    """Median wall time of the 16-trial sweep on a running Ray head and locally with --jobs 2 (ratio = ray /
    local), and of the sweep on a Ray instance it starts itself."""
    env = {**_env(), "RAY_AUTH_MODE": "disabled"}
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp_name, ray_head() as address:
        tmp = Path(tmp_name)
        config = tmp / "sweep.yaml"
        config.write_text(yaml.safe_dump(_config(n_train, epochs), sort_keys=False))
        base = [sys.executable, "-m", "dlrun", "sweep", str(config), "--json"]
        ray_s, local_s, own_s, same = [], [], [], True
        for r in range(repeats):  # alternating, so a change in machine load hits both sides
            ray_s.append(run_measured([*base, "--backend", "ray", "--address", address,
                                       "--sweep-dir", str(tmp / f"ray-{r}")], env).wall)
            local_s.append(run_measured([*base, "--backend", "local", "--jobs", "2",
                                         "--sweep-dir", str(tmp / f"l-{r}")]).wall)
            same = same and _results(tmp / f"ray-{r}") == _results(tmp / f"l-{r}")
        own_s.append(run_measured([*base, "--backend", "ray", "--sweep-dir", str(tmp / "own")], env).wall)
        shipped = [json.loads(p.read_text())["ray"] for p in (tmp / "ray-0" / "trials").glob("*/summary.json")]
    ray_m, local_m = statistics.median(ray_s), statistics.median(local_s)
    return {"ray_s": ray_m, "local_s": local_m, "ratio": ray_m / local_m, "target": TARGET_RATIO,
            "met": ray_m / local_m <= TARGET_RATIO, "same_results": same, "own_instance_s": own_s[0],
            "sent_bytes": statistics.median(r["sent_bytes"] for r in shipped),
            "shipped_bytes": statistics.median(r["shipped_bytes"] for r in shipped)}


def ray_vs_tune(tune_python: str, repeats: int = 3, n_train: int = 2000, epochs: int = 3) -> dict[str, Any]:
    """Median wall time of the 16-trial sweep with `dlrun sweep --backend ray` and in Ray Tune (tune_sweep.py
    run by `tune_python`), whole processes alternating on one running head (ratio = dlrun / Tune)."""
    env = {**_env(), "RAY_AUTH_MODE": "disabled"}
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp_name, ray_head() as address:
        tmp = Path(tmp_name)
        config = tmp / "sweep.yaml"
        config.write_text(yaml.safe_dump(_config(n_train, epochs), sort_keys=False))
        dlrun_s, tune_s, tune_out = [], [], {}
        for r in range(repeats):
            dlrun_s.append(run_measured([sys.executable, "-m", "dlrun", "sweep", str(config), "--json", "--backend",
                                         "ray", "--address", address, "--sweep-dir", str(tmp / f"ray-{r}")], env).wall)
            run = run_measured([tune_python, str(Path(__file__).resolve().parent / "tune_sweep.py"), str(config),
                                "--address", address, "--storage", str(tmp / f"tune-{r}")], env)
            tune_s.append(run.wall)
            tune_out = json.loads(run.stdout.strip().splitlines()[-1])
            if (tune_out["trials"], tune_out["errors"]) != (16, 0):
                raise RuntimeError(f"Ray Tune ran {tune_out['trials']} trials, {tune_out['errors']} with errors")
        best = max(float(row["val_accuracy"]) for row in _results(tmp / "ray-0"))
    dlrun_m, tune_m = statistics.median(dlrun_s), statistics.median(tune_s)
    return {"dlrun_s": dlrun_m, "tune_s": tune_m, "ratio": dlrun_m / tune_m, "target": TARGET_TUNE,
            "met": dlrun_m / tune_m <= TARGET_TUNE, "tune_processes": tune_out["processes"],
            "tune_best": tune_out["best_val_accuracy"], "dlrun_best": best}


def actor_memory(n_train: int = 1000, epochs: int = 2) -> dict[str, Any]:
    """Each worker actor's resident memory after its first and its last trial of a 64-trial sweep on a
    running head with 2 actors, from the trials' summary.json `ray` records (in trial order)."""
    from dlrun.sweeps.executors.base import WORKER_GROWTH_MIB

    env = {**_env(), "RAY_AUTH_MODE": "disabled"}
    with tempfile.TemporaryDirectory(prefix="bench-actors-") as tmp_name, ray_head() as address:
        tmp = Path(tmp_name)
        config = tmp / "sweep.yaml"
        config.write_text(yaml.safe_dump(_config(n_train, epochs, side=8), sort_keys=False))
        run_measured([sys.executable, "-m", "dlrun", "sweep", str(config), "--json", "--backend", "ray",
                      "--address", address, "--sweep-dir", str(tmp / "s")], env)
        records = [json.loads(p.read_text())["ray"] for p in sorted((tmp / "s" / "trials").glob("*/summary.json"))]
    actors: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        actors.setdefault(record["actor_id"], []).append(record)
    growth = {a[:8]: {"trials": len(rs), "first_mib": rs[0]["rss_mib"], "last_mib": rs[-1]["rss_mib"],
                      "growth_mib": round(rs[-1]["rss_mib"] - rs[0]["rss_mib"], 1),
                      "peak_growth_mib": round(rs[-1]["peak_mib"] - rs[0]["peak_mib"], 1)}
              for a, rs in actors.items()}
    worst = max(g["peak_growth_mib"] for g in growth.values())
    return {"trials": len(records), "actors": growth, "replaced": sum(r["replaced"] for r in records),
            "bound": WORKER_GROWTH_MIB, "met": worst <= WORKER_GROWTH_MIB}


def ray_startup(repeats: int = 3) -> dict[str, Any]:
    """Median seconds of starting a local Ray instance, running one task and shutting it down."""
    runs = [float(run_measured([sys.executable, "-c", RAY_STARTUP]).stdout.strip()) for _ in range(repeats)]
    return {"seconds": statistics.median(runs)}


def mirrored_vs_single(repeats: int = 3, n_train: int = 4000, epochs: int = 4) -> dict[str, Any]:
    """Median epoch seconds (epochs 2..N) of `dlrun train` mirrored on 2 logical CPU devices and on one."""
    import csv

    env = {**_env(), "DLRUN_CPU_DEVICES": "2"}
    out: dict[str, list[float]] = {"mirrored": [], "single": []}
    accuracy: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-mirrored-") as tmp_name:
        tmp = Path(tmp_name)
        cfg = _config(n_train, epochs, distribute={"strategy": "mirrored", "devices": 2})
        del cfg["sweep"]
        config = tmp / "train.yaml"
        config.write_text(yaml.safe_dump(cfg, sort_keys=False))
        for r in range(repeats):
            for side, extra in (("mirrored", []), ("single", ["--set", "train.distribute=null"])):
                run = tmp / f"{side}-{r}"
                stdout = run_measured([sys.executable, "-m", "dlrun", "train", str(config), "--run-dir", str(run),
                                       "--json", *extra], env).stdout
                with open(run / "metrics.csv") as fh:
                    out[side].append(statistics.median(float(row["seconds"]) for row in list(csv.DictReader(fh))[1:]))
                accuracy[side] = json.loads(stdout)["metrics"]["test_accuracy"]
    mirrored, single = statistics.median(out["mirrored"]), statistics.median(out["single"])
    return {"mirrored_s": mirrored, "single_s": single, "ratio": mirrored / single,
            "accuracy_gap": round(abs(accuracy["mirrored"] - accuracy["single"]), 4)}


def _row(number: str, r: dict[str, Any]) -> Any:
    """The table row of benchmark `number` from its result."""
    from common import Row

    name = NAMES[number]
    if number == "12":
        return Row(number, name, f"{r['ray_s']:.1f} s", f"{r['local_s']:.1f} s", f"{r['ratio']:.3f}",
                   f"≤ {TARGET_RATIO}", bool(r["met"]),
                   f"same results.csv: {r['same_results']}; with a Ray instance the sweep starts: "
                   f"{r['own_instance_s']:.1f} s; per trial (median) {r['sent_bytes'] / 1e3:.0f} kB sent "
                   f"to its node, {r['shipped_bytes'] / 1e3:.0f} kB shipped back; {NO_GPU}")
    if number == "13":
        return Row(number, name, f"{r['seconds']:.1f} s", "—", "—", "—", None)
    if number == "15":
        return Row(number, name, f"{r['dlrun_s']:.1f} s", f"{r['tune_s']:.1f} s", f"{r['ratio']:.3f}",
                   f"≤ {TARGET_TUNE}", bool(r["met"]),
                   f"Tune ran the 16 trials in {r['tune_processes']} processes (reuse_actors: a function trainable's "
                   "actor is kept and its next trial runs in a fresh thread of the same process, so TensorFlow is "
                   "imported once, but the model is built and compiled again each trial); best val accuracy "
                   f"dlrun {r['dlrun_best']:.4f}, Tune {r['tune_best']:.4f}; {NO_GPU}")
    if number == "16":
        actors = ", ".join(f"{g['trials']} trials {g['first_mib']:.0f} -> {g['last_mib']:.0f} MiB "
                           f"(peak +{g['peak_growth_mib']:.0f})" for g in r["actors"].values())
        worst = max(g["growth_mib"] for g in r["actors"].values())
        return Row(number, name, f"+{worst:.0f} MiB", "—", "—", f"≤ {r['bound']} MiB (peak)", bool(r["met"]),
                   f"{r['trials']} trials; each actor: {actors}; replaced: {r['replaced']}")
    return Row(number, name, f"{r['mirrored_s']:.3f} s", f"{r['single_s']:.3f} s", f"{r['ratio']:.2f}", "—", None,
               f"test accuracy gap {r['accuracy_gap']}")


def ray_rows(wanted: set[str], repeats: int, quick: bool, tune_python: str | None = None) -> list[Any]:
    """Rows 12-16 for benchmarks/run.py (a failed benchmark is a row that says so; 15 needs `tune_python`)."""
    from common import Row

    rows = []
    n_train, epochs = (1000, 2) if quick else (2000, 3)
    calls = {"12": lambda: ray_vs_local(repeats, n_train, epochs), "13": lambda: ray_startup(repeats),
             "14": lambda: mirrored_vs_single(repeats, 2000 if quick else 4000),
             "15": lambda: ray_vs_tune(str(tune_python), repeats, n_train, epochs), "16": lambda: actor_memory()}
    for number in ("12", "13", "14", "15", "16"):
        if number not in wanted:
            continue
        if number == "15" and not tune_python:
            rows.append(Row(number, NAMES[number], "—", "—", "—", f"≤ {TARGET_TUNE}", None,
                            "not measured: no --tune-python (an environment with Ray Tune; see bench_ray.py)"))
            continue
        try:
            rows.append(_row(number, calls[number]()))
        except Exception as exc:
            rows.append(Row(number, NAMES[number], "—", "—", "—", "—", False, f"failed: {exc}"[:300]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller data, fewer epochs")
    parser.add_argument("--only", default="12,13,14,15,16")
    parser.add_argument("--tune-python", help="the Python of an environment with Ray Tune (row 15)")
    args = parser.parse_args()
    for row in ray_rows({n.strip() for n in args.only.split(",")}, args.repeats, args.quick, args.tune_python):
        print(json.dumps(row.__dict__))


if __name__ == "__main__":
    main()
