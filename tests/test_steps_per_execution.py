"""train.steps_per_execution is exact: any value trains on the batches of 1, in the same order, and
gives identical metrics.csv rows (all but seconds) and weights on CPU; `auto` picks a value and the
run records it.

The tiny MLP has 200 training images at batch 32: 7 steps per epoch (the last one of 8 images),
so 3 steps per call makes calls of 3, 3 and 1 steps.
"""

from __future__ import annotations

import dataclasses
import json
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TINY_MLP, deep_merge, write_config

from dlrun import resume, train
from dlrun.config import load_config
from dlrun.data import load_checked
from dlrun.engine.execution import AUTO_FLOPS_PER_CALL, AUTO_MAX, choose, flops_per_example
from dlrun.engine.fit import fit_epochs, seeded_model
from dlrun.errors import Interrupted
from dlrun.interrupts import StopRequest
from dlrun.store import files, names
from dlrun.ui.console import EpochProgress, Reporter

STEPS = 7  # ceil(200 / 32)
CONFIG = deep_merge(TINY_MLP, {"data": {"validation": "test"}, "train": {"epochs": 3}})  # all 200 train


def _rows(summary: dict[str, Any]) -> list[dict[str, str]]:
    rows = files.read_csv(Path(summary["run_dir"]) / names.METRICS)
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def _state(summary: dict[str, Any]) -> list[np.ndarray]:
    """The final checkpoint's arrays: every model variable and the optimizer state."""
    with np.load(Path(summary["run_dir"]) / names.CHECKPOINT_DIR / names.CHECKPOINT_STATE) as npz:
        return [npz[k] for k in sorted(npz.files) if k != "__meta__"]


class _Runs:
    """Trains CONFIG variants once per module; each gets its own runs folder."""

    def __init__(self, root: Path):
        self.root, self.done = root, {}

    def get(self, label: str, data_change: Any = None, **train_settings: Any) -> dict[str, Any]:
        if label not in self.done:
            folder = self.root / label
            folder.mkdir()
            config = write_config(folder, CONFIG, train=train_settings)
            data = None
            if data_change is not None:
                data = data_change(load_checked(load_config(config)))
            self.done[label] = train(config, runs_root=folder / "runs", data=data)
        return self.done[label]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> _Runs:
    return _Runs(tmp_path_factory.mktemp("spe"))


def _no_validation(data: Any) -> Any:
    return dataclasses.replace(data, x_val=None, y_val=None)


@pytest.mark.parametrize("setting", [3, "auto", 100])
def test_metrics_equal_one_step_per_call(runs: _Runs, setting: int | str) -> None:
    one = runs.get("one", steps_per_execution=1)
    other = runs.get(f"spe-{setting}", steps_per_execution=setting)
    assert _rows(other) == _rows(one)


def test_metrics_equal_without_validation(runs: _Runs) -> None:
    one = runs.get("one-noval", _no_validation, steps_per_execution=1)
    three = runs.get("three-noval", _no_validation, steps_per_execution=3)
    assert "val_loss" not in one["metrics"] and _rows(three) == _rows(one)


def test_early_stopping_stops_at_the_same_epoch_with_the_same_rows(runs: _Runs) -> None:
    stopping = {"monitor": "val_accuracy", "patience": 0, "min_delta": 0.5}  # stops after epoch 2
    one = runs.get("one-es", steps_per_execution=1, early_stopping=stopping)
    three = runs.get("three-es", steps_per_execution=3, early_stopping=stopping)
    assert one["epochs_run"] == 2 and _rows(three) == _rows(one)


def test_final_weights_and_optimizer_state_equal_one_step_per_call(runs: _Runs) -> None:
    stopping = {"monitor": "val_accuracy", "patience": 0, "min_delta": 0.5}
    one = runs.get("one-es", steps_per_execution=1, early_stopping=stopping)
    three = runs.get("three-es", steps_per_execution=3, early_stopping=stopping)
    assert all(np.array_equal(a, b) for a, b in zip(_state(one), _state(three), strict=True))


