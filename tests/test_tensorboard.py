"""TensorBoard, read back with TensorBoard's own readers: a run's per-epoch scalars as Keras names them
(also across an interruption and resume, each step once), the final metrics, histograms and a profile
on request, transfer stages, and a sweep's HParams table as the dashboard's backend serves it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_MLP, StopAfter, deep_merge, write_config
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

from dlrun import list_runs, resume, sweep, train, transfer
from dlrun.config import dump_config, load_config
from dlrun.data import load_checked
from dlrun.engine import hparams
from dlrun.engine.events import write_event_file
from dlrun.engine.run import run_training, write_run_summary
from dlrun.errors import Interrupted
from dlrun.store import files, names
from dlrun.store.rundir import create_run_dir
from dlrun.store.summary import RunClock
from dlrun.ui.console import Reporter

STRAY = 99.0  # a value no real epoch has


def board(folder: Path, plugin: str = "scalars") -> dict[str, list[tuple[int, Any]]]:
    """{tag: [(step, value), ...]} of one TensorBoard run folder, for summaries of `plugin`, every
    event kept (no sampling)."""
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()["tensors"]:
        if acc.SummaryMetadata(tag).plugin_data.plugin_name == plugin:
            values = [(e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]
            out[tag] = [(step, v.item() if v.ndim == 0 and plugin == "scalars" else v) for step, v in values]
    return out


def column(rows: list[dict[str, str]], key: str) -> list[tuple[int, float]]:
    return [(int(r["epoch"]) - 1, pytest.approx(float(r[key]), rel=1e-6)) for r in rows]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-epoch run (histograms every 2 epochs, batch 2 profiled) stopped after epoch 2, left as a kill
    at the worst moments would leave it (a stray epoch-3 loss that no checkpoint has, the validation
    files lost), then resumed to the end."""
    tmp = tmp_path_factory.mktemp("tb")
    config = write_config(tmp, TINY_MLP, train={"epochs": 4, "tensorboard": {"histograms": 2, "profile_batch": 2}})
    lc = load_config(config)
    run = create_run_dir(lc.config.name, explicit=tmp / "runs" / "run")
    files.write_text(run / names.CONFIG, dump_config(lc.config))
    write_run_summary(run, lc, "running", RunClock(), [])
    with pytest.raises(Interrupted):
        run_training(lc, run, load_checked(lc), Reporter(live=False), StopAfter(run.path, 2))
    from tensorboard.compat.proto import event_pb2, summary_pb2

    stray = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="epoch_loss", simple_value=STRAY)])
    write_event_file(run / names.TENSORBOARD / names.TB_TRAIN, [event_pb2.Event(step=2, summary=stray)])
    for path in (run / names.TENSORBOARD / names.TB_VALIDATION).iterdir():
        path.unlink()
    assert resume(run.path)["status"] == "completed"
    return run.path


def test_train_scalars_are_keras_names_once_per_epoch_across_a_resume(resumed: Path) -> None:
    rows = files.read_csv(resumed / names.METRICS)
    scalars = board(resumed / names.TENSORBOARD / names.TB_TRAIN)
    assert (scalars["epoch_loss"], scalars["epoch_accuracy"], scalars["epoch_learning_rate"]) == (
        column(rows, "loss"), column(rows, "accuracy"), column(rows, "lr"))


def test_validation_scalars_lost_by_a_kill_are_rewritten_from_the_checkpoint(resumed: Path) -> None:
    rows = files.read_csv(resumed / names.METRICS)
    scalars = board(resumed / names.TENSORBOARD / names.TB_VALIDATION)
    assert (scalars["epoch_loss"], scalars["epoch_accuracy"]) == (column(rows, "val_loss"),
                                                                  column(rows, "val_accuracy"))


def test_final_metrics_are_at_the_last_step(resumed: Path) -> None:
    metrics = files.read_json(resumed / names.SUMMARY)["metrics"]
    scalars = board(resumed / names.TENSORBOARD)
    assert {tag: values for tag, values in scalars.items()} == {
        key: [(3, pytest.approx(metrics[key], rel=1e-6))] for key in ("test_loss", "test_accuracy",
                                                                      "best_val_accuracy")}


def test_histograms_every_n_epochs_survive_the_resume(resumed: Path) -> None:
    histograms = board(resumed / names.TENSORBOARD / names.TB_TRAIN, "histograms")
    assert sorted(histograms) == ["dense/bias", "dense/kernel", "dense_1/bias", "dense_1/kernel"]
    assert [step for step, _ in histograms["dense/kernel"]] == [1, 3]


def test_profile_batch_writes_a_trace(resumed: Path) -> None:
    assert list((resumed / names.TENSORBOARD / names.TB_TRAIN / "plugins" / "profile").glob("*/*.xplane.pb"))


