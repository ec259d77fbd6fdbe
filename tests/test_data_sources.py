"""Every data source, read from tiny files the tests make. No TensorFlow needed."""

from __future__ import annotations

import gzip
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from dlrun.config.schema import DataConfig, TableData
from dlrun.data import load_dataset
from dlrun.data.synthetic import synthetic_digits
from dlrun.errors import DataError


def _images(n: int, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size), dtype=np.uint8), np.arange(n) % 3


def _write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def test_synthetic_is_deterministic() -> None:
    a, b = synthetic_digits(20, "street", seed=3), synthetic_digits(20, "street", seed=3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_synthetic_train_and_test_differ() -> None:
    data = load_dataset(DataConfig(n_train=50, n_test=50))
    assert not np.array_equal(data.x_train[:50], data.x_test)


def test_synthetic_shapes_and_scale() -> None:
    """Pixels are kept as uint8 and reach the model scaled to [0, 1] (issue 29)."""
    from dlrun.engine.pipeline import eval_stream

    data = load_dataset(DataConfig(n_train=30, n_test=10, style="street"))
    assert data.x_train.shape == (27, 28, 28, 1) and data.x_train.dtype == np.uint8
    (batch,) = [xb.numpy() for xb in eval_stream(data.x_train, None, 32)]
    assert batch.dtype == np.float32 and batch.min() >= 0.0 and batch.max() <= 1.0 and batch.max() > 0.5


def test_npy_with_one_hot_labels(tmp_path: Path) -> None:
    x, y = _images(20)
    np.save(tmp_path / "X.npy", x.astype(np.float32) / 255)
    np.save(tmp_path / "Y.npy", np.eye(3)[y])
    data = load_dataset(DataConfig(source="npy", path=str(tmp_path), test_split=0.25))
    assert (len(data.x_train), len(data.x_test), data.num_classes) == (13, 5, 3)


def test_npy_length_mismatch_names_the_folder(tmp_path: Path) -> None:
    x, y = _images(20)
    np.save(tmp_path / "X.npy", x)
    np.save(tmp_path / "Y.npy", y[:19])
    with pytest.raises(DataError, match="X has 20 examples but Y has 19"):
        load_dataset(DataConfig(source="npy", path=str(tmp_path)))


def test_npy_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="X.npy: array file not found"):
        load_dataset(DataConfig(source="npy", path=str(tmp_path)))


def test_npz_with_test_split(tmp_path: Path) -> None:
    x, y = _images(12)
    np.savez(tmp_path / "d.npz", X_train=x, y_train=y, X_test=x[:6], y_test=y[:6])
    data = load_dataset(DataConfig(source="npz", path=str(tmp_path / "d.npz")))
    assert (len(data.x_train), len(data.x_test)) == (11, 6)


def test_h5_resized_like_svhn(tmp_path: Path) -> None:
    x, y = _images(10, size=32)
    with h5py.File(tmp_path / "svhn.h5", "w") as f:
        f["X_train"], f["y_train"], f["X_test"], f["y_test"] = x, y, x[:4], y[:4]
    data = load_dataset(DataConfig(source="h5", path=str(tmp_path / "svhn.h5"), image_size=(28, 28)))
    assert data.x_train.shape == (9, 28, 28, 1)


