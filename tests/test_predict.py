"""`dlrun predict`: new inputs prepared exactly as the run's training data (bit for bit), class names,
the outputs (table, JSON, CSV, grid) and bad inputs refused before anything is predicted."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import run_cli, write_config

from dlrun import DataError, predict, train
from dlrun.commands.saved import build_saved_model, open_target
from dlrun.data import load_dataset
from dlrun.data.inputs import read_inputs
from dlrun.engine.predictions import class_probabilities
from dlrun.limits import BUDGET_ENV
from dlrun.store import files

CLASSES = ("cat", "dog", "fox")


def image_folder(root: Path, per_class: int = 12) -> Path:
    """Noisy 20x24 RGB PNGs, one bright bar per class at its own height and in its own channel."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (20, 24, 3), dtype=np.uint8)
            img[2 + 6 * k: 8 + 6 * k, 4:20, k] = 250
            cv2.imwrite(str(root / name / f"{i:02d}.png"), img)
    return root


@pytest.fixture(scope="module")
def pets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A run trained on an image folder (resized 20x24 -> 12x12 with INTER_AREA, RGB), no held-out splits."""
    directory = tmp_path_factory.mktemp("pets")
    root = image_folder(directory / "images")
    config = write_config(directory, {
        "name": "pets", "data": {"source": "folder", "path": str(root), "image_size": [12, 12], "color": "rgb",
                                 "test_split": 0, "validation": 0},
        "model": {"layers": [{"flatten": {}}, {"dense": {"units": 3, "activation": "softmax"}}]},
        "optimizer": {"name": "adam", "lr": 0.01}, "train": {"epochs": 2, "batch_size": 16}})
    summary = train(config, runs_root=directory / "runs", use_cache=False)
    picks = [root / "cat" / "00.png", root / "dog" / "05.png", root / "fox" / "11.png"]
    return {"run": Path(summary["run_dir"]), "root": root, "picks": picks, "dir": directory}


def test_training_images_get_exactly_the_probabilities_of_evaluation(pets: dict[str, Any]) -> None:
    saved = open_target(pets["run"])
    cfg = saved.lc.config
    data = load_dataset(cfg.data, cfg.task, use_cache=False)  # the training data, prepared as training did
    model = build_saved_model(saved)
    evaluation = class_probabilities(model, data.x_train, cfg)
    new = read_inputs(pets["picks"], saved.spec)
    result = predict(pets["run"], pets["picks"], top=3)
    assert data.x_train.dtype == np.uint8  # pixels kept as bytes, scaled per batch as below (issue 29)
    seen = data.x_train.astype(np.float32) / np.float32(255.0)  # what the model sees
    for x, row in zip(new.x, result["predictions"], strict=True):
        same = [j for j in range(len(seen)) if np.array_equal(seen[j], x)]
        assert len(same) == 1  # the prepared input is bit for bit one training example
        by_class = {r["class"]: r["probability"] for r in row["top"]}
        assert [by_class[name] for name in CLASSES] == evaluation[same[0]].tolist()  # exact, not approx
    assert [r["class"] for r in result["predictions"]] == list(CLASSES)


def test_cli_prints_class_names_and_writes_csv_and_grid(pets: dict[str, Any]) -> None:
    out, grid = pets["dir"] / "predictions.csv", pets["dir"] / "grid.png"
    picks = [p.relative_to(pets["dir"]) for p in pets["picks"]]  # as a user types them, from the folder
    proc = run_cli("predict", pets["run"], *picks, "--top", "2", "--out", out, "--grid", grid, cwd=pets["dir"])
    assert proc.returncode == 0, proc.stderr
    for name, pick in zip(CLASSES, pets["picks"], strict=True):
        line = next(li for li in proc.stdout.splitlines() if str(pick.relative_to(pets["dir"])) in li)
        assert f" {name} " in line
    rows = files.read_csv(out)
    assert [r["class"] for r in rows] == list(CLASSES) and rows[0]["top"].count(";") == 1
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_json_is_one_object(pets: dict[str, Any]) -> None:
    proc = run_cli("predict", pets["run"], pets["root"] / "dog", "--json", "--top", "1")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert len(result["predictions"]) == 12 and {r["class"] for r in result["predictions"]} == {"dog"}
    assert all(len(r["top"]) == 1 for r in result["predictions"])


def _png_claiming(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


@pytest.mark.parametrize(("name", "content", "message"), [
    ("garbage.png", b"not an image at all", "not an image or unreadable"),
    ("bomb.png", _png_claiming(40000, 40000), "decompression bomb"),
    ("two_channels.npy", np.zeros((4, 12, 12, 2), np.uint8), r"shape \(4, 12, 12, 2\); expected \(N, 12, 12\)"),
    ("notes.txt", b"hello", "not an input dlrun reads"),
    ("table.csv", b"a,b\n1,2\n", "trained on images"),
])
def test_bad_input_is_named_and_nothing_is_written(pets: dict[str, Any], tmp_path: Path, name: str,
                                                   content: Any, message: str) -> None:
    bad = tmp_path / name
    np.save(bad, content) if isinstance(content, np.ndarray) else bad.write_bytes(content)
    out = tmp_path / "p.csv"
    with pytest.raises(DataError, match=message) as caught:
        predict(pets["run"], [pets["picks"][0], bad], out=out)
    assert str(bad) in str(caught.value) and not out.exists()


def test_cli_bad_input_exits_2(pets: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    proc = run_cli("predict", pets["run"], pets["picks"][0], tmp_path / "broken.png", "--out", tmp_path / "p.csv")
    assert proc.returncode == 2 and "broken.png" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "p.csv").exists()


def test_existing_out_is_refused(pets: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("mine\n")
    with pytest.raises(Exception, match="never overwrites"):
        predict(pets["run"], pets["picks"], out=tmp_path / "p.csv")
    assert (tmp_path / "p.csv").read_text() == "mine\n"


def test_table_rows_from_csv_and_npy(tmp_path: Path) -> None:
    rows = [[x1, x2, 2 * x1 + 3 * x2 + 1] for x1, x2 in [(1, 1), (2, 1), (1, 2), (3, 2), (2, 3), (4, 1)]]
    config = write_config(tmp_path, {
        "name": "table", "task": "regression", "loss": "sse",
        "data": {"source": "table", "target": "y", "test_split": 0,
                 "table": {"columns": ["x1", "x2", "y"], "rows": rows}},
        "model": {"layers": [{"dense": {"units": 1}}]}, "train": {"epochs": 1, "batch_size": 8}})
    run = train(config, runs_root=tmp_path / "runs")["run_dir"]
    (tmp_path / "new.csv").write_text("y,x2,x1\n0,1,1\n0,3,2\n")  # any column order; the target is ignored
    np.save(tmp_path / "new.npy", np.array([[1.0, 1.0], [2.0, 3.0]]))
    by_csv = predict(run, [tmp_path / "new.csv"])["predictions"]
    by_npy = predict(run, [tmp_path / "new.npy"])["predictions"]
    assert [r["value"] for r in by_csv] == [r["value"] for r in by_npy]
    assert [r["source"] for r in by_csv] == [f"{tmp_path / 'new.csv'}:2", f"{tmp_path / 'new.csv'}:3"]
    np.save(tmp_path / "wide.npy", np.ones((2, 3)))
    with pytest.raises(DataError, match=r"wide.npy: an array of shape \(2, 3\); expected \(N, 2\)"):
        predict(run, [tmp_path / "wide.npy"])
    (tmp_path / "short.csv").write_text("x1\n1\n")
    with pytest.raises(DataError, match="lacks the feature column.*x2"):
        predict(run, [tmp_path / "short.csv"])
    (tmp_path / "text.csv").write_text("x1,x2\n1,abc\n")
    with pytest.raises(DataError, match="line 2, column x2: 'abc' is not a finite number"):
        predict(run, [tmp_path / "text.csv"])


def test_a_csv_too_big_for_the_memory_budget_is_refused_before_it_is_read(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [[x1, x2, x1 + x2] for x1, x2 in [(1, 1), (2, 1), (1, 2), (3, 2)]]
    config = write_config(tmp_path, {
        "name": "table", "task": "regression", "data": {"source": "table", "target": "y", "test_split": 0,
                                                        "table": {"columns": ["x1", "x2", "y"], "rows": rows}},
        "model": {"layers": [{"dense": {"units": 1}}]}, "train": {"epochs": 1, "batch_size": 4}})
    run = train(config, runs_root=tmp_path / "runs")["run_dir"]
    (tmp_path / "big.csv").write_text("x1,x2\n" + "1,2\n" * 100_000)  # 400 KB: about 6 MB as text
    monkeypatch.setenv(BUDGET_ENV, "1M")
    with pytest.raises(DataError, match="big.csv: a 390.6 KiB CSV needs about 6.1 MiB"):
        predict(run, [tmp_path / "big.csv"])


def test_a_weights_file_with_its_config_predicts_as_the_run(pets: dict[str, Any]) -> None:
    run = pets["run"]
    by_file = predict(run / "weights.weights.h5", pets["picks"], config=run / "config.yaml", use_cache=False)
    assert by_file["predictions"] == predict(run, pets["picks"])["predictions"]


def test_a_scaled_table_with_a_category_is_prepared_with_the_runs_statistics(tmp_path: Path) -> None:
    """predict encodes and standardises table rows with the run's features.json (fitted on its training split),
    so a training row read back from a CSV is bit for bit the prepared training example."""
    rng = np.random.default_rng(0)
    rows = [[float(a), ["red", "blue"][int(b)], float(a) * 1000 + 5.0 * int(b), int(a > 0)]
            for a, b in zip(rng.normal(size=60), rng.integers(0, 2, 60), strict=True)]
    (tmp_path / "data.csv").write_text("a,colour,big,y\n" + "".join(f"{a!r},{c},{b!r},{y}\n" for a, c, b, y in rows))
    config = write_config(tmp_path, {
        "name": "scaled", "data": {"source": "csv", "path": str(tmp_path / "data.csv"), "target": "y",
                                   "test_split": 0, "validation": 0, "normalize": "standardize",
                                   "categorical": ["colour"]},
        "model": {"layers": [{"dense": {"units": 2, "activation": "softmax"}}]},
        "train": {"epochs": 1, "batch_size": 16}})
    run = Path(train(config, runs_root=tmp_path / "runs")["run_dir"])
    (tmp_path / "new.csv").write_text("y,big,colour,a\n" + "".join(f"{r[3]},{r[2]!r},{r[1]},{r[0]!r}\n"
                                                                 for r in rows[:3]))
    saved = open_target(run)
    new = read_inputs([tmp_path / "new.csv"], saved.spec)
    data = load_dataset(saved.lc.config.data, "classification", use_cache=False)
    for x in new.x:
        assert any(np.array_equal(x, row) for row in data.x_train)
    assert new.x.shape == (3, 4) and abs(float(data.x_train[:, -1].std()) - 1.0) < 1e-3  # one-hot 2 + a + big
    assert len(predict(run, [tmp_path / "new.csv"])["predictions"]) == 3
