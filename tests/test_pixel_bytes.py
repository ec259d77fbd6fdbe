"""Images kept as uint8 pixels and scaled per batch (issue 29): the model sees the float32 values
preparation used to make, to the bit, so metrics.csv does not change."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlrun.config.schema import DataConfig
from dlrun.data import load_dataset
from dlrun.data.prepare import to_images
from dlrun.engine.pipeline import eval_stream, train_stream
from tests.conftest import metric_rows, run_in_process, without_seconds, write_config


def _as_float32(x: np.ndarray) -> np.ndarray:
    """What preparation made before issue 29: float32, divided by 255 in place."""
    out = x.astype(np.float32)
    np.divide(out, np.float32(255.0), out=out)
    return out


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


def test_every_pixel_value_scales_to_the_float32_preparation_made() -> None:
    x = np.arange(256, dtype=np.uint8).reshape(256, 1, 1, 1)
    (batch,) = [xb.numpy() for xb in eval_stream(x, None, 256)]
    assert np.array_equal(_bits(batch), _bits(_as_float32(x)))


def test_training_batches_of_bytes_equal_those_of_float32_arrays() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (70, 5, 5, 1), dtype=np.uint8)
    y = np.arange(70)
    kept, _ = train_stream(x, y, 16, 3, 0, 2)
    old, steps = train_stream(_as_float32(x), y, 16, 3, 0, 2)
    pairs = zip(kept.take(2 * steps), old.take(2 * steps), strict=True)
    assert all(np.array_equal(_bits(a[0].numpy()), _bits(b[0].numpy())) for a, b in pairs)


def test_prepared_images_are_a_quarter_of_float32() -> None:
    data = load_dataset(DataConfig(source="synthetic_digits", n_train=100, n_test=20), use_cache=False)
    assert data.x_train.dtype == np.uint8
    assert data.x_train.nbytes * 4 == data.x_train.size * np.dtype(np.float32).itemsize


def test_bytes_that_are_not_scaled_stay_float32() -> None:
    binary = np.tile(np.eye(4, dtype=np.uint8), (3, 1, 1))  # 0/1 pixels: never divided, as before
    assert to_images(binary, DataConfig(source="npy", path="."), "x", keep_bytes=True).dtype == np.float32
    grey = np.full((3, 4, 4), 200, np.uint8)
    unscaled = DataConfig(source="npy", path=".", normalize=False)
    assert to_images(grey, unscaled, "x", keep_bytes=True).dtype == np.float32


def test_metrics_equal_for_uint8_and_float32_images_of_the_same_pixels(tmp_path: Path) -> None:
    """The same pixels given as uint8 (kept as bytes, scaled per batch) and as float32 0-255 (scaled
    when prepared, as every image was before issue 29) train to the same metrics.csv, to the digit."""
    pixels = load_dataset(DataConfig(source="synthetic_digits", n_train=150, n_test=1), use_cache=False).x_train
    labels = np.arange(len(pixels)) % 10
    rows = []
    for kind, x in (("bytes", pixels), ("floats", pixels.astype(np.float32))):
        folder = tmp_path / kind
        folder.mkdir()
        np.save(folder / "X.npy", x)
        np.save(folder / "Y.npy", labels)
        config = write_config(folder, data={"source": "npy", "path": str(folder), "n_train": 200, "n_test": 100,
                                            "test_split": 0.2})
        done = run_in_process("train", config, "--runs", folder / "runs", "--no-cache")
        assert done.returncode == 0, done.stderr
        (run,) = (folder / "runs").iterdir()
        rows.append(without_seconds(metric_rows(run)))
    assert rows[0] == rows[1] and len(rows[0]) == 2
