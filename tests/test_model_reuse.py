"""A sweep lends each trial a compiled model of the same architecture (engine/reuse.py); a trial trained on
a lent model must be exactly the trial a fresh process trains: the same epochs, metrics, weights and saved
model. Also: which configs share a model, and when a worker process makes way for a fresh one."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from conftest import TINY_MLP, Recorder, deep_merge, run_cli, trial_tasks, without_seconds, write_config

from dlrun.config import load_config
from dlrun.data import load_dataset
from dlrun.engine.reuse import reuse_key
from dlrun.interrupts import StopRequest
from dlrun.store import files, names
from dlrun.sweeps.executors import SequentialExecutor, TrialResult
from dlrun.sweeps.executors.processes import ProcessExecutor, _Worker

# batch norm (non-trainable statistics), dropout (a random-generator state), L2 and Adam (slots): every
# kind of state a lent model must take over from the trial's own initial model
REUSED = deep_merge(TINY_MLP, {
    "model": {"layers": [{"flatten": {}}, {"dense": {"units": 16, "activation": "relu"}}, {"batch_norm": {}},
                         {"dropout": {"rate": 0.3}}, {"dense": {"units": 10, "activation": "softmax"}}],
              "l2": 0.01},
    "optimizer": {"name": "adam", "lr": 0.01},
})
# (lr, l2, units): the second and fourth trials borrow the first's model, the third is another architecture
TRIALS = [(0.01, 0.01, 16), (0.003, 0.1, 16), (0.01, 0.01, 8), (0.02, 0.001, 16)]


pytestmark = pytest.mark.xdist_group("model_reuse")  # its module fixture runs once, on one worker

@pytest.fixture(scope="module")
def lent(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SequentialExecutor, Recorder]:
    """The four TRIALS run one after another in this process, as a sweep runs them."""
    tmp = tmp_path_factory.mktemp("reuse")
    configs = []
    for lr, l2, units in TRIALS:
        layers = [dict(item) for item in REUSED["model"]["layers"]]
        layers[1] = {"dense": {"units": units, "activation": "relu"}}
        configs.append(deep_merge(REUSED, {"model": {"layers": layers, "l2": l2}, "optimizer": {"lr": lr}}))
    tasks, datasets = trial_tasks(tmp, configs)
    executor, events = SequentialExecutor(), Recorder()
    executor.run(tasks, datasets, events, StopRequest())
    return tmp / "trials", executor, events


def test_trials_of_one_architecture_borrow_the_kept_model(lent: tuple[Path, SequentialExecutor, Recorder]) -> None:
    _, executor, events = lent
    assert [r.status for r in events.results] == ["completed"] * 4
    assert executor.models is not None and executor.models.reused == 2  # trials 001 and 003
    assert executor.models.rebuilt == 1  # 003 has 001's seed: it takes the initial state 001 built


@pytest.mark.parametrize("trial", ["001", "003"])
def test_a_trial_on_a_lent_model_is_the_trial_a_fresh_process_trains(
        lent: tuple[Path, SequentialExecutor, Recorder], tmp_path: Path, trial: str) -> None:
    trials, _, _ = lent
    proc = run_cli("train", trials / trial / names.CONFIG, "--run-dir", tmp_path / "fresh", "--json")
    assert proc.returncode == 0, proc.stderr
    fresh, borrowed = tmp_path / "fresh", trials / trial
    assert without_seconds(files.read_csv(borrowed / names.METRICS)) == \
        without_seconds(files.read_csv(fresh / names.METRICS))
    assert files.read_json(borrowed / names.SUMMARY)["metrics"] == files.read_json(fresh / names.SUMMARY)["metrics"]
    assert _arrays(borrowed / names.WEIGHTS) == _arrays(fresh / names.WEIGHTS)
    assert _keras_config(borrowed / names.MODEL) == _keras_config(fresh / names.MODEL)


def _arrays(path: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: out.update({name: np.asarray(item).tobytes()})
                     if isinstance(item, h5py.Dataset) else None)
    return out


def _keras_config(path: Path) -> Any:
    """The model's config.json, less `shared_object_id` (a Python object id: no two processes share one)."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "shared_object_id"}
        return [strip(v) for v in value] if isinstance(value, list) else value

    with zipfile.ZipFile(path) as z:
        return strip(json.loads(z.read("config.json")))


