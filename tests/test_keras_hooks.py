"""A Keras release that changes the internals dlrun uses for speed (engine/keras_hooks.py) changes no
number: dlrun warns once and trains with Keras' own code, with the metrics of the hooked path. Simulated
in-process by taking a private hook away, or by making Keras' fit replace a train function already set."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_MLP, Recorder, deep_merge, trial_tasks, without_seconds, write_config

from dlrun import train
from dlrun.engine import keras_hooks
from dlrun.engine.keras_hooks import KerasInternalsWarning
from dlrun.interrupts import StopRequest
from dlrun.store import files, names
from dlrun.sweeps.executors import SequentialExecutor

# 200 training images at batch 32: 7 steps per epoch, so 3 steps per call makes calls of 3, 3 and 1
CONFIG = deep_merge(TINY_MLP, {"data": {"validation": "test"}, "train": {"epochs": 2, "steps_per_execution": 3}})


@pytest.fixture(autouse=True)
def probed_afresh() -> Iterator[None]:
    """Each test probes Keras itself (the probes' answers are cached per process), and leaves none behind."""
    keras_hooks.train_function_hook.cache_clear()
    keras_hooks.variable_hooks.cache_clear()
    yield
    keras_hooks.train_function_hook.cache_clear()
    keras_hooks.variable_hooks.cache_clear()


def _rows(summary: dict[str, Any]) -> list[dict[str, str]]:
    return without_seconds(files.read_csv(Path(summary["run_dir"]) / names.METRICS))


def _trainer() -> Any:
    from keras.src.backend.tensorflow import trainer

    return trainer


def _hook_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    # as a Keras whose private trainer module moved (its classes, loaded already, still work)
    monkeypatch.setitem(sys.modules, _trainer().__name__, None)


def _fit_replaces_the_train_function(monkeypatch: pytest.MonkeyPatch) -> None:
    # as a Keras might that rebuilds its train function in every fit: its own loop pads the last call
    # of an epoch with the next epoch's batches
    cls = _trainer().TensorFlowTrainer
    original = cls.make_train_function
    monkeypatch.setattr(cls, "make_train_function", lambda self, force=False: original(self, force=True))


@pytest.mark.parametrize("change", [_hook_missing, _fit_replaces_the_train_function], ids=["missing", "changed"])
def test_a_changed_train_function_hook_falls_back_to_keras_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               change: Any) -> None:
    hooked = train(write_config(tmp_path, CONFIG, name="hooked.yaml"), runs_root=tmp_path / "hooked")
    assert hooked["steps_per_execution"] == 3
    keras_hooks.train_function_hook.cache_clear()
    change(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = train(write_config(tmp_path, CONFIG, name="a.yaml"), runs_root=tmp_path / "a")
        second = train(write_config(tmp_path, CONFIG, name="b.yaml"), runs_root=tmp_path / "b")
    said = [str(w.message) for w in caught if issubclass(w.category, KerasInternalsWarning)]
    assert len(said) == 1 and "one training step per call" in said[0], said
    assert (first["steps_per_execution"], second["steps_per_execution"]) == (1, 1)
    assert _rows(first) == _rows(second) == _rows(hooked)
    assert first["metrics"] == hooked["metrics"]


def _penalty_frozen_at_init(monkeypatch: pytest.MonkeyPatch) -> None:
    # as a Keras might whose L2 keeps its factor as a constant it made at construction
    from keras import ops, regularizers

    init = regularizers.L2.__init__

    def frozen_init(self: Any, l2: float = 0.01) -> None:
        init(self, l2)
        self.frozen = float(l2)

    monkeypatch.setattr(regularizers.L2, "__init__", frozen_init)
    monkeypatch.setattr(regularizers.L2, "__call__", lambda self, x: self.frozen * ops.sum(ops.square(x)))


def test_a_changed_penalty_builds_every_trial_with_the_same_metrics(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    configs = [deep_merge(CONFIG, {"model": {"l2": l2}, "train": {"steps_per_execution": 1}}) for l2 in (0.01, 0.1)]
    _penalty_frozen_at_init(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tasks, datasets = trial_tasks(tmp_path, configs)
        executor, events = SequentialExecutor(), Recorder()
        executor.run(tasks, datasets, events, StopRequest())
    assert [r.status for r in events.results] == ["completed", "completed"]
    said = [str(w.message) for w in caught if issubclass(w.category, KerasInternalsWarning)]
    assert len(said) == 1 and "a model built for every trial" in said[0], said
    assert executor.models is not None and executor.models.reused == 0
    alone = train(write_config(tmp_path, configs[1], name="alone.yaml"), runs_root=tmp_path / "alone")
    lent = files.read_csv(tmp_path / "trials" / "001" / names.METRICS)
    assert without_seconds(lent) == _rows(alone)
