"""Weights without TensorFlow: read every format dlrun accepts (run directory, Keras 3 .weights.h5,
.keras archive, legacy Keras-2 .h5) into layers in model order, walk a model's layers, and copy
weights into a model with shape checks."""

from dlrun.weights.load import load_into
from dlrun.weights.read import check_archive, check_model_sources, read_weights, resolve
from dlrun.weights.source import Source, SourceLayer, describe_shapes

__all__ = ["Source", "SourceLayer", "check_archive", "check_model_sources", "describe_shapes", "load_into",
           "read_weights", "resolve"]
