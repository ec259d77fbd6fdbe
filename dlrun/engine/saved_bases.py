"""Bases from saved models that are not Keras 3 files: a TensorFlow SavedModel folder (the course's
`model.save("base_model")`), read as a fixed function through keras.layers.TFSMLayer, and a Keras-2
full-model .h5 (`model.save("cnn.h5")`), rebuilt layer by layer from its JSON config. Nothing in the
.h5 is executed: only Keras' built-in layer classes are built, so a Lambda layer (Python bytecode)
or a custom class is refused; the weights are then read by the h5py readers in dlrun.weights."""

from __future__ import annotations

import functools
import inspect
import json
from pathlib import Path
from typing import Any

from dlrun.engine import backend
from dlrun.engine.graph_scan import check_saved_model
from dlrun.errors import WeightsError
from dlrun.limits import MAX_JSON_BYTES

# the Keras layer classes a Keras-2 .h5 base may hold (all built into Keras; none runs stored code)
KERAS2_LAYERS = frozenset({
    "InputLayer", "Conv1D", "Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose", "MaxPooling1D",
    "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten", "Dense",
    "Dropout", "SpatialDropout2D", "BatchNormalization", "LayerNormalization", "Activation", "ReLU", "LeakyReLU",
    "Softmax", "ZeroPadding2D", "Reshape", "Rescaling",
})
SHAPE_KEYS = ("batch_input_shape", "batch_shape", "input_shape", "input_dim")  # the new Input sets the shape


def saved_model_layer(path: Path, unsafe: bool = False) -> Any:
    """A frozen layer that calls the SavedModel in `path` (its `serve` endpoint, else `serving_default`),
    its graph scanned first (graph_scan: file, network and Python ops refused unless `unsafe`)."""
    import tensorflow as tf

    check_saved_model(path, unsafe)
    try:
        loaded = tf.saved_model.load(str(path))
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable TensorFlow SavedModel ({str(exc).splitlines()[0]})") from None
    endpoint = "serve" if hasattr(loaded, "serve") else "serving_default"
    if endpoint not in loaded.signatures and not hasattr(loaded, endpoint):
        raise WeightsError(f"{path}: the SavedModel has no serve or serving_default endpoint (it has "
                           f"{', '.join(loaded.signatures) or 'none'}); save it with model.export() or model.save()")
    return single_output_tfsm()(str(path), call_endpoint=endpoint, trainable=False, name="saved_model")


@functools.cache
def single_output_tfsm() -> Any:
    """The TFSMLayer subclass a SavedModel base is (defined on first use: importing this module loads no
    TensorFlow, so hostile base files are still refused before it loads)."""
    keras = backend.keras()

    @keras.saving.register_keras_serializable(package="dlrun")
    class SingleOutputTFSM(keras.layers.TFSMLayer):  # type: ignore[misc, name-defined]
        """TFSMLayer whose output is one tensor: a `serving_default` signature returns a dict of one.
        Never XLA-compiled (Keras' jit_compile auto then stays off): the SavedModel's ops are unknown."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.supports_jit = False

        def call(self, inputs: Any, training: bool = False, **kwargs: Any) -> Any:
            out = super().call(inputs, training=False, **kwargs)
            if isinstance(out, dict):
                if len(out) != 1:
                    raise ValueError(f"the SavedModel returns {len(out)} outputs ({', '.join(out)}); a base needs one")
                out = next(iter(out.values()))
            return out

    return SingleOutputTFSM



def keras2_config(path: Path) -> dict[str, Any]:
    """The `model_config` JSON of a Keras-2 full-model .h5; WeightsError when there is none."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            size = f.attrs.get_id("model_config").get_storage_size() if "model_config" in f.attrs else 0
            if size > MAX_JSON_BYTES:  # a fixed-length string: checked before it is read into memory
                raise WeightsError(f"{path}: model_config is {size} bytes, more than a model config needs")
            raw = f.attrs.get("model_config")
    except OSError as exc:
        raise WeightsError(f"{path}: not a readable HDF5 file ({exc})") from None
    if raw is None:
        raise WeightsError(f"{path}: holds weights only, no architecture (no model_config); a base needs a run "
                           "directory, a .keras file, a full-model .h5 or a SavedModel folder. For a weights file, "
                           "write the layers under model.layers and give the file as transfer.from")
    text = raw.decode("utf8") if isinstance(raw, bytes) else str(raw)
    if len(text) > MAX_JSON_BYTES:  # a variable-length string shows its size only once read
        raise WeightsError(f"{path}: model_config is {len(text)} bytes, more than a model config needs")
    try:
        config = json.loads(text)
        layers = config["config"]["layers"]
        assert isinstance(layers, list)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise WeightsError(f"{path}: model_config is not a Keras model config (no config.layers)") from None
    return config


def keras2_layers(path: Path) -> list[Any]:
    """Fresh Keras 3 layers for the Keras-2 model in `path`, in order (its InputLayer left out)."""
    config = keras2_config(path)
    keras = backend.keras()
    layers = []
    for entry in config["config"]["layers"]:
        cls_name, args = entry.get("class_name"), dict(entry.get("config") or {})
        name = args.get("name", "?")
        if cls_name == "Lambda":
            raise WeightsError(f"{path}: layer '{name}' is a Lambda layer, whose code would run on loading; dlrun "
                               "rebuilds Keras-2 models without running code from the file. Rebuild the model "
                               "without it, or save the layers before it")
        if cls_name not in KERAS2_LAYERS:
            raise WeightsError(f"{path}: layer '{name}' is a {cls_name}, not one of the built-in layers a Keras-2 base "
                               f"may hold ({', '.join(sorted(KERAS2_LAYERS))})")
        if len(_inbound(entry)) > 1:
            raise WeightsError(f"{path}: layer '{name}' joins several inputs; a base must be a chain of layers")
        if cls_name == "InputLayer":
            continue
        layers.append(_build(keras, cls_name, args, path))
    return layers


def _inbound(entry: dict[str, Any]) -> list[Any]:
    nodes = entry.get("inbound_nodes") or []
    return nodes[0] if nodes and isinstance(nodes[0], list) else []


def _build(keras: Any, cls_name: str, args: dict[str, Any], path: Path) -> Any:
    """One layer from its Keras-2 config: arguments Keras 3 does not take are dropped (Keras-2-only
    switches such as BatchNormalization's `fused`), the input shape comes from the new model."""
    cls = getattr(keras.layers, cls_name)
    accepted = set(inspect.signature(cls.__init__).parameters) | {"name", "trainable", "dtype"}
    if isinstance(args.get("dtype"), dict):  # a Keras-2.13+ dtype policy
        args["dtype"] = (args["dtype"].get("config") or {}).get("name", "float32")
    kwargs = {k: v for k, v in args.items() if k in accepted and k not in SHAPE_KEYS}
    if isinstance(kwargs.get("axis"), list) and len(kwargs["axis"]) == 1:  # Keras 2 writes BatchNorm's axis as [3]
        kwargs["axis"] = kwargs["axis"][0]
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{path}: cannot rebuild layer '{args.get('name')}' ({cls_name}): "
                           f"{str(exc).splitlines()[0]}") from None
