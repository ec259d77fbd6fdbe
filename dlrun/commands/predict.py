"""`dlrun predict`: what a trained model says about new inputs (image files and folders, .npy arrays,
.csv feature rows), prepared exactly as its training data was; a table, JSON, a CSV and a grid of
the images with their predicted labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dlrun.commands.saved import build_saved_model, open_target
from dlrun.data.inputs import NewInputs, read_inputs
from dlrun.errors import DataError, DlrunError
from dlrun.store import files
from dlrun.ui.console import Reporter, rows_table

GRID_MAX = 25  # the grid shows at most 5 x 5 inputs


def predict(target: str | Path, inputs: list[str | Path], config: str | Path | None = None,
            overrides: list[str] | None = None, top: int = 3, out: str | Path | None = None,
            grid: str | Path | None = None, reporter: Reporter | None = None,
            use_cache: bool = True) -> dict[str, Any]:
    """Predict the class (or value) of new inputs with a trained model.

    Every input is read and checked before anything is predicted, and prepared as the run's training
    data was (data/inputs.py `prepare_inputs`), so a training image gets the probabilities evaluation
    gives it.

    Args:
        target: A run directory, or a weights file (.weights.h5, .keras, legacy .h5) with `config`.
        inputs: Image files, folders of image files, .npy arrays of examples, .csv files of feature rows.
        config: The config for the architecture and data (needed for a weights file; a run uses its own).
        overrides: `KEY=VALUE` strings applied to the config.
        top: How many of the most probable classes each prediction lists.
        out: Also write the predictions as CSV here (a new file).
        grid: Also draw the image inputs with their predicted labels here (PNG, at most 5x5).
        reporter: Where the table goes (default: lines and tables on stdout, no progress
            bars; `dlrun.ui.console.Reporter(json_mode=True)` prints nothing).
        use_cache: Serve the data from the data cache (only read for a weights file or an old run).

    Returns:
        {"target", "task", "predictions": [{"source", "class", "probability", "top"} or {"source",
        "value"}], "out", "grid"}.

    Raises:
        DataError: an input that cannot be read or does not fit the model (named, with what was expected).
        RunDirError, WeightsError, ConfigError: a bad target or config; DlrunError: --out or --grid exists.
    """
    reporter = reporter or Reporter(live=False)
    if top < 1:
        raise DlrunError(f"--top must be at least 1, got {top}")
    for path, flag in ((out, "--out"), (grid, "--grid")):
        if path is not None and Path(path).exists():
            raise DlrunError(f"{path} exists; dlrun never overwrites a file: give {flag} a new path")
    with reporter.progress() as progress:
        saved = open_target(target, config, overrides, use_cache, progress)
        new = read_inputs(list(inputs), saved.spec)  # every input checked before the model loads
        if grid is not None and saved.spec.kind != "images":
            raise DataError(f"--grid draws image inputs; {target} was trained on a table")
        model = build_saved_model(saved, progress)
    rows = _predictions(model, new, saved.lc.config, saved.spec.class_names, top)
    result = {"target": str(target), "task": saved.spec.task, "predictions": rows,
              "out": str(out) if out else None, "grid": str(grid) if grid else None}
    if out is not None:
        columns = list(rows[0]) if "value" in rows[0] else ["source", "class", "probability", "top"]
        files.write_csv(out, columns, [{**r, "top": _top_text(r["top"])} if "top" in r else r for r in rows])
    if grid is not None:
        from dlrun.ui.plots import prediction_grid

        titles = grid_titles(rows[:GRID_MAX])
        prediction_grid(new.x[:GRID_MAX], titles, Path(grid), f"{Path(target).name}: predictions")
    _report(reporter, rows, result)
    return result


def grid_titles(rows: list[dict[str, Any]], width: int = 24) -> list[str]:
    """A grid image's title: its file name (its end, when long), then the prediction."""
    titles = []
    for r in rows:
        name = Path(r["source"]).name
        name = name if len(name) <= width else "…" + name[-(width - 1):]
        titles.append(f"{name}\n" + (f"{r['class']} ({r['probability']:.2f})" if "class" in r else f"{r['value']:.3g}"))
    return titles


def _predictions(model: Any, new: NewInputs, cfg: Any, class_names: list[str] | None, top: int) -> list[dict[str, Any]]:
    """One row per input: the predicted class, its probability and the top-K (or the regression value)."""
    from dlrun.engine.predictions import class_probabilities, raw_outputs

    if cfg.task == "regression":
        values = raw_outputs(model, new.x, cfg).reshape(len(new.x), -1)[:, 0]
        return [{"source": s, "value": float(v)} for s, v in zip(new.sources, values, strict=True)]
    probabilities = class_probabilities(model, new.x, cfg)
    names = class_names or [str(k) for k in range(probabilities.shape[1])]
    rows = []
    for source, p in zip(new.sources, probabilities, strict=True):
        order = np.argsort(-p, kind="stable")[:top]
        ranked = [{"class": names[k], "probability": float(p[k])} for k in order]
        rows.append({"source": source, "class": ranked[0]["class"], "probability": ranked[0]["probability"],
                     "top": ranked})
    return rows


def _top_text(ranked: list[dict[str, Any]]) -> str:
    return "; ".join(f"{r['class']}: {r['probability']:.4f}" for r in ranked)


def _report(reporter: Reporter, rows: list[dict[str, Any]], result: dict[str, Any]) -> None:
    if "value" in rows[0]:
        table = rows_table("predictions", ["input", "value"], [[r["source"], r["value"]] for r in rows])
    else:
        table = rows_table("predictions", ["input", "class", "probability", "top"],
                           [[r["source"], r["class"], f"{r['probability']:.4f}", _top_text(r["top"])] for r in rows])
    reporter.table(table)
    for key, what in (("out", "predictions"), ("grid", "grid")):
        if result[key]:
            reporter.info(f"{what} written to {result[key]}")
