"""What travels to Ray's nodes besides the trials. A data set, put in the object store once
(`for_object_store`). A run directory as bytes, for a sweep whose trials run on nodes that share no file
system with it (`sweep.backend.storage: ship`): the sweep sends a trial's directory (its config, and its
checkpoint when it resumes) to the node that runs it, and the node sends it back after each epoch's
checkpoint and at the end. A bundle is an uncompressed tar of the directory's regular files (checkpoints
are compressed already).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from dlrun.data import Dataset
from dlrun.data.dataset import ARRAYS
from dlrun.store import files, names


def for_object_store(data: Dataset) -> Dataset:
    """`data` with each memory-mapped array (a cache entry too big to read) as a plain array over the same
    pages: Ray stores a plain array's bytes out of band, copied once into a node's object store and read
    there by every actor without a copy, where a np.memmap is pickled in band (a copy in every actor, which
    also loses its file and cannot be streamed). Arrays that are one object stay one (validation: test)."""
    views: dict[int, np.ndarray] = {}
    for name in ARRAYS:
        array = getattr(data, name)
        if isinstance(array, np.memmap) and id(array) not in views:
            views[id(array)] = array.view(np.ndarray)
    if not views:
        return data
    return dataclasses.replace(data, **{name: views[id(getattr(data, name))] for name in ARRAYS
                                        if id(getattr(data, name)) in views})


def bundle(directory: Path) -> bytes:
    """The regular files under `directory` (temporary files of writes in flight left out) as tar bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and not path.is_symlink() and not files.is_temp_file(path.name):
                tar.add(path, arcname=path.relative_to(directory).as_posix(), recursive=False)
    return buffer.getvalue()


def unpack(data: bytes, directory: Path, durable: bool = True) -> int:
    """Write the files of bundle `data` into `directory`, each atomically (a reader never sees half a file;
    files not in the bundle stay, and so does a file that holds the same bytes already: a run directory
    shipped after each epoch changes in a few files). `durable`: made durable together at the end
    (files.durable_batch; each fsync costs milliseconds). Returns the number of files written. ValueError
    for a member outside `directory`."""
    count = 0
    batch = files.durable_batch() if durable else contextlib.nullcontext()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar, batch:
        for member in tar.getmembers():
            name = PurePosixPath(member.name)
            if name.is_absolute() or ".." in name.parts:
                raise ValueError(f"a run directory bundle names a file outside its directory: {member.name}")
            source = tar.extractfile(member) if member.isfile() else None
            if source is None:
                continue
            target, content = directory.joinpath(*name.parts), source.read()
            if _holds(target, content):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with files.atomic_path(target, durable=durable) as temp:
                temp.write_bytes(content)
            count += 1
    return count


def _holds(path: Path, content: bytes) -> bool:
    """Whether the file at `path` holds exactly `content`."""
    try:
        return path.stat().st_size == len(content) and path.read_bytes() == content
    except OSError:
        return False


def record_trial(run_dir: Path, summary: dict[str, Any], where: dict[str, Any], shipped: bytes | None,
                 record: dict[str, Any]) -> dict[str, Any]:
    """Write the run directory a Ray trial shipped (`shipped`: None when nothing came back) into `run_dir`,
    and where it ran (`where`: Ray node id, host, worker actor, the worker's memory after the trial and whether
    it was replaced for its growth) with `record` (its attempts, storage, the bytes sent; the bytes shipped
    back, to which `shipped` is added) as the `ray` record of its summary.json; the summary as recorded."""
    run = run_dir.resolve()
    if shipped is not None:
        unpack(shipped, run)
        record = {**record, "shipped_bytes": record["shipped_bytes"] + len(shipped)}
    if not summary:
        return summary
    summary = {**summary, "run_dir": str(run_dir), "ray": {**where, **record}}
    files.write_json(run / names.SUMMARY, summary)
    return summary
