"""Faults of the machine: a disk that fills up or is read-only (real tmpfs mounts, made in the test),
damaged records met by resume and `dlrun runs`, and two processes resuming one run or one sweep."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import TINY_MLP, cli_env, deep_merge, finish, start, write_config
from hostile_inputs import Hostile, run_case

import dlrun
from dlrun.config.schema import DataConfig
from dlrun.data import cache, load_dataset
from dlrun.engine.checkpoint import read_meta
from dlrun.errors import StorageError
from dlrun.store import files

FAT_MLP = deep_merge(TINY_MLP, {"name": "fat", "train": {"epochs": 3}, "model": {"layers": [
    {"flatten": {}}, {"dense": {"units": 64, "activation": "relu"}},
    {"dense": {"units": 10, "activation": "softmax"}}]}})  # a 200 KiB checkpoint: the disk fills while writing the 2nd


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True)


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """mount(name, size, *options): a fresh tmpfs at tmp_path/name (root only; skipped elsewhere),
    unmounted at teardown."""
    mounted: list[Path] = []

    def make(name: str, size: str, *options: str) -> Path:
        path = tmp_path / name
        path.mkdir()
        proc = _run("mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs", path)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'not root'})")
        mounted.append(path)
        return path

    yield make
    for path in reversed(mounted):
        _run("umount", "-l", path)


def fill(disk: Path, leave: int) -> Path:
    """Fill the file system of `disk` until `leave` bytes are free; returns the filler file."""
    stats = os.statvfs(disk)
    filler = disk / "filler"
    filler.write_bytes(bytes(max(0, stats.f_bavail * stats.f_frsize - leave)))
    return filler


def remount_read_only(disk: Path) -> None:
    assert _run("mount", "-o", "remount,ro", disk).returncode == 0


# --- a full disk ---------------------------------------------------------------------------------

def test_disk_full_during_a_checkpoint_keeps_the_last_one_and_resume_finishes(mount: Callable[..., Path],
                                                                              tmp_path: Path) -> None:
    disk = mount("disk", "4m")
    filler = fill(disk, 300 << 10)  # room for the run's small files and one checkpoint, not two
    config = write_config(tmp_path, FAT_MLP)
    with pytest.raises(StorageError) as raised:
        dlrun.train(config, run_dir=disk / "run")
    failed = json.loads((disk / "run" / "summary.json").read_text())
    kept = read_meta(disk / "run" / "checkpoint" / "state.npz")["epoch"]
    leftovers = [p.name for p in (disk / "run").rglob("*") if files.is_temp_file(p.name)]
    filler.unlink()
    resumed = dlrun.resume(disk / "run")
    assert (raised.value.exit_code, "no space left" in str(raised.value), "dlrun train --resume" in str(raised.value),
            failed["status"], "no space left" in failed["error"], kept, leftovers,
            resumed["status"], resumed["epochs_run"]) == (2, True, True, "failed", True, 1, [], "completed", 3)


def test_disk_full_in_a_sweep_stops_it_resumably(mount: Callable[..., Path], tmp_path: Path) -> None:
    disk = mount("disk", "4m")
    filler = fill(disk, 300 << 10)
    config = write_config(tmp_path, FAT_MLP)
    with pytest.raises(StorageError) as raised:
        dlrun.sweep(config, lr="0.05,0.1", sweep_dir=disk / "sw")
    filler.unlink()
    resumed = dlrun.sweep(None, resume=disk / "sw")
    assert ("no space left" in str(raised.value), f"dlrun sweep --resume {disk / 'sw'}" in str(raised.value),
            [(t["status"], t["epochs_run"]) for t in resumed["trials"]]) == (True, True, [("completed", 3)] * 2)


def test_disk_full_at_the_end_of_a_sweep_names_the_file_and_resume_writes_every_record(
        mount: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every trial ended, then the disk fills as the sweep writes its final records (best.yaml, results,
    summary, heat map): the error names the file being written, summary.json does not stay `running`,
    and `--resume` writes every missing record."""
    from dlrun.sweeps.session import SweepSession

    disk = mount("disk", "8m")
    config = write_config(tmp_path, TINY_MLP, train={"epochs": 1})
    real_finish = SweepSession.finish

    def finish_on_a_full_disk(self: SweepSession, reporter: Any) -> dict[str, Any]:
        fill(disk, 24 << 10)  # room for the small records, not for the heat map
        return real_finish(self, reporter)

    monkeypatch.setattr(SweepSession, "finish", finish_on_a_full_disk)
    with pytest.raises(StorageError) as raised:
        dlrun.sweep(config, lr="0.05,0.1", sweep_dir=disk / "sw")
    status = json.loads((disk / "sw" / "summary.json").read_text())["status"]
    monkeypatch.undo()
    (disk / "filler").unlink()
    resumed = dlrun.sweep(None, resume=disk / "sw")
    records = sorted(p.name for p in (disk / "sw").iterdir() if p.is_file())
    assert ("no space left" in str(raised.value), f"(writing {disk / 'sw' / 'heatmap.png'})" in str(raised.value),
            status, resumed["status"], records) == (
        True, True, "interrupted", "completed",
        ["best.yaml", "heatmap.png", "results.csv", "summary.json", "sweep.yaml"]), str(raised.value)


