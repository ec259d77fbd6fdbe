"""Writing a trained model for the next tool: Keras 3's .keras, the legacy Keras-2 .h5 (what tf-keras'
`load_model` reads: `model_config` and `model_weights`), and a TensorFlow SavedModel for serving
(Keras' ExportArchive, with a `serve` signature). Each is written beside its target and renamed into
place, so a reader never sees half of one. And reading a run's model back for a tracker to log."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dlrun.engine import backend
from dlrun.store.files import atomic_path


def write_model(model: Any, fmt: str, out: Path) -> None:
    """Write `model` to the new path `out` as `fmt` (keras | h5 | savedmodel), atomically."""
    if fmt in ("keras", "h5"):
        with atomic_path(out) as tmp, _quiet_absl():  # the temporary name keeps the suffix: Keras' format
            model.save(tmp)  # .h5: Keras warns it is legacy through absl; legacy is what was asked for
            if fmt == "h5":
                _as_keras2(tmp)
        return
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        shutil.rmtree(tmp)  # ExportArchive creates the folder itself
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # it prints the signatures
            model.export(str(tmp), format="tf_saved_model", verbose=False)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_for_logging(path: Path) -> tuple[Any, dict[str, str]]:
    """A run's saved .keras model, for a tracker to log in its Keras flavour (MLflow's).

    Args:
        path: The model file (safe mode: nothing in it runs on loading).

    Returns:
        The uncompiled Keras model, and the versions that load it again: {"keras": ..., "tensorflow": ...}.
    """
    keras = backend.keras()
    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    return model, {"keras": keras.__version__, "tensorflow": backend.tf().__version__}


def _as_keras2(path: Path) -> None:
    """Rewrite a Keras 3 legacy .h5 in place so tf-keras (Keras 2) loads it: the model config in Keras 2's
    form, and no Keras 3 training config (tf-keras would try to compile from it; it loads uncompiled)."""
    import h5py

    from dlrun.weights.keras2_config import keras2_object

    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        f.attrs["model_config"] = json.dumps(keras2_object(config))
        if "training_config" in f.attrs:
            del f.attrs["training_config"]


@contextlib.contextmanager
def _quiet_absl() -> Any:
    """absl's warnings (Keras' "HDF5 is legacy" note) off for the block."""
    from absl import logging as absl_logging

    level = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        yield
    finally:
        absl_logging.set_verbosity(level)
