"""Durable run directories: SIGKILL at random moments (of `dlrun train`, of a sweep and of its trial
workers) never leaves a half-written file and resume finishes the work exactly once, a diverged run keeps
its last finite checkpoint, and runs started together never share a directory."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import signal
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from conftest import LIVE_CNN, TINY_MLP, finish, metric_rows, run_cli, start, write_config

from dlrun.config import load_config
from dlrun.store import files, rundir
from dlrun.store.status import STATUSES

KILLS = 10


def _npz(path: Path) -> None:
    with np.load(path, allow_pickle=False) as npz:
        json.loads(str(npz["__meta__"]))
        for key in npz.files:
            if key != "__meta__":  # a 0-d string: parsed above; numpy cannot sum strings
                npz[key].sum()


def _h5(source: Any) -> None:
    with h5py.File(source, "r") as f:
        f.visititems(lambda _, item: item[()] if isinstance(item, h5py.Dataset) else None)


def _keras(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        json.loads(archive.read("config.json"))
        _h5(io.BytesIO(archive.read("model.weights.h5")))


def _png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[-8:-4] == b"IEND"


def _metrics(path: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [int(r["epoch"]) for r in rows] == list(range(1, len(rows) + 1))
    assert all(value != "" and float(value) == float(value) for r in rows for value in r.values())


def _summary(path: Path) -> None:
    assert json.loads(path.read_text())["status"] in STATUSES


def _events(path: Path) -> None:
    """A TensorBoard event file: TFRecords, each with good CRCs and an Event inside. The writer appends
    (TensorBoard reads files while they grow), so a kill may cut the last record short; TensorBoard's
    reader stops there, and a resumed run rewrites its history into a whole file."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    data, pos = path.read_bytes(), 0
    while len(data) - pos >= 12:
        header = data[pos:pos + 8]
        end = pos + 12 + int.from_bytes(header, "little") + 4
        if end > len(data):
            break  # the record being appended when the process was killed
        assert int.from_bytes(data[pos + 8:pos + 12], "little") == masked_crc32c(header)
        body = data[pos + 12:end - 4]
        assert int.from_bytes(data[end - 4:end], "little") == masked_crc32c(body)
        event_pb2.Event.FromString(body)
        pos = end


def _json_record(path: Path) -> None:
    assert isinstance(json.loads(path.read_text()), dict)


CHECKERS = {
    "classes.json": _json_record, "inputs.json": _json_record, "features.json": _json_record,
    "summary.json": _summary, "metrics.csv": _metrics, "config.yaml": lambda p: load_config(p),
    "state.npz": _npz, "best.npz": _npz, "weights.weights.h5": _h5, "model.keras": _keras,
    "history.png": _png, "model.txt": lambda p: p.read_text(encoding="utf-8").splitlines()[1],
}


def unreadable_files(run_dir: Path) -> list[str]:
    """Every file of a run directory that does not parse as what its name says ([] when all do).
    Hidden `.NAME.*.tmp*` files are temporaries that dlrun never reads (and resume deletes)."""
    problems = []
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        if files.is_temp_file(path.name):
            continue
        check = CHECKERS.get(path.name) or (_events if ".tfevents." in path.name else None)
        try:
            if check is None:
                raise AssertionError("unexpected file")
            check(path)
        except Exception as exc:  # any failure to parse is what this test looks for
            problems.append(f"{path.relative_to(run_dir)}: {type(exc).__name__}: {exc}")
    return problems


def _status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "summary.json").read_text())["status"]
    except FileNotFoundError:
        return None


def _wait_for_training(proc: Any, run_dir: Path, since: float) -> None:
    """Until the process has built its model (model.txt rewritten) or has ended."""
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        model_txt = run_dir / "model.txt"
        if model_txt.exists() and model_txt.stat().st_mtime >= since:
            return
        time.sleep(0.005)


def kill_chain(work: Path, config: Path, seed: int, kills: int) -> dict[str, Any]:
    """`kills` SIGKILLs at random moments of training and saving; a crashed run is resumed by the
    next process (and killed again), a completed one is followed by a new run."""
    rng = random.Random(seed)
    run_dirs: list[Path] = []
    problems: list[str] = []
    alive_at_kill = 0
    for i in range(kills):
        if run_dirs and _status(run_dirs[-1]) not in (None, "completed"):
            args: tuple[Any, ...] = ("train", "--resume", run_dirs[-1])
        else:
            run_dirs.append(work / f"run{seed}-{i}")
            args = ("train", config, "--run-dir", run_dirs[-1])
        since = time.time() - 0.01
        proc = start(*args)
        _wait_for_training(proc, run_dirs[-1], since)
        time.sleep(rng.uniform(0.0, 1.0))
        alive_at_kill += proc.poll() is None
        proc.kill()
        finish(proc)
        problems += [f"kill {seed}-{i}: {p}" for d in run_dirs for p in unreadable_files(d)]
    if _status(run_dirs[-1]) != "completed":
        run_cli("train", "--resume", run_dirs[-1])
    return {"problems": problems, "alive_at_kill": alive_at_kill, "last": run_dirs[-1]}