def _npy_source(tmp_path: Path) -> DataConfig:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "X.npy", rng.integers(0, 256, (40, 8, 8), np.uint8))
    np.save(tmp_path / "Y.npy", np.arange(40) % 4)
    return DataConfig(source="npy", path=str(tmp_path), validation="test")


def test_a_full_cache_disk_means_no_cache_and_one_warning(mount: Callable[..., Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    disk = mount("cache", "64k")
    (disk / "data").mkdir()
    fill(disk, 0)
    monkeypatch.setenv(cache.CACHE_ENV, str(disk))
    data = load_dataset(_npy_source(tmp_path))
    warnings = [n for n in data.notes if "data cache" in n]
    assert (data.cache, len(data.x_train), len(warnings), "has no space left" in warnings[0],
            sorted(p.name for p in (disk / "data").iterdir())) == ("off", 32, 1, True, [])


def test_a_read_only_cache_means_no_cache_and_one_warning(mount: Callable[..., Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    disk = mount("cache", "1m")
    remount_read_only(disk)
    monkeypatch.setenv(cache.CACHE_ENV, str(disk))
    data = load_dataset(_npy_source(tmp_path))
    warnings = [n for n in data.notes if "data cache" in n]
    assert (data.cache, len(data.x_train), len(warnings), "is read-only" in warnings[0]) == ("off", 32, 1, True)


def test_clearing_a_read_only_cache_names_what_it_could_not_remove_and_why(mount: Callable[..., Path]) -> None:
    disk = mount("cache", "1m")
    (disk / "data").mkdir()
    entry, temp = disk / "data" / f"{'a' * 64}.bin", disk / "data" / ".aaaaaaaaaaaaaaaa.x1y2.tmp"
    entry.write_bytes(cache.MAGIC)
    temp.write_bytes(bytes(100))
    remount_read_only(disk)
    proc = subprocess.run([sys.executable, "-m", "dlrun", "cache", "clear"], capture_output=True, text=True,
                          env=cli_env(DLRUN_CACHE=str(disk)))
    assert (proc.returncode, "Traceback" in proc.stderr, "unexpected" in proc.stderr,
            f"could not remove 2 file(s) of the data cache ({entry}, {temp})" in proc.stderr,
            f"{disk / 'data'} is on a read-only file system" in proc.stderr, entry.exists()) == (
        2, False, False, True, True, True), proc.stderr


def test_a_read_only_runs_folder_is_refused_before_any_data_is_read(mount: Callable[..., Path],
                                                                    tmp_path: Path) -> None:
    disk = mount("runs", "1m", "ro")
    work = tmp_path / "work"
    work.mkdir()
    # under a 1 GiB address space (TensorFlow could not even load): refused before TensorFlow and the data
    result = run_case(Hostile("ro", lambda w: ("train", str(write_config(w, TINY_MLP)), "--runs", str(disk)), ()),
                      work)
    assert (result["exit"], f"{disk} is on a read-only file system" in result["stderr"],
            "choose a writable --runs" in result["stderr"]) == (2, True, True), result["stderr"]


def test_resuming_a_run_on_a_read_only_disk_is_refused(mount: Callable[..., Path], tmp_path: Path) -> None:
    disk = mount("runs", "1m")
    run = disk / "run"
    (run / "checkpoint").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(TINY_MLP))
    (run / "summary.json").write_text(json.dumps({"status": "interrupted"}))
    remount_read_only(disk)
    result = run_case(Hostile("ro-resume", lambda w: ("train", "--resume", str(run)), ()), tmp_path)
    assert (result["exit"], "is not writable" in result["stderr"]) == (2, True), result["stderr"]


# --- damaged records -----------------------------------------------------------------------------

def test_runs_lists_damaged_records_as_damaged(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for name, summary in (("good", {"status": "completed"}), ("torn", None), ("deep", None),
                          ("bad-checkpoint", {"status": "interrupted"})):
        (root / name / "checkpoint").mkdir(parents=True)
        (root / name / "config.yaml").write_text(yaml.safe_dump(TINY_MLP))
        text = json.dumps(summary) if summary else ('{"status": "comp' if name == "torn" else "[" * 50_000)
        (root / name / "summary.json").write_text(text)
    (root / "bad-checkpoint" / "checkpoint" / "state.npz").write_bytes(b"PK\x03\x04 half a zip")
    (root / "sweep" / "trials").mkdir(parents=True)
    (root / "sweep" / "sweep.yaml").write_text("model: {layers: [")
    listed = {info.path.rsplit("/", 1)[-1]: info.status for info in dlrun.list_runs(root)}
    cli = subprocess.run([sys.executable, "-m", "dlrun", "runs", str(root), "--json"], capture_output=True,
                         text=True, env=cli_env())
    problems = {Path(r["path"]).name: r["problem"] for r in json.loads(cli.stdout)["runs"] if r["problem"]}
    assert (listed, cli.returncode, sorted(problems), "state.npz" in problems["bad-checkpoint"]) == (
        {"good": "completed", "torn": "damaged", "deep": "damaged", "bad-checkpoint": "damaged",
         "sweep": "damaged"}, 0, ["bad-checkpoint", "deep", "sweep", "torn"], True)


def test_a_torn_journal_tail_is_dropped_and_resume_retells_what_it_lost(tmp_path: Path) -> None:
    """A sweep killed mid-append leaves its Optuna journal's last line torn: resume truncates it to the last
    whole line (a warning names the journal), and the trial whose completion was torn is told again."""
    import optuna

    config = write_config(tmp_path, TINY_MLP, train={"epochs": 1},
                          sweep={"search": "random", "trials": 2, "params": {"optimizer.lr": [0.05, 0.1]}})
    dlrun.sweep(config, sweep_dir=tmp_path / "sw")
    journal = tmp_path / "sw" / "study.journal"
    journal.write_bytes(journal.read_bytes()[:-30])  # the last line: trial 001's completion, torn
    proc = subprocess.run([sys.executable, "-m", "dlrun", "sweep", "--resume", "sw"], cwd=tmp_path,
                          capture_output=True, text=True, env=cli_env())
    lines = journal.read_bytes().splitlines(keepends=True)
    study = optuna.load_study(study_name="dlrun", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    assert (proc.returncode, "sw/study.journal: dropped its torn last line" in proc.stderr,
            all(line.endswith(b"\n") and json.loads(line) for line in lines),
            [t.state.name for t in study.trials]) == (0, True, True, ["COMPLETE", "COMPLETE"]), proc.stderr


# --- two processes, one run ----------------------------------------------------------------------

def _interrupted_run(path: Path, config: dict[str, Any]) -> Path:
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    files.write_json(path / "summary.json", {"status": "interrupted", "last_complete_epoch": 0})
    return path


def _race(*commands: tuple[str | Path, ...]) -> list[tuple[int, str, int]]:
    """Start every command at once; (exit code, stderr, pid) of each."""
    procs = [start(*command) for command in commands]
    return [(*finish(proc)[::2], proc.pid) for proc in procs]


def test_two_resumes_of_one_run_exactly_one_proceeds(tmp_path: Path) -> None:
    run = _interrupted_run(tmp_path / "run", deep_merge(TINY_MLP, {"train": {"epochs": 2}}))
    outcomes = sorted(_race(("train", "--resume", run), ("train", "--resume", run)))
    (won, _, _), (lost, message, _) = outcomes
    winner = next(pid for code, _, pid in outcomes if code == 0) if won == 0 else None
    assert (won, lost, f"{run} is being trained by another dlrun process (pid {winner} on host" in message,
            json.loads((run / "summary.json").read_text())["status"]) == (0, 2, True, "completed"), outcomes


def test_two_resumes_of_one_sweep_exactly_one_proceeds(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP, train={"epochs": 1})
    from dlrun.sweeps.plan import plan_sweep
    from dlrun.sweeps.run import _create

    sweep_dir = _create(plan_sweep(config, lr="0.05,0.1"), tmp_path, tmp_path / "sweep")
    outcomes = sorted(_race(("sweep", "--resume", sweep_dir), ("sweep", "--resume", sweep_dir)))
    (won, _, _), (lost, message, _) = outcomes
    winner = next(pid for code, _, pid in outcomes if code == 0) if won == 0 else None
    rows = files.read_csv(sweep_dir / "results.csv")
    assert (won, lost, f"is being swept by another dlrun process (pid {winner} on host" in message,
            [r["status"] for r in rows]) == (0, 2, True, ["completed", "completed"]), outcomes

