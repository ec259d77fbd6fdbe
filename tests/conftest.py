"""Shared fixtures and helpers: tiny configs on built-in data, a subprocess runner for the CLI contract,
helpers for tests that signal or kill a real `dlrun` process, and writers of legacy Keras-2 files."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml
from docs_runner import run_app
from written_configs import unreadable_written_configs
from xdist_groups import pytest_collection_modifyitems  # noqa: F401  (a hook: tests sharing a fixture share a worker)

from dlrun.config import dump_config, load_config
from dlrun.config.schema import DataConfig
from dlrun.data import Dataset, load_dataset
from dlrun.interrupts import StopRequest
from dlrun.store import files, names
from dlrun.store.rundir import create_run_dir
from dlrun.sweeps.executors import TrialResult, TrialTask

ROOT = Path(__file__).resolve().parents[1]

TINY_CNN: dict[str, Any] = {
    "name": "tiny",
    "seed": 0,
    "data": {"source": "synthetic_digits", "n_train": 200, "n_test": 100},
    "model": {"layers": [
        {"conv2d": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
        {"max_pool2d": {"pool_size": 2}},
        {"dropout": {"rate": 0.1}},
        {"flatten": {}},
        {"dense": {"units": 10, "activation": "softmax"}},
    ]},
    "optimizer": {"name": "adam", "lr": 0.005},
    "train": {"epochs": 2, "batch_size": 32},
}

TINY_MLP: dict[str, Any] = {
    "name": "tiny-mlp",
    "seed": 0,
    "data": {"source": "synthetic_digits", "n_train": 200, "n_test": 100},
    "model": {"layers": [
        {"flatten": {}},
        {"dense": {"units": 16, "activation": "relu"}},
        {"dense": {"units": 10, "activation": "softmax"}},
    ]},
    "optimizer": {"name": "sgd", "lr": 0.05},
    "train": {"epochs": 2, "batch_size": 32},
}


def deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `changes` merged in (nested mappings merged, other values replaced)."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def write_config(directory: Path, base: dict[str, Any] | None = None, name: str = "config.yaml",
                 **changes: Any) -> Path:
    """Write a config (TINY_CNN unless `base`) with `changes` merged in; returns its path."""
    path = directory / name
    path.write_text(yaml.safe_dump(deep_merge(base or TINY_CNN, changes), sort_keys=False))
    return path


def npy_pixels(folder: Path, n: int, side: int) -> DataConfig:
    """`n` random `side` x `side` uint8 images as X.npy / Y.npy in `folder` (labels 0-9 in turn), and a data
    section reading them (20 % test, 10 % validation)."""
    rng = np.random.default_rng(0)
    np.save(folder / "X.npy", rng.integers(0, 256, (n, side, side), dtype=np.uint8))
    np.save(folder / "Y.npy", np.arange(n) % 10)
    return DataConfig(source="npy", path=str(folder), test_split=0.2, validation=0.1)


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for CLI subprocesses: this checkout first on the path, one thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("DLRUN_TF_LOG", os.devnull)
    env.update(extra)
    return env


def run_cli(*args: str | Path, cwd: Path | None = None, timeout: float = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m dlrun ARGS` and capture stdout/stderr as text."""
    return subprocess.run([sys.executable, "-m", "dlrun", *map(str, args)], cwd=cwd, env=env or cli_env(),
                          capture_output=True, text=True, timeout=timeout)


