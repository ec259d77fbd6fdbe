"""`dlrun export`: hand a run's trained model to the next tool, as a Keras 3 `.keras` file, a legacy
Keras-2 `.h5` (tf-keras' `load_model`) or a TensorFlow SavedModel folder (`tf.saved_model.load`, its
`serve` signature). Never overwrites; written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlrun.commands.saved import build_saved_model, open_target
from dlrun.errors import DlrunError
from dlrun.store import names
from dlrun.store.rundir import find_run_dir
from dlrun.ui.console import Reporter

FORMATS = tuple(names.EXPORTS)


def export(run_dir: str | Path, fmt: str = "keras", out: str | Path | None = None,
           reporter: Reporter | None = None) -> dict[str, Any]:
    """Export the trained model of a run directory.

    Args:
        run_dir: A run directory written by `dlrun train` (or transfer, or a sweep trial).
        fmt: `keras` (.keras), `h5` (legacy Keras-2 full model: architecture and weights) or
            `savedmodel` (a TensorFlow SavedModel folder with a `serve` signature).
        out: The new file or folder (default: export.keras, export.h5 or export_savedmodel in the run).
        reporter: Where the result line goes (default: lines and tables on stdout, no progress
            bars; `dlrun.ui.console.Reporter(json_mode=True)` prints nothing).

    Returns:
        {"run_dir", "format", "path", "input_shape"}.

    Raises:
        DlrunError: an unknown format, or `out` exists (never overwritten).
        RunDirError, WeightsError, ConfigError: not a run directory, or its weights are missing or damaged.
    """
    reporter = reporter or Reporter(live=False)
    if fmt not in FORMATS:
        raise DlrunError(f"unknown export format '{fmt}'; use one of {', '.join(FORMATS)}")
    run = find_run_dir(run_dir).path
    path = Path(out) if out is not None else run / names.EXPORTS[fmt]
    suffix = {"keras": ".keras", "h5": ".h5"}.get(fmt)
    if suffix and path.suffix.lower() != suffix:
        raise DlrunError(f"{path}: a {fmt} export is a {suffix} file; give --out a name ending in {suffix}")
    if path.exists() or path.is_symlink():
        raise DlrunError(f"{path} exists; dlrun never overwrites: give --out a new path")
    if not path.parent.is_dir():
        raise DlrunError(f"{path.parent}: no such folder for --out; create it first")
    with reporter.progress() as progress:
        saved = open_target(run, progress=progress)
        model = build_saved_model(saved, progress)
    from dlrun.engine.exporting import write_model

    write_model(model, fmt, path)
    reporter.info(f"exported {run} as {fmt}: {path}")
    return {"run_dir": str(run), "format": fmt, "path": str(path), "input_shape": list(saved.spec.input_shape)}