def test_each_epoch_runs_exactly_its_steps(tmp_path: Path) -> None:
    lc = load_config(write_config(tmp_path, CONFIG, train={"epochs": 2, "steps_per_execution": 3}))
    data = load_checked(lc)
    model = seeded_model(lc, data)
    done: list[int] = []

    def on_row(row: dict[str, Any]) -> bool:
        done.append(int(model.optimizer.iterations.numpy()))
        return False

    fit_epochs(model, data, lc.config, Reporter(live=False), StopRequest(), 0, 2, on_row)
    assert done == [STEPS, 2 * STEPS]  # Keras alone runs 3 calls of 3 steps in the first epoch


class _CtrlCInEpoch(EpochProgress):
    """A live progress bar whose user presses Ctrl-C after the first call of epoch `at` (1-based)."""

    at = 2

    def batch_end(self, batch: int, logs: dict[str, float]) -> None:
        super().batch_end(batch, logs)
        if self.progress.tasks[0].fields["epoch"] == self.at and not getattr(self, "pressed", False):
            self.pressed = True
            signal.raise_signal(signal.SIGINT)


class _Reporter(Reporter):
    def epoch_progress(self, epochs: int, steps: int, start_epoch: int = 0) -> EpochProgress | None:
        return _CtrlCInEpoch(self.out, epochs, steps, start_epoch)


def test_interrupted_in_an_epoch_and_resumed_equals_one_step_per_call(runs: _Runs, tmp_path: Path) -> None:
    config = write_config(tmp_path, CONFIG, train={"steps_per_execution": 3})
    with pytest.raises(Interrupted):
        train(config, run_dir=tmp_path / "run", reporter=_Reporter(live=True))
    stopped = json.loads((tmp_path / "run" / names.SUMMARY).read_text())
    resumed = resume(tmp_path / "run")
    assert stopped["last_complete_epoch"] == 1
    assert _rows(resumed) == _rows(runs.get("one", steps_per_execution=1))


def test_summary_records_the_value_used(runs: _Runs) -> None:
    assert runs.get("spe-auto", steps_per_execution="auto")["steps_per_execution"] == STEPS
    assert runs.get("spe-100", steps_per_execution=100)["steps_per_execution"] == STEPS
    assert runs.get("spe-3", steps_per_execution=3)["steps_per_execution"] == 3


def test_auto_is_the_default(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path, TINY_MLP)).config.train.steps_per_execution == "auto"


def test_train_says_which_value_auto_chose(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, CONFIG, train={"epochs": 1})
    train(config, runs_root=tmp_path / "runs", reporter=Reporter(live=False))
    assert f"steps_per_execution: {STEPS} (auto; {STEPS} steps per epoch)" in capsys.readouterr().out


def test_auto_takes_up_to_the_cap_for_light_steps() -> None:
    assert choose("auto", 250, 2e7) == AUTO_MAX


def test_auto_takes_fewer_steps_when_each_is_heavy() -> None:
    assert choose("auto", 250, AUTO_FLOPS_PER_CALL / 4) == 4


def test_auto_takes_one_step_when_a_step_exceeds_the_budget() -> None:
    assert choose("auto", 250, AUTO_FLOPS_PER_CALL * 3) == 1


def test_a_call_never_spans_epochs() -> None:
    assert (choose("auto", 5, 1.0), choose(64, 5, 1.0)) == (5, 5)


def test_a_given_value_is_kept() -> None:
    assert choose(8, 250, AUTO_FLOPS_PER_CALL * 3) == 8


def test_flops_of_an_mlp(tmp_path: Path) -> None:
    from dlrun.engine.model import build_model

    model = build_model(load_config(write_config(tmp_path, TINY_MLP)), (28, 28, 1))
    first, second = 784 * 16, 16 * 10  # multiply-adds of the two dense kernels
    # inference 2 per multiply-add; training adds both gradients, but none flows into the first layer
    assert flops_per_example(model) == (2 * first * 2 + 2 * second * 3, 2 * (first + second))


def test_flops_of_a_convolution_count_its_output_positions(tmp_path: Path) -> None:
    from dlrun.engine.model import build_model

    layers = [{"conv2d": {"filters": 4, "kernel_size": 3}}, {"flatten": {}}, {"dense": {"units": 10}}]
    model = build_model(load_config(write_config(tmp_path, TINY_MLP, model={"layers": layers})), (28, 28, 1))
    conv, dense = 3 * 3 * 1 * 4 * 26 * 26, 26 * 26 * 4 * 10
    assert flops_per_example(model)[1] == 2 * (conv + dense)
