"""A Keras 3 model config rewritten as Keras 2 (tf-keras) writes it, so tf-keras' `load_model` reads a
legacy `.h5` that Keras 3 saved: InputLayer's `batch_shape` becomes `batch_input_shape`, dtype
policies become their names, nested objects lose Keras 3's `module` / `registered_name`, and the keys
Keras 2 layers and initializers do not take are dropped. Plain JSON in, plain JSON out."""

from __future__ import annotations

from typing import Any

# arguments Keras 3 records that Keras 2's constructors refuse ("Unrecognized keyword arguments")
KERAS3_ONLY = {"optional", "quantization_config", "input_axes", "output_axes", "lora_rank", "lora_alpha"}


def _is_object(value: Any) -> bool:
    return isinstance(value, dict) and "class_name" in value and "config" in value


def keras2_object(value: Any) -> Any:
    """`value` (a config or any part of one) in Keras 2's form."""
    if isinstance(value, list):
        return [keras2_object(v) for v in value]
    if not isinstance(value, dict):
        return value
    if _is_object(value) and value["class_name"] in ("DTypePolicy", "FloatDTypePolicy"):
        return value["config"]["name"]  # Keras 2 layers take the policy's name: float32, mixed_float16
    if _is_object(value):
        config = keras2_object(value["config"])
        if value["class_name"] == "InputLayer" and isinstance(config, dict) and "batch_shape" in config:
            config["batch_input_shape"] = config.pop("batch_shape")
        out = {"class_name": value["class_name"], "config": config}
        if "name" in value:  # a layer of a functional model (an application base): its name and its calls
            out["name"] = value["name"]
        if "inbound_nodes" in value:
            out["inbound_nodes"] = [keras2_node(node) for node in value["inbound_nodes"]]
        return out
    return {k: keras2_object(v) for k, v in value.items() if k not in KERAS3_ONLY}


def keras2_node(node: Any) -> Any:
    """One call of a functional model's layer: Keras 3 records its arguments (`__keras_tensor__` objects
    with a `keras_history`), Keras 2 a list of [layer, node, tensor, kwargs], one per input tensor."""
    if not isinstance(node, dict):
        return node  # already Keras 2's form
    kwargs = {k: v for k, v in node.get("kwargs", {}).items() if not list(_histories(v))}
    return [[*history, kwargs] for history in _histories(node.get("args", []))]


def _histories(value: Any) -> Any:
    """The [layer, node, tensor] of every Keras tensor in `value`, in order."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        yield list(value["config"]["keras_history"])
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _histories(item)
