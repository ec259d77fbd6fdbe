"""`dlrun runs` as a query (--where, --sort, --columns, --limit, --trials, --csv), its index of configs,
its speed on 1,000 run directories, and a table that never cuts the run path in a 100-column terminal."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from conftest import TINY_MLP, cli_env, deep_merge, run_cli
from test_runs import make_run

from dlrun import query_runs
from dlrun.errors import QueryError
from dlrun.store import files, names


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    make_run(root, "adam-a", "2026-01-01T10:00:00", metrics={"val_accuracy": 0.95},
             config=deep_merge(TINY_MLP, {"optimizer": {"name": "adam", "lr": 0.001}}))
    make_run(root, "adam-b", "2026-01-02T10:00:00", metrics={"val_accuracy": 0.85},
             config=deep_merge(TINY_MLP, {"optimizer": {"name": "adam", "lr": 0.01}}))
    make_run(root, "sgd", "2026-01-03T10:00:00", metrics={"val_accuracy": 0.91})
    make_run(root, "no-val", "2026-01-04T10:00:00", metrics={"test_accuracy": 0.5})
    return root


def names_of(result: dict) -> list[str]:
    return [run["name"] for run in result["runs"]]


def test_where_on_a_metric_and_a_config_key_sorted_descending(root: Path) -> None:
    result = query_runs(root, ["val_accuracy>=0.9", "optimizer.name=adam"], "-val_accuracy")
    assert names_of(result) == ["adam-a"]


def test_sort_puts_runs_without_the_key_last_either_way(root: Path) -> None:
    assert names_of(query_runs(root, sort="-val_accuracy")) == ["adam-a", "sgd", "adam-b", "no-val"]
    assert names_of(query_runs(root, sort="val_accuracy")) == ["adam-b", "sgd", "adam-a", "no-val"]


def test_columns_report_config_values_and_limit_cuts(root: Path) -> None:
    result = query_runs(root, sort="optimizer.lr", columns=["optimizer.lr", "optimizer.name"], limit=2)
    assert [run["values"] for run in result["runs"]] == [
        {"optimizer.lr": 0.001, "optimizer.name": "adam"}, {"optimizer.lr": 0.01, "optimizer.name": "adam"}]


def test_substring_and_not_equal(root: Path) -> None:
    assert names_of(query_runs(root, ["name~ADAM", "optimizer.lr!=0.01"])) == ["adam-a"]


@pytest.mark.parametrize(("where", "token"), [
    ("val_accuracy>>0.9", "val_accuracy>>0.9"), ("val_accuracy", "val_accuracy"), ("=adam", "=adam"),
    ("val_accuracy>=", "val_accuracy>="), ("optimizer.name<[1]", "optimizer.name<[1]")])
def test_a_bad_expression_names_its_token(root: Path, where: str, token: str) -> None:
    with pytest.raises(QueryError, match=repr(token).replace("[", r"\[")):
        query_runs(root, [where])


def test_a_key_no_run_has_is_refused_with_close_keys(root: Path) -> None:
    with pytest.raises(QueryError, match="no run has 'val_acc'.*val_accuracy"):
        query_runs(root, ["val_acc>0.9"])


def test_cli_bad_expression_exits_2_on_stderr(root: Path) -> None:
    proc = run_cli("runs", root, "--where", "val_accuracy=>0.9")
    assert (proc.returncode, "val_accuracy=>0.9" in proc.stderr, proc.stdout) == (2, True, "")


def test_trials_are_listed_after_their_sweep(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    sweep = root / "s-sweep-1"
    for trial, value in (("000", 0.7), ("001", 0.8)):
        make_run(sweep / "trials", trial, "2026-01-01T10:00:00", metrics={"val_accuracy": value})
        (sweep / "trials" / f"{trial}-2026-01-01T100000").rename(sweep / "trials" / trial)
    files.write_text(sweep / names.SWEEP_SPEC, "params: {optimizer.lr: [0.1, 0.01]}\n")
    files.write_json(sweep / names.SUMMARY, {"status": "completed", "name": "s", "kind": "sweep"})
    assert [(r["name"], r["kind"]) for r in query_runs(root)["runs"]] == [("s", "sweep")]
    assert names_of(query_runs(root, ["val_accuracy>0.75"], trials=True)) == ["s/001"]


def test_cli_csv_has_a_row_per_run_with_the_columns(root: Path) -> None:
    out = run_cli("runs", root, "--csv", "--columns", "val_accuracy,optimizer.name", "--sort", "name").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["name"], r["val_accuracy"], r["optimizer.name"]) for r in rows] == [
        ("adam-a", "0.95", "adam"), ("adam-b", "0.85", "adam"), ("no-val", "", "sgd"), ("sgd", "0.91", "sgd")]


def test_cli_json_holds_the_values(root: Path) -> None:
    data = json.loads(run_cli("runs", root, "--json", "--where", "optimizer.lr<0.005").stdout)
    assert [(r["name"], r["values"]) for r in data["runs"]] == [("adam-a", {"optimizer.lr": 0.001})]


def test_the_index_follows_a_changed_config(root: Path) -> None:
    assert names_of(query_runs(root, ["optimizer.lr=0.5"])) == []
    assert (root / names.RUNS_INDEX).is_file()
    config = next(root.glob("sgd-*")) / names.CONFIG
    files.write_text(config, config.read_text().replace("lr: 0.05", "lr: 0.5"))
    os.utime(config, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert names_of(query_runs(root, ["optimizer.lr=0.5"])) == ["sgd"]


def test_the_index_drops_a_deleted_run(root: Path) -> None:
    query_runs(root, ["optimizer.lr>0"])
    deleted = next(root.glob("adam-b*"))
    shutil.rmtree(deleted)
    query_runs(root, ["optimizer.lr>0"])
    index = json.loads((root / names.RUNS_INDEX).read_text())["runs"]
    assert sorted(index) == sorted(p.name for p in root.iterdir() if p.is_dir()) and deleted.name not in index


def test_a_thousand_runs_are_queried_within_a_second(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    source = make_run(tmp_path / "src", "r", "2026-01-01T10:00:00", metrics={"val_accuracy": 0.9})
    texts = {n: (source / n).read_text() for n in (names.CONFIG, names.METRICS, names.SUMMARY)}
    for i in range(1000):
        run = root / f"run{i:04d}"
        run.mkdir(parents=True)
        for name, text in texts.items():
            (run / name).write_text(text.replace("lr: 0.05", f"lr: {i}") if name == names.CONFIG else text)
    query_runs(root, ["optimizer.lr>=990"])  # builds the index (once: then only summaries are read)
    start = time.process_time()
    result = query_runs(root, ["optimizer.lr>=990", "val_accuracy>0.5"], "-optimizer.lr")
    assert (len(result["runs"]), result["runs"][0]["path"].endswith("run0999")) == (10, True)
    assert time.process_time() - start <= 1.0


def in_terminal(columns: int, *args: str | Path, cwd: Path | None = None) -> str:
    """What `dlrun ARGS` shows in a pseudo-terminal `columns` wide (colours stripped)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = cli_env()
    env.pop("COLUMNS", None)
    proc = subprocess.Popen([sys.executable, "-m", "dlrun", *map(str, args)], stdin=slave, stdout=slave,
                            stderr=slave, env=env, cwd=cwd)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=120)
    os.close(master)
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode(errors="replace"))


