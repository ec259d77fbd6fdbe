"""Hostile input, in process: the bounded YAML loader still reads real configs, image sizes come from
headers of every format OpenCV writes, an image folder skips and counts what it must not decode, the
size estimate matches Keras' own parameter count, and the memory budget follows DLRUN_MEMORY_BUDGET.
(The CLI side of each refusal is the generated corpus in hostile_inputs.py.)"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import TINY_MLP, write_config
from hostile_inputs import png_header

from dlrun.config import load_config
from dlrun.config.safe_yaml import BoundedLoader, compose_and_load
from dlrun.config.schema import DataConfig
from dlrun.config.sizes import walk
from dlrun.data import images, load_dataset
from dlrun.errors import ConfigError, DlrunError
from dlrun.limits import BUDGET_ENV, memory_budget


def test_the_bounded_loader_is_the_safe_loader_and_reads_anchors_within_bounds() -> None:
    text = ("name: anchors\nx-relu: &relu {activation: relu}\nmodel:\n  layers:\n    - flatten: {}\n"
            "    - dense: {units: 16, <<: *relu}\n    - dense: {units: 10, activation: softmax}\n")
    _, parsed = compose_and_load(text)
    assert (issubclass(BoundedLoader, yaml.SafeLoader), parsed["model"]["layers"][1]) == (
        True, {"dense": {"units": 16, "activation": "relu"}})


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tiff", ".webp", ".pgm", ".ppm"])
def test_image_sizes_come_from_the_header(ext: str) -> None:
    cv2 = images.cv2()
    pixels = np.zeros((37, 53, 3 if ext != ".pgm" else 1), np.uint8)
    ok, encoded = cv2.imencode(ext, pixels)
    assert (ok, images.dimensions(encoded.tobytes()[:images.HEADER_BYTES])) == (True, (53, 37))


def test_gif_and_huge_png_sizes_come_from_the_header() -> None:
    gif = b"GIF89a" + struct.pack("<HH", 640, 480) + bytes(20)
    assert (images.dimensions(gif), images.dimensions(png_header(40_000, 30_000))) == ((640, 480), (40_000, 30_000))


def test_an_image_folder_skips_and_counts_what_cannot_be_an_image(tmp_path: Path) -> None:
    cv2 = images.cv2()
    root, outside = tmp_path / "imgs", tmp_path / "outside"
    outside.mkdir()
    cv2.imwrite(str(outside / "elsewhere.png"), np.full((8, 8), 255, np.uint8))
    os.mkfifo(outside / "pipe.png")
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(root / label / f"{i}.png"), np.full((12, 12), 40 * i, np.uint8))
    (root / "a" / "bomb.png").write_bytes(png_header(100_000, 100_000))
    (root / "a" / "elsewhere.png").symlink_to(outside / "elsewhere.png")  # outside the folder: an image
    (root / "a" / "zero.png").symlink_to("/dev/zero")
    (root / "b" / "loop.png").symlink_to(root / "b" / "loop.png")
    os.mkfifo(root / "b" / "pipe.png")
    (root / "b" / "far_pipe.png").symlink_to(outside / "pipe.png")
    (root / "b" / "inside.png").symlink_to(root / "a" / "0.png")
    (root / "c").symlink_to(root / "a")  # a class folder reached twice
    (root / "d").symlink_to(root)  # the image folder itself
    data = load_dataset(DataConfig(source="folder", path=str(root), image_size=[8, 8], test_split=0.25),
                        use_cache=False)
    note, examples = data.notes[0], len(data.x_train) + len(data.x_val) + len(data.x_test)
    assert (examples, data.class_names, note.startswith(f"skipped 7 file(s) under {root}:"),
            "1 a decompression bomb (100000x100000 pixels" in note, "1 a symlink loop or a dangling symlink" in note,
            "3 not a regular file (a FIFO, a device or a folder)" in note, "2 a folder reached twice" in note) == (
        8, ["a", "b"], True, True, True, True, True)


LAYER_STACKS = {
    "conv-pool-dense": [{"conv2d": {"filters": 6, "kernel_size": 3, "strides": 2, "padding": "same"}},
                        {"max_pool2d": {"pool_size": 2}}, {"batch_norm": {}}, {"flatten": {}},
                        {"dense": {"units": 7, "use_bias": False}}, {"dense": {"units": 10}}],
    "separable-gap": [{"separable_conv2d": {"filters": 5, "kernel_size": [3, 2]}}, {"avg_pool2d": {"pool_size": 3,
                      "strides": 1, "padding": "valid"}}, {"global_avg_pool2d": {}}, {"dense": {"units": 10}}],
}


@pytest.mark.parametrize("stack", sorted(LAYER_STACKS))
def test_the_size_estimate_counts_what_keras_builds(stack: str, tmp_path: Path) -> None:
    from dlrun.engine.model import build_model

    lc = load_config(write_config(tmp_path, TINY_MLP, model={"layers": LAYER_STACKS[stack]}))
    model = build_model(lc, (28, 28, 1))
    costs = walk(lc.config.model.layers, (28, 28, 1))
    assert ([c.output for c in costs], sum(c.params for c in costs)) == (
        [tuple(layer.output.shape[1:]) for layer in model.layers], model.count_params())


def test_the_memory_budget_follows_its_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path, TINY_MLP)
    load_config(config)  # fits the machine's default budget
    monkeypatch.setenv(BUDGET_ENV, "1M")
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    monkeypatch.setenv(BUDGET_ENV, "lots")
    with pytest.raises(DlrunError) as bad:
        memory_budget()
    monkeypatch.setenv(BUDGET_ENV, "2.5G")
    assert ("data.n_train" in str(refused.value), f"{BUDGET_ENV}='lots'" in str(bad.value), memory_budget()) == (
        True, True, int(2.5 * (1 << 30)))


def test_an_npy_pair_that_cannot_match_is_refused_from_the_headers(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A sparse 1 GiB X.npy with 4 labels: refused before X is read (not after loading a gigabyte)."""
    import tracemalloc

    monkeypatch.setenv(BUDGET_ENV, "4G")
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 32, 32), np.uint8))
    header["shape"] = (1 << 20, 32, 32)
    with open(tmp_path / "X.npy", "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        fh.truncate(fh.tell() + (1 << 30))  # sparse: the header's claim is held, nothing is written
    np.save(tmp_path / "Y.npy", np.arange(4))
    tracemalloc.start()
    with pytest.raises(DlrunError, match="X has 1048576 examples but Y has 4 labels"):
        load_dataset(DataConfig(source="npy", path=str(tmp_path)), "classification", use_cache=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 << 20
