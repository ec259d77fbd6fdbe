"""The training input stream: tf.data batches in a per-epoch order that depends only on
(seed, epoch), so a resumed run sees exactly the batches the uninterrupted run would have."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dlrun import backend


def train_stream(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, start_epoch: int, epochs: int,
                 shuffle: bool = True) -> tuple[Any, int]:
    """(dataset, steps_per_epoch) covering epochs start_epoch..epochs-1, prefetched.

    The arrays are held once (no per-epoch copy); each batch is gathered by index, like Keras'
    own array adapter, with the order from a stateless shuffle keyed by (seed, epoch).
    """
    tf = backend.tf()
    n = len(x)
    steps = math.ceil(n / batch_size)

    def epoch_indices(epoch: Any) -> Any:
        order = tf.range(n, dtype=tf.int64)
        if shuffle:
            key = tf.stack([tf.constant(seed, tf.int64), epoch])
            order = tf.random.experimental.stateless_shuffle(order, seed=key)
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    indices = tf.data.Dataset.range(start_epoch, epochs).flat_map(epoch_indices)
    arrays = tf.data.Dataset.from_tensors((x, y)).repeat()
    batches = tf.data.Dataset.zip((indices, arrays)).map(
        lambda idx, data: (tf.gather(data[0], idx), tf.gather(data[1], idx)),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return batches.prefetch(tf.data.AUTOTUNE), steps
