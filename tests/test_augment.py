"""`data.augment`: Keras preprocessing layers on the training batches only, the same under the same seed
(a resumed run too), never on validation, test or evaluate, refused where it cannot apply, sweepable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TINY_CNN, StopAfter, metric_rows, run_cli, without_seconds, write_config

from dlrun import evaluate, load_config, resume, sweep, train
from dlrun.config import dump_config
from dlrun.config.schema import DataConfig
from dlrun.data import load_checked
from dlrun.data.cache_key import cache_key
from dlrun.engine.augment import augmentation
from dlrun.engine.pipeline import train_stream
from dlrun.engine.run import run_training, write_run_summary
from dlrun.errors import Interrupted
from dlrun.store import files, names
from dlrun.store.rundir import create_run_dir
from dlrun.store.summary import RunClock
from dlrun.ui.console import Reporter

AUGMENT = {"flip": "horizontal", "rotation": 0.05, "zoom": 0.1, "translation": 0.1, "contrast": 0.2}
N, BATCH, EPOCHS = 40, 16, 2


def _images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (N, 12, 12, 1), dtype=np.uint8)


def _batches(augment: dict[str, Any] | None, seed: int = 3, start: int = 0, x: np.ndarray | None = None,
             ) -> list[np.ndarray]:
    """The training stream's image batches from epoch `start` to the end, in order (no shuffle)."""
    x = _images() if x is None else x
    spec = augmentation(DataConfig(augment=augment))
    stream, steps = train_stream(x, np.arange(N), BATCH, seed, start, EPOCHS, shuffle=False, augment=spec)
    return [xb.numpy() for xb, _ in stream.take((EPOCHS - start) * steps)]


def test_augmentation_changes_the_training_images() -> None:
    plain, changed = _batches(None), _batches(AUGMENT)
    assert [b.shape for b in plain] == [b.shape for b in changed]
    assert not any(np.array_equal(a, b) for a, b in zip(plain, changed, strict=True))


def test_augmented_pixels_stay_in_the_scaled_range() -> None:
    batches = np.concatenate(_batches({"contrast": 0.9, "zoom": 0.3}))
    assert batches.dtype == np.float32 and batches.min() >= 0.0 and batches.max() <= 1.0


def test_the_same_seed_draws_the_same_changes() -> None:
    first, second, plain = _batches(AUGMENT), _batches(AUGMENT), _batches(None)
    assert all(np.array_equal(a, b) and not np.array_equal(a, c) for a, b, c in zip(first, second, plain, strict=True))


def test_another_seed_draws_other_changes() -> None:
    # no shuffle: the seed only reaches the augmentation
    assert not any(np.array_equal(a, b) for a, b in zip(_batches(AUGMENT), _batches(AUGMENT, seed=4), strict=True))


def test_epochs_draw_other_changes() -> None:
    batches = _batches({"rotation": 0.2})
    steps = len(batches) // EPOCHS
    assert not np.array_equal(batches[0], batches[steps])  # the same images, the next epoch


def test_a_stream_started_later_makes_the_changes_a_whole_run_makes_there() -> None:
    whole, later = _batches(AUGMENT), _batches(AUGMENT, start=1)
    assert all(np.array_equal(a, b) for a, b in zip(whole[len(whole) - len(later):], later, strict=True))


