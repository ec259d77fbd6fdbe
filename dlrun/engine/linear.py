"""A one-layer linear regression's fitted coefficients, and the least-squares optimum of the same rows
beside them (the course's table fit: how far the optimizer got, against where it could have gone).
NumPy only: the weights are read from the model, the optimum solved with numpy.linalg.lstsq."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlrun.config.schema import ExperimentConfig


def coefficients(model: Any, cfg: ExperimentConfig, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """`{"coefficients": ...}` for a one-layer regression (else {}): its weights, bias and SSE on the
    training rows `x`, `y`, and, when the layer is linear (one unit, no activation, no L2 penalty), the
    least-squares optimum of the same rows as `optimum` (weights, bias, sse)."""
    if cfg.task != "regression" or len(model.layers) != 1:
        return {}
    weights = model.layers[0].get_weights()
    out: dict[str, Any] = {"weights": weights[0].reshape(-1).tolist()}
    if len(weights) > 1:
        out["bias"] = float(weights[1].reshape(-1)[0])
    item = cfg.model.layers[0]
    linear = (item.type == "dense" and getattr(item.args, "activation", None) in (None, "linear")
              and getattr(item.args, "units", 0) == 1
              and cfg.model.l2 == 0 and x.ndim == 2 and len(out["weights"]) == x.shape[1])
    if linear:
        rows, target = x.astype(np.float64), y.astype(np.float64).reshape(-1)
        fitted = rows @ np.asarray(out["weights"]) + out.get("bias", 0.0)
        out["sse"] = float(np.sum((fitted - target) ** 2))
        out["optimum"] = least_squares(rows, target, "bias" in out)
    return {"coefficients": out}


def least_squares(x: np.ndarray, y: np.ndarray, bias: bool) -> dict[str, Any]:
    """The weights (and bias, as a column of ones) minimising the sum of squared errors of `x @ w + b`
    against `y`, and that sum."""
    design = np.column_stack([x, np.ones(len(x))]) if bias else x
    solution, *_ = np.linalg.lstsq(design, y, rcond=None)
    out: dict[str, Any] = {"weights": solution[:x.shape[1]].tolist()}
    if bias:
        out["bias"] = float(solution[-1])
    out["sse"] = float(np.sum((design @ solution - y) ** 2))
    return out