def test_h5_missing_key_lists_what_exists(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["images"] = np.zeros((2, 8, 8))
    with pytest.raises(DataError, match="missing dataset.*the file has images"):
        load_dataset(DataConfig(source="h5", path=str(tmp_path / "d.h5")))


@pytest.mark.parametrize("gz", [True, False])
def test_idx_train_and_test_pairs(tmp_path: Path, gz: bool) -> None:
    x, y = _images(9)
    suffix = ".gz" if gz else ""
    for split in ("train", "t10k"):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte{suffix}", x, gz)
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte{suffix}", y, gz)
    data = load_dataset(DataConfig(source="idx", path=str(tmp_path)))
    assert (len(data.x_train), len(data.x_test)) == (8, 9)


def test_idx_single_pair_is_split(tmp_path: Path) -> None:
    x, y = _images(30)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", x, True)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y, True)
    data = load_dataset(DataConfig(source="idx", path=str(tmp_path), test_split=0.2))
    assert (len(data.x_train), len(data.x_test)) == (22, 6)


def test_idx_truncated_file(tmp_path: Path) -> None:
    x, y = _images(5)
    _write_idx(tmp_path / "train-images-idx3-ubyte", x, False)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", y, False)
    data = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(data[:-10])
    with pytest.raises(DataError, match="truncated"):
        load_dataset(DataConfig(source="idx", path=str(tmp_path)))


def test_folder_skips_and_counts_unreadable_files(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(4):
            cv2.imwrite(str(tmp_path / cls / f"{i}.png"), np.full((10, 12, 3), 40 * i, np.uint8))
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "b" / "broken.png").write_bytes(b"\x89PNG garbage")
    data = load_dataset(DataConfig(source="folder", path=str(tmp_path), image_size=(8, 8), test_split=0.25))
    assert (data.x_train.shape[1:], data.class_names, data.notes[0].startswith("skipped 2")) == \
        ((8, 8, 1), ["a", "b"], True)


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no class sub-folders"):
        load_dataset(DataConfig(source="folder", path=str(tmp_path), image_size=(8, 8)))


def test_folder_of_non_images(tmp_path: Path) -> None:
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "a.txt").write_text("x")
    with pytest.raises(DataError, match="no readable images"):
        load_dataset(DataConfig(source="folder", path=str(tmp_path), image_size=(8, 8)))


