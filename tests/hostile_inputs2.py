"""The second hostile corpus (issue 30): what a config, a data file, a saved model or a damaged record
can still do. Importing this module adds its cases to hostile_inputs.CASES; they run under the same
1 GiB address space and time limit, and expect a one-line refusal (exit 2) or, where the input is
honest, a correct result (exit 0)."""

from __future__ import annotations

from pathlib import Path

from hostile_inputs import case, config

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