def test_runs_names_the_tensorboard_folder(resumed: Path) -> None:
    [info] = list_runs(resumed.parent)
    assert info.tensorboard == str(resumed / names.TENSORBOARD)


def test_tensorboard_false_writes_no_event_files(tmp_path: Path) -> None:
    config = write_config(tmp_path, TINY_MLP, train={"epochs": 1, "tensorboard": False})
    summary = train(config, run_dir=tmp_path / "run")
    assert (summary["status"], (tmp_path / "run" / names.TENSORBOARD).exists()) == ("completed", False)


def test_transfer_continues_the_steps_and_marks_each_stage(resumed: Path, tmp_path: Path) -> None:
    stages = [{"name": "head", "freeze": ["dense"], "epochs": 1}, {"name": "all", "freeze": "none", "epochs": 2}]
    config = write_config(tmp_path, deep_merge(TINY_MLP, {"transfer": {"stages": stages}}))
    run = Path(transfer(config, source=resumed, run_dir=tmp_path / "t")["run_dir"])
    train_dir = run / names.TENSORBOARD / names.TB_TRAIN
    marks = [(step, text.item().decode()) for step, text in board(train_dir, "text")["stage"]]
    assert ([step for step, _ in board(train_dir)["epoch_loss"]], marks) == (
        [0, 1, 2], [(0, "stage head starts at epoch 1"), (1, "stage all starts at epoch 2")])


def hparams_backend(logdir: Path, route: str, request: dict[str, Any]) -> dict[str, Any]:
    """What TensorBoard's HParams dashboard gets from its backend for `route` (the plugin itself, over
    TensorBoard's own data provider)."""
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import hparams_plugin
    from werkzeug.test import Client
    from werkzeug.wrappers import Response

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    plugin = hparams_plugin.HParamsPlugin(base_plugin.TBContext(logdir=str(logdir), multiplexer=multiplexer,
                                                                data_provider=provider))
    reply = Client(plugin.get_plugin_apps()[route], Response).post(route, data=json.dumps(request),
                                                                   content_type="application/json")
    assert reply.status_code == 200, reply.get_data()
    return json.loads(reply.get_data())


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 x 2 grid (lr x lambda), one epoch each."""
    tmp = tmp_path_factory.mktemp("tb-sweep")
    config = write_config(tmp, TINY_MLP, train={"epochs": 1})
    return Path(sweep(config, lr="0.01,0.1", lam="0,0.001", sweep_dir=tmp / "runs" / "sweep")["sweep_dir"])


def test_sweep_experiment_lists_the_swept_keys_and_metrics(swept: Path) -> None:
    experiment = hparams_backend(swept, "/experiment", {"experimentName": ""})
    assert ({h["name"]: h["domainDiscrete"] for h in experiment["hparamInfos"]},
            [(m["name"]["group"], m["name"]["tag"], m["displayName"]) for m in experiment["metricInfos"]]) == (
        {"optimizer.lr": [0.01, 0.1], "model.l2": [0.0, 0.001]},
        [("validation", "epoch_accuracy", "val_accuracy"), ("validation", "epoch_loss", "val_loss")])


def test_sweep_hparams_table_has_every_trial_with_its_values_and_metric(swept: Path) -> None:
    request = {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                                         "STATUS_RUNNING"], "colParams": [], "startIndex": 0,
               "sliceSize": 100}
    groups = hparams_backend(swept, "/session_groups", request)["sessionGroups"]
    table = {(g["hparams"]["optimizer.lr"], g["hparams"]["model.l2"]):
             (g["sessions"][0]["status"], g["metricValues"][0]["value"]) for g in groups}
    expected = {}
    for row in files.read_csv(swept / names.SWEEP_RESULTS):
        expected[(float(row["optimizer.lr"]), float(row["model.l2"]))] = (
            "STATUS_SUCCESS", pytest.approx(float(row["val_accuracy"]), rel=1e-6))
    assert table == expected


def test_runs_points_tensorboard_at_the_sweep_directory(swept: Path) -> None:
    [info] = list_runs(swept.parent)
    assert (info.kind, info.tensorboard) == ("sweep", str(swept))


def test_a_trial_records_its_values_and_its_end_once(tmp_path: Path) -> None:
    written = [hparams.write_trial(tmp_path, {"optimizer.lr": 0.1}, {"optimizer.lr": float}, "s/000"),
               hparams.write_trial(tmp_path, {"optimizer.lr": 0.1}, {"optimizer.lr": float}, "s/000"),
               hparams.write_trial_end(tmp_path, "interrupted"), hparams.write_trial_end(tmp_path, "completed"),
               hparams.write_trial_end(tmp_path, "completed")]
    assert [path is not None for path in written] == [True, False, False, True, False]
