"""dlrun: a YAML-driven experiment runner for Keras.

The public API: every command is a function that returns what the command prints as JSON and
raises a `DlrunError` subclass for a mistake in its input (it never exits the process)::

    import dlrun

    summary = dlrun.train("configs/quickstart.yaml", ["train.epochs=3"])
    result = dlrun.evaluate(summary["run_dir"])

The functions are imported on first use, so `import dlrun` loads neither TensorFlow nor the
commands' dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dlrun._version import __version__
from dlrun.errors import (
    ConfigError,
    DataError,
    DlrunError,
    Interrupted,
    RunDirError,
    StorageError,
    SweepError,
    SweepFailed,
    TransferError,
    WeightsError,
)

if TYPE_CHECKING:
    from dlrun.commands.compare import compare_runs
    from dlrun.commands.evaluate import evaluate
    from dlrun.commands.export import export
    from dlrun.commands.predict import predict
    from dlrun.commands.resume import resume
    from dlrun.commands.runs import list_runs, query_runs
    from dlrun.commands.train import train
    from dlrun.commands.validate import validate
    from dlrun.config import LoadedConfig, load_config
    from dlrun.sweeps.run import sweep
    from dlrun.transfers.run import transfer

_LAZY = {
    "train": "dlrun.commands.train",
    "resume": "dlrun.commands.resume",
    "evaluate": "dlrun.commands.evaluate",
    "predict": "dlrun.commands.predict",
    "export": "dlrun.commands.export",
    "validate": "dlrun.commands.validate",
    "list_runs": "dlrun.commands.runs",
    "compare_runs": "dlrun.commands.compare",
    "query_runs": "dlrun.commands.runs",
    "sweep": "dlrun.sweeps.run",
    "transfer": "dlrun.transfers.run",
    "load_config": "dlrun.config",
    "LoadedConfig": "dlrun.config",
}

__all__ = [
    "ConfigError", "DataError", "DlrunError", "Interrupted", "LoadedConfig", "RunDirError", "StorageError",
    "SweepError", "SweepFailed", "TransferError", "WeightsError", "__version__", "compare_runs", "evaluate",
    "export", "list_runs", "load_config", "predict", "query_runs", "resume", "sweep", "train", "transfer", "validate",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'dlrun' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
