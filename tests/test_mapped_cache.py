"""A data cache entry larger than its share of the memory budget is memory-mapped and streamed batch by
batch (issue 29): the same batches, the same metrics, a truncated entry rebuilt, never mapped."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from dlrun.config.schema import DataConfig
from dlrun.data import cache, cache_key, load_dataset
from dlrun.engine.pipeline import MappedRows, eval_stream, train_stream
from tests.conftest import cli_env, metric_rows, npy_pixels, run_in_process, without_seconds, write_config

POOLED = {"layers": [{"max_pool2d": {"pool_size": 8}}, {"flatten": {}}, {"dense": {"units": 10,
                                                                                   "activation": "softmax"}}]}


@pytest.fixture
def pixels(tmp_path: Path) -> DataConfig:
    """3,000 random 64x64 uint8 images (12 MiB) as X.npy / Y.npy."""
    return npy_pixels(tmp_path, 3000, 64)


def test_an_entry_over_the_threshold_is_mapped(pixels: DataConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_dataset(pixels).cache == "miss"
    assert not isinstance(load_dataset(pixels).x_train, np.memmap)  # the default budget: read into memory
    monkeypatch.setenv("DLRUN_MEMORY_BUDGET", "16M")  # examples (12 MiB) > a quarter of it
    data = load_dataset(pixels)
    assert data.cache == "hit" and isinstance(data.x_train, np.memmap) and isinstance(data.x_test, np.memmap)
    assert data.x_val is not None and not isinstance(data.y_train, np.memmap)


def test_mapped_streams_give_the_batches_of_arrays_in_memory(pixels: DataConfig,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    memory = load_dataset(pixels)
    monkeypatch.setenv("DLRUN_MEMORY_BUDGET", "16M")
    mapped = load_dataset(pixels)
    a, steps = train_stream(memory.x_train, memory.y_train, 64, 1, 0, 2)
    b, _ = train_stream(mapped.x_train, mapped.y_train, 64, 1, 0, 2)
    for (xa, ya), (xb, yb) in zip(a.take(2 * steps), b.take(2 * steps), strict=True):
        assert np.array_equal(xa.numpy(), xb.numpy()) and np.array_equal(ya.numpy(), yb.numpy())
    assert memory.x_test is not None and mapped.x_test is not None
    for ea, eb in zip(eval_stream(memory.x_test, None, 256), eval_stream(mapped.x_test, None, 256), strict=True):
        assert np.array_equal(ea.numpy(), eb.numpy())


@pytest.mark.parametrize("view", ["the file's own map", "a view of it"])
def test_reading_a_mapped_array_keeps_little_of_it_resident(tmp_path: Path, view: str) -> None:
    """Rows read from a 256 MiB mapped file (by pread, or from a view, indexed and its pages released)
    leave at most a batch's worth of it in this process's memory."""
    if not Path("/proc/self/smaps").exists():
        pytest.skip("no /proc/self/smaps")
    np.save(tmp_path / "big.npy", np.ones((257, 1024, 1024), np.uint8))
    whole = np.load(tmp_path / "big.npy", mmap_mode="r")
    rows = MappedRows(whole if view == "the file's own map" else whole[1:])
    for start in range(0, 256, 4):
        assert rows.rows(np.int64(start), np.int64(start + 4)).sum() == 4 << 20
        assert rows.take(np.array([start + 3, start])).shape == (2, 1024, 1024)
    blocks = re.split(r"\n(?=[0-9a-f]+-[0-9a-f]+ )", Path("/proc/self/smaps").read_text())
    mapped = [block for block in blocks if block.split("\n", 1)[0].endswith("big.npy")]
    resident_kib = sum(int(re.search(r"\nRss:\s+(\d+)", block).group(1)) for block in mapped)  # type: ignore[union-attr]
    assert mapped and resident_kib <= 8 << 10


def test_a_truncated_entry_is_rebuilt_not_mapped(pixels: DataConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    load_dataset(pixels)
    key = cache_key.cache_key(pixels, "classification")
    assert key is not None
    entry = cache.entry_path(key)
    with open(entry, "r+b") as fh:  # another process cuts the file short
        fh.truncate(entry.stat().st_size // 2)
    assert cache.read_entry(key, map_over=0) is None
    monkeypatch.setenv("DLRUN_MEMORY_BUDGET", "16M")
    data = load_dataset(pixels)
    assert data.cache == "miss" and any("rebuilt a damaged data cache entry" in n for n in data.notes)


def test_a_mapped_run_trains_to_the_metrics_of_one_in_memory(pixels: DataConfig, tmp_path: Path) -> None:
    config = write_config(tmp_path, data=pixels.model_dump(mode="json", include={"source", "path", "test_split",
                                                                                   "validation"}), model=POOLED)
    rows = []
    for budget in ("", "16M"):  # the first builds the entry and trains from memory; the second maps it
        env_run = run_in_process("train", config, "--runs", tmp_path / f"runs{budget}",
                                 env={"DLRUN_MEMORY_BUDGET": budget} if budget else None)
        assert env_run.returncode == 0, env_run.stderr
        (run,) = (tmp_path / f"runs{budget}").iterdir()
        rows.append(without_seconds(metric_rows(run)))
        assert ('"data_cache": "hit"' in (run / "summary.json").read_text()) == bool(budget)
    assert rows[0] == rows[1]



def _folder(root: Path, n: int) -> DataConfig:
    """An image folder of `n` random 8x8 PNGs in two classes, and one file that is not an image."""
    import cv2

    rng = np.random.default_rng(1)
    for i in range(n):
        (root / str(i % 2)).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / str(i % 2) / f"{i:04d}.png"), rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    (root / "0" / "9999.png").write_bytes(b"not a png")
    return DataConfig(source="folder", path=str(root), image_size=(8, 8), color="rgb", test_split=0.0,
                      validation=0.0)


def test_a_folder_decoded_in_worker_processes_equals_one_decoded_here(tmp_path: Path) -> None:
    from dlrun.data import images

    cfg = _folder(tmp_path, images.PARALLEL_FROM + 40)
    data = load_dataset(cfg, use_cache=False)
    files = [f for c in ("0", "1") for f in sorted((tmp_path / c).iterdir()) if f.name != "9999.png"]
    expected = np.stack([images.decode(f, (8, 8), True) for f in files])
    assert np.array_equal(data.x_train, expected)
    assert data.y_train.tolist() == [int(f.parent.name) for f in files]
    assert any("1 not an image or unreadable" in note for note in data.notes)


def test_a_folder_changing_while_it_is_read_is_refused_and_not_cached(tmp_path: Path) -> None:
    from dlrun.data import images
    from dlrun.errors import DataError

    cfg = _folder(tmp_path / "pics", 20)
    decode = images.decode

    def decode_and_add(file: Path, size: tuple[int, int], rgb: bool) -> np.ndarray | None:
        (tmp_path / "pics" / "1" / "new.png").write_bytes((tmp_path / "pics" / "1" / "0001.png").read_bytes())
        return decode(file, size, rgb)

    images.decode = decode_and_add  # another process adds an image while the folder is decoded
    try:
        with pytest.raises(DataError, match="changed while dlrun read them"):
            load_dataset(cfg)
    finally:
        images.decode = decode
    assert not list(cache.cache_dir().glob("*.bin"))


def _loaded(cfg: DataConfig, cache_dir: Path, budget: str, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("DLRUN_CACHE", str(cache_dir))
    monkeypatch.setenv("DLRUN_MEMORY_BUDGET", budget)
    return load_dataset(cfg)


def test_a_folder_over_the_budget_is_prepared_into_its_entry_as_in_memory(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder whose pixels exceed the whole memory budget (refused before issue 29) is decoded into its
    cache entry and mapped: the very arrays, splits and notes that preparing it in memory gives."""
    cfg = _folder(tmp_path / "pics", 300).model_copy(update={"test_split": 0.2, "validation": 0.1})
    memory = _loaded(cfg, tmp_path / "c1", "4G", monkeypatch)
    streamed = _loaded(cfg, tmp_path / "c2", "48K", monkeypatch)  # 300 x 8x8x3 = 56 KiB of pixels
    assert (memory.cache, streamed.cache) == ("miss", "miss") and isinstance(streamed.x_train, np.memmap)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert np.array_equal(getattr(memory, name), getattr(streamed, name)), name
    assert (memory.notes, memory.splits, memory.fingerprint()) == (streamed.notes, streamed.splits,
                                                                   streamed.fingerprint())
    assert not [p for p in (tmp_path / "c2" / "data").iterdir() if p.suffix != ".bin"]  # no temporary left


def test_a_full_disk_while_the_entry_is_written_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    """The file size limit (RLIMIT_FSIZE) stands in for a full disk: the space is reserved before any
    image is decoded, so the run stops with a message, not a crash, and no temporary is left."""
    cfg = _folder(tmp_path / "pics", 300)
    probe = ("import resource, signal, sys\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
             "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
             "from dlrun.config.schema import DataConfig\nfrom dlrun.data import load_dataset\n"
             "from dlrun.errors import DataError\n"
             f"try:\n    load_dataset(DataConfig(**{cfg.model_dump(mode='json')!r}))\n"
             "except DataError as exc:\n    print(exc)\n")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", probe], env=cli_env(DLRUN_CACHE=str(tmp_path / "c"),
                                                                    DLRUN_MEMORY_BUDGET="48K"),
                         capture_output=True, text=True, timeout=120)
    assert "cannot hold the" in out.stdout and "DLRUN_CACHE" in out.stdout, out.stderr[-2000:]
    assert not list((tmp_path / "c" / "data").iterdir())