@pytest.fixture(scope="module")
def killed_runs(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Two kill chains side by side (one per core), KILLS kills in all."""
    work = tmp_path_factory.mktemp("kills")
    config = write_config(work, LIVE_CNN, train={"epochs": 6})
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda seed: kill_chain(work, config, seed, KILLS // 2), (1, 2)))


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_only_complete_files(killed_runs: list[dict[str, Any]]) -> None:
    assert [p for chain in killed_runs for p in chain["problems"]] == []


@pytest.mark.slow
def test_most_kills_land_while_the_process_works(killed_runs: list[dict[str, Any]]) -> None:
    assert sum(chain["alive_at_kill"] for chain in killed_runs) >= KILLS // 2


@pytest.mark.slow
def test_a_run_killed_again_and_again_still_completes(killed_runs: list[dict[str, Any]]) -> None:
    assert [(_status(c["last"]), len(metric_rows(c["last"]))) for c in killed_runs] == [("completed", 6)] * 2


@pytest.mark.slow
def test_a_run_killed_again_and_again_has_each_tensorboard_step_once(killed_runs: list[dict[str, Any]]) -> None:
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    found, expected = [], []
    for chain in killed_runs:
        for split, key in (("train", "loss"), ("validation", "val_loss")):
            acc = event_accumulator.EventAccumulator(str(chain["last"] / "tb" / split),
                                                     size_guidance={event_accumulator.TENSORS: 0})
            acc.Reload()
            found.append([(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors("epoch_loss")])
            expected.append([(int(r["epoch"]) - 1, pytest.approx(float(r[key]), rel=1e-6))
                             for r in metric_rows(chain["last"])])
    assert found == expected


DIVERGING: dict[str, Any] = {
    # y = 2x fitted by SGD with lr 1.0 on unscaled x: each step overshoots more, inf in epoch 5
    "name": "diverge", "task": "regression", "loss": "mse",
    "data": {"source": "table", "target": "y", "test_split": 0,
             "table": {"columns": ["x", "y"], "rows": [[1, 2], [2, 4], [3, 6], [4, 8]]}},
    "model": {"layers": [{"dense": {"units": 1}}]},
    "optimizer": {"name": "sgd", "lr": 1.0},
    "train": {"epochs": 40, "batch_size": 1, "shuffle": False},
}


@pytest.fixture(scope="module")
def diverged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("diverge")
    proc = run_cli("train", write_config(work, DIVERGING), "--run-dir", work / "run", "--json")
    return {"proc": proc, "summary": json.loads(proc.stdout), "run": work / "run"}


def test_divergence_exits_3(diverged: dict[str, Any]) -> None:
    assert diverged["proc"].returncode == 3


def test_divergence_stops_at_once_with_status_diverged(diverged: dict[str, Any]) -> None:
    summary = diverged["summary"]
    assert (summary["status"], summary["diverged_epoch"], summary["epochs_run"]) == ("diverged", 5, 4)


def test_divergence_keeps_the_last_finite_checkpoint(diverged: dict[str, Any]) -> None:
    path = diverged["run"] / "checkpoint" / "state.npz"
    with np.load(path) as npz:
        meta = json.loads(str(npz["__meta__"]))
        finite = all(np.isfinite(npz[k]).all() for k in npz.files if k != "__meta__")
    assert (meta["epoch"], finite) == (4, True)


def test_divergence_saves_the_finite_weights(diverged: dict[str, Any]) -> None:
    with h5py.File(diverged["run"] / "weights.weights.h5") as f:
        arrays: list[np.ndarray] = []
        f.visititems(lambda _, item: arrays.append(item[()]) if isinstance(item, h5py.Dataset) else None)
    assert arrays and all(np.isfinite(a).all() for a in arrays)


def test_parallel_trains_with_one_name_get_their_own_directories(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP, data={"n_train": 100, "n_test": 50}, train={"epochs": 1})
    procs = [start("train", config, "--runs", tmp_path / "runs", "--json") for _ in range(2)]
    summaries = [json.loads(finish(proc)[1]) for proc in procs]
    on_disk = [json.loads((Path(s["run_dir"]) / "summary.json").read_text()) for s in summaries]
    assert (len({s["run_dir"] for s in summaries}), [s["pid"] for s in on_disk]) == (2, [s["pid"] for s in summaries])


def test_concurrent_run_dir_creation_never_shares_a_directory(tmp_path: Path) -> None:
    made: list[str] = []
    threads = [threading.Thread(target=lambda: made.append(str(rundir.create_run_dir("same", tmp_path).path)))
               for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 16



# --- sweeps: SIGKILL of a worker mid-trial, and of the sweep process itself -------------------------

SWEEP_KILLS = 3
SWEEP_SPACE = ("--mode", "zip", "--lr", "0.02,0.05,0.1", "--lambda", "0.0,0.001,0.01")


def _workers(pid: int) -> list[int]:
    """The trial worker processes of the sweep process `pid` (spawned multiprocessing children)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


def unreadable_sweep_files(sweep_dir: Path) -> list[str]:
    """unreadable_files of every trial, and the sweep's own records (results.csv, summary.json, yaml)."""
    problems = [f"trials/{t.name}/{p}" for t in sorted((sweep_dir / "trials").iterdir()) for p in unreadable_files(t)]
    for name, check in (("results.csv", lambda p: list(csv.DictReader(io.StringIO(p.read_text())))),
                        ("summary.json", lambda p: json.loads(p.read_text())["counts"]),
                        ("sweep.yaml", lambda p: load_config(p)), ("best.yaml", lambda p: load_config(p)),
                        ("heatmap.png", _png)):
        path = sweep_dir / name
        try:
            if path.exists():
                check(path)
        except Exception as exc:  # any failure to parse is what this test looks for
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
    return problems


def _completed_weights(sweep_dir: Path) -> dict[str, int]:
    """trial -> mtime of its final weights, for every trial whose summary says completed."""
    out = {}
    for trial in sorted((sweep_dir / "trials").iterdir()):
        if _status(trial) == "completed":
            out[trial.name] = (trial / "weights.weights.h5").stat().st_mtime_ns
    return out


def sweep_kill_chain(work: Path, config: Path, seed: int) -> dict[str, Any]:
    """SWEEP_KILLS SIGKILLs at random moments, alternately of the sweep process (trials in-process,
    --jobs 1) and of one trial worker (--jobs 2); each next process resumes the sweep. A trial that
    completed must never train again."""
    rng = random.Random(seed)
    out, problems, landed, first_done = work / f"sweep{seed}", [], 0, {}
    for i in range(SWEEP_KILLS):
        kind = ("sweep", "worker")[i % 2]
        args = ("sweep", config, *SWEEP_SPACE, "--sweep-dir", out) if i == 0 else ("sweep", "--resume", out)
        since = time.time() - 0.01
        proc = start(*args, "--jobs", "2" if kind == "worker" else "1")
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and not any(
                (t / "model.txt").exists() and (t / "model.txt").stat().st_mtime >= since
                for t in (out / "trials").glob("*")):
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.6))
        victims = _workers(proc.pid) if kind == "worker" else [proc.pid]
        if proc.poll() is None and victims:
            os.kill(rng.choice(victims), signal.SIGKILL)
            landed += 1
        finish(proc)
        problems += [f"kill {i} ({kind}): {p}" for p in unreadable_sweep_files(out)]
        for trial, mtime in _completed_weights(out).items():
            first_done.setdefault(trial, mtime)
    final = run_cli("sweep", "--resume", out, "--json")
    return {"problems": problems, "landed": landed, "final": final, "out": out, "first_done": first_done}


