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

Standalone: python benchmarks/bench_ray.py [--repeats 3] [--quick] [--only 12,13,14]
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
NAMES = {"12": "sweep: 16 trials, --backend ray (running head, 2 actors) vs --backend local --jobs 2",
         "13": "Ray start-up alone: ray.init + one task + shutdown",
         "14": "train.distribute mirrored on 2 logical CPU devices vs 1 device (epoch, same global batch)"}

RAY_STARTUP = """
import time
import ray
start = time.perf_counter()
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
ray.get(ray.remote(lambda: 1).remote())
ray.shutdown()
print(time.perf_counter() - start)
"""


def _config(n_train: int, epochs: int, **train: Any) -> dict[str, Any]:
    lrs = [0.01, 0.03, 0.1, 0.3]
    return {"name": "bench-ray", "seed": 0, "data": {"source": "synthetic_digits", "n_train": n_train, "n_test": 500},
            "model": {"layers": [{"flatten": {}}, {"dense": {"units": 64, "activation": "relu"}},
                                 {"dense": {"units": 10, "activation": "softmax"}}]},
            "optimizer": {"name": "sgd"}, "train": {"epochs": epochs, "batch_size": 32, **train},
            "sweep": {"mode": "grid", "params": {"optimizer.lr": lrs, "model.l2": [0.0, 0.0001, 0.001, 0.01]}}}


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


def ray_rows(wanted: set[str], repeats: int, quick: bool) -> list[Any]:
    """Rows 12-14 for benchmarks/run.py (a failed benchmark is a row that says so)."""
    from common import Row

    rows = []
    calls = {"12": lambda: ray_vs_local(repeats, 1000 if quick else 2000, 2 if quick else 3),
             "13": lambda: ray_startup(repeats), "14": lambda: mirrored_vs_single(repeats, 2000 if quick else 4000)}
    for number in ("12", "13", "14"):
        if number not in wanted:
            continue
        try:
            r = calls[number]()
        except Exception as exc:
            rows.append(Row(number, NAMES[number], "—", "—", "—", "—", False, f"failed: {exc}"[:300]))
            continue
        if number == "12":
            rows.append(Row(number, NAMES[number], f"{r['ray_s']:.1f} s", f"{r['local_s']:.1f} s", f"{r['ratio']:.3f}",
                            f"≤ {TARGET_RATIO}", bool(r["met"]),
                            f"same results.csv: {r['same_results']}; with a Ray instance the sweep starts: "
                            f"{r['own_instance_s']:.1f} s; per trial (median) {r['sent_bytes'] / 1e3:.0f} kB sent "
                            f"to its node, {r['shipped_bytes'] / 1e3:.0f} kB shipped back"))
        elif number == "13":
            rows.append(Row(number, NAMES[number], f"{r['seconds']:.1f} s", "—", "—", "—", None))
        else:
            rows.append(Row(number, NAMES[number], f"{r['mirrored_s']:.3f} s", f"{r['single_s']:.3f} s",
                            f"{r['ratio']:.2f}", "—", None, f"test accuracy gap {r['accuracy_gap']}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller data, fewer epochs")
    parser.add_argument("--only", default="12,13,14")
    args = parser.parse_args()
    for row in ray_rows({n.strip() for n in args.only.split(",")}, args.repeats, args.quick):
        print(json.dumps(row.__dict__))


if __name__ == "__main__":
    main()
