"""The README's pictures, made from real runs (`make docs` runs this; nothing is edited by hand).

    python scripts/docs_pictures.py [--out docs/img]

trains configs/quickstart.yaml as `make run` does and copies its history.png, and runs the lr x lambda
sweep of configs/sweep_lr_lambda.yaml at the quick-look size its comment gives (data.limit=500) and
copies its heatmap.png. The runs are made in a temporary folder, so runs/ is left alone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 200_000  # pictures are committed: keep each small


def dlrun(*args: str, cwd: Path) -> None:
    """Run `python -m dlrun ARGS` from this checkout; stop on failure."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    print("$ dlrun", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "dlrun", *args], cwd=cwd, env=env, check=True,
                   stdout=subprocess.DEVNULL)


def copy(source: Path, target: Path) -> None:
    """Copy a picture into the docs, refusing one too large to commit."""
    size = source.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{source} is {size} bytes, over {MAX_BYTES}: shrink the figure")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target} ({size // 1024} KiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dlrun-pictures-") as tmp:
        work = Path(tmp)
        dlrun("train", str(ROOT / "configs" / "quickstart.yaml"), "--run-dir", "quickstart", cwd=work)
        copy(work / "quickstart" / "history.png", args.out / "quickstart-history.png")
        dlrun("sweep", str(ROOT / "configs" / "sweep_lr_lambda.yaml"), "--set", "data.limit=500", "--jobs", "2",
              "--sweep-dir", "sweep", cwd=work)
        copy(work / "sweep" / "heatmap.png", args.out / "sweep-heatmap.png")


if __name__ == "__main__":
    main()
