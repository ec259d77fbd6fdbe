"""Mirror run and sweep directories into MLflow: the only module that imports mlflow (an optional
extra, imported on first use).

A run becomes an MLflow run: params = the flattened config, a metric per epoch column with its step,
the final metrics, dlrun's tags, the artifacts, and the model in MLflow's Keras flavour. A sweep
becomes a parent run with a nested run per trial. What was sent is recorded in the directory's
mlflow.json, so a resumed run continues its MLflow run and a second sync sends only what is new.
Nothing here raises: a store that cannot be reached costs one warning, and the backfill
(`dlrun track mlflow`) sends what was missed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlrun.engine import exporting
from dlrun.errors import DlrunError
from dlrun.store import names
from dlrun.tracking import records

BATCH = 900  # MLflow takes at most 1,000 metrics (and 100 params) per call


@dataclass(frozen=True)
class MlflowTarget:
    """Where runs are mirrored: a tracking URI and an experiment name (None: each run's config name)."""

    uri: str
    experiment: str | None = None
    artifacts: str | None = None  # the artifact root of a new experiment in a local store


def default_uri(runs_root: Path | str) -> str:
    """sqlite:///RUNS/mlflow.db: the local store beside the runs, which `mlflow ui` opens."""
    return f"sqlite:///{(Path(runs_root).resolve() / names.MLFLOW_DB).as_posix()}"


def target(uri: str | None, experiment: str | None, runs_root: Path | str) -> MlflowTarget:
    """The target for a URI (None: the local default beside `runs_root`)."""
    local = uri is None
    uri = uri or default_uri(runs_root)
    artifacts = (Path(runs_root).resolve() / names.MLFLOW_ARTIFACTS).as_uri() if local or uri.startswith(
        "sqlite:") else None
    return MlflowTarget(uri, experiment, artifacts)


def _mlflow() -> Any:
    # a server that is down must cost seconds, not MLflow's default minutes of retries
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # stdout is dlrun's (--json)
    try:
        import mlflow
    except ImportError:
        raise DlrunError("MLflow tracking needs the mlflow package: pip install 'dlrun[mlflow]'") from None
    return mlflow


def require_mlflow() -> None:
    """Raise a DlrunError saying how to install MLflow when it is missing (before training starts)."""
    _mlflow()


class Mirror:
    """Sends run directories to one MLflow store. `warn` hears about the first failure only."""

    def __init__(self, where: MlflowTarget, warn: Callable[[str], None]):
        self.target, self.warn = where, warn
        self.failure: str | None = None
        self.warned = False
        self._client: Any = None
        self._experiments: dict[str, str] = {}

    def client(self) -> Any:
        if self._client is None:
            self._client = _mlflow().MlflowClient(tracking_uri=self.target.uri)
        return self._client

    def _failed(self, what: str, exc: BaseException) -> None:
        if not self.warned:
            self.warned = True
            reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            self.warn(f"MLflow at {self.target.uri} did not take {what} ({reason}); training goes on, the run "
                      f"directory keeps everything: `dlrun track mlflow RUNS --uri {self.target.uri}` sends it later")
        self.failure = self.failure or str(exc)

    def sync_run(self, path: Path, final: bool = True, parent: str | None = None, kind: str = "run") -> str | None:
        """Send what is new in a run directory; with `final`, also its end (metrics, artifacts, model,
        status) once it has ended. Returns the MLflow run id, None when the store failed."""
        try:
            return self._sync_run(Path(path), final, parent, kind)
        except Exception as exc:  # any failure of the store or the network: the run goes on
            self._failed(f"{path}", exc)
            return None

    def _experiment_id(self, name: str) -> str:
        if name not in self._experiments:
            client = self.client()
            found = client.get_experiment_by_name(name)
            self._experiments[name] = found.experiment_id if found is not None else client.create_experiment(
                name, artifact_location=self.target.artifacts and f"{self.target.artifacts}/{name}")
        return self._experiments[name]

    def _start(self, path: Path, summary: dict[str, Any], parent: str | None, kind: str) -> dict[str, Any]:
        client = self.client()
        experiment = self.target.experiment or str(summary.get("name") or path.name)
        tags = {**records.tags(path, summary, kind), **({"mlflow.parentRunId": parent} if parent else {})}
        run = client.create_run(self._experiment_id(experiment), tags=tags, run_name=path.name,
                                start_time=_started_ms(summary))
        state = {"run_id": run.info.run_id, "experiment": experiment, "epochs": 0}
        params = records.params(path) if kind != "sweep" else {}
        mlflow = _mlflow()
        items = [mlflow.entities.Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), 100):
            client.log_batch(run.info.run_id, params=items[i:i + 100])
        records.write_state(path, self.target.uri, state)
        return state

    def _sync_run(self, path: Path, final: bool, parent: str | None, kind: str) -> str:
        mlflow = _mlflow()
        summary = records.summary_of(path)
        state = records.read_state(path, self.target.uri) or self._start(path, summary, parent, kind)
        run_id, client = state["run_id"], self.client()
        if state.get("finished"):
            return run_id
        rows = records.epoch_rows(path)
        new = [mlflow.entities.Metric(key, value, _now_ms(), epoch)
               for epoch, values in rows[state["epochs"]:] for key, value in values.items()]
        for i in range(0, len(new), BATCH):
            client.log_batch(run_id, metrics=new[i:i + BATCH])
        state["epochs"] = len(rows)
        status = records.status_of(path)
        if final and status in records.FINAL:
            self._finish(path, run_id, summary, {k for _, values in rows for k in values}, status, state)
        elif client.get_run(run_id).info.status != "RUNNING":
            client.update_run(run_id, status="RUNNING")  # a resumed run continues its MLflow run
        records.write_state(path, self.target.uri, state)
        return run_id

    def _finish(self, path: Path, run_id: str, summary: dict[str, Any], epoch_names: set[str], status: str,
                state: dict[str, Any]) -> None:
        mlflow, client = _mlflow(), self.client()
        step = int(summary.get("epochs_run") or state["epochs"])
        final = [mlflow.entities.Metric(k, v, _now_ms(), step)
                 for k, v in records.final_metrics(summary, epoch_names).items()]
        tags = [mlflow.entities.RunTag(k, v) for k, v in records.tags(path, summary, "run").items()
                if k != "dlrun.kind"]
        client.log_batch(run_id, metrics=final, tags=tags)
        for name in records.RUN_ARTIFACTS:
            if (path / name).is_file():
                client.log_artifact(run_id, str(path / name))
        if (path / names.MODEL).is_file() and not state.get("model"):
            log_keras_model(self.target.uri, run_id, path / names.MODEL)
            state["model"] = True
        client.set_terminated(run_id, records.MLFLOW_STATUS.get(status, "FINISHED"), _ended_ms(summary))
        state["finished"] = True

    def sync_sweep(self, path: Path) -> str | None:
        """Send a sweep: a parent run (its summary, results, heat map) and a nested run per trial."""
        path = Path(path)
        try:
            summary = records.summary_of(path)
            state = records.read_state(path, self.target.uri) or self._start(path, summary, None, "sweep")
            run_id = state["run_id"]
            for trial in records.trial_dirs(path):  # trials sent as they ended are skipped (their state says so)
                self.sync_run(trial, final=True, parent=run_id, kind="trial")
            if self.failure is None and not state.get("finished") and records.status_of(path) in records.FINAL:
                self._finish_sweep(path, run_id, summary, state)
            records.write_state(path, self.target.uri, state)
            return run_id
        except Exception as exc:
            self._failed(f"{path}", exc)
            return None

    def open_sweep(self, path: Path) -> str | None:
        """The sweep's parent run (created on the first call, with the sweep's tags), for trials to nest
        under as they end. Returns its MLflow run id, None when the store failed."""
        path = Path(path)
        try:
            state = records.read_state(path, self.target.uri) or self._start(
                path, records.summary_of(path), None, "sweep")
            return str(state["run_id"])
        except Exception as exc:
            self._failed(f"{path}", exc)
            return None

    def _finish_sweep(self, path: Path, run_id: str, summary: dict[str, Any], state: dict[str, Any]) -> None:
        mlflow, client = _mlflow(), self.client()
        best = summary.get("best") if isinstance(summary.get("best"), dict) else {}
        metrics = [mlflow.entities.Metric(f"best_{best['metric']}", float(best["value"]), _now_ms(), 0)] if (
            isinstance(best.get("value"), int | float) and best.get("metric")) else []
        counts = summary.get("counts") if isinstance(summary.get("counts"), dict) else {}
        tags = [mlflow.entities.RunTag(k, v) for k, v in records.tags(path, summary, "sweep").items()]
        tags += [mlflow.entities.RunTag(f"dlrun.trials.{k}", str(v)) for k, v in counts.items()]
        if best.get("trial") is not None:
            tags.append(mlflow.entities.RunTag("dlrun.best_trial", str(best["trial"])))
        client.log_batch(run_id, metrics=metrics, tags=tags)
        for name in records.SWEEP_ARTIFACTS:
            if (path / name).is_file():
                client.log_artifact(run_id, str(path / name))
        client.set_terminated(run_id, records.MLFLOW_STATUS.get(records.status_of(path), "FINISHED"))
        state["finished"] = True


def log_keras_model(uri: str, run_id: str, model_file: Path) -> None:
    """Log the saved model with MLflow's Keras flavour (mlflow.keras.load_model and pyfunc serve it);
    the engine loads it (the one door to Keras)."""
    mlflow = _mlflow()
    logging.getLogger("mlflow").setLevel(logging.ERROR)  # "no model signature": the flavour serves it as it is
    model, versions = exporting.load_for_logging(model_file)
    requirements = [f"{package}=={version}" for package, version in versions.items()]
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_id=run_id, log_system_metrics=False):  # ended by set_terminated afterwards
        mlflow.keras.log_model(model, name="model", pip_requirements=[*requirements, f"mlflow=={mlflow.__version__}"])


def _started_ms(summary: dict[str, Any]) -> int | None:
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(str(summary["started"])).timestamp() * 1000)
    except (KeyError, ValueError):
        return None


def _ended_ms(summary: dict[str, Any]) -> int | None:
    start, seconds = _started_ms(summary), summary.get("seconds")
    return start + int(seconds * 1000) if start is not None and isinstance(seconds, int | float) else None


def _now_ms() -> int:
    return int(time.time() * 1000)
