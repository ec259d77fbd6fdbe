"""The bad-input corpus (tests/bad_inputs/, and the generated hostile cases of hostile_inputs.py):
every wrong input is exit 2, one stderr line per problem naming the file (and the YAML line for config
problems), no traceback, nothing written; a hostile one also within a 1 GiB address space, in seconds."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import hostile_inputs2  # noqa: F401  (adds the second corpus, issue 30, to HOSTILE)
import pytest
from conftest import run_cli
from hostile_inputs import CASES as HOSTILE
from hostile_inputs import Hostile, run_case

CORPUS = Path(__file__).resolve().parent / "bad_inputs"


@dataclass(frozen=True)
class Case:
    """One CLI call on the corpus: `expect` must all appear on stderr, in `lines` lines."""

    id: str
    args: tuple[str, ...]
    expect: tuple[str, ...]
    lines: int = 1


def train(name: str, *expect: str, lines: int = 1) -> Case:
    """`dlrun train NAME.yaml`, the case named after its file."""
    return Case(name, ("train", f"{name}.yaml"), expect, lines)


def positive(name: str, line: int, key: str) -> Case:
    return train(name, f"{name}.yaml:{line}: {key}:", "greater than 0")


CASES = [
    train("empty", "empty.yaml: ", "the config is empty"),
    train("not_yaml", "not_yaml.yaml:4: ", "invalid YAML"),
    train("top_level_list", "top_level_list.yaml:1: ", "expected a mapping", "got a list"),
    train("python_tag", "python_tag.yaml:1: ", "no !!python tags"),
    train("unknown_top_key", "unknown_top_key.yaml:2: learning_rate:", "unknown key", "allowed: name"),
    train("unknown_nested_key", "unknown_nested_key.yaml:9: optimizer.momentun:", "did you mean 'momentum'?"),
    train("wrong_types", "wrong_types.yaml:2: seed:", "wrong_types.yaml:6: model.layers.1.dense.units:",
          "wrong_types.yaml:8: train.epochs:", "wrong_types.yaml:9: train.shuffle:", lines=4),
    positive("lr_negative", 7, "optimizer.lr"),
    positive("lr_zero", 7, "optimizer.lr"),
    positive("epochs_zero", 7, "train.epochs"),
    positive("epochs_negative", 7, "train.epochs"),
    positive("batch_size_zero", 7, "train.batch_size"),
    positive("batch_size_negative", 7, "train.batch_size"),
    train("dropout_one", "dropout_one.yaml:5: model.layers.1.dropout.rate:", "less than 1"),
    train("unknown_layer", "unknown_layer.yaml:5: model.layers.1:", "did you mean 'dense'?"),
    train("units_not_classes", "units_not_classes.yaml:6: model.layers.1.dense.units:", "set units: 10"),
    train("output_activation_relu", "output_activation_relu.yaml:6: model.layers.1.dense.activation:",
          "not 'relu'", "use activation: softmax"),
    train("conv2d_on_flat_data", "conv2d_on_flat_data.yaml:10: model.layers.0:", "needs image data"),
    train("kernel_larger_than_image", "kernel_larger_than_image.yaml:5: model.layers.0:", "cannot take input"),
    train("missing_data_file", "data/no_such_folder/X.npy", "not found"),
    train("npy_length_mismatch", "data/npy_length_mismatch", "X has 6 examples but Y has 5 labels"),
    train("labels_negative", "data/labels_negative", "label -1 is out of range"),
    train("labels_out_of_range", "labels_out_of_range.yaml:6:", "data/labels_out_of_range go up to 7"),
    train("h5_missing_key", "data/missing_key.h5", "missing dataset(s) y_train"),
    train("empty_image_folder", "data/empty_image_folder", "no class sub-folders"),
    train("non_image_folder", "data/non_image_folder", "no readable images"),
    Case("truncated_weights", ("evaluate", "data/truncated.weights.h5", "--config", "valid_tiny.yaml", "--out", "out"),
         ("data/truncated.weights.h5", "truncated")),
    Case("weights_from_other_architecture",
         ("evaluate", "data/other_arch.weights.h5", "--config", "valid_tiny.yaml", "--out", "out"),
         ("data/other_arch.weights.h5", "different architecture")),
    Case("set_unknown_key", ("train", "valid_tiny.yaml", "--set", "optimizer.lrr=0.1"),
         ("--set optimizer.lrr=0.1: optimizer.lrr:", "did you mean 'lr'?")),
    Case("set_below_a_value", ("train", "valid_tiny.yaml", "--set", "name.x=1"), ("--set name.x=1: name:",)),
    Case("run_name_escapes_runs_root", ("train", "valid_tiny.yaml", "--set", "name=../evil"),
         ("--set name=../evil: name:", "not a valid name")),
    Case("tensorboard_profile_range_backwards",
         ("validate", "valid_tiny.yaml", "--set", "train.tensorboard.profile_batch=[3,1]"),
         ("--set train.tensorboard.profile_batch=[3,1]: train.tensorboard.profile_batch:", "must not end before")),
    Case("tensorboard_misspelt_setting", ("validate", "valid_tiny.yaml", "--set", "train.tensorboard={histogram: 1}"),
         ("train.tensorboard.histogram:", "did you mean 'histograms'?")),
    Case("schema_out_unwritable", ("schema", "--out", "no_such_folder/dlrun.schema.json"),
         ("no_such_folder/dlrun.schema.json", "cannot write the schema")),
    Case("resume_not_a_run", ("train", "--resume", "data/not_a_run"), ("data/not_a_run", "not a run directory")),
    Case("train_resume_of_a_transfer_run", ("train", "--resume", "data/transfer_run"),
         ("data/transfer_run", "dlrun transfer --resume")),
    Case("resume_a_file", ("train", "--resume", "valid_tiny.yaml"), ("valid_tiny.yaml", "not a directory")),
    Case("sweep_zip_lengths_differ_validate", ("validate", "sweep_zip_lengths_differ.yaml"),
         ("sweep_zip_lengths_differ.yaml:9: sweep.params:", "equal lengths")),
    Case("sweep_param_not_a_key_validate", ("validate", "sweep_param_not_a_key.yaml"),
         ("sweep_param_not_a_key.yaml:9: sweep.params.optimizer.learning_rate:", "not a config key")),
    Case("sweep_zip_lengths_differ", ("sweep", "sweep_zip_lengths_differ.yaml"),
         ("sweep_zip_lengths_differ.yaml:9:", "equal lengths")),
    Case("sweep_param_not_a_key", ("sweep", "sweep_param_not_a_key.yaml"),
         ("sweep_param_not_a_key.yaml:9:", "not a config key")),
    Case("sweep_metric_on_test", ("sweep", "sweep_metric_on_test.yaml"),
         ("sweep_metric_on_test.yaml:10: sweep.metric:", "measured on the test split", "rank on 'val_accuracy'")),
    # sweeps that search (issue 12): each refused before anything runs, at its key and line
    Case("sweep_range_low_above_high", ("sweep", "sweep_range_low_above_high.yaml"),
         ("sweep_range_low_above_high.yaml:11: sweep.params.optimizer.lr.log_uniform:", "must be below high")),
    Case("sweep_log_uniform_touches_zero", ("sweep", "sweep_log_uniform_touches_zero.yaml"),
         ("sweep_log_uniform_touches_zero.yaml:11: sweep.params.optimizer.lr.log_uniform:", "must stay above 0")),
    Case("sweep_lr_range_touches_zero", ("sweep", "valid_tiny.yaml", "--lr", "0:1", "--search", "random",
                                         "--trials", "2"),
         ("--lr 0:1: sweep.params.optimizer.lr.log_uniform:", "must stay above 0")),
    Case("sweep_random_without_trials", ("sweep", "sweep_random_without_trials.yaml"),
         ("sweep_random_without_trials.yaml:8: sweep.search:", "set sweep.trials")),
    Case("sweep_refine_no_numeric_key", ("sweep", "sweep_refine_no_numeric_key.yaml"),
         ("sweep_refine_no_numeric_key.yaml:10: sweep.refine:", "no swept key is numeric")),
    Case("sweep_prune_min_epochs_too_large", ("sweep", "sweep_prune_min_epochs_too_large.yaml"),
         ("sweep_prune_min_epochs_too_large.yaml:11: sweep.prune.min_epochs:", "leaves no epoch to prune")),
    # the refusal, then the 5-line mapping table as context
    Case("transfer_freeze_matches_nothing", ("transfer", "transfer_freeze_matches_nothing.yaml"),
         ("transfer_freeze_matches_nothing.yaml:12: transfer.stages.0.freeze:", "'no_such_layer*' matches no layer"),
         lines=6),
    Case("transfer_resume_not_a_run", ("transfer", "--resume", "data/not_a_run"),
         ("data/not_a_run", "not a")),
]


def all_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_every_case_file_is_used() -> None:
    used = {arg for case in CASES for arg in case.args if arg.endswith(".yaml")} | {"valid_tiny.yaml"}
    assert sorted(p.name for p in CORPUS.glob("*.yaml")) == sorted(used)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_a_clean_exit_2(case: Case, tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(CORPUS, work)
    before = all_files(work)
    proc = run_cli(*case.args, cwd=work, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    outcome = {
        "exit": proc.returncode,
        "traceback": "Traceback" in proc.stderr,
        "unexpected": "unexpected" in proc.stderr,
        "lines": len(lines),
        "missing": [text for text in case.expect if text not in proc.stderr],
        "new files": sorted(all_files(work) - before),
    }
    assert outcome == {"exit": 2, "traceback": False, "unexpected": False, "lines": case.lines, "missing": [],
                       "new files": []}, proc.stderr


MAX_RSS_MIB = 1024
MAX_SECONDS = 30  # a few seconds each on a quiet machine; a FIFO that blocked would hit run_case's timeout
MAX_TRAIN_SECONDS = 90  # an honest input trains: TensorFlow starts, a model fits


@pytest.mark.parametrize("hostile", HOSTILE, ids=[case.id for case in HOSTILE])
def test_hostile_input_is_refused_bounded_and_fast(hostile: Hostile, tmp_path: Path) -> None:
    """Exit 2 with the expected one-line refusal and nothing written; or, where the input is honest
    (exit 0), the expected output on stdout; both within 1 GiB and seconds. No case prints `unexpected`
    (dlrun's last-resort message for a crash) or ends in a signal (a negative exit): checked here, case by
    case, so no separate test walks the corpora again (issue 30's "a test walks the corpus for that word")."""
    work = tmp_path / "work"
    work.mkdir()
    result = run_case(hostile, work)
    refused = hostile.exit == 2
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    said = result["stderr"] if refused else result["stdout"]
    outcome = {
        "exit": result["exit"],
        "traceback": "Traceback" in result["stderr"] or "MemoryError" in result["stderr"],
        "unexpected": "unexpected" in result["stderr"],
        "lines": len(lines) if refused else hostile.lines,
        "missing": [text for text in hostile.expect if text not in said] + [
            f"{file}: {text}" for file, text in hostile.holds
            if not (work / file).is_file() or text not in (work / file).read_text()],
        "new files": result["new"] if refused else [],
        "peak RSS under 1 GiB": result["rss_mib"] is not None and result["rss_mib"] < MAX_RSS_MIB,
        "within seconds": result["seconds"] < (MAX_SECONDS if refused else MAX_TRAIN_SECONDS),
    }
    assert outcome == {"exit": hostile.exit, "traceback": False, "unexpected": False, "lines": hostile.lines,
                       "missing": [], "new files": [], "peak RSS under 1 GiB": True, "within seconds": True}, result