@pytest.fixture(scope="module")
def killed_sweep(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("sweep-kills")
    return sweep_kill_chain(work, write_config(work, TINY_MLP, train={"epochs": 5, "batch_size": 16}), seed=7)


@pytest.mark.slow
def test_sigkill_of_sweep_workers_and_the_sweep_leaves_only_complete_files(killed_sweep: dict[str, Any]) -> None:
    assert (killed_sweep["problems"], killed_sweep["landed"] >= 2) == ([], True)


@pytest.mark.slow
def test_a_sweep_killed_again_and_again_completes_every_trial_exactly_once(killed_sweep: dict[str, Any]) -> None:
    out, final = killed_sweep["out"], killed_sweep["final"]
    statuses = [t["status"] for t in json.loads(final.stdout)["trials"]] if final.returncode == 0 else final.stderr
    epochs = [[r["epoch"] for r in metric_rows(t)] for t in sorted((out / "trials").iterdir())]
    again = {t: m for t, m in _completed_weights(out).items() if t in killed_sweep["first_done"]}
    assert (statuses, epochs, again) == (["completed"] * 3, [["1", "2", "3", "4", "5"]] * 3,
                                         killed_sweep["first_done"])


def test_a_durable_batch_syncs_each_file_once_and_each_folder_once_at_its_end(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    (tmp_path / "sub").mkdir()
    with files.durable_batch():
        files.write_text(tmp_path / "a.txt", "one")
        files.write_text(tmp_path / "a.txt", "two")  # rewritten: synced once, as it ends
        with files.durable_batch():  # joins the outer batch
            files.write_json(tmp_path / "sub" / "b.json", {"b": 1})
        files.write_text(tmp_path / "c.txt", "not durable", durable=False)
        assert synced == [] and (tmp_path / "a.txt").read_text() == "two"  # in place already, not yet synced
    assert synced == [str(tmp_path / "a.txt"), str(tmp_path / "sub" / "b.json"), str(tmp_path), str(tmp_path / "sub")]
    synced.clear()
    files.write_text(tmp_path / "d.txt", "alone")  # outside a batch: the file (before its rename), its folder
    assert len(synced) == 2 and ".d.txt." in synced[0] and synced[1] == str(tmp_path)
