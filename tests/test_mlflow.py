"""MLflow tracking against a real tracking server (a subprocess on 127.0.0.1 with an sqlite store in a
temporary folder), read back with MlflowClient and its REST API; nothing mocked. A trained run with
its epochs, params, tags, artifacts and Keras model; a pruned sweep as a parent with nested trials; a
server killed mid-run (the run completes, one warning) and the backfill that completes MLflow's copy."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import LIVE_CNN, TINY_MLP, deep_merge, finish, run_cli, start, wait_for_epochs, write_config

mlflow = pytest.importorskip("mlflow")

pytestmark = pytest.mark.xdist_group("mlflow")  # one server for the module, on one worker

SMALL = deep_merge(TINY_MLP, {"data": {"image_size": [8, 8]}, "train": {"epochs": 3, "batch_size": 32}})
PRUNED_GRID = {"params": {"optimizer.lr": [1.0, 0.1, 0.01, 0.001]},
               "prune": {"method": "asha", "min_epochs": 1, "reduction": 2}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# what `mlflow server --artifacts-destination DIR` tells its app (mlflow.server.constants; not imported
# here: mlflow.server's package loads the whole server, seconds this process does not need)
SERVER_ENV = {"_MLFLOW_SERVER_SERVE_ARTIFACTS": "true", "_MLFLOW_SERVER_ARTIFACT_ROOT": "mlflow-artifacts:/"}


class Server:
    """A real MLflow tracking server on 127.0.0.1:port, its sqlite store and artifacts in `folder`,
    that a test can kill and start again on the same port and store.

    It is what `mlflow server --workers 1` runs (the tracking app under uvicorn, configured through the
    variables the CLI sets), without the CLI's own interpreter and job runner: a start costs one import
    of the app instead of three; the store's tables are created once, on its first start."""

    def __init__(self, folder: Path):
        self.folder, self.port = folder, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and return once it answers with its store ready (tables created)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **SERVER_ENV, "_MLFLOW_SERVER_FILE_STORE": f"sqlite:///{self.folder / 'mlflow.db'}",
               "_MLFLOW_SERVER_ARTIFACT_DESTINATION": str(self.folder / "artifacts")}
        with open(self.folder / "server.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                 "mlflow.server.fastapi_app:app"], env=env, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:  # the first API call opens the store (creating its tables on a new one): done before a test's
                rest(self.uri, "experiments/get-by-name", experiment_name="Default")  # client, whose timeout is short
                return
            except OSError:
                time.sleep(0.1)
        self.kill()
        raise AssertionError(f"mlflow server did not start: {(self.folder / 'server.log').read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the server (its own process group), as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module (the kill test kills it and starts it again)."""
    server = Server(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    yield server
    server.kill()


@pytest.fixture
def server(mlflow_server: Server) -> str:
    """The module's server URI, the server up (started again if a test before left it down)."""
    if not mlflow_server.running():
        mlflow_server.start()
    return mlflow_server.uri


def rest(uri: str, endpoint: str, **query: str) -> dict:
    """GET an MLflow REST API endpoint, as any client would."""
    params = "&".join(f"{k}={v}" for k, v in query.items())
    with urllib.request.urlopen(f"{uri}/api/2.0/mlflow/{endpoint}?{params}", timeout=30) as answer:
        return json.loads(answer.read())


def run_id_of(run_dir: Path, uri: str) -> str:
    return json.loads((run_dir / "mlflow.json").read_text())["stores"][uri]["run_id"]


@pytest.fixture(scope="module")
def tracked_run(mlflow_server: Server, tmp_path_factory: pytest.TempPathFactory
                ) -> tuple[Path, subprocess.CompletedProcess]:
    server, tmp = mlflow_server.uri, tmp_path_factory.mktemp("tracked")
    config = write_config(tmp, SMALL, tracking={"mlflow": {"experiment": "course"}})
    proc = run_cli("train", config, "--run-dir", tmp / "run", "--track", f"mlflow={server}", "--json")
    return tmp / "run", proc


def test_a_tracked_run_is_an_mlflow_run_with_its_epochs(server: str, tracked_run: tuple) -> None:
    run_dir, proc = tracked_run
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)  # stdout stays one JSON document
    run = rest(server, "runs/get", run_id=run_id_of(run_dir, server))["run"]
    history = rest(server, "metrics/get-history", run_id=run["info"]["run_id"], metric_key="val_accuracy")
    assert run["info"]["status"] == "FINISHED"
    assert [m["step"] for m in history["metrics"]] == [1, 2, 3]
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert (params["optimizer.lr"], params["model.layers.dense.units"], "data.path" in params) == ("0.05", "16", False)
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (tags["dlrun.run_dir"], tags["dlrun.data_fingerprint"], tags["dlrun.status"]) == (
        str(run_dir.resolve()), summary["data_fingerprint"], "completed")
    final = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert final["test_accuracy"] == pytest.approx(summary["metrics"]["test_accuracy"])


def test_a_tracked_run_has_its_artifacts_and_a_keras_model(server: str, tracked_run: tuple) -> None:
    import numpy as np

    run_dir, _ = tracked_run
    client = mlflow.MlflowClient(server)
    run_id = run_id_of(run_dir, server)
    assert {"config.yaml", "summary.json", "history.png", "metrics.csv"} <= {a.path for a in client.list_artifacts(
        run_id)}
    assert client.get_experiment(client.get_run(run_id).info.experiment_id).name == "course"
    mlflow.set_tracking_uri(server)
    model = mlflow.keras.load_model(f"runs:/{run_id}/model")
    assert model.predict(np.zeros((2, 8, 8, 1), "float32"), verbose=0).shape == (2, 10)


@pytest.fixture(scope="module")
def tracked_sweep(mlflow_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("sweep")
    config = write_config(tmp, SMALL, sweep=PRUNED_GRID)
    proc = run_cli("sweep", config, "--sweep-dir", tmp / "s", "--track", f"mlflow={mlflow_server.uri}")
    assert proc.returncode == 0, proc.stderr
    return tmp / "s"


def test_a_pruned_sweep_is_a_parent_run_with_nested_trials(server: str, tracked_sweep: Path) -> None:
    client = mlflow.MlflowClient(server)
    parent = client.get_run(run_id_of(tracked_sweep, server))
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    statuses = {r.data.tags["dlrun.status"]: r.info.status for r in children}
    assert (parent.data.tags["dlrun.kind"], parent.info.status, len(children)) == ("sweep", "FINISHED", 4)
    assert statuses == {"completed": "FINISHED", "pruned": "KILLED"}
    assert all(r.data.params["optimizer.lr"] for r in children)


def test_each_trial_is_sent_when_it_ends_not_at_the_sweeps_end(tracked_sweep: Path) -> None:
    # the trials run one after another; the first sent (its mlflow.json written) went before the last
    # trial's final epoch was written: sent as it ended. Sent at the sweep's end, it would come after every epoch.
    trials = sorted((tracked_sweep / "trials").iterdir())
    sent = min((t / "mlflow.json").stat().st_mtime_ns for t in trials)
    last_epoch = max((t / "metrics.csv").stat().st_mtime_ns for t in trials)
    assert sent < last_epoch


def test_a_server_killed_mid_run_and_the_backfill(mlflow_server: Server, server: str, tmp_path: Path) -> None:
    uri = server
    config = write_config(tmp_path, deep_merge(LIVE_CNN, {"train": {"epochs": 6}}))
    run_dir = tmp_path / "runs" / "run"
    proc = start("train", config, "--run-dir", run_dir, "--track", f"mlflow={uri}")
    try:
        wait_for_epochs(proc, run_dir, 2)
    finally:
        mlflow_server.kill()
    code, _, err = finish(proc)
    assert (code, err.count("MLflow at")) == (0, 1), err
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    mlflow_server.start()  # the same port and store
    first = run_cli("track", "mlflow", run_dir.parent, "--uri", uri, "--json")
    again = run_cli("track", "mlflow", run_dir.parent, "--uri", uri, "--json")
    run_id = run_id_of(run_dir, uri)
    history = mlflow.MlflowClient(uri).get_metric_history(run_id, "val_accuracy")
    status = mlflow.MlflowClient(uri).get_run(run_id).info.status
    assert (json.loads(first.stdout)["sent"], json.loads(again.stdout)["already"]) == (1, 1), first.stderr
    assert ([m.step for m in history], status) == (list(range(1, 7)), "FINISHED")
