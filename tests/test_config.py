"""Config loading: located errors, suggestions, overrides, round trips. No TensorFlow needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import ROOT, run_cli, write_config

from dlrun.config import dump_config, load_config
from dlrun.errors import ConfigError

THREE_MISTAKES = """\
name: three-mistakes
data:
  source: synthetic_digits
model:
  layers:
    - flatten: {}
    - dense: {units: 10, activation: softmax}
optimizer:
  name: sgd
  lr: -0.5
train:
  epochs: 2
  batch_sise: 32
  early_stopping: {monitor: val_accuracy, patience: 2}
seeed: 1
"""


def _problems(path: Path, overrides: list[str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value).splitlines()


def test_three_mistakes_reported_together_with_lines(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(THREE_MISTAKES)
    lines = _problems(path)
    assert [line.split(": ")[0] for line in lines] == [f"{path}:10", f"{path}:13", f"{path}:15"]


def test_cli_reports_three_mistakes_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(THREE_MISTAKES)
    proc = run_cli("validate", path)
    assert (proc.returncode, len(proc.stderr.strip().splitlines())) == (2, 3)


def test_cli_config_error_has_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(THREE_MISTAKES)
    assert "Traceback" not in run_cli("validate", path).stderr


def test_unknown_key_suggests_near_miss(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(THREE_MISTAKES)
    assert "did you mean 'batch_size'?" in _problems(path)[1]


def test_unknown_layer_type_suggests(tmp_path: Path) -> None:
    config = write_config(tmp_path, model={"layers": [{"flaten": {}}, {"dense": {"units": 10}}]})
    assert "did you mean 'flatten'" in _problems(config)[0]


def test_layer_argument_error_is_located(tmp_path: Path) -> None:
    config = write_config(tmp_path, model={"layers": [{"flatten": {}}, {"dropout": {"rate": 1.0}},
                                                      {"dense": {"units": 10}}]})
    line = next(i for i, text in enumerate(config.read_text().splitlines(), 1) if "rate:" in text)
    assert _problems(config)[0].startswith(f"{config}:{line}: model.layers.1.dropout.rate:")


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nmodel: [unclosed\n")
    assert _problems(path)[0].startswith(f"{path}:3: invalid YAML")


def test_python_tags_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    assert "invalid YAML" in _problems(path)[0]


def test_set_overrides_with_yaml_types(tiny_config: Path) -> None:
    lc = load_config(tiny_config, ["train.epochs=3", "data.limit=50", "optimizer.lr=1"])
    assert (lc.config.train.epochs, lc.config.data.limit, lc.config.optimizer.lr) == (3, 50, 1.0)


def test_set_into_a_layer_by_index(tiny_config: Path) -> None:
    lc = load_config(tiny_config, ["model.layers.0.conv2d.filters=7"])
    assert lc.config.model.layers[0].args.filters == 7  # type: ignore[attr-defined]


def test_set_unknown_key_is_located_at_the_override(tiny_config: Path) -> None:
    assert _problems(tiny_config, ["data.limt=5"])[0].startswith("--set data.limt=5: data.limt: unknown key 'limt'")


def test_set_without_equals_is_an_error(tiny_config: Path) -> None:
    assert "expected KEY=VALUE" in _problems(tiny_config, ["train.epochs"])[0]


def test_output_units_must_match_known_classes(tmp_path: Path) -> None:
    config = write_config(tmp_path, model={"layers": [{"flatten": {}}, {"dense": {"units": 7}}]})
    assert "set units: 10" in _problems(config)[0]


def test_dense_after_conv_needs_flatten(tmp_path: Path) -> None:
    layers = [{"conv2d": {"filters": 2, "kernel_size": 3}}, {"dense": {"units": 10}}]
    config = write_config(tmp_path, model={"layers": layers})
    assert "needs a flatten layer" in _problems(config)[0]


def test_resolved_config_round_trips(tiny_config: Path, tmp_path: Path) -> None:
    lc = load_config(tiny_config, ["train.epochs=4"])
    again = tmp_path / "resolved.yaml"
    again.write_text(dump_config(lc.config))
    assert load_config(again).config == lc.config


def test_resolved_config_contains_defaults(tiny_config: Path) -> None:
    resolved = yaml.safe_load(dump_config(load_config(tiny_config).config))
    assert resolved["data"]["normalize"] is True and resolved["train"]["shuffle"] is True


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(config: Path) -> None:
    assert load_config(config).config.name


