"""Tracking while a run trains: a background thread sends each epoch once metrics.csv has it, and the
end sends the rest (final metrics, artifacts, model, status). It reads only the run directory, so
training code knows nothing about trackers, and the backfill (`dlrun track`) is the same sync."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dlrun.store import names
from dlrun.tracking.mlflow_store import Mirror, MlflowTarget, require_mlflow, target

POLL_SECONDS = 1.0


def resolve(tracking: Any, track: str | None, runs_root: Path | str,
            resumed: Path | None = None) -> MlflowTarget | None:
    """Where to track: `--track mlflow[=URI]` wins over the config's `tracking.mlflow`, which wins over
    the store a resumed run was already mirrored to; None: nowhere.

    Args:
        tracking: The config's `tracking:` section (a TrackingConfig, plain data or None).
        track: The --track value: `mlflow` or `mlflow=URI`.
        runs_root: The runs folder, beside which the default local store lives.
        resumed: The directory of a run being resumed (its mlflow.json names its store).

    Raises:
        DlrunError: an unknown tracker, or mlflow is not installed.
    """
    from dlrun.errors import DlrunError

    if hasattr(tracking, "model_dump"):
        tracking = tracking.model_dump()
    section = (tracking or {}).get("mlflow") if isinstance(tracking, dict) else None
    if section is None and track is None and resumed is not None:
        section = _mirrored(resumed)
    if track is not None:
        kind, _, uri = track.partition("=")
        if kind.strip() != "mlflow":
            raise DlrunError(f"--track {track!r}: the tracker must be mlflow or mlflow=URI "
                             "(e.g. --track mlflow=http://127.0.0.1:5000)")
        section = {**(section or {}), **({"uri": uri.strip()} if uri.strip() else {})}
    if section is None:
        return None
    require_mlflow()
    return target(section.get("uri"), section.get("experiment"), runs_root)


def _mirrored(run_dir: Path) -> dict[str, Any] | None:
    """{uri, experiment} of the store a run directory was mirrored to, or None."""
    try:
        stores = json.loads((run_dir / names.MLFLOW_STATE).read_text(encoding="utf-8")).get("stores") or {}
    except (OSError, ValueError, AttributeError):
        return None
    for uri, state in stores.items():
        return {"uri": uri, "experiment": state.get("experiment") if isinstance(state, dict) else None}
    return None


@contextlib.contextmanager
def tracked_run(where: MlflowTarget | None, run_dir: Path, warn: Callable[[str], None]) -> Iterator[None]:
    """Mirror `run_dir` while the block trains into it, and its end when the block is left (also when it
    raises: an interrupted or failed run is sent as such)."""
    if where is None:
        yield
        return
    mirror = Mirror(where, warn)
    stop = threading.Event()

    def follow() -> None:
        seen = None
        while not stop.wait(POLL_SECONDS) and mirror.failure is None:
            try:
                stamp = (run_dir / names.METRICS).stat().st_mtime_ns
            except OSError:
                continue
            if stamp != seen:
                seen = stamp
                mirror.sync_run(run_dir, final=False)

    thread = threading.Thread(target=follow, name="dlrun-mlflow", daemon=True)
    mirror.sync_run(run_dir, final=False)  # the run, its params: visible in MLflow from the start
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        failed, mirror.failure = mirror.failure, None  # one more try at the end: what was missed goes now
        mirror.sync_run(run_dir, final=True)
        mirror.failure = mirror.failure or failed


class SweepMirror:
    """A sweep mirrored while it runs: its parent run once it starts (`open`), each trial's nested run
    (metrics, artifacts, model, status) as the trial ends. A store that fails is left alone until the
    sweep ends, when `track_sweep` sends whatever is missing and the parent's end."""

    def __init__(self, where: MlflowTarget, sweep_dir: Path, warn: Callable[[str], None]):
        self.mirror, self.sweep_dir = Mirror(where, warn), Path(sweep_dir)
        self.parent: str | None = None

    def open(self) -> None:
        """Create (or, on resume, find) the sweep's parent run; call once summary.json exists."""
        self.parent = self.mirror.open_sweep(self.sweep_dir)

    def trial_ended(self, trial_dir: Path) -> None:
        """Send an ended trial as a nested run of the sweep's."""
        if self.parent is not None and self.mirror.failure is None:
            self.mirror.sync_run(trial_dir, final=True, parent=self.parent, kind="trial")


def track_sweep(where: MlflowTarget | None, sweep_dir: Path, warn: Callable[[str], None]) -> None:
    """Mirror a finished (or stopped) sweep: the parent run and a nested run per trial (those a
    SweepMirror sent as they ended are not sent again)."""
    if where is not None:
        Mirror(where, warn).sync_sweep(sweep_dir)
