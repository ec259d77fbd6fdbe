"""`dlrun sweep --backend ray` on a real local Ray cluster: the same results as the local executors, the
per-epoch line to the sweep process, trials pulled only when a slot is free, a killed worker retried from
its checkpoint, Ctrl-C / SIGTERM and resume, and a cluster started with `ray start --head`. No mock of Ray.

Every test here is in one xdist group (pyproject.toml sets --dist loadgroup): one worker runs them, so
two Ray clusters never start at once on the 2-core CI machine."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    TINY_MLP,
    Recorder,
    cli_env,
    deep_merge,
    finish,
    run_cli,
    start,
    trial_tasks,
    wait_for_epochs,
    without_seconds,
    write_config,
)

from dlrun.config.scale import BackendConfig
from dlrun.interrupts import StopRequest
from dlrun.store import files, names
from dlrun.sweeps.executors import SequentialExecutor, TrialTask
from dlrun.sweeps.executors.base import WORKER_GROWTH_MIB
from dlrun.sweeps.run import sweep

pytestmark = pytest.mark.xdist_group("ray")

@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """A real Ray cluster of two nodes on this machine (`ray.cluster_utils.Cluster`: each node its own raylet,
    temporary directory and 1 CPU), joined by this process, for the tests at the end of this module (the
    tests that start clusters of their own come first, so two never run at once; it stops with the module).
    Its nodes run without token authentication, as does every driver here (RAY_AUTH_MODE=disabled)."""
    import ray
    from ray.cluster_utils import Cluster

    previous = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "object_store_memory": 100 * 2**20})
    cluster.add_node(num_cpus=1, object_store_memory=100 * 2**20)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    yield cluster
    ray.shutdown()
    cluster.shutdown()
    if previous is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = previous


def _trials(tmp_path: Path, count: int, epochs: int) -> tuple[list[TrialTask], dict[str, Any]]:
    return trial_tasks(tmp_path, [deep_merge(TINY_MLP, {"train": {"epochs": epochs}})] * count)


def _run_on_ray(tasks: Any, datasets: dict[str, Any], events: Recorder, jobs: int | None = None,
                growth_mib: float = WORKER_GROWTH_MIB, **settings: Any) -> Any:
    """Run `tasks` with a RayExecutor on the module's cluster; its worker actors end with it (else they would
    hold the cluster's CPUs for the next test)."""
    from dlrun.sweeps.executors.raycluster import RayExecutor

    executor = RayExecutor(BackendConfig(name="ray", **settings), jobs=jobs, growth_mib=growth_mib)
    try:
        executor.run(tasks, datasets, events, StopRequest())
    finally:
        executor.close()
    return executor


def _results(sweep_dir: Path) -> list[dict[str, str]]:
    """results.csv minus the seconds and the threads each trial ran with (a Ray trial: cpus_per_trial)."""
    return [{k: v for k, v in row.items() if k not in ("threads", "inter_op_threads")}
            for row in without_seconds(files.read_csv(sweep_dir / names.SWEEP_RESULTS))]


