"""`dlrun cache info | clear`, the DLRUN_CACHE_MAX cap (least recently used first, never an entry a running
process holds), `dlrun env`, and progress of long data and weights steps (terminal only)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, cli_env, run_cli, write_keras2_h5
from rich.console import Console

from dlrun._version import __version__
from dlrun.commands.environment import environment, report_lines
from dlrun.config.schema import DataConfig
from dlrun.data import cache, cache_admin, cache_key, load_dataset
from dlrun.errors import DataError
from dlrun.ui.console import Reporter, StepProgress
from dlrun.weights import read_weights


def npz(path: Path, n: int = 60) -> Path:
    rng = np.random.default_rng(1)
    np.savez(path, x=rng.integers(0, 256, (n, 10, 10), np.uint8), y=np.arange(n) % 3)
    return path


def cfg(path: Path, **changes: object) -> DataConfig:
    return DataConfig(**{"source": "npz", "path": str(path), "keys": {"x_train": "x", "y_train": "y"}, **changes})


def fill(path: Path, *configs: DataConfig) -> list[Path]:
    """Load each config (one cache entry each), the first least recently used; their entry files."""
    entries = []
    for when, config in enumerate(configs):
        load_dataset(config)
        entry = cache.entry_path(cache_key.cache_key(config, "classification") or "")
        os.utime(entry, (time.time() - 100 + when, time.time() - 100 + when))
        entries.append(entry)
    return entries


def release_all() -> None:
    """Let go of the entries this test process holds (as if the process had ended)."""
    for fd in cache_admin._held.values():
        os.close(fd)
    cache_admin._held.clear()


@pytest.fixture(autouse=True)
def _released():
    yield
    release_all()


def test_info_lists_each_entry_with_source_settings_size_and_last_use(tmp_path: Path) -> None:
    data = npz(tmp_path / "d.npz")
    fill(tmp_path, cfg(data), cfg(data, image_size=[8, 8]))
    release_all()
    info = cache_admin.cache_info()
    rows = [(e["source"], e["changed"].get("image_size"), e["settings"]["image_size"], e["size_bytes"] > 0,
             e["last_used"][:4].isdigit(), e["in_use"]) for e in info["entries"]]  # most recently used first
    assert (info["location"], info["size_bytes"], rows) == (
        str(cache.cache_dir()), sum(e["size_bytes"] for e in info["entries"]),
        [(str(data), [8, 8], [8, 8], True, True, False), (str(data), None, None, True, True, False)])


def test_clear_older_than_removes_only_entries_not_used_since(tmp_path: Path) -> None:
    data = npz(tmp_path / "d.npz")
    old, new = fill(tmp_path, cfg(data), cfg(data, image_size=[8, 8]))
    release_all()
    os.utime(old, (time.time() - 10 * 86400,) * 2)
    result = cache_admin.clear(older_than_days=5)
    assert ((result["removed"], result["left"]), old.exists(), new.exists()) == ((1, 1), False, True)


def test_a_read_marks_the_entry_used(tmp_path: Path) -> None:
    config = cfg(npz(tmp_path / "d.npz"))
    [entry] = fill(tmp_path, config)
    release_all()
    before = entry.stat().st_mtime
    assert (load_dataset(config).cache, entry.stat().st_mtime > before) == ("hit", True)


def test_cap_evicts_the_least_recently_used_after_a_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = npz(tmp_path / "d.npz")
    first, second = fill(tmp_path, cfg(data), cfg(data, image_size=[8, 8]))
    release_all()
    monkeypatch.setenv(cache_admin.MAX_ENV, str(first.stat().st_size + second.stat().st_size + 100))
    [third] = fill(tmp_path, cfg(data, image_size=[6, 6]))
    assert (first.exists(), second.exists(), third.exists()) == (False, True, True)


def test_an_entry_in_use_by_another_process_is_never_removed(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    data = npz(tmp_path / "d.npz")
    held, other = fill(tmp_path, cfg(data), cfg(data, image_size=[8, 8]))
    release_all()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; from dlrun.data import cache_admin; "
         f"cache_admin.hold(Path({str(held)!r})); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=cli_env())
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        in_use = {Path(e["path"]): e["in_use"] for e in cache_admin.cache_info()["entries"]}
        monkeypatch.setenv(cache_admin.MAX_ENV, "1")
        [new] = fill(tmp_path, cfg(data, image_size=[6, 6]))  # over the cap: everything else would go
        cleared = cache_admin.clear()
        survived = (held.exists(), other.exists(), new.exists())
    finally:
        holder.communicate("", timeout=60)
    assert (in_use, survived, cleared["in_use"]) == ({held: True, other: False}, (True, False, True), 2)


def test_bad_cap_is_a_data_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache_admin.MAX_ENV, "2X")
    with pytest.raises(DataError, match="DLRUN_CACHE_MAX='2X': expected a size such as 500M"):
        cache_admin.size_cap()


@pytest.mark.parametrize(("text", "size"), [("2G", 2 << 30), ("500M", 500 << 20), ("1.5GB", 3 << 29),
                                            ("4096", 4096), ("10kib", 10 << 10)])
def test_sizes_read_as_powers_of_1024(text: str, size: int) -> None:
    assert cache_admin.parse_size(text) == size


def test_clear_counts_and_removes_the_temporary_files_of_killed_writers_not_of_live_ones(tmp_path: Path) -> None:
    """A writer killed mid-write leaves `.KEY.XXXX.tmp`; a live one holds its temporary file (flock) until the
    rename, so `cache clear` removes only the first and says so."""
    import fcntl

    folder = cache.cache_dir()
    folder.mkdir(parents=True)
    killed = folder / ".0123456789abcdef.a1b2c3.tmp"
    killed.write_bytes(bytes(5000))
    live = folder / ".fedcba9876543210.d4e5f6.tmp"
    live.write_bytes(bytes(10))
    with open(live, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        proc = run_cli("cache", "clear")
        live_kept = live.exists()
    assert (proc.returncode, "and 1 temporary file left by a killed writer (4.9 KiB)" in proc.stdout,
            killed.exists(), live_kept) == (0, True, False, True), proc.stdout + proc.stderr


def test_cache_cli_json_is_the_only_stdout(tmp_path: Path) -> None:
    fill(tmp_path, cfg(npz(tmp_path / "d.npz")))
    release_all()
    info = run_cli("cache", "info", "--json")
    cleared = run_cli("cache", "clear", "--json")
    after = run_cli("cache", "--json")
    assert ((info.returncode, len(json.loads(info.stdout)["entries"])), json.loads(cleared.stdout)["removed"],
            json.loads(after.stdout)["entries"]) == ((0, 1), 1, [])


def test_env_json_reports_versions_devices_threads_and_locations(data_cache: Path) -> None:
    proc = run_cli("env", "--json", cwd=ROOT)
    env = json.loads(proc.stdout)
    assert (proc.returncode, env["versions"]["dlrun"], env["versions"]["tensorflow"], env["versions"]["keras"],
            {"numpy", "opencv"} <= set(env["versions"]), env["devices"]["cpu"], env["threads"]["cores"] >= 1,
            env["data_cache"]["location"], env["runs"]["location"]) == (
        0, __version__, metadata.version("tensorflow"), metadata.version("keras"), True, True, True,
        str(data_cache / "data"), str(ROOT / "runs"))


def test_env_block_names_each_part_once_per_line() -> None:
    lines = report_lines(environment())
    assert [line.split(":")[0] for line in lines] == ["dlrun", "python", "packages", "threads",
                                                       "data cache", "runs", "keras datasets", "devices"]


def test_env_prints_the_versions_before_tensorflow_is_asked_for_devices() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "dlrun", "env"], env=cli_env(), cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    arrived = {line.split(":")[0]: (time.monotonic(), proc.poll() is None) for line in proc.stdout}
    assert proc.wait(timeout=300) == 0
    packages, devices = arrived["packages"], arrived["devices"]
    assert packages[1] and devices[0] - packages[0] > 0.5  # loading TensorFlow takes seconds; versions do not wait


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, what: str, done: int, total: int) -> None:
        self.calls.append((what, done, total))


def test_folder_decoding_and_cache_writing_report_progress(tmp_path: Path) -> None:
    import cv2

    for label in ("a", "b"):
        (tmp_path / "img" / label).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(tmp_path / "img" / label / f"{i}.png"), np.full((6, 6), i * 40, np.uint8))
    progress = Recorder()
    load_dataset(DataConfig(source="folder", path=str(tmp_path / "img"), image_size=[4, 4]), progress=progress)
    decoding = [(done, total) for what, done, total in progress.calls if what.startswith("decoding")]
    writing = [(done, total) for what, done, total in progress.calls if what.startswith("writing the data cache")]
    assert (decoding, len(writing), writing[-1][0] == writing[-1][1] > 0) == ([(i, 6) for i in range(1, 7)], 2, True)


def test_reading_a_weights_file_reports_each_layer(tmp_path: Path) -> None:
    path = tmp_path / "legacy.h5"
    write_keras2_h5(path, [("dense", [np.zeros((4, 3)), np.zeros(3)]), ("dense_1", [np.zeros((3, 2)), np.zeros(2)])])
    progress = Recorder()
    read_weights(path, progress=progress)
    assert [(done, total) for _, done, total in progress.calls] == [(1, 2), (2, 2)]


def test_step_progress_shows_a_slow_step_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(StepProgress, "DELAY", 0.0)
    screen = io.StringIO()
    with StepProgress(Console(file=screen, force_terminal=True, width=100)) as progress:
        progress("decoding images", 1, 4)
        progress("decoding images", 2, 4)
    with Reporter(json_mode=True).progress() as quiet, Reporter(live=False).progress() as piped:
        quiet("decoding images", 1, 4)
        piped("decoding images", 1, 4)
    assert ("decoding images" in screen.getvalue(), quiet.display, piped.display) == (True, None, None)
