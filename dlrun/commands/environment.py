"""`dlrun env`: what a bug report needs in one block: versions, devices, thread settings, where the
data cache and the runs are. Versions come from the installed packages' metadata; only the device
list loads TensorFlow (it is what TensorFlow itself finds)."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from dlrun._version import __version__
from dlrun.data import cache, cache_admin
from dlrun.data.sources import keras_cache_dir
from dlrun.store import names

# shown name -> installed distributions that provide it (the first one installed counts)
PACKAGES = {
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos"), "keras": ("keras",),
    "numpy": ("numpy",), "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python"),
    "h5py": ("h5py",), "pydantic": ("pydantic",), "typer": ("typer",), "rich": ("rich",),
    "tensorboard": ("tensorboard",), "optuna": ("optuna",), "ray": ("ray",),
}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "CUDA_VISIBLE_DEVICES")


def versions() -> dict[str, str]:
    """dlrun, Python and each package that is installed (read from metadata: nothing is imported)."""
    found = {"dlrun": __version__, "python": platform.python_version()}
    for shown, dists in PACKAGES.items():
        for dist in dists:
            try:
                found[shown] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return found


def devices() -> dict[str, Any]:
    """The devices TensorFlow finds, and the CUDA it was built with."""
    from dlrun.engine import backend

    tf = backend.tf()
    build = dict(tf.sysconfig.get_build_info())
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return {"cpu": True, "gpus": gpus, "built_with_cuda": bool(tf.test.is_built_with_cuda()),
            "cuda": build.get("cuda_version"), "cudnn": build.get("cudnn_version"),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def environment(runs_root: str | Path = names.DEFAULT_RUNS_ROOT, with_devices: bool = True) -> dict[str, Any]:
    """Everything `dlrun env` reports, as plain data (`with_devices` False: nothing that loads TensorFlow)."""
    entries = cache_admin.entry_files()
    runs = Path(runs_root)
    return {
        "versions": versions(),
        "platform": platform.platform(),
        **({"devices": devices()} if with_devices else {}),
        "threads": {"cores": _cores(), **{v: os.environ.get(v) for v in THREAD_VARIABLES}},
        "data_cache": {"location": str(cache.cache_dir()), "entries": len(entries),
                       "size_bytes": sum(p.stat().st_size for p in entries if p.exists()),
                       "max": os.environ.get(cache_admin.MAX_ENV)},
        "runs": {"location": str(runs.resolve()), "exists": runs.is_dir()},
        "keras_datasets": str(keras_cache_dir()),
    }


def report_lines(env: dict[str, Any]) -> list[str]:
    """The `dlrun env` block, one `name: value` line each, to paste into a bug report: the lines that need
    no TensorFlow, then the devices (when `env` has them: device_lines)."""
    from dlrun.ui.console import format_bytes

    v, t, c = env["versions"], env["threads"], env["data_cache"]
    packages = ", ".join(f"{k} {val}" for k, val in v.items() if k not in ("dlrun", "python"))
    threads = ", ".join(f"{k}={val}" for k, val in t.items() if k != "cores" and val is not None) or "none set"
    cap = f"cap {c['max']}" if c["max"] else f"no cap ({cache_admin.MAX_ENV} unset)"
    return [f"dlrun: {v['dlrun']}", f"python: {v['python']} on {env['platform']}", f"packages: {packages}",
            f"threads: {t['cores']} cores available; variables: {threads}",
            f"data cache: {c['location']} ({c['entries']} {'entry' if c['entries'] == 1 else 'entries'}, "
            f"{format_bytes(c['size_bytes'])}, {cap})",
            f"runs: {env['runs']['location']}{'' if env['runs']['exists'] else ' (not created yet)'}",
            f"keras datasets: {env['keras_datasets']}", *(device_lines(env["devices"]) if "devices" in env else [])]


def device_lines(d: dict[str, Any]) -> list[str]:
    """The devices TensorFlow finds and its thread pools (devices())."""
    gpus = ", ".join(d["gpus"]) or "none"
    cuda = f"built with CUDA {d['cuda']}, cuDNN {d['cudnn']}" if d["built_with_cuda"] else "CPU-only build"
    auto = "auto" if not d["intra_op_threads"] else d["intra_op_threads"]
    return [f"devices: cpu; GPUs: {gpus} (TensorFlow {cuda}); TensorFlow threads: intra-op {auto}, "
            f"inter-op {d['inter_op_threads'] or 'auto'}"]
