"""`train.distribute`: one model on several devices under MirroredStrategy, tested on a CPU split into two
logical devices (DLRUN_CPU_DEVICES=2, which must be set before TensorFlow starts: hence a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_MLP, cli_env, deep_merge, run_cli, without_seconds, write_config

import dlrun
from dlrun import ConfigError

MIRRORED = {"train": {"epochs": 3, "distribute": {"strategy": "mirrored", "devices": 2}}}

# Runs in one interpreter on 2 logical CPU devices: one device, mirrored, mirrored stopped after epoch 1 (the
# judge asks for a stop: the next batch interrupts it) then resumed from its checkpoint, and a two-stage
# transfer from the mirrored run.
SCRIPT = """
import json, sys
from pathlib import Path
from typing import Any
import dlrun
from dlrun.config import load_config
from dlrun.data import load_dataset
from dlrun.errors import Interrupted
from dlrun.interrupts import StopRequest
from dlrun.store import files, names
from dlrun.store.rundir import create_run_dir
from dlrun.engine.run import run_training
from dlrun.ui.console import Reporter

config, out = sys.argv[1], Path(sys.argv[2])
single = dlrun.train(config, ["train.distribute=null"], run_dir=out / "single")
mirrored = dlrun.train(config, run_dir=out / "mirrored")
lc = load_config(config)
data = load_dataset(lc.config.data, lc.config.task)
run = create_run_dir("stopped", explicit=out / "stopped")
files.write_text(run / names.CONFIG, (Path(config)).read_text())
stop = StopRequest()
def judge(epoch, row):
    stop.requested = True
    return True
try:
    run_training(lc, run, data, Reporter(json_mode=True, live=False), stop, judge=judge)
except Interrupted:
    pass
stopped_rows = len(files.read_csv(run / names.METRICS))
resumed = run_training(lc, run, data, Reporter(json_mode=True, live=False), StopRequest(),
                       resume_from=run.checkpoint / names.CHECKPOINT_STATE)
rows = {name: files.read_csv(out / name / names.METRICS) for name in ("mirrored", "stopped")}
stages = "transfer.stages=[{name: head, epochs: 1}, {name: all, freeze: none, epochs: 1}]"
transferred = dlrun.transfer(config, [stages], source=out / "mirrored", run_dir=out / "transferred")
print(json.dumps({"single": single, "mirrored": mirrored, "resumed": resumed, "stopped_rows": stopped_rows,
                  "rows": rows, "transferred": transferred}))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """SCRIPT's runs (under the returned folder) and what it printed."""
    tmp = tmp_path_factory.mktemp("distribute")
    config = write_config(tmp, deep_merge(TINY_MLP, MIRRORED))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(config), str(tmp / "runs")], capture_output=True,
                          text=True, env=cli_env(DLRUN_CPU_DEVICES="2"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    return tmp / "runs", json.loads(proc.stdout.strip().splitlines()[-1])


def test_mirrored_on_two_logical_cpus_matches_one_device_and_resumes(runs: tuple[Path, dict[str, Any]]) -> None:
    out = runs[1]
    single, mirrored, resumed = out["single"], out["mirrored"], out["resumed"]
    assert "distribute" not in single
    assert mirrored["distribute"] == {"strategy": "mirrored", "replicas": 2, "devices": ["cpu:0", "cpu:1"],
                                      "global_batch_size": 32, "per_replica_batch_size": 16.0}
    assert abs(mirrored["metrics"]["test_accuracy"] - single["metrics"]["test_accuracy"]) <= 0.02
    assert out["stopped_rows"] == 1 and resumed["status"] == "completed" and resumed["distribute"]["replicas"] == 2
    # stopped and resumed under the strategy: the same epochs
    assert without_seconds(out["rows"]["mirrored"]) == without_seconds(out["rows"]["stopped"])
    transferred = out["transferred"]  # weights loaded and stages recompiled under the strategy
    assert transferred["status"] == "completed" and transferred["distribute"]["replicas"] == 2


def test_a_mirrored_run_is_evaluated_on_a_machine_with_one_device(runs: tuple[Path, dict[str, Any]]) -> None:
    proc = run_cli("evaluate", runs[0] / "mirrored", "--json")  # no DLRUN_CPU_DEVICES: one CPU device
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["accuracy"] == runs[1]["mirrored"]["metrics"]["test_accuracy"]


def test_more_devices_than_the_machine_has_is_refused_with_what_was_found(tmp_path: Path) -> None:
    config = write_config(tmp_path, deep_merge(TINY_MLP, {"train": {"distribute": {"devices": 64}}}))
    with pytest.raises(ConfigError) as exc:
        dlrun.train(config, runs_root=tmp_path / "runs")
    message = "\n".join(exc.value.lines())
    assert "train.distribute.devices" in message and "asks for 64 devices but this machine has" in message
    assert not list((tmp_path / "runs").glob("*"))  # refused before a run directory is made


def test_multi_worker_is_refused_with_the_reason_and_the_alternative(tmp_path: Path) -> None:
    config = write_config(tmp_path, deep_merge(TINY_MLP, {"train": {"distribute": {"strategy": "multi_worker"}}}))
    proc = run_cli("validate", config)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "keras-team/keras#20585" in proc.stderr and "--backend ray" in proc.stderr