def test_the_saved_model_records_the_configured_lambda(lent: tuple[Path, SequentialExecutor, Recorder]) -> None:
    config = _keras_config(lent[0] / "001" / names.MODEL)
    penalties = [layer["config"]["kernel_regularizer"] for layer in config["config"]["layers"]
                 if layer["class_name"] == "Dense" and layer["config"]["kernel_regularizer"]]
    assert [p["config"]["l2"] for p in penalties] and {p["config"]["l2"] for p in penalties} == {0.1}


def _key(tmp_path: Path, **changes: Any) -> str | None:
    lc = load_config(write_config(tmp_path, deep_merge(REUSED, changes)))
    return reuse_key(lc.config, load_dataset(lc.config.data, lc.config.task))


def test_learning_rate_lambda_and_seed_do_not_change_the_model_a_trial_borrows(tmp_path: Path) -> None:
    assert _key(tmp_path) == _key(tmp_path, optimizer={"lr": 0.5}, model={"l2": 3.0}, seed=7, name="other")


@pytest.mark.parametrize("changes", [
    {"model": {"l2": 0.0}},                                   # no penalty: another graph
    {"optimizer": {"momentum": 0.0, "name": "sgd"}},          # another optimizer
    {"optimizer": {"decay": 0.01}},                           # a schedule: its lr is part of it
    {"train": {"batch_size": 64}},
], ids=["no-l2", "optimizer", "schedule", "batch"])
def test_a_different_graph_borrows_nothing(tmp_path: Path, changes: dict[str, Any]) -> None:
    assert _key(tmp_path) != _key(tmp_path, **changes)


def test_schedules_keep_their_learning_rate_in_the_key(tmp_path: Path) -> None:
    assert _key(tmp_path, optimizer={"decay": 0.01}) != _key(tmp_path, optimizer={"decay": 0.01, "lr": 0.5})


@pytest.mark.parametrize(("peaks", "replaced"), [([900.0, 950.0, 1000.0], [False, False, False]),
                                                 ([900.0, 950.0, 1200.0], [False, False, True])])
def test_a_worker_makes_way_once_its_memory_grew(peaks: list[float], replaced: list[bool]) -> None:
    executor, worker = ProcessExecutor(1, growth_mib=256), _Worker(process=None, conn=None)  # type: ignore[arg-type]
    decisions = []
    for peak in peaks:
        decisions.append(executor._spent(worker, TrialResult("t", "completed", peak_mib=peak)))
    assert decisions == replaced


def test_the_kept_layer_summary_follows_what_it_counts() -> None:
    """model.txt of a lent model is rendered once and kept, but never outlives a change it shows: the
    optimizer's variables once built, a layer frozen."""
    import keras

    from dlrun.engine import model as engine_model

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    before = engine_model.summary_text(model)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(np.zeros((4, 4)), np.zeros((4, 2)), verbose=0)
    trained = engine_model.summary_text(model)
    model.layers[0].trainable = False
    frozen = engine_model.summary_text(model)
    assert "Optimizer params" in trained and "Optimizer params" not in before
    assert "Non-trainable params: 15" in frozen and frozen != trained
    assert engine_model.summary_text(model) is frozen  # kept while nothing it counts changed
    engine_model._SUMMARIES.clear()
    assert engine_model.summary_text(model) == frozen  # what Keras renders afresh


def _cycled(tmp_path: Path, units: list[int]) -> SequentialExecutor:
    """Trials of the architectures `units`, one after another in this process (one epoch each)."""
    configs = []
    for n, width in enumerate(units):
        layers = [dict(item) for item in REUSED["model"]["layers"]]
        layers[1] = {"dense": {"units": width, "activation": "relu"}}
        configs.append(deep_merge(REUSED, {"model": {"layers": layers}, "optimizer": {"lr": 0.01 * (n + 1)},
                                           "train": {"epochs": 1}}))
    tasks, datasets = trial_tasks(tmp_path, configs)
    executor = SequentialExecutor()
    executor.run(tasks, datasets, Recorder(), StopRequest())
    return executor


def test_a_shuffled_grid_over_a_few_sizes_finds_each_size_kept(tmp_path: Path) -> None:
    """A pruned grid runs its points shuffled: each of three sizes comes back after the other two."""
    executor = _cycled(tmp_path, [4, 8, 16, 4, 8, 16])
    assert executor.models is not None and executor.models.reused == 3


def test_kept_models_stay_within_their_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dlrun.engine.reuse.KEPT_BYTES", 1)  # every model is larger: one kept at a time
    executor = _cycled(tmp_path, [4, 8, 4])
    assert executor.models is not None and executor.models.reused == 0 and len(executor.models._models) == 1