def run_in_process(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `dlrun ARGS` through the command line itself (`dlrun.cli.app`) in this process, as
    tests/docs_runner.py does, with the variables `env` set meanwhile: what `run_cli` gives (exit code,
    stdout, stderr) without starting Python and TensorFlow again, for tests of a command's results rather
    than of its process. An unexpected exception propagates (with its traceback)."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in (env or {}).items():
            patch.setenv(key, value)
        code, out, err = run_app([str(arg) for arg in args])
    return subprocess.CompletedProcess(["dlrun", *map(str, args)], code, out, err)


@pytest.fixture(autouse=True, scope="session")
def written_configs_read_back(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """When the session ends, every config.yaml and best.yaml dlrun wrote reads back equal (issue 23)."""
    yield
    bad = unreadable_written_configs(tmp_path_factory.getbasetemp())
    assert not bad, "configs dlrun wrote that do not read back:\n" + "\n".join(bad)


@pytest.fixture(autouse=True)
def data_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, private data cache per test (inherited by CLI subprocesses), never ~/.cache/dlrun."""
    path = tmp_path_factory.mktemp("dlrun-cache")
    monkeypatch.setenv("DLRUN_CACHE", str(path))
    return path


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    """A 2-epoch CNN config on 200 synthetic digits."""
    return write_config(tmp_path)


@pytest.fixture
def tiny_mlp_config(tmp_path: Path) -> Path:
    """A 2-epoch MLP config on 200 synthetic digits."""
    return write_config(tmp_path, TINY_MLP)


NO_TF_PROBE = (
    "import sys, runpy\n"
    "sys.argv = ['dlrun'] + sys.argv[1:]\n"
    "try:\n"
    "    runpy.run_module('dlrun', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    "sys.stderr.write('TF_LOADED=%s\\n' % any(m == 'tensorflow' or m.startswith(('tensorflow.', 'keras')) "
    "for m in sys.modules))\n"
)


OPTIONAL_FAMILIES = ("tensorflow", "keras", "optuna", "ray", "mlflow")  # what --help and validate never load


def modules_loaded(*args: str, families: tuple[str, ...] = OPTIONAL_FAMILIES) -> set[str]:
    """Which of `families` running `dlrun ARGS` in a fresh interpreter imported (NO_TF_PROBE, asked more)."""
    probe = NO_TF_PROBE + f"print('LOADED=' + ','.join(f for f in {families!r} if any(m == f or m.startswith(f + '.') "\
        "for m in sys.modules)))\n"
    proc = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True,
                          env=cli_env(), cwd=ROOT, timeout=120)
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("LOADED="), proc.stdout + proc.stderr
    return {f for f in line.removeprefix("LOADED=").split(",") if f}


def tf_loaded(*args: str) -> str:
    """`TF_LOADED=True|False`: whether running `dlrun ARGS` in a fresh interpreter imported TensorFlow."""
    proc = subprocess.run([sys.executable, "-c", NO_TF_PROBE, *args], capture_output=True, text=True,
                          env=cli_env(), cwd=ROOT, timeout=120)
    return proc.stderr.strip().splitlines()[-1]


def write_keras2_h5(path: Path, layers: list[tuple[str, list[np.ndarray]]], full_model: bool = False) -> None:
    """A legacy Keras-2 weights file as tf-keras writes it (root attrs layer_names, weight_names)."""
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if full_model else f
        root.attrs["layer_names"] = [name.encode() for name, _ in layers]
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.15.0"
        for name, arrays in layers:
            group = root.create_group(name)
            kinds = ["kernel", "bias"] if len(arrays) == 2 else [f"w{i}" for i in range(len(arrays))]
            names = [f"{name}/{kind}:0" for kind in kinds]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for n, array in zip(names, arrays, strict=True):
                group.create_dataset(n, data=array)


# A CNN with dropout on 1000 synthetic digits: ~0.1 s per epoch on 2 cores, so a signal sent
# after epoch 2 lands well before the end, and the whole run takes a few seconds.
LIVE_CNN: dict[str, Any] = deep_merge(TINY_CNN, {
    "name": "live",
    "data": {"n_train": 1000, "n_test": 200},
    "train": {"epochs": 12, "batch_size": 32},
})


def start(*args: str | Path, cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start `python -m dlrun ARGS` without waiting for it."""
    return subprocess.Popen([sys.executable, "-m", "dlrun", *map(str, args)], cwd=cwd, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    """The rows of metrics.csv ([] while there is none). The file is replaced atomically, so a
    read sees a complete version."""
    try:
        text = (run_dir / "metrics.csv").read_text()
    except FileNotFoundError:
        return []
    return list(csv.DictReader(io.StringIO(text)))


def wait_for_epochs(proc: subprocess.Popen[str], run_dir: Path, epochs: int, timeout: float = 120) -> int:
    """Poll until metrics.csv has at least `epochs` rows; returns the count (fails if the process ends first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = len(metric_rows(run_dir))
        if done >= epochs:
            return done
        if proc.poll() is not None:
            raise AssertionError(f"dlrun exited ({proc.returncode}) before epoch {epochs}: {proc.stderr.read()}")
        time.sleep(0.005)
    raise AssertionError(f"no epoch {epochs} within {timeout} s")


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    """Wait for the process; (returncode, stdout, stderr)."""
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


HOLD_LOCK = ("import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDONLY)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
             "print('locked', flush=True)\nsys.stdin.read()\n")


@contextlib.contextmanager
def lock_held_by_another_process(path: Path) -> Iterator[int]:
    """Another live process holds the run lock on the directory `path` (as a training dlrun does) for
    the block; yields its pid."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc.pid
    finally:
        proc.communicate(timeout=30)  # closing its stdin ends it, and the lock with it


def without_seconds(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """metrics.csv rows minus the wall-clock column, which no two runs share."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


class StopAfter(StopRequest):
    """Asks training to stop once the run has `epochs` complete epochs (as Ctrl-C would)."""

    def __init__(self, run_dir: Path, epochs: int):
        super().__init__()
        self.run_dir, self.epochs = run_dir, epochs

    @property  # type: ignore[override]
    def requested(self) -> bool:
        metrics = self.run_dir / names.METRICS
        return metrics.exists() and len(files.read_csv(metrics)) >= self.epochs

    @requested.setter
    def requested(self, value: bool) -> None:
        pass


def trial_tasks(root: Path, configs: list[dict[str, Any]],
                first: int = 0) -> tuple[list[TrialTask], dict[str, Dataset]]:
    """A sweep's trials without the sweep: for each config, the run directory root/trials/NNN (ids from
    `first`) with its config.yaml, and its task; and the data of the configs (all use the first's) as key "d"."""
    tasks, lc = [], None
    for i, config in enumerate(configs, start=first):
        lc = load_config(write_config(root, config, name=f"trial-{i:03d}.yaml"))
        run = create_run_dir(f"{i:03d}", explicit=root / "trials" / f"{i:03d}")
        files.write_text(run / names.CONFIG, dump_config(lc.config))
        tasks.append(TrialTask(f"{i:03d}", run.path, "d"))
    assert lc is not None
    return tasks, {"d": load_dataset(lc.config.data, lc.config.task)}


class Recorder:
    """TrialEvents that record what happened, in order (`log`; every epoch's row keys in `rows`; the results),
    and prune at epoch `prune_at` (never: 0); `on_epoch(trial, epoch)` runs first."""

    def __init__(self, prune_at: int = 0, on_epoch: Any = None):
        self.prune_at, self.on_epoch = prune_at, on_epoch
        self.log: list[tuple[Any, ...]] = []
        self.rows: list[tuple[str, int, set[str]]] = []
        self.results: list[TrialResult] = []
        self.threads: set[int] = set()

    def started(self, task: TrialTask) -> None:
        self.log.append(("started", task.trial_id))

    def epoch_ended(self, trial_id: str, epoch: int, row: dict[str, Any]) -> bool:
        self.threads.add(threading.get_ident())
        self.log.append(("epoch", trial_id, epoch))
        self.rows.append((trial_id, epoch, set(row)))
        if self.on_epoch is not None:
            self.on_epoch(trial_id, epoch)
        return not self.prune_at or epoch < self.prune_at

    def finished(self, result: TrialResult) -> None:
        self.log.append(("finished", result.trial_id, result.status))
        self.results.append(result)
