"""Benchmark 4: `dlrun --help` and `dlrun validate CONFIG` are fast and never import TensorFlow."""

from __future__ import annotations

import subprocess
from pathlib import Path

from common import PY, Row, bench_env, median, run_timed

TARGET_S = 0.5
# Runs the CLI in-process, then reports whether any TensorFlow or Keras module was imported.
TF_PROBE = (
    "import runpy, sys\n"
    "sys.argv = ['dlrun'] + sys.argv[1:]\n"
    "try:\n"
    "    runpy.run_module('dlrun', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
    "sys.stderr.write('TF_MODULES=%d\\n' % len(loaded))\n"
)


def tf_modules_loaded(args: list[str], env: dict[str, str]) -> int:
    """How many tensorflow/keras modules `dlrun ARGS` imports."""
    proc = subprocess.run([PY, "-c", TF_PROBE, *args], env=env, capture_output=True, text=True, timeout=120)
    last = (proc.stderr.strip().splitlines() or ["TF_MODULES=-1"])[-1]
    return int(last.split("=", 1)[1]) if last.startswith("TF_MODULES=") else -1


def cli_rows(config: Path, work: Path, repeats: int) -> list[Row]:
    """One row each for `--help` and `validate`: median wall time, and the no-TensorFlow check."""
    env = bench_env(work / "cache")
    rows = []
    for number, args in (("4a", ["--help"]), ("4b", ["validate", str(config)])):
        run_timed([PY, "-m", "dlrun", *args], env)  # warm-up: bytecode and page cache
        walls = [run_timed([PY, "-m", "dlrun", *args], env).wall for _ in range(max(repeats, 3))]
        tf_count = tf_modules_loaded(args, env)
        wall = median(walls)
        note = "TensorFlow never imported (checked)" if tf_count == 0 else f"**{tf_count} TF/Keras modules imported**"
        rows.append(Row(number, f"`dlrun {' '.join(args[:1])}{' CONFIG' if len(args) > 1 else ''}` wall time",
                        f"{wall:.3f} s", "—", "—", f"≤ {TARGET_S} s, no TF", wall <= TARGET_S and tf_count == 0,
                        f"{note}; n={len(walls)}"))
    return rows