def test_a_100_column_terminal_shows_every_run_path_whole_on_one_line(tmp_path: Path) -> None:
    root = Path("a-rather-long-folder-of-experiments") / "runs"
    paths = [make_run(tmp_path / root, f"fashion-cnn-dropout-{i}", f"2026-01-0{i}T10:00:00",
                      metrics={"test_accuracy": 0.9, "best_val_accuracy": 0.91, "val_loss": 0.3}).relative_to(tmp_path)
             for i in (1, 2)]
    screen = in_terminal(100, "runs", root, cwd=tmp_path)
    lines = [line for line in screen.splitlines() if line[:1] in "┏┃┡│└"]  # the table's lines
    assert max(len(line) for line in lines) <= 100
    assert all(any(str(path) in line for line in lines) for path in paths), screen
    assert "status" in screen


def test_a_path_wider_than_the_terminal_is_still_printed_whole(tmp_path: Path) -> None:
    path = make_run(tmp_path / ("x" * 60) / "runs", "fashion-cnn-dropout", "2026-01-01T10:00:00")
    assert str(path) in in_terminal(80, "runs", path.parent)


def test_wide_keeps_every_column(tmp_path: Path) -> None:
    root = tmp_path / "a-rather-long-folder-of-experiments" / "runs"
    make_run(root, "fashion-cnn-dropout", "2026-01-01T10:00:00", metrics={"test_accuracy": 0.9})
    assert all(c in in_terminal(100, "runs", root, "--wide") for c in ("started", "duration", "epochs"))