def test_sigterm_stops_ray_trials_exit_130_and_resume_runs_locally(tmp_path: Path) -> None:
    config = write_config(tmp_path, deep_merge(TINY_MLP, {"data": {"n_train": 1000}, "train": {"epochs": 40}}))
    out = tmp_path / "sweep"
    proc = start("sweep", config, "--lr", "0.05", "--sweep-dir", out, "--backend", "ray")
    wait_for_epochs(proc, out / names.SWEEP_TRIALS / "000", 1, timeout=240)
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc)
    assert code == 130, err
    assert files.read_json(out / names.SWEEP_TRIALS / "000" / names.SUMMARY)["status"] == "interrupted"
    assert files.read_json(out / names.SUMMARY)["status"] == "interrupted"
    resumed = run_cli("sweep", "--resume", out, "--backend", "local", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["counts"]["completed"] == 1
    rows = files.read_csv(out / names.SWEEP_TRIALS / "000" / names.METRICS)
    assert [int(r["epoch"]) for r in rows] == list(range(1, 41))  # continued from its checkpoint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_sweep_joins_a_cluster_started_with_ray_start(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP)
    port = _free_port()
    ray_bin = Path(sys.executable).parent / "ray"
    env = cli_env(RAY_AUTH_MODE="disabled")  # no token written to ~/.ray by a test
    head = subprocess.Popen([str(ray_bin), "start", "--head", f"--port={port}", "--num-cpus=2", "--block",
                             "--include-dashboard=false"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        proc = run_cli("sweep", config, "--lr", "0.05", "--set", "train.epochs=1", "--sweep-dir", tmp_path / "s",
                       "--backend", "ray", "--address", f"127.0.0.1:{port}", "--json", timeout=240, env=env)
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)  # stdout holds the one JSON object, nothing from Ray
        assert summary["counts"]["completed"] == 1 and summary["jobs"] == 2
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops its cluster (not `ray stop`, which
        try:                              # would stop every Ray instance on the machine)
            head.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)


# Runs dlrun commands in one fresh interpreter, then says which optional engines they imported.
NO_RAY_PROBE = """
import runpy, sys
import dlrun
config, out = sys.argv[1], sys.argv[2]
for args in (["--help"], ["sweep", "--help"], ["validate", config]):
    sys.argv = ["dlrun", *args]
    try:
        runpy.run_module("dlrun", run_name="__main__")
    except SystemExit as exit:
        assert not exit.code, (args, exit.code)
dlrun.sweep(config, lr="0.05", sweep_dir=out, backend="local")  # the CLI would leave with os._exit
print("RAY_LOADED=%s" % any(m == "ray" or m.startswith("ray.") for m in sys.modules))
"""


def test_help_validate_and_local_sweeps_never_import_ray(tmp_path: Path) -> None:
    config = write_config(tmp_path, deep_merge(TINY_MLP, {"train": {"epochs": 1}}))
    proc = subprocess.run([sys.executable, "-c", NO_RAY_PROBE, str(config), str(tmp_path / "s")], env=cli_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip().splitlines()[-1] == "RAY_LOADED=False", proc.stderr
    assert files.read_json(tmp_path / "s" / names.SUMMARY)["status"] == "completed"


def test_ray_sweep_gives_the_results_of_a_local_sweep(ray_cluster: Any, tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP)
    on_ray = sweep(config, None, "0.02,0.05", "0,0.01", "zip", sweep_dir=tmp_path / "ray", backend="ray")
    local = sweep(config, None, "0.02,0.05", "0,0.01", "zip", sweep_dir=tmp_path / "local",
                  executor=SequentialExecutor())
    assert on_ray["status"] == local["status"] == "completed"
    assert _results(tmp_path / "ray") == _results(tmp_path / "local")
    assert on_ray["threads"]["threads"] == 1 and "Ray" in on_ray["threads"]["from"]
    trial = tmp_path / "ray" / names.SWEEP_TRIALS / "000"
    assert (trial / names.WEIGHTS).is_file() and (trial / names.METRICS).is_file()  # a full run directory
    from matplotlib import image  # the history plot, drawn by the sweep process from the trial's rows

    assert (image.imread(trial / names.HISTORY_PLOT) ==
            image.imread(tmp_path / "local" / names.SWEEP_TRIALS / "000" / names.HISTORY_PLOT)).all()
    import ray

    assert ray.is_initialized()  # a connection the sweep did not make is left open


def test_a_memory_mapped_data_set_trains_on_ray_as_in_memory_locally(ray_cluster: Any, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache entry over the mapping threshold reaches the actors as plain arrays (shipping.for_object_store):
    a np.memmap would arrive pickled, without its file."""
    import numpy as np

    rng = np.random.default_rng(0)
    np.save(tmp_path / "X.npy", rng.integers(0, 256, (2000, 28, 28), dtype=np.uint8))
    np.save(tmp_path / "Y.npy", np.arange(2000) % 10)
    config = write_config(tmp_path, TINY_MLP, data={"source": "npy", "path": str(tmp_path)})
    local = sweep(config, None, "0.02,0.05", "0,0.01", "zip", sweep_dir=tmp_path / "local",
                  executor=SequentialExecutor())  # in memory, and written to the data cache
    monkeypatch.setenv("DLRUN_MEMORY_BUDGET", "4M")  # the 1.5 MiB of examples are then mapped
    on_ray = sweep(config, None, "0.02,0.05", "0,0.01", "zip", sweep_dir=tmp_path / "ray", backend="ray")
    assert on_ray["status"] == local["status"] == "completed"
    assert _results(tmp_path / "ray") == _results(tmp_path / "local")


def test_the_sweep_process_judges_every_epoch_and_pulls_a_trial_only_when_a_slot_is_free(
        ray_cluster: Any, tmp_path: Path) -> None:
    tasks, datasets = _trials(tmp_path, 2, epochs=3)
    events = Recorder(prune_at=2)

    def lazy() -> Iterator[TrialTask]:
        for task in tasks:
            events.log.append(("pulled", task.trial_id))
            yield task

    _run_on_ray(lazy(), datasets, events, jobs=1)
    assert events.threads == {threading.get_ident()}  # decided here, in the thread that called run
    assert events.log == [("pulled", "000"), ("started", "000"), ("epoch", "000", 1), ("epoch", "000", 2),
                          ("finished", "000", "pruned"), ("pulled", "001"), ("started", "001"),
                          ("epoch", "001", 1), ("epoch", "001", 2), ("finished", "001", "pruned")]
    assert [r.summary["pruned_epoch"] for r in events.results] == [2, 2]


def _kill_worker(tmp_path: Path, trial_id: str, epoch: int, at: int) -> None:
    """SIGKILL the Ray worker running the trial while it waits for the sweep's answer about epoch `at`."""
    if epoch == at and not (tmp_path / f"killed-{trial_id}").exists():
        (tmp_path / f"killed-{trial_id}").touch()
        pid = files.read_json(tmp_path / "trials" / trial_id / names.SUMMARY)["pid"]
        assert pid != os.getpid()
        os.kill(pid, signal.SIGKILL)


def test_a_killed_worker_is_retried_from_its_checkpoint_and_the_trial_ends_once(
        ray_cluster: Any, tmp_path: Path) -> None:
    tasks, datasets = _trials(tmp_path, 1, epochs=3)
    events = Recorder(on_epoch=lambda trial, epoch: _kill_worker(tmp_path, trial, epoch, at=1))
    _run_on_ray(tasks, datasets, events)
    [result] = events.results
    assert result.status == "completed" and result.summary["epochs_run"] == 3
    assert [e for e in events.log if e[0] == "finished"] == [("finished", "000", "completed")]
    assert [e[2] for e in events.log if e[0] == "epoch"] == [1, 2]  # the retry resumed after epoch 1
    assert len(files.read_csv(tasks[0].run_dir / names.METRICS)) == 3


def test_a_trial_whose_worker_dies_more_often_than_retried_fails_with_the_reason(
        ray_cluster: Any, tmp_path: Path) -> None:
    tasks, datasets = _trials(tmp_path, 1, epochs=2)
    events = Recorder(on_epoch=lambda trial, epoch: _kill_worker(tmp_path, trial, epoch, at=1))
    _run_on_ray(tasks, datasets, events, max_retries=0, storage="shared")
    [result] = events.results
    assert result.status == "failed"
    assert "died 1 time(s) (sweep.backend.max_retries: 0)" in result.summary["error"]
    assert (tasks[0].run_dir / names.ERROR).is_file()


def test_a_trial_the_sweep_cannot_prune_reports_each_epoch_without_waiting_for_the_answer(
        ray_cluster: Any, tmp_path: Path) -> None:
    tasks, datasets = _trials(tmp_path, 1, epochs=3)
    events = Recorder(on_epoch=lambda trial, epoch: time.sleep(3))  # a sweep process slow to answer
    _run_on_ray([replace(t, judged=False) for t in tasks], datasets, events)
    # each report handled, in order, before the result (its shipped checkpoint too: the result's files win)
    assert events.log == [("started", "000"), ("epoch", "000", 1), ("epoch", "000", 2),
                          ("finished", "000", "completed")]
    assert events.results[0].summary["seconds"] < 3  # waiting for the two answers would take 6 s
    assert len(files.read_csv(tasks[0].run_dir / names.METRICS)) == 3


def test_a_killed_worker_of_a_trial_that_reports_without_waiting_resumes_from_its_last_shipped_checkpoint(
        ray_cluster: Any, tmp_path: Path) -> None:
    for where in ("ray", "local"):
        (tmp_path / where).mkdir()
    tasks, datasets = _trials(tmp_path / "ray", 1, epochs=40)  # long enough to be killed while it trains
    events = Recorder(on_epoch=lambda trial, epoch: _kill_worker(tmp_path / "ray", trial, epoch, at=1))
    _run_on_ray([replace(t, judged=False) for t in tasks], datasets, events)
    assert [e for e in events.log if e[0] == "finished"] == [("finished", "000", "completed")]
    assert files.read_json(tasks[0].run_dir / names.SUMMARY)["ray"]["attempts"] == 2
    # every epoch handled once: the retry went on from the last checkpoint the sweep had, none twice, none lost
    assert [e[2] for e in events.log if e[0] == "epoch"] == list(range(1, 40))
    local_tasks, _ = _trials(tmp_path / "local", 1, epochs=40)
    SequentialExecutor().run(local_tasks, datasets, Recorder(), StopRequest())
    assert without_seconds(files.read_csv(tasks[0].run_dir / names.METRICS)) == \
        without_seconds(files.read_csv(local_tasks[0].run_dir / names.METRICS))


@pytest.mark.parametrize(("growth_mib", "actors"), [(-1, 3), (WORKER_GROWTH_MIB, 1)], ids=["grown", "kept"])
def test_a_worker_actor_whose_memory_grew_is_replaced_by_the_local_workers_rule(
        ray_cluster: Any, tmp_path: Path, growth_mib: float, actors: int) -> None:
    tasks, datasets = _trials(tmp_path, 3, epochs=1)
    _run_on_ray(tasks, datasets, Recorder(), jobs=1, growth_mib=growth_mib)  # -1: any peak "grew"
    records = [files.read_json(t.run_dir / names.SUMMARY)["ray"] for t in tasks]
    assert len({r["actor_id"] for r in records}) == len({r["pid"] for r in records}) == actors
    assert [r["replaced"] for r in records] == [actors > 1] * 3
    assert all(min(r["rss_mib"], r["peak_mib"]) > 100 for r in records)  # the worker's memory after each trial


@pytest.mark.slow
def test_a_two_objective_sweep_prunes_on_ray_by_front_rank(ray_cluster: Any, tmp_path: Path) -> None:
    from test_sweep_pareto import PRUNED, SMALL, assert_pruned_by_front_rank

    config = write_config(tmp_path, deep_merge(SMALL, {"train": {"epochs": 3}}), sweep=PRUNED)
    summary = sweep(config, sweep_dir=tmp_path / "s", backend="ray", jobs=1)
    assert summary["status"] == "completed" and summary["counts"].get("pruned")
    assert_pruned_by_front_rank(tmp_path / "s")  # judged in the sweep process, rung by rung, as locally


TPE_ASHA = {"search": "tpe", "trials": 6, "seed": 2, "params": {"optimizer.lr": {"log_uniform": [0.001, 3.0]}},
            "prune": {"method": "asha", "min_epochs": 1, "reduction": 2}}


def test_a_seeded_tpe_sweep_pruned_by_asha_gives_the_local_results_one_trial_at_a_time(
        ray_cluster: Any, tmp_path: Path) -> None:
    # one slot on each side: TPE's next point and ASHA's verdicts depend on the order in which trials report,
    # which parallel slots leave to timing (docs/scaling.md); one trial at a time, the order is the plan's
    config = write_config(tmp_path, deep_merge(TINY_MLP, {"train": {"epochs": 4}}), sweep=TPE_ASHA)
    on_ray = sweep(config, sweep_dir=tmp_path / "ray", backend="ray", jobs=1)
    local = sweep(config, sweep_dir=tmp_path / "local", backend="local", jobs=1)
    assert on_ray["status"] == local["status"] == "completed" and on_ray["counts"].get("pruned")
    assert on_ray["threads"]["from"] != local["threads"]["from"]  # the trials did run on Ray
    assert _results(tmp_path / "ray") == _results(tmp_path / "local")


def _ray_records(sweep_dir: Path) -> list[dict[str, Any]]:
    trials = sorted((sweep_dir / names.SWEEP_TRIALS).iterdir())
    return [files.read_json(trial / names.SUMMARY)["ray"] for trial in trials]


def test_a_sweep_joins_a_two_node_cluster_by_address_and_runs_trials_on_both_with_local_results(
        ray_cluster: Any, tmp_path: Path) -> None:
    config = write_config(tmp_path, deep_merge(TINY_MLP, {"train": {"epochs": 1}}))
    proc = run_cli("sweep", config, "--lr", "0.02,0.05", "--sweep-dir", "on-ray", "--backend", "ray",
                   "--address", ray_cluster.address, "--json", cwd=tmp_path, timeout=240,
                   env=cli_env(RAY_AUTH_MODE="disabled"))  # relative: resolved by the sweep, not Ray's workers
    assert proc.returncode == 0, proc.stderr
    local = sweep(config, None, "0.02,0.05", sweep_dir=tmp_path / "local", executor=SequentialExecutor())
    assert local["status"] == "completed"
    assert _results(tmp_path / "on-ray") == _results(tmp_path / "local")
    records = _ray_records(tmp_path / "on-ray")
    nodes = {n["NodeID"] for n in ray_cluster_nodes()}
    assert {r["node_id"] for r in records} == nodes  # 1 CPU a node: the two trials ran one on each
    assert all(r["attempts"] == 1 and r["host"] == socket.gethostname() for r in records)
    # written on its node (its own temporary directory) and shipped here: config sent, all files back
    assert all(r["storage"] == "ship" and 0 < r["sent_bytes"] < r["shipped_bytes"] for r in records)


# One process sweeps twice in a row on the cluster at argv[3], joining it itself; after each sweep, whether
# the process is still connected (each sweep disconnects before it returns, so the next joins again).
TWICE_PROBE = """
import sys
import ray
import dlrun
config, out, address = sys.argv[1:4]
for n in ("1", "2"):
    summary = dlrun.sweep(config, lr="0.02,0.05", sweep_dir=out + "/" + n, backend="ray", address=address)
    print("SWEEP%s %s connected=%s" % (n, summary["status"], ray.is_initialized()))
"""


def test_a_process_that_sweeps_twice_on_a_cluster_rejoins_it_and_starts_both_worker_actors_again(
        ray_cluster: Any, tmp_path: Path) -> None:
    config = write_config(tmp_path, deep_merge(TINY_MLP, {"train": {"epochs": 1}}))
    probe = [sys.executable, "-c", TWICE_PROBE, str(config), str(tmp_path), ray_cluster.address]
    proc = subprocess.run(probe, env=cli_env(RAY_AUTH_MODE="disabled"), capture_output=True, text=True, timeout=300)
    said = [line for line in proc.stdout.splitlines() if line.startswith("SWEEP")]
    assert said == ["SWEEP1 completed connected=False", "SWEEP2 completed connected=False"], proc.stderr
    nodes = {n["NodeID"] for n in ray_cluster_nodes()}
    for n in ("1", "2"):  # each sweep ran a worker actor on each node (1 CPU a node): the first's ended in time
        assert {r["node_id"] for r in _ray_records(tmp_path / n)} == nodes
        assert all(r["attempts"] == 1 for r in _ray_records(tmp_path / n))


def ray_cluster_nodes() -> list[dict[str, Any]]:
    import ray

    return [n for n in ray.nodes() if n["Alive"]]


def test_a_lost_node_costs_its_trial_one_more_attempt_on_another_node_and_every_trial_ends_once(
        ray_cluster: Any, tmp_path: Path) -> None:
    extra = ray_cluster.add_node(num_cpus=1, object_store_memory=100 * 2**20)
    ray_cluster.wait_for_nodes()
    lost = extra.node_id

    def remove_node(trial: str, epoch: int) -> None:  # while every trial waits for its first answer
        if extra in ray_cluster.list_all_nodes():
            ray_cluster.remove_node(extra, allow_graceful=False)

    for where in ("ray", "local"):
        (tmp_path / where).mkdir()
    tasks, datasets = _trials(tmp_path / "ray", 3, epochs=2)
    events = Recorder(on_epoch=remove_node)
    try:
        assert _run_on_ray(tasks, datasets, events).jobs == 3
    finally:
        remove_node("", 0)
    assert sorted(e[1:] for e in events.log if e[0] == "finished") == [(t, "completed") for t in ("000", "001", "002")]
    records = [files.read_json(t.run_dir / names.SUMMARY)["ray"] for t in tasks]
    assert sorted(r["attempts"] for r in records) == [1, 1, 2] and lost not in {r["node_id"] for r in records}
    local_tasks, _ = _trials(tmp_path / "local", 3, epochs=2)
    SequentialExecutor().run(local_tasks, datasets, Recorder(), StopRequest())
    for on_ray, here in zip(tasks, local_tasks, strict=True):
        assert without_seconds(files.read_csv(on_ray.run_dir / names.METRICS)) == \
            without_seconds(files.read_csv(here.run_dir / names.METRICS))


def test_a_shipped_run_directory_arrives_whole_and_a_bundle_cannot_write_outside_it(tmp_path: Path) -> None:
    import io
    import tarfile

    from dlrun.sweeps.executors import shipping

    source = tmp_path / "node"
    (source / "checkpoint").mkdir(parents=True)
    (source / "checkpoint" / "state.npz").write_bytes(b"\0weights" * 100)
    (source / "metrics.csv").write_text("epoch\n1\n")
    (source / ".metrics.csv.x.tmp.csv").write_text("half")  # a write in flight is not shipped
    target = tmp_path / "driver"
    target.mkdir()
    (target / "config.yaml").write_text("kept")
    assert shipping.unpack(shipping.bundle(source), target) == 2
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == \
        ["checkpoint/state.npz", "config.yaml", "metrics.csv"]
    assert (target / "checkpoint" / "state.npz").read_bytes() == b"\0weights" * 100
    (source / "metrics.csv").write_text("epoch\n1\n2\n")  # the next epoch's bundle: only what changed is written
    assert shipping.unpack(shipping.bundle(source), target) == 1
    assert (target / "metrics.csv").read_text() == "epoch\n1\n2\n"
    hostile = io.BytesIO()
    with tarfile.open(fileobj=hostile, mode="w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ValueError, match="outside"):
        shipping.unpack(hostile.getvalue(), target)
    assert not (tmp_path / "escaped.txt").exists()

