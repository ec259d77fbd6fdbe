"""The Keras applications `model.base.application` can name, and how their ImageNet weights are
supplied offline. One table for the config checks and the model builder; no TensorFlow here."""

from __future__ import annotations

import os
from pathlib import Path

SAVED_MODEL_FILE = "saved_model.pb"  # marks a TensorFlow SavedModel folder (model.base.from)

# config name -> keras.applications class
APPLICATIONS = {"mobilenet": "MobileNet", "mobilenet_v2": "MobileNetV2", "mobilenet_v3_small": "MobileNetV3Small",
                "resnet50": "ResNet50", "efficientnet_b0": "EfficientNetB0", "vgg16": "VGG16"}
# the file keras.applications downloads for include_top=False (into ~/.keras/models)
IMAGENET_FILES = {"mobilenet": "mobilenet_1_0_224_tf_no_top.h5",
                  "mobilenet_v2": "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
                  "mobilenet_v3_small": "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
                  "resnet50": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                  "efficientnet_b0": "efficientnetb0_notop.h5",
                  "vgg16": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"}


def keras_models_dir() -> Path:
    """Where keras.applications keeps downloaded weights: $KERAS_HOME/models, else ~/.keras/models."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def cached_imagenet(application: str) -> Path | None:
    """The application's ImageNet (no-top) weights file when it is already in the Keras cache, else None."""
    path = keras_models_dir() / IMAGENET_FILES[application]
    return path if path.is_file() else None


def imagenet_message(application: str) -> str:
    """Why `weights: imagenet` is refused, and how to provide the file instead."""
    return (f"'imagenet' weights are used only when already in the Keras cache ({keras_models_dir()}), since dlrun "
            f"does not download them. On a machine with internet "
            f"run `python -c \"import keras; keras.applications.{APPLICATIONS[application]}(include_top=False, "
            f"weights='imagenet')\"`, copy ~/.keras/models/{IMAGENET_FILES[application]} into that folder (or "
            "anywhere, and set model.base.weights to its path)")
