"""Transfer planning without TensorFlow: layer matching, head policy, freeze policies, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from dlrun.config.schema import TransferConfig
from dlrun.errors import TransferError
from dlrun.transfers.plan import TargetLayer, match_layers, plan_transfer
from dlrun.weights import SourceLayer
from dlrun.weights.mapping import LOADED, NEW, REINIT

CNN = [("conv2d", "Conv2D", [(3, 3, 1, 4), (4,)]), ("max_pooling2d", "MaxPooling2D", []),
       ("conv2d_1", "Conv2D", [(3, 3, 4, 8), (8,)]), ("max_pooling2d_1", "MaxPooling2D", []),
       ("flatten", "Flatten", []), ("dense", "Dense", [(200, 16), (16,)]), ("dense_1", "Dense", [(16, 10), (10,)])]


def targets(changes: dict[str, list[tuple[int, ...]]] | None = None) -> list[TargetLayer]:
    """The tiny CNN's layers, with some layers' shapes changed."""
    changes = changes or {}
    return [TargetLayer(name, kind, changes.get(name, shapes)) for name, kind, shapes in CNN]


def source(names: list[str] | None = None) -> list[SourceLayer]:
    """Source layers with the tiny CNN's shapes (optionally other names)."""
    weighted = [(name, shapes) for name, _, shapes in CNN if shapes]
    names = names or [name for name, _ in weighted]
    return [SourceLayer(n, [np.zeros(s, np.float32) for s in shapes]) for n, (_, shapes) in zip(names, weighted,
                                                                                                strict=True)]


def plan(stages: list[dict] | None = None, layers: list[TargetLayer] | None = None, **transfer: object):
    config = TransferConfig.model_validate({"stages": stages or [{"name": "s1"}], **transfer})
    return plan_transfer(layers or targets(), config, source(), "src")


def frozen(stage: dict) -> list[str]:
    return plan([{"name": "s", **stage}]).stages[0].frozen


def test_auto_match_loads_every_layer_of_the_same_architecture() -> None:
    assert [r.status for r in plan().rows] == [LOADED] * 4


def test_auto_match_pairs_by_order_not_name() -> None:
    rows, _ = match_layers(targets(), source(["a", "b", "c", "d"]), "auto", "auto")
    assert [r.source for r in rows] == ["a", "b", "c", "d"]


def test_by_name_leaves_unknown_names_new() -> None:
    rows, _ = match_layers(targets(), source(["conv2d", "x", "dense", "dense_1"]), "by_name", "auto")
    assert [r.status for r in rows] == [LOADED, NEW, LOADED, LOADED]


def test_head_auto_reinitialises_on_other_class_count() -> None:
    rows = plan(layers=targets({"dense_1": [(16, 5), (5,)]})).rows
    assert (rows[-1].status, rows[-1].note) == (REINIT, "class count 10 -> 5")


def test_head_keep_refuses_other_class_count() -> None:
    with pytest.raises(TransferError, match="target 'dense_1' expects"):
        plan(layers=targets({"dense_1": [(16, 5), (5,)]}), head="keep")


def test_head_reinit_never_loads_the_output_layer() -> None:
    assert plan(head="reinit").rows[-1].status == REINIT


def test_shape_mismatch_names_the_first_mismatching_layer() -> None:
    layers = targets({"conv2d_1": [(3, 3, 4, 6), (6,)], "dense": [(150, 16), (16,)]})
    with pytest.raises(TransferError, match=r"target 'conv2d_1' expects \(3, 3, 4, 6\) \+ \(6,\) but source"):
        plan(layers=layers)


def test_shape_mismatch_message_carries_the_mapping_table() -> None:
    with pytest.raises(TransferError) as info:
        plan(layers=targets({"conv2d_1": [(3, 3, 4, 6), (6,)]}))
    mismatch_rows = [line.split()[0] for line in str(info.value).splitlines()[1:] if "MISMATCH" in line]
    assert mismatch_rows == ["conv2d_1"]


def test_freeze_none() -> None:
    assert frozen({"freeze": "none"}) == []


def test_freeze_all_with_unfreeze_last() -> None:
    assert frozen({"freeze": "all", "unfreeze": {"last": 1}}) == [name for name, _, _ in CNN[:-1]]


def test_freeze_features_is_everything_before_the_first_dense() -> None:
    assert frozen({"freeze": "features"}) == [name for name, _, _ in CNN[:5]]


def test_freeze_list_with_glob() -> None:
    assert frozen({"freeze": ["conv2d*"]}) == ["conv2d", "conv2d_1"]


def test_unfreeze_names() -> None:
    assert "conv2d_1" not in frozen({"freeze": "features", "unfreeze": ["conv2d_1"]})


def test_unfreeze_last_n_counts_weight_bearing_layers_of_the_frozen_part() -> None:
    stage = plan([{"name": "s", "freeze": "features", "unfreeze": {"last": 1}}]).stages[0]
    assert stage.trainable == ["conv2d_1", "dense", "dense_1"]


def test_freeze_pattern_matching_nothing_is_refused() -> None:
    with pytest.raises(TransferError, match="'conv3d' matches no layer"):
        frozen({"freeze": ["conv3d"]})


def test_unfreeze_pattern_matching_nothing_is_refused() -> None:
    with pytest.raises(TransferError, match="'dense_9' matches no layer"):
        frozen({"freeze": "features", "unfreeze": ["dense_9"]})


def test_policy_leaving_nothing_trainable_is_refused() -> None:
    with pytest.raises(TransferError, match="leaves nothing trainable"):
        frozen({"freeze": "all"})


def test_unfreeze_last_more_than_frozen_is_refused() -> None:
    with pytest.raises(TransferError, match="only 2 weight-bearing layer"):
        frozen({"freeze": "features", "unfreeze": {"last": 3}})


def test_rows_record_trainability_per_stage() -> None:
    stages = [{"name": "fe", "freeze": "features"}, {"name": "ft", "freeze": "features", "unfreeze": ["conv2d_1"]}]
    rows = plan(stages).rows
    assert [r.trainable for r in rows[:2]] == [{"fe": False, "ft": False}, {"fe": False, "ft": True}]


def test_a_base_name_matches_the_layers_inside_it() -> None:
    layers = [TargetLayer("base/conv2d", "Conv2D", [(3, 3, 1, 4), (4,)], "base"),
              TargetLayer("flatten", "Flatten"), TargetLayer("dense", "Dense", [(100, 10), (10,)])]
    config = TransferConfig.model_validate({"stages": [{"name": "s", "freeze": ["base"]}]})
    assert plan_transfer(layers, config, None, None).stages[0].frozen == ["base/conv2d"]
