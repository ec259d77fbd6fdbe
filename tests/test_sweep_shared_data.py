"""Local sweep workers share the data (issue 29): a memory-mapped cache entry reaches each worker as a
reference to its file, which the worker maps, never as a copy of its arrays; arrays in memory are sent
by value, pickled once for all workers."""

from __future__ import annotations

import os
import pickle
import time
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dlrun.config.schema import DataConfig
from dlrun.data import cache, cache_key, load_dataset
from dlrun.errors import DataError
from dlrun.sweeps.data import load_sweep_data
from dlrun.sweeps.executors.pipes import serialized
from dlrun.sweeps.executors.processes import ProcessExecutor
from dlrun.sweeps.executors.shipping import for_object_store
from dlrun.sweeps.plan import plan_sweep
from dlrun.ui.console import Reporter
from tests.conftest import TINY_MLP, cli_env, npy_pixels, run_cli, write_config
from tests.test_sweep import metric_view

MAPS_SECONDS = 120  # a worker maps the file once TensorFlow is loaded: seconds on a busy 2-core machine


@pytest.fixture
def pixels(tmp_path: Path) -> DataConfig:
    """2,000 random 32x32 uint8 images (2 MiB) as X.npy / Y.npy."""
    return npy_pixels(tmp_path, 2000, 32)


@pytest.fixture
def mapped(pixels: DataConfig, monkeypatch: pytest.MonkeyPatch) -> DataConfig:
    """`pixels`, cached, with a budget whose quarter (1 MiB) its examples exceed: loaded memory-mapped."""
    load_dataset(pixels)
    monkeypatch.setenv("DLRUN_MEMORY_BUDGET", "4M")
    assert isinstance(load_dataset(pixels).x_train, np.memmap)
    return pixels


def test_mapped_arrays_are_sent_as_their_file(mapped: DataConfig) -> None:
    data = load_dataset(mapped)
    payload = serialized({"k": data})
    assert len(payload) < 64 << 10  # the examples are 2 MiB: none of them is in the message
    back = ForkingPickler.loads(payload)["k"]
    assert isinstance(back.x_train, np.memmap) and str(back.x_train.filename) == str(data.x_train.filename)
    assert np.array_equal(back.x_train, data.x_train) and np.array_equal(back.y_train, data.y_train)
    assert back.val_is_test == data.val_is_test and back.fingerprint() == data.fingerprint()


def test_mapped_arrays_go_to_rays_object_store_out_of_band(mapped: DataConfig) -> None:
    """Ray stores out-of-band buffers once per node and hands every actor views of them; what is pickled in
    band is a copy in each actor."""
    data = load_dataset(mapped)
    buffers: list[pickle.PickleBuffer] = []
    inband = pickle.dumps(for_object_store(data), protocol=5, buffer_callback=buffers.append)
    assert len(inband) < 64 << 10 and sum(b.raw().nbytes for b in buffers) >= data.x_train.nbytes
    back = pickle.loads(inband, buffers=buffers)
    assert np.array_equal(back.x_train, data.x_train) and back.fingerprint() == data.fingerprint()


def test_arrays_in_memory_are_sent_by_value(pixels: DataConfig) -> None:
    data = load_dataset(pixels)
    back = ForkingPickler.loads(serialized({"k": data}))["k"]
    assert not isinstance(back.x_train, np.memmap) and np.array_equal(back.x_train, data.x_train)


def test_a_replaced_entry_is_refused_when_a_worker_maps_it(mapped: DataConfig) -> None:
    payload = serialized({"k": load_dataset(mapped)})
    path = cache.entry_path(cache_key.cache_key(mapped, "classification"))
    copy = path.with_name("copy")
    copy.write_bytes(path.read_bytes())
    os.replace(copy, path)  # the same bytes in another file: not the one the sweep checked
    with pytest.raises(DataError, match="replaced or changed in size.*--resume"):
        ForkingPickler.loads(payload)


def _maps(pid: int, path: str) -> bool:
    try:
        return any(line.rstrip().endswith(path) for line in Path(f"/proc/{pid}/maps").read_text().splitlines())
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="no /proc/<pid>/maps")
def test_each_worker_maps_the_one_cache_file(mapped: DataConfig) -> None:
    data = load_dataset(mapped)
    executor = ProcessExecutor(2)
    executor.start({"k": data})
    try:
        pids = [w.process.pid for w in executor._workers]
        deadline = time.monotonic() + MAPS_SECONDS
        while not all(_maps(pid, str(data.x_train.filename)) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(pids) == 2 and all(_maps(pid, str(data.x_train.filename)) for pid in pids)
    finally:
        executor.close()


def test_two_jobs_map_a_data_set_whose_two_copies_pass_the_threshold(pixels: DataConfig, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """2 MiB of examples under a 12 MiB budget (a 3 MiB threshold): one process holds them, two workers map."""
    config = write_config(tmp_path, TINY_MLP, data=pixels.model_dump(mode="json", exclude_defaults=True))
    plan = plan_sweep(config, lr="0.1,1")
    monkeypatch.setenv("DLRUN_MEMORY_BUDGET", "12M")

    def loaded(copies: int) -> Any:
        return next(iter(load_sweep_data(plan, Reporter(json_mode=True), copies=copies)[0].values()))

    built, one, two = loaded(2), loaded(1), loaded(2)  # built: the entry written, then read back mapped
    assert [(d.cache, isinstance(d.x_train, np.memmap)) for d in (built, one, two)] == \
        [("miss", True), ("hit", False), ("hit", True)]
    assert built.fingerprint() == one.fingerprint() == two.fingerprint() and built.notes == one.notes


@pytest.mark.slow
def test_a_sweep_on_mapped_data_gives_the_results_of_data_in_memory(pixels: DataConfig, tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP, data=pixels.model_dump(mode="json", exclude_defaults=True),
                          train={"epochs": 1, "batch_size": 64})
    flags = ("--lr", "0.01,0.05", "--lambda", "0", "--mode", "grid", "--jobs", "2")
    results = []
    for name, budget in (("memory", "1G"), ("mapped", "4M")):
        env = cli_env(DLRUN_MEMORY_BUDGET=budget, DLRUN_CACHE=os.environ["DLRUN_CACHE"])
        proc = run_cli("sweep", config, *flags, "--sweep-dir", tmp_path / name, env=env)
        assert proc.returncode == 0, proc.stderr
        results.append(metric_view(tmp_path / name))
    assert results[0] == results[1] and len(results[0]) == 2
