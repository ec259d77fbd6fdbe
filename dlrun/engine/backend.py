"""The one door to TensorFlow and Keras: nothing else in dlrun imports them.

Imports are lazy, so `dlrun --help`, `dlrun validate`, config, sweep planning and run-directory
code never load TensorFlow. Set-up (log level, threads, seeds, determinism) happens here once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from dlrun.config.schema import ExperimentConfig

_configured: dict[str, Any] = {}
CPU_DEVICES_ENV = "DLRUN_CPU_DEVICES"  # N logical CPU devices (see _split_cpu)
# What Keras imports at its own import for features dlrun never calls: the scikit-learn wrappers, pandas
# inputs to fit, the image-gallery plot. About 2 s of each process' start-up on a 2-core machine, so
# dlrun's own processes (own_process) leave them out; a program that imports dlrun keeps Keras whole.
KERAS_EXTRAS = ("sklearn", "pandas", "matplotlib")


def _quiet_env() -> None:
    # TensorFlow's C++ side logs at import; these must be set before the first import.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def silence_native_logs() -> None:
    """Send what TensorFlow's C++ side writes to fd 2 into $DLRUN_TF_LOG (default: discarded),
    while Python's sys.stderr keeps the real terminal. TF 2.21 logs through absl before its log
    level is read, so environment variables alone do not keep the terminal clean.
    `DLRUN_TF_LOG=stderr` leaves everything as it is."""
    target = os.environ.get("DLRUN_TF_LOG") or os.devnull
    if target == "stderr" or _configured.get("silenced"):
        return
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stderr = os.fdopen(saved, "w", buffering=1, encoding="utf-8", errors="replace")
    _configured["silenced"] = True


def own_process() -> None:
    """Mark this process as dlrun's own (the CLI, a sweep's worker): TensorFlow and Keras are then imported
    without Keras' optional integrations (KERAS_EXTRAS), which nothing in such a process uses."""
    _configured["own"] = True


