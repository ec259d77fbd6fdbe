"""The docs' picture of MLflow comparing a sweep's trials, captured from a real server (nothing edited by hand).

    python scripts/mlflow_screenshot.py [--out docs/img/mlflow-compare.png] [--chromium chromium]

starts `mlflow server` on 127.0.0.1 with an sqlite store in a temporary folder, runs a 4-trial sweep of
configs/quickstart.yaml (lr x dense units, 3 epochs on 1,000 images) with `--track mlflow=URI`, and has a
headless Chromium screenshot MLflow's compare-runs page for the sweep's nested trials. Needs the mlflow
extra and Chromium (Debian: apt-get install chromium). The PNG is reduced to a palette to stay small.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 250_000  # pictures are committed: keep each small
SIZE = (1760, 1150)  # the window; MLflow's assistant panel (it opens on a first visit) is cut off the right
SWEEP = {"params": {"optimizer.lr": [0.0005, 0.003], "model.layers.6.dense.units": [32, 96]},
         "metric": "val_accuracy", "goal": "max"}
EXPERIMENT = "quickstart-sweep"


def free_port() -> int:
    """A TCP port free on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(folder: Path, port: int) -> subprocess.Popen[bytes]:
    """`mlflow server` on 127.0.0.1:port (sqlite store and artifacts in `folder`), once /health answers."""
    log = open(folder / "server.log", "wb")  # noqa: SIM115 - the server's, closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                             "--artifacts-destination", str(folder / "artifacts")],
                            stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                return proc
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    raise SystemExit(f"mlflow server did not start: {(folder / 'server.log').read_text()[-2000:]}")


def rest(uri: str, endpoint: str, **query: str) -> dict:
    """GET an MLflow REST endpoint."""
    url = f"{uri}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=60) as answer:
        return json.loads(answer.read())


def run_sweep(work: Path, uri: str) -> Path:
    """A 4-trial sweep of the quickstart, tracked in the server at `uri`; returns the sweep directory."""
    config = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    config["data"].update(n_train=1000, n_test=300)
    config["train"]["epochs"] = 3
    config["sweep"] = SWEEP
    config["tracking"] = {"mlflow": {"experiment": EXPERIMENT}}
    (work / "sweep.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    print(f"$ dlrun sweep sweep.yaml --track mlflow={uri}", flush=True)
    subprocess.run([sys.executable, "-m", "dlrun", "sweep", "sweep.yaml", "--sweep-dir", "sweep", "--track",
                    f"mlflow={uri}"], cwd=work, env=env, check=True, stdout=subprocess.DEVNULL)
    return work / "sweep"


def compare_url(uri: str, sweep: Path) -> str:
    """MLflow's compare-runs page for the sweep's nested trial runs."""
    trials = sorted((sweep / "trials").iterdir())
    runs = [json.loads((t / "mlflow.json").read_text())["stores"][uri]["run_id"] for t in trials]
    experiment = rest(uri, "experiments/get-by-name", experiment_name=EXPERIMENT)["experiment"]["experiment_id"]
    query = f"runs={json.dumps(runs)}&experiments={json.dumps([experiment])}&workflowType=machine_learning"
    return f"{uri}/#/compare-runs?{urllib.parse.quote(query, safe='=&')}"


def screenshot(chromium: str, url: str, out: Path) -> None:
    """A headless Chromium screenshot of `url`, reduced to a palette."""
    from PIL import Image

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dlrun-chromium-") as profile:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                        "--hide-scrollbars", f"--window-size={SIZE[0]},{SIZE[1]}", "--virtual-time-budget=15000",
                        f"--screenshot={out}", url], check=True, capture_output=True, timeout=300)
    image = Image.open(out).convert("RGB")
    image = image.crop((0, 0, _panel_edge(image), image.height))
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    size = out.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{out} is {size} bytes, over {MAX_BYTES}")
    print(f"wrote {out} ({size // 1024} KiB)")


def _panel_edge(image: object) -> int:
    """Where a side panel begins on the right: the first column past the middle with no white from top to
    bottom (the page's tinted gap between the compare view's white card and the panel); the full width if none."""
    width, height = image.size  # type: ignore[attr-defined]
    for x in range(int(width * 0.55), width - 100):
        if all(image.getpixel((x, y)) != (255, 255, 255) for y in range(10, height - 10, 5)):  # type: ignore[attr-defined]
            return x
    return width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "mlflow-compare.png")
    parser.add_argument("--chromium", default="chromium")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dlrun-mlflow-") as tmp:
        work, port = Path(tmp), free_port()
        uri = f"http://127.0.0.1:{port}"
        server = start_server(work, port)
        try:
            sweep = run_sweep(work, uri)
            url = compare_url(uri, sweep)
            print(url)
            screenshot(args.chromium, url, args.out.resolve())
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
