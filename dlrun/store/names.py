"""Every file and folder name dlrun writes, and nothing else, lives here."""

from __future__ import annotations

from pathlib import Path

DEFAULT_RUNS_ROOT = Path("runs")
# in a folder of runs (and a sweep's trials/): the flattened configs `dlrun runs` read, by config.yaml mtime
RUNS_INDEX = ".dlrun-index.json"

# a run directory
CONFIG = "config.yaml"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
MODEL = "model.keras"
WEIGHTS = "weights.weights.h5"
HISTORY_PLOT = "history.png"
MODEL_TXT = "model.txt"
EVAL = "eval.json"
FEATURES = "features.json"  # a table's columns, categories and scaling statistics (data/features.py)
CONFUSION_PLOT = "confusion.png"
CLASSES = "classes.json"  # the class names, in label order (predict, evaluate)
INPUTS = "inputs.json"  # how the training inputs were prepared: what `dlrun predict` applies to new inputs
# `dlrun export` into the run directory (or --out): a .keras file, a Keras-2 .h5, a SavedModel folder
EXPORTS = {"keras": "export.keras", "h5": "export.h5", "savedmodel": "export_savedmodel"}
TRANSFER = "transfer.json"
MLFLOW_STATE = "mlflow.json"  # the MLflow run this run (or sweep) is mirrored to, and how much of it is logged
MLFLOW_DB = "mlflow.db"  # in the runs folder: the default local MLflow store (sqlite)
MLFLOW_ARTIFACTS = "mlartifacts"  # in the runs folder: that store's artifacts
ERROR = "error.txt"  # a sweep trial that failed: the exception and its traceback
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_STATE = "state.npz"
CHECKPOINT_BEST = "best.npz"
# TensorBoard event files: RUN/tb/train and RUN/tb/validation (Keras' own layout), the final summary
# metrics in RUN/tb itself; a sweep's HParams experiment in SWEEP/tb, each trial's values in its RUN/tb
TENSORBOARD = "tb"
TB_TRAIN = "train"
TB_VALIDATION = "validation"
# a sweep directory
SWEEP_SPEC = "sweep.yaml"
SWEEP_RESULTS = "results.csv"
SWEEP_BEST = "best.yaml"
SWEEP_HEATMAP = "heatmap.png"
SWEEP_TRIALS = "trials"
SWEEP_PARETO = "pareto.csv"  # several objectives: every trial, its values and front rank
SWEEP_PARETO_PLOT = "pareto.png"
SWEEP_PARETO_CONFIGS = "pareto"  # one config per front point: pareto/ID.yaml
# the search engine's record (Optuna journal storage): `optuna-dashboard study.journal` opens it
SWEEP_STUDY = "study.journal"
SWEEP_STUDY_NAME = "dlrun"
