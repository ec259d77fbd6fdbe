"""The Keras applications `model.base.application` can name, and how their ImageNet weights are
supplied offline. One table for the config checks and the model builder; no TensorFlow here."""

from __future__ import annotations

# config name -> keras.applications class
APPLICATIONS = {"mobilenet": "MobileNet", "mobilenet_v2": "MobileNetV2"}
# the file keras.applications downloads for include_top=False
IMAGENET_FILES = {"mobilenet": "mobilenet_1_0_224_tf_no_top.h5",
                  "mobilenet_v2": "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"}


def imagenet_message(application: str) -> str:
    """Why `weights: imagenet` is refused, and how to provide the file instead."""
    return (f"'imagenet' weights are downloaded on first use and dlrun works offline. On a machine with internet "
            f"run `python -c \"import keras; keras.applications.{APPLICATIONS[application]}(include_top=False, "
            f"weights='imagenet')\"`, copy ~/.keras/models/{IMAGENET_FILES[application]} here, and set "
            "model.base.weights to its path")
