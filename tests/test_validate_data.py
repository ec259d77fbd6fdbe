"""`dlrun validate` catches the data mistakes students make most, from what is cheap to read: a path
that does not exist or is of the wrong kind, and labels out of the output layer's range (idx labels,
.npy/.npz/.h5 label arrays, class folders, a csv's target column); without TensorFlow, in well under
half a second, located at the key and YAML line."""

from __future__ import annotations

import gzip
import struct
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from conftest import TINY_MLP, modules_loaded, run_cli, write_config

from dlrun.commands.validate import validate
from dlrun.errors import ConfigError


def idx_folder(folder: Path, labels: np.ndarray, gz: bool = False) -> Path:
    """A train-images/train-labels idx pair (the images are zeros: validate never reads them)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(labels)
    suffix, opener = (".gz", gzip.open) if gz else ("", open)
    with opener(folder / f"train-images-idx3-ubyte{suffix}", "wb") as fh:
        fh.write(b"\0\0\x08\x03" + struct.pack(">III", n, 28, 28) + bytes(n * 28 * 28))
    with opener(folder / f"train-labels-idx1-ubyte{suffix}", "wb") as fh:
        fh.write(b"\0\0\x08\x01" + struct.pack(">I", n) + labels.astype(np.uint8).tobytes())
    return folder


def config(tmp_path: Path, data: dict[str, Any], units: int = 8) -> Path:
    layers = [{"flatten": {}}, {"dense": {"units": units, "activation": "softmax"}}]
    return write_config(tmp_path, TINY_MLP, data=data, model={"layers": layers})


def problem(path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        validate(path)
    return str(err.value)


def digits(n: int = 50) -> np.ndarray:
    return np.arange(n) % 10


def test_idx_path_that_does_not_exist_is_caught_at_its_line(tmp_path: Path) -> None:
    proc = run_cli("validate", config(tmp_path, {"source": "idx", "path": str(tmp_path / "nowhere")}, 10))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "config.yaml:7: data.path:" in proc.stderr and "nowhere: idx folder not found" in proc.stderr


def test_a_file_where_a_folder_is_read_is_caught(tmp_path: Path) -> None:
    (tmp_path / "labels.bin").write_bytes(b"x")
    text = problem(config(tmp_path, {"source": "idx", "path": str(tmp_path / "labels.bin")}, 10))
    assert "data.path" in text and "is a file; expected a folder" in text


def test_eight_units_on_idx_labels_0_to_9_is_caught_at_the_units(tmp_path: Path) -> None:
    path = config(tmp_path, {"source": "idx", "path": str(idx_folder(tmp_path / "idx", digits(), gz=True))})
    proc = run_cli("validate", path)
    assert proc.returncode == 2, proc.stdout
    assert "model.layers.1.dense.units" in proc.stderr and "go up to 9" in proc.stderr
    assert "config.yaml:" in proc.stderr.splitlines()[0]


def test_ten_units_on_idx_labels_is_valid_and_says_what_was_read(tmp_path: Path) -> None:
    path = config(tmp_path, {"source": "idx", "path": str(idx_folder(tmp_path / "idx", digits()))}, 10)
    proc = run_cli("validate", path)
    assert proc.returncode == 0, proc.stderr
    assert "labels run 0-9" in proc.stdout and "left to train:" in proc.stdout


def test_npy_pair_one_hot_labels_are_read(tmp_path: Path) -> None:
    folder = tmp_path / "sign"
    folder.mkdir()
    np.save(folder / "X.npy", np.zeros((20, 8, 8), np.float32))
    np.save(folder / "Y.npy", np.eye(10)[digits(20)])
    assert "go up to 9" in problem(config(tmp_path, {"source": "npy", "path": str(folder)}))


def test_npz_labels_are_read(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x_train=np.zeros((20, 8, 8)), y_train=digits(20))
    assert "go up to 9" in problem(config(tmp_path, {"source": "npz", "path": str(tmp_path / "d.npz")}))


def test_h5_labels_are_read(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["x_train"], f["y_train"] = np.zeros((20, 8, 8)), digits(20)
    assert "go up to 9" in problem(config(tmp_path, {"source": "h5", "path": str(tmp_path / "d.h5")}))


def test_image_folder_counts_its_class_folders(tmp_path: Path) -> None:
    for name in ("cat", "dog", "fox"):
        (tmp_path / "imgs" / name).mkdir(parents=True)
    text = problem(config(tmp_path, {"source": "folder", "path": str(tmp_path / "imgs"), "image_size": [8, 8]}, 2))
    assert "model.layers.1.dense.units" in text and "go up to 2" in text


def test_csv_target_column_is_read(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b,label\n" + "".join(f"{i},{i},{i % 3}\n" for i in range(9)))
    data = {"source": "csv", "path": str(tmp_path / "t.csv"), "target": "label"}
    layers = [{"dense": {"units": 2, "activation": "softmax"}}]
    text = problem(write_config(tmp_path, TINY_MLP, data=data, model={"layers": layers}))
    assert "go up to 2" in text


def test_validate_with_data_loads_no_tensorflow(tmp_path: Path) -> None:
    path = config(tmp_path, {"source": "idx", "path": str(idx_folder(tmp_path / "idx", digits()))}, 10)
    assert modules_loaded("validate", str(path)) == set()


def test_no_data_checks_the_config_alone(tmp_path: Path) -> None:
    path = config(tmp_path, {"source": "idx", "path": str(tmp_path / "nowhere")}, 10)
    assert run_cli("validate", path, "--no-data").returncode == 0


def test_validate_reads_sixty_thousand_labels_in_well_under_half_a_second(tmp_path: Path) -> None:
    folder = idx_folder(tmp_path / "idx", digits(60_000), gz=True)
    np.savez(tmp_path / "d.npz", x_train=np.zeros((60_000, 28, 28), np.uint8), y_train=digits(60_000))
    paths = [config(tmp_path, {"source": "idx", "path": str(folder)}, 10),
             write_config(tmp_path, TINY_MLP, name="npz.yaml", data={"source": "npz", "path": str(tmp_path / "d.npz")})]
    validate(paths[0])  # imports warm
    for path in paths:
        seconds = min(_timed(path) for _ in range(3))
        assert seconds < 0.5, f"{path.name}: {seconds:.3f} s"


def _timed(path: Path) -> float:
    start = time.perf_counter()
    assert validate(path)["valid"]
    return time.perf_counter() - start