@contextlib.contextmanager
def _left_out(names: tuple[str, ...]) -> Iterator[None]:
    """Make `import name` fail (as if not installed) for each of `names` not yet imported, until the block
    ends; afterwards each imports normally again."""
    hidden = [n for n in names if n not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def tf() -> ModuleType:
    """The tensorflow module, imported on first use with its C++ logs quietened."""
    first = "tensorflow" not in sys.modules
    if first:
        _quiet_env()
        with _left_out(KERAS_EXTRAS if _configured.get("own") else ()):
            import keras  # noqa: F401  (and with it tensorflow, its backend)
    import tensorflow

    tensorflow.get_logger().setLevel("ERROR")
    if first:
        _split_cpu(tensorflow)
    return tensorflow


def _split_cpu(tensorflow: ModuleType) -> None:
    """DLRUN_CPU_DEVICES=N: N logical CPU devices (train.distribute on a machine without GPUs; see
    engine/distribute.py). Only possible before TensorFlow's runtime starts, so done right at import."""
    count = int(os.environ.get(CPU_DEVICES_ENV) or 0)
    cpus = tensorflow.config.list_physical_devices("CPU") if count > 1 else []
    if cpus:
        with contextlib.suppress(RuntimeError):  # the runtime already started: keep its devices
            config = tensorflow.config.LogicalDeviceConfiguration
            tensorflow.config.set_logical_device_configuration(cpus[0], [config() for _ in range(count)])


def keras() -> ModuleType:
    """The keras (3) module, imported on first use."""
    tf()
    import keras as keras_module

    return keras_module


def loaded() -> bool:
    """True when TensorFlow has been imported in this process."""
    return "tensorflow" in sys.modules


def exit_now(code: int) -> NoReturn:
    """End the process with `code`. Once TensorFlow is loaded, skip the interpreter's teardown:
    TensorFlow's takes about a second (for any script that imports it) and does nothing a finished
    command needs: every artifact is written and closed by then, and logging and stdio are flushed
    here. So too once Ray is loaded and disconnected (a Ray sweep's driver: ~0.1 s of teardown; a
    connection still open is left to Ray's own exit handler). Otherwise an ordinary sys.exit."""
    ray = sys.modules.get("ray")
    if not loaded() and (ray is None or ray.is_initialized()):
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def setup(seed: int, threads: int | None = None, deterministic: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow, cap CPU threads, and (on a GPU) turn on op determinism.

    The CPU kernels dlrun's layers use are deterministic already (same seed, same weights: the
    tests check it), and op determinism there only costs time: it makes tf.data run maps one
    element at a time (a small MLP spends ~20% more CPU) and keras turns XLA off under it. GPU
    kernels are not deterministic, so there it is on unless `deterministic` is False (jit_compile:
    true asks for XLA, which keras refuses under op determinism).
    Thread limits can only be set before TensorFlow runs its first op; later calls keep the first.
    """
    tensorflow = tf()
    if threads and "threads" not in _configured:
        try:
            tensorflow.config.threading.set_intra_op_parallelism_threads(threads)
            tensorflow.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
            _configured["threads"] = threads
        except RuntimeError:
            pass  # the runtime is already initialised: keep its thread pools
    if deterministic and not _configured.get("deterministic") and gpus():
        tensorflow.config.experimental.enable_op_determinism()
        _configured["deterministic"] = True
    _seed(seed)


@contextlib.contextmanager
def kernels_kept() -> Iterator[None]:
    """While open, seeding TensorFlow with the seed it has already resets its op-seed sequence as
    `tf.random.set_seed` does, without the flush of TensorFlow's kernel caches that comes with it. That
    flush throws away every instantiated tf.function: a compiled model lent to the next sweep trial
    (engine/reuse.py) would instantiate its training step again (~0.15 s a trial). The flush only matters
    to stateful random kernels; Keras 3 draws its random numbers with stateless ops from its own seed
    generators (tests/test_model_reuse.py compares such trials with fresh processes)."""
    _configured["kernels_kept"] = True
    try:
        yield
    finally:
        _configured.pop("kernels_kept", None)


def _seed(seed: int) -> None:
    """keras.utils.set_random_seed(seed): Python, NumPy, Keras and TensorFlow's global seed (see kernels_kept)."""
    tensorflow, keras_ = tf(), keras()
    from tensorflow.python.eager import context

    ctx = context.context()
    if not _configured.get("kernels_kept") or ctx._seed != seed:
        keras_.utils.set_random_seed(seed)
        return
    import random

    set_seed = tensorflow.random.set_seed
    tensorflow.random.set_seed = lambda value: setattr(ctx, "_rng", random.Random(value))
    try:
        keras_.utils.set_random_seed(seed)
    finally:
        tensorflow.random.set_seed = set_seed


def setup_for(cfg: ExperimentConfig) -> None:
    """`setup` as a config asks: its seed and thread cap, op determinism unless `jit_compile: true`."""
    setup(cfg.seed, cfg.train.threads, deterministic=cfg.train.jit_compile is not True)


def threads() -> int:
    """The CPU threads TensorFlow runs ops with in this process (intra-op): the cap set first
    (`train.threads`, or a sweep worker's share of the cores), else all cores (TensorFlow's default)."""
    return int(tf().config.threading.get_intra_op_parallelism_threads()) or _cores()


def inter_op_threads() -> int:
    """The threads TensorFlow runs independent ops on at once (inter-op): min(threads, 2) under a cap,
    else all cores (TensorFlow's default). They schedule ops, never split one: no number depends on them."""
    return int(tf().config.threading.get_inter_op_parallelism_threads()) or _cores()


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def clear_session() -> None:
    """Free the graphs and layers of previous models (between trials)."""
    keras().backend.clear_session(free_memory=True)


def gpus() -> list[str]:
    """Names of the visible GPUs (empty on CPU-only machines)."""
    return [d.name for d in tf().config.list_physical_devices("GPU")]


def versions() -> dict[str, str]:
    """Versions of python, tensorflow, keras and dlrun."""
    import platform

    from dlrun._version import __version__

    return {"python": platform.python_version(), "tensorflow": tf().__version__,
            "keras": keras().__version__, "dlrun": __version__}
