"""The data cache: hits skip the source, keys follow files and settings, damage is rebuilt, --no-cache bypasses."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import TINY_MLP, run_in_process, write_config

import dlrun.data as data_module
from dlrun.config.schema import DataConfig
from dlrun.data import cache, cache_key, load_dataset

FIELDS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def make_folder(root: Path, per_class: int = 20, size: int = 12) -> Path:
    """Two class folders of small PNG images (distinct pixels per image)."""
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            cv2.imwrite(str(root / label / f"{i:03d}.png"), rng.integers(0, 256, (size, size), np.uint8))
    return root


def folder_cfg(root: Path, **changes: object) -> DataConfig:
    return DataConfig(**{"source": "folder", "path": str(root), "image_size": [8, 8], **changes})


def npz_cfg(path: Path, **changes: object) -> DataConfig:
    keys = {"x_train": "x", "y_train": "y", "x_test": "xt", "y_test": "yt"}
    return DataConfig(**{"source": "npz", "path": str(path), "keys": keys, **changes})


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "images")


@pytest.fixture
def npz_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    path = tmp_path / "digits.npz"
    np.savez(path, x=rng.integers(0, 256, (60, 10, 10), np.uint8), y=np.arange(60) % 3,
             xt=rng.integers(0, 256, (15, 10, 10), np.uint8), yt=np.arange(15) % 3)
    return path


@pytest.fixture
def source_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every read of a data source (the real reader still runs)."""
    calls: list[str] = []
    real = data_module.load_raw

    def counting(cfg: DataConfig, *args: object) -> object:
        calls.append(cfg.source)
        return real(cfg, *args)

    monkeypatch.setattr(data_module, "load_raw", counting)
    return calls


def entry_of(cfg: DataConfig) -> Path:
    key = cache_key.cache_key(cfg, "classification")
    assert key is not None
    return cache.entry_path(key)


def test_second_load_does_not_read_the_source(folder: Path, source_reads: list[str]) -> None:
    load_dataset(folder_cfg(folder))
    load_dataset(folder_cfg(folder))
    assert source_reads == ["folder"]


def test_second_load_reports_a_hit(folder: Path) -> None:
    load_dataset(folder_cfg(folder))
    assert load_dataset(folder_cfg(folder)).cache == "hit"


def test_cached_arrays_equal_a_fresh_load(npz_file: Path) -> None:
    cfg = npz_cfg(npz_file, validation=0.2)
    load_dataset(cfg)
    cached, fresh = load_dataset(cfg), load_dataset(cfg, use_cache=False)
    assert all(np.array_equal(getattr(cached, f), getattr(fresh, f)) for f in FIELDS)


def test_validation_on_the_test_split_is_stored_once(folder: Path) -> None:
    load_dataset(folder_cfg(folder, validation="test"))
    cached = load_dataset(folder_cfg(folder, validation="test"))
    assert cached.x_val is cached.x_test


def test_cache_lives_under_dlrun_cache(folder: Path, data_cache: Path) -> None:
    load_dataset(folder_cfg(folder))
    assert entry_of(folder_cfg(folder)).parent == data_cache / "data"


@pytest.mark.parametrize("change", [
    {"image_size": [6, 6]}, {"color": "rgb"}, {"normalize": False}, {"test_split": 0.3},
    {"validation": "test"}, {"limit": 10}, {"seed": 7},
])
def test_key_changes_with_each_preprocessing_setting(folder: Path, change: dict[str, object]) -> None:
    assert entry_of(folder_cfg(folder, **change)) != entry_of(folder_cfg(folder))


def test_key_changes_with_the_task(npz_file: Path) -> None:
    cfg = npz_cfg(npz_file)
    assert cache_key.cache_key(cfg, "regression") != cache_key.cache_key(cfg, "classification")


def test_key_changes_when_an_image_is_added(folder: Path) -> None:
    before = entry_of(folder_cfg(folder))
    cv2.imwrite(str(folder / "a" / "new.png"), np.zeros((12, 12), np.uint8))
    assert entry_of(folder_cfg(folder)) != before


