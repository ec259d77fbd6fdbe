"""Shared fixtures: tiny configs on built-in data, and a subprocess runner for the CLI contract."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

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
