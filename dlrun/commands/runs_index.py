"""The flattened configs of a folder of runs, kept in an index file beside them (names.RUNS_INDEX).

Parsing a thousand config.yaml files takes seconds; reading one JSON file takes milliseconds. An
entry is reparsed when its config.yaml's modification time or size changed, an entry of a deleted run
dropped, the index rewritten only when an entry changed; a folder that cannot be written to is simply
read every time.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from dlrun.config.flat import flatten_config, read_config_file
from dlrun.errors import RunDirError
from dlrun.store import files, names

INDEX_VERSION = 1


def read_config(path: Path) -> dict[str, Any]:
    """A run directory's config.yaml as plain data ({} when it has none).

    Raises:
        RunDirError: the file exists but is not readable YAML.
    """
    return read_config_file(path / names.CONFIG)


def _stamp(path: Path) -> list[int] | None:
    try:
        stat = (path / names.CONFIG).stat()
    except OSError:
        return None
    return [stat.st_mtime_ns, stat.st_size]


def _load_index(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / names.RUNS_INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION or not isinstance(data.get("runs"), dict):
        return {}
    return data["runs"]


def flat_configs(run_dirs: list[Path]) -> dict[Path, dict[str, Any]]:
    """{run directory: its flattened config} for `run_dirs` (an unreadable config counts as empty),
    served from and kept in each parent folder's index."""
    by_folder: dict[Path, list[Path]] = {}
    for path in run_dirs:
        by_folder.setdefault(path.parent, []).append(path)
    out: dict[Path, dict[str, Any]] = {}
    for folder, paths in by_folder.items():
        index, changed = _load_index(folder), False
        for path in paths:
            stamp, entry = _stamp(path), index.get(path.name)
            if stamp is None:
                out[path] = {}
                continue
            if not (isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("config"), dict)):
                try:
                    flat = flatten_config(read_config(path))
                except RunDirError:
                    flat = {}
                entry = index[path.name] = {"stamp": stamp, "config": json.loads(json.dumps(flat, default=str))}
                changed = True
            out[path] = entry["config"]
        listed = {path.name for path in paths}
        for gone in [name for name in index if name not in listed and not (folder / name).is_dir()]:
            del index[gone]  # a deleted run: the index does not grow with every run ever made
            changed = True
        if changed:
            with contextlib.suppress(OSError):  # a read-only folder of runs: no index, just slower
                files.write_text(folder / names.RUNS_INDEX, json.dumps({"version": INDEX_VERSION, "runs": index}),
                                 durable=False)
    return out
