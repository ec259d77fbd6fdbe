"""The second hostile corpus (issue 30): what a config, a data file, a saved model or a damaged record
can still do. Importing this module adds its cases to hostile_inputs.CASES; they run under the same
1 GiB address space and time limit, and expect a one-line refusal (exit 2) or, where the input is
honest, a correct result (exit 0)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
from conftest import cli_env
from hostile_inputs import SYNTH, TRAINS, case, config, npy_bytes, npy_case

# --- configs: YAML 1.1 surprises and the domains of numbers --------------------------------------

HEAD = "name: strict\ndata: {source: synthetic_digits, image_size: [8, 8], n_train: 20, n_test: 20}\n" \
       "model: {layers: [{flatten: {}}, {dense: {units: 10, activation: softmax}}]}\n"


@case("yaml_key_given_twice", "c.yaml:6:", "the key 'lr' is given twice (lines 5 and 6)")
def _(work: Path) -> tuple[str, ...]:
    (work / "c.yaml").write_text(HEAD + "optimizer:\n  lr: 0.1\n  lr: 10\n")
    return ("train", "c.yaml")


@case("yaml_base_60_number", "c.yaml:4:", "1:30 is a base-60 number in YAML 1.1 (90)")
def _(work: Path) -> tuple[str, ...]:
    (work / "c.yaml").write_text(HEAD + "train: {epochs: 1:30}\n")
    return ("validate", "c.yaml")


@case("yaml_octal_number", "c.yaml:4:", "010 is an octal (base-8) number in YAML 1.1 (8)")
def _(work: Path) -> tuple[str, ...]:
    (work / "c.yaml").write_text(HEAD + "train: {epochs: 1, batch_size: 010}\n")
    return ("train", "c.yaml")


@case("batch_size_true", "c.yaml:4: train.batch_size:", "expected a number, not a boolean")
def _(work: Path) -> tuple[str, ...]:
    (work / "c.yaml").write_text(HEAD + "train: {epochs: 1, batch_size: true}\n")
    return ("train", "c.yaml")


@case("non_finite_l2_and_momentum", "model.l2:", "optimizer.momentum:", "finite number", lines=2)
def _(work: Path) -> tuple[str, ...]:
    return ("validate", config(work, model={"layers": [{"flatten": {}}, {"dense": {"units": 10}}], "l2": float("inf")},
                               optimizer={"name": "sgd", "momentum": float("nan")}))


@case("seed_beyond_numpy", "data.seed:", "less than 4294967296")
def _(work: Path) -> tuple[str, ...]:
    return ("train", config(work, {"source": "synthetic_digits", "image_size": [8, 8], "n_train": 20, "n_test": 20,
                                   "seed": 2**40}))


@case("threads_a_million", "train.threads:", "1,000,000 threads are too many", "set at most")
def _(work: Path) -> tuple[str, ...]:
    return ("train", config(work, train={"epochs": 1, "batch_size": 8, "threads": 10**6}))


# --- data files: degenerate arrays, links to other files, CSV headers -----------------------------

@case("npy_0d_arrays", "d: the features are a single value (a 0-d array)")
def _(work: Path) -> tuple[str, ...]:
    return npy_case(work, npy_bytes((), "<f4", bytes(4)), npy_bytes((), "<i8", bytes(8)))


@case("npy_complex_images", "d: the features are complex numbers (complex64)", "real part")
def _(work: Path) -> tuple[str, ...]:
    return npy_case(work, npy_bytes((4, 8, 8), "<c8", bytes(4 * 64 * 8)))


@case("labels_of_a_trillion_classes", "d: label 1,000,000,000,000 would make 1,000,000,000,001 classes")
def _(work: Path) -> tuple[str, ...]:
    return npy_case(work, npy_bytes((4, 8, 8), "|u1", bytes(4 * 64)),
                    npy_bytes((4,), "<i8", np.array([0, 1, 2, 10**12], "<i8").tobytes()))


@case("h5_external_link", "d.h5: dataset /X_train is an external link to other.h5:/X")
def _(work: Path) -> tuple[str, ...]:
    with h5py.File(work / "other.h5", "w") as f:
        f.create_dataset("X", data=np.zeros((10, 8, 8), np.uint8))
    with h5py.File(work / "d.h5", "w") as f:
        f["X_train"] = h5py.ExternalLink("other.h5", "/X")
        f.create_dataset("y_train", data=np.zeros(10, np.int64))
    return ("train", config(work, {"source": "h5", "path": "d.h5"}))


@case("h5_virtual_dataset", "d.h5: dataset /X_train takes its data from other files")
def _(work: Path) -> tuple[str, ...]:
    with h5py.File(work / "other.h5", "w") as f:
        f.create_dataset("X", data=np.zeros((10, 8, 8), np.uint8))
    layout = h5py.VirtualLayout(shape=(10, 8, 8), dtype="u1")
    layout[:] = h5py.VirtualSource(str(work / "other.h5"), "X", shape=(10, 8, 8))
    with h5py.File(work / "d.h5", "w") as f:
        f.create_virtual_dataset("X_train", layout)
        f.create_dataset("y_train", data=np.zeros(10, np.int64))
    return ("train", config(work, {"source": "h5", "path": "d.h5"}))


TABLE = "0,1,2\n1,2,3\n0,1,1\n1,3,3\n0,0,1\n1,4,4\n0,1,0\n1,5,2\n"
TABLE_MODEL = {"layers": [{"dense": {"units": 2, "activation": "softmax"}}]}


@case("csv_with_a_byte_order_mark", "val_accuracy", exit=0, address_space=TRAINS)
def _(work: Path) -> tuple[str, ...]:
    (work / "t.csv").write_bytes(b"\xef\xbb\xbf" + ("y,a,b\n" + TABLE).encode())  # Excel's "CSV UTF-8"
    return ("train", config(work, {"source": "csv", "path": "t.csv", "target": "y", "test_split": 0.25},
                            model=TABLE_MODEL, train={"epochs": 1, "batch_size": 4}), "--runs", "runs")


@case("csv_two_columns_one_name", "t.csv: the header names two columns alike ('a' is columns 2, 3)")
def _(work: Path) -> tuple[str, ...]:
    (work / "t.csv").write_text("y,a,a\n" + TABLE)
    return ("train", config(work, {"source": "csv", "path": "t.csv", "target": "y", "test_split": 0.25},
                            model=TABLE_MODEL))


# --- what dlrun writes: CSV cells a spreadsheet would run -----------------------------------------

def trained_run(work: Path, **changes: object) -> str:
    """Train the tiny MLP into work/run (no limits: this is the case's set-up) and return 'run'."""
    config(work, **changes)
    subprocess.run([sys.executable, "-m", "dlrun", "train", "c.yaml", "--run-dir", "run"], cwd=work, env=cli_env(),
                   check=True, capture_output=True, timeout=300)
    return "run"


@case("predict_csv_of_formula_names", "=1+2.npy", exit=0, address_space=TRAINS,
      holds=(("p.csv", "'=1+2.npy"), ("p.csv", "'@SUM(1)")))
def _(work: Path) -> tuple[str, ...]:
    names = ["@SUM(1)"] * 10  # every class one formula-like name: whichever wins, the csv must hold it quoted
    names = [f"{n}{k}" if k else n for k, n in enumerate(names)]
    run = trained_run(work, data={**SYNTH, "class_names": names})
    np.save(work / "=1+2.npy", np.zeros((2, 8, 8), np.float32))
    return ("predict", run, "=1+2.npy", "--out", "p.csv")


# --- outputs that grow with the problem ----------------------------------------------------------

@case("evaluate_300_classes", "the 50 lowest F1 of 300", exit=0, address_space=TRAINS,
      holds=(("run/eval.json", '"top_confusions"'),))
def _(work: Path) -> tuple[str, ...]:
    """A confusion matrix of 300 classes took 5.5 GB and 42 s to draw: now its top confusions."""
    (work / "d").mkdir()
    rng = np.random.default_rng(0)
    np.save(work / "d" / "X.npy", rng.random((600, 8, 8), np.float32))
    np.save(work / "d" / "Y.npy", np.arange(600) % 300)
    layers = [{"flatten": {}}, {"dense": {"units": 300, "activation": "softmax"}}]
    run = trained_run(work, data={"source": "npy", "path": "d", "test_split": 0.5}, model={"layers": layers})
    return ("evaluate", run)


def million_point_grid(work: Path) -> str:
    """c.yaml: a grid of 1,000 learning rates x 1,000 L2 values."""
    return config(work, sweep={"params": {"optimizer.lr": [round(1e-3 * (k + 1), 6) for k in range(1000)],
                                          "model.l2": [round(1e-6 * (k + 1), 9) for k in range(1000)]}})


@case("sweep_grid_of_a_million_points", "sweep.params: a grid of 1,000,000 trials (1,000 x 1,000) is past the cap "
      "of 10,000 trials", "--search random --trials 200")
def _(work: Path) -> tuple[str, ...]:
    """Planned up front, it made a directory per trial (20,000 for a 20,000-point grid) and drew a heat map
    with a labelled cell each (nothing written after 60 s at 1.9 GB): refused from the lists' lengths."""
    return ("sweep", million_point_grid(work))


@case("validate_grid_of_a_million_points", "sweep.params: a grid of 1,000,000 trials")
def _(work: Path) -> tuple[str, ...]:
    return ("validate", million_point_grid(work))


@case("sweep_random_of_20000_trials", "--trials 20000: sweep.trials: 20,000 trials are past the cap of 10,000")
def _(work: Path) -> tuple[str, ...]:
    return ("sweep", config(work, sweep={"search": "random", "params": {
        "optimizer.lr": {"log_uniform": [0.001, 0.1]}}}), "--trials", "20000")


# --- code inside saved models --------------------------------------------------------------------

SAVED_MODEL_WRITING_FILES = """
import sys, tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
class Base(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32)])
    def serve(self, x):
        tf.io.write_file("pwned.txt", "written by a saved model")
        return tf.reshape(x, [-1, 64])
tf.saved_model.save(Base(), "sm")
if sys.argv[1] == "unknown":  # rename the op: a graph TensorFlow cannot load
    pb = saved_model_pb2.SavedModel.FromString(open("sm/saved_model.pb", "rb").read())
    for f in pb.meta_graphs[0].graph_def.library.function:
        for n in f.node_def:
            if n.op == "WriteFile":
                n.op = "NoSuchOp"
    open("sm/saved_model.pb", "wb").write(pb.SerializeToString())
"""


def saved_model_base(work: Path, variant: str) -> tuple[str, ...]:
    subprocess.run([sys.executable, "-c", SAVED_MODEL_WRITING_FILES, variant], cwd=work, env=cli_env(), check=True,
                   capture_output=True, timeout=300)
    return ("train", config(work, model={"base": {"from": "sm"}, **{"layers": [
        {"dense": {"units": 10, "activation": "softmax"}}]}}))


@case("saved_model_base_writes_files", "sm: the SavedModel's graph holds ops that reach files",
      "WriteFile (in __inference_serve", "--unsafe", address_space=TRAINS)
def _(work: Path) -> tuple[str, ...]:
    return saved_model_base(work, "writes")


@case("saved_model_base_unknown_op", "sm: the SavedModel uses op(s) this TensorFlow does not have: NoSuchOp",
      address_space=TRAINS)
def _(work: Path) -> tuple[str, ...]:
    return saved_model_base(work, "unknown")


# --- predict -------------------------------------------------------------------------------------

@case("predict_inputs_all_nan", "nan.npy: 2 of 2 input(s) hold NaN or infinite values", address_space=TRAINS)
def _(work: Path) -> tuple[str, ...]:
    run = trained_run(work)
    np.save(work / "nan.npy", np.full((2, 8, 8), np.nan, np.float32))
    return ("predict", run, "nan.npy")


# --- damaged records: the sweep's Optuna journal ---------------------------------------------------

SWEPT: list[Path] = []  # one searched sweep per process, copied into each case that damages it


def searched_sweep(work: Path) -> Path:
    """A finished 2-trial random sweep copied to work/sw (made once per process: its set-up trains)."""
    if not SWEPT:
        made = Path(tempfile.mkdtemp(prefix="dlrun-hostile-sweep-"))
        sweep = {"search": "random", "trials": 2, "params": {"optimizer.lr": {"log_uniform": [0.001, 0.1]}}}
        config(made, sweep=sweep)
        subprocess.run([sys.executable, "-m", "dlrun", "sweep", "c.yaml", "--sweep-dir", "sw"], cwd=made,
                       env=cli_env(), check=True, capture_output=True, timeout=300)
        SWEPT.append(made / "sw")
    shutil.copytree(SWEPT[0], work / "sw")
    return work / "sw" / "study.journal"


@case("sweep_journal_torn_tail", "resuming: 2 of 2 trials ended before", exit=0, address_space=TRAINS)
def _(work: Path) -> tuple[str, ...]:
    """Killed in the middle of an append: the torn last line is dropped (a warning), never appended to."""
    journal = searched_sweep(work)
    journal.write_bytes(journal.read_bytes()[:-40])
    return ("sweep", "--resume", "sw")


@case("sweep_journal_garbage_line", "sw/study.journal:3: line is not JSON", "delete that line",
      address_space=TRAINS)
def _(work: Path) -> tuple[str, ...]:
    journal = searched_sweep(work)
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:2] + ["\x00garbage{{\n"] + lines[2:]))
    return ("sweep", "--resume", "sw")


