"""A subset of an image folder made with symlinks (`ln -s ../../all/0/img_000.png subset/zero/`, or a
whole class folder linked) is an image folder like any other: `dlrun validate` counts its classes and
`dlrun train` reads every linked image, wherever the links point."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import TINY_MLP, run_cli, write_config

CLASSES = {"zero": "0", "one": "1", "two": "2"}


@pytest.fixture
def subset(tmp_path: Path) -> Path:
    """all/0..3 with 5 images each; subset/{zero,one,two} of relative file links, subset/three a folder link."""
    rng = np.random.default_rng(0)
    for label in "0123":
        (tmp_path / "all" / label).mkdir(parents=True)
        for i in range(5):
            cv2.imwrite(str(tmp_path / "all" / label / f"img_{i:03d}.png"), rng.integers(0, 256, (8, 8), np.uint8))
    for name, label in CLASSES.items():
        (tmp_path / "subset" / name).mkdir(parents=True)
        for i in range(4):
            os.symlink(f"../../all/{label}/img_{i:03d}.png", tmp_path / "subset" / name / f"img_{i:03d}.png")
    os.symlink("../all/3", tmp_path / "subset" / "three")
    return tmp_path / "subset"


def folder_config(directory: Path, subset: Path) -> Path:
    layers = [*TINY_MLP["model"]["layers"][:-1], {"dense": {"units": 4, "activation": "softmax"}}]
    return write_config(directory, TINY_MLP, data={"source": "folder", "path": str(subset), "image_size": [8, 8],
                                                   "test_split": 0.25}, model={"layers": layers},
                        train={"epochs": 1})


def test_validate_counts_the_linked_class_folders(subset: Path, tmp_path: Path) -> None:
    proc = run_cli("validate", folder_config(tmp_path, subset))
    assert (proc.returncode, f"{subset}: 4 class folders" in proc.stdout) == (0, True), proc.stdout + proc.stderr


def test_train_reads_every_linked_image(subset: Path, tmp_path: Path) -> None:
    proc = run_cli("train", folder_config(tmp_path, subset), "--json", "--run-dir", tmp_path / "run")
    summary = json.loads(proc.stdout) if proc.returncode == 0 else {"stderr": proc.stderr[-2000:]}
    examples = sum(split["examples"] for split in summary.get("splits", {}).values())
    assert (proc.returncode, examples, summary.get("notes"), summary.get("data", "").endswith("4 classes")) == (
        0, 17, [], True), summary.get("stderr")
