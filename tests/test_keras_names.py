"""Keras' own names in a config (`learning_rate`, `kernel_regularizer`, `categorical_crossentropy`, ...)
get a did-you-mean to dlrun's, with a sentence on what dlrun's takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_MLP, deep_merge, write_config

from dlrun.config import load_config
from dlrun.errors import ConfigError

LAST = {"dense": {"units": 10, "activation": "softmax", "kernel_regularizer": 0.01}}


@pytest.mark.parametrize(("changes", "where", "expected"), [
    ({"optimizer": {"learning_rate": 0.001}}, "optimizer.learning_rate", "did you mean 'lr'?"),
    ({"model": {"layers": [{"flatten": {}}, LAST]}}, "model.layers.1.dense.kernel_regularizer",
     "dlrun's L2 penalty is model.l2"),
    ({"loss": "categorical_crossentropy"}, "loss", "did you mean 'crossentropy'? dlrun's crossentropy takes class "
     "labels 0..K-1"),
    ({"loss": "sparse_categorical_crossentropy"}, "loss", "did you mean 'crossentropy'?"),
    ({"loss": "mean_squared_error"}, "loss", "did you mean 'mse'?"),
])
def test_a_keras_name_points_at_dlruns(tmp_path: Path, changes: dict[str, Any], where: str, expected: str) -> None:
    config = write_config(tmp_path, deep_merge(TINY_MLP, changes))
    with pytest.raises(ConfigError) as err:
        load_config(config)
    line = next(p.render() for p in err.value.problems if p.key == where)
    assert expected in line