@case("sweep_journal_edited_op", "sw/study.journal:2: line is not an operation Optuna writes",
      address_space=TRAINS)
def _(work: Path) -> tuple[str, ...]:
    journal = searched_sweep(work)
    lines = journal.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"op_code":', '"op_code":1', 1)  # 4 -> 14: no such operation
    journal.write_text("".join(lines))
    return ("sweep", "--resume", "sw")


@case("sweep_journal_cut_short", "sw/study.journal: the journal does not know trial(s) 001",
      "move those trial directories", address_space=TRAINS)
def _(work: Path) -> tuple[str, ...]:
    """Lines deleted by hand: the second trial's ask is gone, its directory is still there."""
    journal = searched_sweep(work)
    lines = journal.read_text().splitlines(keepends=True)
    first_of_second = next(k for k, line in enumerate(lines) if '"dlrun_trial": "001"' in line
                           or '"dlrun_trial":"001"' in line) - 1
    journal.write_text("".join(lines[:first_of_second]))
    return ("sweep", "--resume", "sw")


@case("sweep_journal_edited_value", "sw/study.journal: a trial's values do not make a valid config (optimizer.lr:",
      address_space=TRAINS)
def _(work: Path) -> tuple[str, ...]:
    """A sampled value edited out of its domain: the journal is named, not sweep.yaml (whose line it broke)."""
    journal = searched_sweep(work)
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(re.sub(r'"param_value_internal": ?[-0-9.e]+', '"param_value_internal":-5.0', line)
                               for line in lines))
    return ("sweep", "--resume", "sw")


@case("sweep_journal_unreplayable", "sw/study.journal: Optuna cannot replay it", address_space=TRAINS)
def _(work: Path) -> tuple[str, ...]:
    """Valid JSON and a known operation, but not a record Optuna can apply (its keys removed)."""
    journal = searched_sweep(work)
    lines = journal.read_text().splitlines(keepends=True)
    lines[1] = '{"op_code": 4}\n'
    journal.write_text("".join(lines))
    return ("sweep", "--resume", "sw")
