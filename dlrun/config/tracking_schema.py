"""The config's `tracking:` section: where a run is also recorded (MLflow). Part of the config
contract (see schema.py); the run directory stays the record, a tracker only mirrors it."""

from __future__ import annotations

from pydantic import Field

from dlrun.config.section import Section


class MlflowTracking(Section):
    """An MLflow tracking store: a server (http://HOST:PORT) or a local database."""

    uri: str | None = Field(default=None, description="The tracking URI: http(s)://HOST:PORT of a tracking "
                            "server, or sqlite:///PATH.db; default: sqlite:///RUNS/mlflow.db beside the runs "
                            "folder (`mlflow ui --backend-store-uri sqlite:///runs/mlflow.db` opens it).")
    experiment: str | None = Field(default=None, max_length=200, description="The MLflow experiment the runs go "
                                   "into (created when missing); default: the config's name.")


class TrackingConfig(Section):
    """Trackers that mirror each run (parameters, metrics per epoch, artifacts, the model)."""

    mlflow: MlflowTracking | None = Field(default=None, description="Log to MLflow (pip install dlrun[mlflow]): "
                                          "{uri: ..., experiment: ...}, or {} for the defaults.")