def test_key_changes_when_a_file_is_rewritten(npz_file: Path) -> None:
    before = entry_of(npz_cfg(npz_file))
    stat = npz_file.stat()
    with np.load(npz_file) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["y"] = (arrays["y"] + 1) % 3  # same size; keep the old mtime too: the content hash must notice
    np.savez(npz_file, **arrays)
    os.utime(npz_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert entry_of(npz_cfg(npz_file)) != before


def test_edited_source_is_reloaded(npz_file: Path, source_reads: list[str]) -> None:
    load_dataset(npz_cfg(npz_file))
    with np.load(npz_file) as npz:
        arrays = {k: npz[k] for k in npz.files}
    np.savez(npz_file, **{**arrays, "y": np.zeros(60, np.int64)})
    load_dataset(npz_cfg(npz_file))
    assert source_reads == ["npz", "npz"]


def _damage(path: Path, how: str) -> None:
    blob = bytearray(path.read_bytes())
    if how == "truncate":
        blob = blob[: len(blob) // 2]
    else:
        blob[40 if how == "flip-header" else len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))


@pytest.mark.parametrize("how", ["flip-data", "flip-header", "truncate"])
def test_damaged_entry_is_rebuilt(folder: Path, source_reads: list[str], how: str) -> None:
    load_dataset(folder_cfg(folder))
    _damage(entry_of(folder_cfg(folder)), how)
    rebuilt = load_dataset(folder_cfg(folder))
    assert (source_reads, rebuilt.cache) == (["folder", "folder"], "miss")


@pytest.mark.parametrize("how", ["flip-data", "flip-header", "truncate"])
def test_rebuilt_entry_is_sound_again(folder: Path, how: str) -> None:
    load_dataset(folder_cfg(folder))
    _damage(entry_of(folder_cfg(folder)), how)
    load_dataset(folder_cfg(folder))
    assert load_dataset(folder_cfg(folder)).cache == "hit"


def test_no_cache_reads_the_source_and_writes_nothing(folder: Path, data_cache: Path,
                                                       source_reads: list[str]) -> None:
    load_dataset(folder_cfg(folder), use_cache=False)
    assert (source_reads, list(data_cache.rglob("*.bin"))) == (["folder"], [])


def test_built_in_sources_are_not_cached(data_cache: Path) -> None:
    load_dataset(DataConfig(source="synthetic_digits", n_train=20, n_test=10))
    assert list(data_cache.rglob("*.bin")) == []


def test_unwritable_cache_is_a_note_not_an_error(folder: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("DLRUN_CACHE", str(blocker))
    data = load_dataset(folder_cfg(folder))
    assert any("data cache not written" in note for note in data.notes)


def test_folder_load_peak_memory_within_twice_the_arrays(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "big", per_class=1200, size=70)  # 9.8 MB of uint8 arrays: fixed costs are small
    cfg = DataConfig(source="folder", path=str(root), image_size=[64, 64])
    tracemalloc.start()
    try:
        data = load_dataset(cfg, use_cache=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    arrays = {id(a): a for f in FIELDS if (a := getattr(data, f)) is not None}  # x_val is x_test here
    assert peak <= 2 * sum(a.nbytes for a in arrays.values())


# The CLI: a source changed behind the cache's back (same size and mtime) proves which path was taken.

def _corrupt_images_in_place(folder: Path, n: int) -> None:
    """Overwrite n images with garbage of the same size, restoring their mtimes (the cache's quick check)."""
    for file in sorted((folder / "a").iterdir())[:n]:
        stat = file.stat()
        file.write_bytes(b"\0" * stat.st_size)
        os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.fixture(scope="module")
def cached_folder(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A folder of images in a data cache of its own (`env` points the commands at it), then 4 images overwritten
    behind the cache's back; its config, and one `dlrun train --json` of it (`trained`: the summary). The
    commands run in this process (run_in_process): what is tested is their results, not their process."""
    tmp = tmp_path_factory.mktemp("cached-folder")
    folder = make_folder(tmp / "images")
    env = {"DLRUN_CACHE": str(tmp / "cache")}
    config = write_config(tmp, TINY_MLP, data={"source": "folder", "path": str(folder), "image_size": [8, 8]},
                          model={"layers": [{"flatten": {}}, {"dense": {"units": 2, "activation": "softmax"}}]},
                          train={"epochs": 1})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DLRUN_CACHE", env["DLRUN_CACHE"])
        load_dataset(folder_cfg(folder))  # fill the cache with the intact images
    _corrupt_images_in_place(folder, 4)
    return {"config": config, "env": env, "trained": _train_summary(config, tmp, env)}


def _train_summary(config: Path, tmp_path: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    proc = run_in_process("train", config, "--json", "--runs", tmp_path / "runs", *extra, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_train_uses_the_cache(cached_folder: dict[str, Any]) -> None:
    summary = cached_folder["trained"]
    assert (summary["data_cache"], summary["notes"]) == ("hit", [])


def test_train_no_cache_decodes_the_source(cached_folder: dict[str, Any], tmp_path: Path) -> None:
    summary = _train_summary(cached_folder["config"], tmp_path, cached_folder["env"], "--no-cache")
    assert summary["notes"] and "skipped 4" in summary["notes"][0]


def test_evaluate_no_cache_decodes_the_source(cached_folder: dict[str, Any]) -> None:
    run_dir, env = cached_folder["trained"]["run_dir"], cached_folder["env"]
    cached = json.loads(run_in_process("evaluate", run_dir, "--json", env=env).stdout)["examples"]
    fresh = json.loads(run_in_process("evaluate", run_dir, "--json", "--no-cache", env=env).stdout)["examples"]
    assert (cached, fresh) == (8, 7)  # 20% of 40 images vs 20% of the 36 still readable


def test_large_entry_round_trips_exactly(data_cache: Path) -> None:
    big = np.random.default_rng(2).random((3, 1000, 1000), dtype=np.float32)  # 12 MB: several read chunks
    cache.write_entry("k" * 64, {"x_train": big, "y_train": np.arange(3)}, {"note": 1})
    arrays, meta = cache.read_entry("k" * 64)
    assert (np.array_equal(arrays["x_train"], big), meta["note"]) == (True, 1)


def test_damage_in_a_later_chunk_is_detected(data_cache: Path) -> None:
    big = np.zeros((3, 1000, 1000), np.float32)
    path = cache.write_entry("k" * 64, {"x_train": big, "y_train": np.arange(3)}, {})
    with open(path, "r+b") as fh:
        fh.seek(path.stat().st_size - 100)
        fh.write(b"\x01")
    assert cache.read_entry("k" * 64) is None


def test_temporaries_of_killed_writers_are_cleaned_up(data_cache: Path) -> None:
    folder = data_cache / "data"
    folder.mkdir(parents=True)
    stale, fresh = folder / ".abc.left-behind.tmp", folder / ".def.being-written.tmp"
    for temp in (stale, fresh):
        temp.write_bytes(b"partial")
    os.utime(stale, (0, 0))
    cache.write_entry("k" * 64, {"x_train": np.zeros(3), "y_train": np.zeros(3)}, {})
    assert (stale.exists(), fresh.exists()) == (False, True)


# --- the key: only what changes the arrays, and the code and libraries that make them

def test_the_experiment_seed_does_not_miss_the_cache(npz_file: Path, tmp_path: Path) -> None:
    from dlrun.config import load_config
    from dlrun.data import load_checked

    model = {"layers": [{"flatten": {}}, {"dense": {"units": 3, "activation": "softmax"}}]}
    data = {"source": "npz", "path": str(npz_file), "keys": {"x_train": "x", "y_train": "y", "x_test": "xt",
                                                              "y_test": "yt"}}
    loads = [load_checked(load_config(write_config(tmp_path, TINY_MLP, name=f"s{seed}.yaml", seed=seed, data=data,
                                                   model=model))).cache for seed in (0, 7)]
    assert loads == ["miss", "hit"]


def test_key_follows_the_preprocessing_code(npz_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    copies = [Path(shutil.copytree(cache_key.DATA_PACKAGE, tmp_path / name,
                                   ignore=shutil.ignore_patterns("__pycache__"))) for name in ("same", "edited")]
    (copies[1] / "prepare.py").write_text((copies[1] / "prepare.py").read_text() + "\n# resize differently\n")
    same, edited = (cache_key.code_fingerprint(copy) for copy in copies)
    actual, before = cache_key.code_fingerprint(), cache_key.cache_key(npz_cfg(npz_file), "classification")
    monkeypatch.setattr(cache_key, "code_fingerprint", lambda: edited)  # as if dlrun.data had been edited
    assert (same == actual, edited != same,
            cache_key.cache_key(npz_cfg(npz_file), "classification") != before) == (True, True, True)


def test_key_follows_the_decoding_libraries(npz_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    import h5py

    installed = {"numpy": np.__version__, "opencv": metadata.version("opencv-python-headless"),
                 "h5py": h5py.__version__}
    found = cache_key.library_versions()
    before = cache_key.cache_key(npz_cfg(npz_file), "classification")
    monkeypatch.setattr(cache_key, "library_versions", lambda: {**installed, "opencv": "99.0"})  # an OpenCV upgrade
    assert (found, cache_key.cache_key(npz_cfg(npz_file), "classification") != before) == (installed, True)
