"""`data.augment` on the training stream: Keras 3 image preprocessing layers (RandomFlip, RandomRotation,
RandomZoom, RandomTranslation, RandomContrast) applied to every training batch after its pixels are
scaled, inside the tf.data pipeline (engine/pipeline.py). Validation, test, evaluate and predict read
other streams, and the model holds no augmentation layer: saved weights, the layer walk of freeze
policies and transfers, export and `dlrun evaluate` are those of a run without augmentation.

Seeding. Each layer's own SeedGenerator is a variable that counts its calls: inside a parallel map
two batches would race for it, and a resumed run would start it over. Here every batch's randomness
is instead a pure function of (run seed, batch number since the first epoch): each layer draws from a
stateless seed folded from that key (`batch_seed`), so a run is the same whatever its map's
parallelism or steps_per_execution, a resumed run draws exactly what the uninterrupted one would have,
and another seed draws other changes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dlrun.config.schema import DataConfig
from dlrun.engine import backend

AUGMENT_SALT = 0x61756700  # keeps augmentation's seeds apart from the shuffle's (seed, epoch) keys


@dataclass(frozen=True)
class Augmentation:
    """The changes a run makes to its training batches, in order, and the pixel range of its batches
    (contrast clips to it): hashable, so a kept stream (pipeline.Streams) is reused only for the same."""

    changes: tuple[tuple[str, Any], ...]
    value_range: tuple[float, float]

    def layers(self, seed: int) -> list[Any]:
        """The Keras layers, float32 whatever the global precision policy (their own seeds unused)."""
        keras = backend.keras()
        make: dict[str, Callable[[Any], Any]] = {
            "flip": lambda mode: keras.layers.RandomFlip(mode, seed=seed, dtype="float32"),
            "rotation": lambda f: keras.layers.RandomRotation(f, seed=seed, dtype="float32"),
            "zoom": lambda f: keras.layers.RandomZoom(f, seed=seed, dtype="float32"),
            "translation": lambda f: keras.layers.RandomTranslation(f, f, seed=seed, dtype="float32"),
            # (f, f): from 1 - f to 1 + f; Keras reads one number f as 1 to 1 + f (contrast only ever raised)
            "contrast": lambda f: keras.layers.RandomContrast((f, f), value_range=self.value_range, seed=seed,
                                                              dtype="float32"),
        }
        return [make[name](value) for name, value in self.changes]


def augmentation(data: DataConfig) -> Augmentation | None:
    """The run's augmentation (None: `data.augment` absent or all 0). Pixels are in [0, 1] after scaling
    (normalize: true), else in [0, 255]."""
    changes = data.augment.active() if data.augment is not None else {}
    if not changes:
        return None
    return Augmentation(tuple(changes.items()), (0.0, 1.0) if data.normalize is True else (0.0, 255.0))


@functools.cache
def _batch_seed_class() -> type:
    keras, tf = backend.keras(), backend.tf()

    class BatchSeed(keras.random.SeedGenerator):
        def __init__(self, key: Any) -> None:  # no super().__init__: it would make the state variable
            self.key, self.draws = key, 0

        def next(self, ordered: bool = True) -> Any:
            self.draws += 1
            return tf.random.experimental.stateless_fold_in(self.key, self.draws)

    return BatchSeed


def batch_seed(key: Any) -> Any:
    """What a Keras random op takes as `seed=`: a keras.random.SeedGenerator whose draws are stateless
    seeds folded from one batch's key `key` (no variable: the n-th draw of a traced call gets fold n)."""
    return _batch_seed_class()(key)


def augmented(gather: Callable[[Any, Any], Any], augment: Augmentation, seed: int) -> Callable[[Any, Any], Any]:
    """The training stream's map function with augmentation: ((indices, batch number), arrays) -> the batch
    `gather` makes of (indices, arrays), its images changed by `augment` under the key (seed, batch number)."""
    tf = backend.tf()
    layers = augment.layers(seed)

    @tf.autograph.experimental.do_not_convert
    def gather_augmented(idx_step: Any, data: Any) -> Any:
        idx, step = idx_step
        x, y = gather(idx, data)
        key = tf.stack([tf.constant(seed, tf.int64), tf.constant(AUGMENT_SALT, tf.int64)])
        key = tf.random.experimental.stateless_fold_in(key, step)
        for i, layer in enumerate(layers):
            draw = batch_seed(tf.random.experimental.stateless_fold_in(key, i))
            x = layer.transform_images(x, layer.get_random_transformation(x, training=True, seed=draw), training=True)
        return x, y

    return gather_augmented