def test_csv_regression(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b,y\n1,2,3\n2,3,5\n3,4,7\n4,5,9\n")
    data = load_dataset(DataConfig(source="csv", path=str(tmp_path / "t.csv"), target="y", test_split=0),
                        task="regression")
    assert (data.x_train.shape, data.x_test) == ((4, 2), None)


def test_inline_table(tmp_path: Path) -> None:
    table = TableData(columns=["x", "y"], rows=[[1, 2], [2, 4], [3, 6]])
    data = load_dataset(DataConfig(source="table", table=table, target="y", test_split=0), task="regression")
    assert data.y_train.tolist() == [2.0, 4.0, 6.0]


def test_negative_labels_are_out_of_range(tmp_path: Path) -> None:
    x, _ = _images(4)
    np.savez(tmp_path / "d.npz", X_train=x, y_train=np.array([0, 1, -1, 2]))
    with pytest.raises(DataError, match="label -1 is out of range"):
        load_dataset(DataConfig(source="npz", path=str(tmp_path / "d.npz")))


def test_images_too_small(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", X_train=np.zeros((4, 2, 2)), y_train=np.arange(4) % 2)
    with pytest.raises(DataError, match="too small"):
        load_dataset(DataConfig(source="npz", path=str(tmp_path / "d.npz")))


def test_keras_source_offline_says_where_to_put_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(DataError, match=f"Put the file\\(s\\) at {tmp_path}/datasets/mnist.npz"):
        load_dataset(DataConfig(source="mnist"))


def test_mnist_from_local_npz(tmp_path: Path) -> None:
    x, y = _images(6, size=28)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=x[:2], y_test=y[:2])
    data = load_dataset(DataConfig(source="mnist", path=str(tmp_path / "mnist.npz"),
                                   keys={"x_train": "x_train", "y_train": "y_train", "x_test": "x_test",
                                         "y_test": "y_test"}))
    assert len(data.x_test) == 2


def test_validation_fraction_split_from_train() -> None:
    data = load_dataset(DataConfig(n_train=100, n_test=20, validation=0.3))
    assert (len(data.x_train), len(data.x_val)) == (70, 30)


def test_limit_caps_training_examples() -> None:
    assert len(load_dataset(DataConfig(n_train=100, n_test=20, limit=25)).x_train) == 25


# --- the splits: validation is held out from training by default; every split says where it came from

def test_validation_is_held_out_from_training_by_default() -> None:
    data = load_dataset(DataConfig(n_train=200, n_test=100))
    per_class = np.bincount(data.y_val, minlength=10).tolist()
    assert (len(data.x_train), len(data.x_val), len(data.x_test), data.x_val is data.x_test, per_class) == (
        180, 20, 100, False, [2] * 10)


def test_validation_on_the_test_split_is_the_test_split() -> None:
    data = load_dataset(DataConfig(n_train=50, n_test=20, validation="test"))
    assert (data.x_val is data.x_test, data.validation(), len(data.x_train)) == (True, "test split", 50)


def test_splits_record_their_sizes_and_origins(tmp_path: Path) -> None:
    x, y = _images(40)
    np.save(tmp_path / "X.npy", x)
    np.save(tmp_path / "Y.npy", y)
    data = load_dataset(DataConfig(source="npy", path=str(tmp_path), test_split=0.25, validation=0.1, limit=20))
    sizes = {name: split["examples"] for name, split in data.splits.items()}
    origins = {name: split["from"].split(" (")[0] for name, split in data.splits.items()}
    assert (sizes, origins) == ({"train": 20, "validation": 3, "test": 10}, {
        "train": "the source's examples less the test split and the validation split, capped at 20 of 27",
        "validation": "0.1 of the training data held out", "test": "0.25 of the source's examples held out"})


def test_a_validation_fraction_of_no_example_leaves_no_validation_split_and_says_so(tmp_path: Path) -> None:
    table = TableData(columns=["x", "y"], rows=[[1, 2], [2, 4], [3, 6]])
    data = load_dataset(DataConfig(source="table", table=table, target="y", test_split=0), task="regression")
    assert (data.x_val, len(data.x_train), any("no validation split" in n for n in data.notes)) == (None, 3, True)


# --- arrays by name: the Keras mnist.npz layout, and names that differ only in case

def test_mnist_path_to_a_keras_mnist_npz_uses_the_keras_layout(tmp_path: Path) -> None:
    x, y = _images(20, size=28)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=x[:5], y_test=y[:5])
    data = load_dataset(DataConfig(source="mnist", path=str(tmp_path / "mnist.npz")))
    assert (len(data.x_train) + len(data.x_val), len(data.x_test)) == (20, 5)


def _write_lowercase(path: Path, kind: str, arrays: dict[str, np.ndarray]) -> None:
    if kind == "npz":
        np.savez(path, **arrays)
        return
    with h5py.File(path, "w") as f:
        for name, array in arrays.items():
            f[name] = array


@pytest.mark.parametrize("kind", ["npz", "h5"])
def test_configured_names_match_ignoring_case_and_the_notes_say_so(tmp_path: Path, kind: str) -> None:
    x, y = _images(12)
    path = tmp_path / f"d.{kind}"
    _write_lowercase(path, kind, {"x_train": x, "y_train": y, "x_test": x[:4], "y_test": y[:4]})
    data = load_dataset(DataConfig(source=kind, path=str(path)))  # default keys: X_train, y_train, X_test, y_test
    noted = sorted(n.split("'")[1] for n in data.notes if "ignoring case" in n)
    assert (len(data.x_test), noted) == (4, ["x_test", "x_train"])


def test_a_name_that_matches_twice_ignoring_case_is_refused_listing_the_file(tmp_path: Path) -> None:
    x, y = _images(6)
    np.savez(tmp_path / "d.npz", x_train=x, X_TRAIN=x, y_train=y)
    with pytest.raises(DataError, match="the file has X_TRAIN, x_train, y_train .*X_train matches several names"):
        load_dataset(DataConfig(source="npz", path=str(tmp_path / "d.npz")))
