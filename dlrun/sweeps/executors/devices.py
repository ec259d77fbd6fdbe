"""What this machine offers trials, found without TensorFlow: GPU ids and CPU cores."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path


def gpu_devices() -> list[str]:
    """GPU ids visible to this process, found without TensorFlow: CUDA_VISIBLE_DEVICES when set,
    else the NVIDIA driver's list."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    proc_dir = Path("/proc/driver/nvidia/gpus")
    if proc_dir.is_dir():
        return [str(i) for i, _ in enumerate(sorted(proc_dir.iterdir()))]
    if shutil.which("nvidia-smi"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
            return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]
    return []


def cpu_count() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