def test_images_read_from_a_memory_mapped_cache_get_the_same_changes(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", _images())
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert isinstance(mapped, np.memmap)
    in_memory, from_disk = _batches(AUGMENT), _batches(AUGMENT, x=mapped)
    assert all(np.array_equal(a, b) for a, b in zip(in_memory, from_disk, strict=True))


def test_zero_or_empty_augment_is_no_augmentation() -> None:
    assert augmentation(DataConfig(augment={})) is None
    assert augmentation(DataConfig(augment={"rotation": 0, "flip": None})) is None


def test_the_data_cache_key_ignores_augment(tmp_path: Path) -> None:
    np.save(tmp_path / "X.npy", np.zeros((4, 8, 8), np.uint8))
    np.save(tmp_path / "Y.npy", np.arange(4))
    plain = cache_key(DataConfig(source="npy", path=str(tmp_path)), "classification")
    augmented = cache_key(DataConfig(source="npy", path=str(tmp_path), augment=AUGMENT), "classification")
    assert plain is not None and plain == augmented


BAD = [
    ({"rotation": 1.5}, "data.augment.rotation", "at most 1"),
    ({"zoom": 1}, "data.augment.zoom", "below 1"),
    ({"translation": -0.1}, "data.augment.translation", "write 0.1"),
    ({"contrast": "0.2"}, "data.augment.contrast", "without quotes"),
    ({"flip": "sideways"}, "data.augment.flip", "horizontal"),
    ({"shear": 0.1}, "data.augment.shear", "allowed: flip, rotation"),
]


@pytest.mark.parametrize(("augment", "key", "fix"), BAD, ids=[key.rsplit(".", 1)[1] for _, key, _ in BAD])
def test_validate_refuses_a_bad_augment_value_at_its_line(tmp_path: Path, augment: dict[str, Any], key: str,
                                                          fix: str) -> None:
    config = write_config(tmp_path, data={"augment": augment})
    line = next(i for i, text in enumerate(config.read_text().splitlines(), 1) if "augment:" in text) + 1
    proc = run_cli("validate", config)
    assert (proc.returncode, "Traceback" in proc.stderr) == (2, False)
    assert f"config.yaml:{line}: {key}: " in proc.stderr and fix in proc.stderr


def test_train_refuses_augment_on_a_table(tmp_path: Path) -> None:
    table = {"source": "table", "target": "y", "augment": {"flip": "horizontal"},
             "table": {"columns": ["a", "y"], "rows": [[1, 0], [2, 1], [3, 0], [4, 1]]}}
    config = write_config(tmp_path, {"model": {"layers": [{"dense": {"units": 2, "activation": "softmax"}}]}},
                          data=table)
    proc = run_cli("train", config, "--run-dir", tmp_path / "run")
    assert (proc.returncode, "Traceback" in proc.stderr) == (2, False)
    assert "data.augment: augmentation flips, rotates and zooms images; 'table' is a table" in proc.stderr
    assert not (tmp_path / "run" / names.METRICS).exists()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny CNN runs: augmented twice with seed 0, without augmentation once (in this process: the same
    metrics a `dlrun train` process gives)."""
    tmp = tmp_path_factory.mktemp("augment")
    augmented = write_config(tmp, data={"augment": AUGMENT}, name="augmented.yaml")
    plain = write_config(tmp, name="plain.yaml")
    out = {}
    for name, config in (("first", augmented), ("second", augmented), ("plain", plain)):
        assert train(config, run_dir=tmp / name)["status"] == "completed"
        out[name] = tmp / name
    return out


@pytest.mark.slow  # trains models
def test_the_same_seed_gives_the_same_metrics(runs: dict[str, Path]) -> None:
    first, second, plain = (without_seconds(metric_rows(runs[name])) for name in ("first", "second", "plain"))
    assert first == second != plain


@pytest.mark.slow  # trains models
def test_augmented_training_differs_from_plain_training(runs: dict[str, Path]) -> None:
    first, plain = (without_seconds(metric_rows(runs[name])) for name in ("first", "plain"))
    assert [row["loss"] for row in first] != [row["loss"] for row in plain]


@pytest.mark.slow  # trains models
def test_the_model_holds_no_augmentation_layer(runs: dict[str, Path]) -> None:
    assert (runs["first"] / names.MODEL_TXT).read_text() == (runs["plain"] / names.MODEL_TXT).read_text()


def _evaluate(run: Path, *overrides: str) -> dict[str, Any]:
    return json.loads(json.dumps(evaluate(run, overrides=list(overrides)), default=str))  # the numbers `--json` prints


@pytest.mark.slow  # trains models
def test_test_numbers_of_the_same_weights_do_not_depend_on_augment(runs: dict[str, Path]) -> None:
    recorded = files.read_json(runs["first"] / names.SUMMARY)["metrics"]
    with_augment, without = _evaluate(runs["first"]), _evaluate(runs["first"], "data.augment=null")
    assert with_augment["loss"] == without["loss"] == recorded["test_loss"]
    assert with_augment["confusion_matrix"] == without["confusion_matrix"]


@pytest.mark.slow  # trains models
def test_a_sweep_over_augment_values_trains_each(tmp_path: Path) -> None:
    space = {"params": {"data.augment.rotation": [0.0, 0.2]}}
    config = write_config(tmp_path, data={"n_train": 100, "n_test": 50}, train={"epochs": 1}, sweep=space)
    sweep(config, sweep_dir=tmp_path / "sweep")
    rows = files.read_csv(tmp_path / "sweep" / names.SWEEP_RESULTS)
    assert [(row["data.augment.rotation"], row["status"]) for row in rows] == [("0.0", "completed"),
                                                                                ("0.2", "completed")]
    assert rows[0]["loss"] != rows[1]["loss"]


def _train(lc: Any, run_dir: Path, stop: StopAfter | None = None) -> Path:
    run = create_run_dir(lc.config.name, explicit=run_dir)
    files.write_text(run / names.CONFIG, dump_config(lc.config))
    write_run_summary(run, lc, "running", RunClock(), [])
    run_training(lc, run, load_checked(lc), Reporter(live=False), stop)
    return run.path


@pytest.mark.slow  # trains models
def test_a_resumed_run_continues_the_augmentation_of_an_uninterrupted_one(tmp_path: Path) -> None:
    lc = load_config(write_config(tmp_path, TINY_CNN, data={"n_train": 100, "n_test": 50, "augment": AUGMENT},
                                  train={"epochs": 3}))
    whole = _train(lc, tmp_path / "whole")
    with pytest.raises(Interrupted):
        _train(lc, tmp_path / "cut", StopAfter(tmp_path / "cut", 1))
    resume(tmp_path / "cut")
    assert without_seconds(metric_rows(tmp_path / "cut")) == without_seconds(metric_rows(whole))
