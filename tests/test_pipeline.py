"""The training stream: every example once per epoch, an order keyed by (seed, epoch) only."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlrun.engine.pipeline import Streams, eval_stream, train_stream

N, BATCH, EPOCHS = 103, 10, 3


def _epochs(start: int = 0, seed: int = 5, shuffle: bool = True) -> list[list[np.ndarray]]:
    x = np.arange(N, dtype=np.float32).reshape(N, 1)
    stream, steps = train_stream(x, np.arange(N), BATCH, seed, start, EPOCHS, shuffle)
    labels = [yb.numpy() for _, yb in stream.take((EPOCHS - start) * steps)]
    return [labels[i:i + steps] for i in range(0, len(labels), steps)]


def test_each_epoch_covers_every_example_once() -> None:
    assert all(sorted(np.concatenate(epoch).tolist()) == list(range(N)) for epoch in _epochs())


def test_batches_are_full_except_the_last() -> None:
    assert [len(b) for b in _epochs()[0]] == [BATCH] * (N // BATCH) + [N % BATCH]


def test_images_travel_with_their_labels() -> None:
    x = np.arange(N, dtype=np.float32).reshape(N, 1) * 2
    stream, steps = train_stream(x, np.arange(N), BATCH, 0, 0, 1)
    assert all(np.array_equal(xb.numpy()[:, 0], yb.numpy() * 2) for xb, yb in stream.take(steps))


def test_a_resumed_stream_repeats_the_same_epochs() -> None:
    full, resumed = _epochs(), _epochs(start=1)
    assert all(np.array_equal(a, b) for a, b in zip(np.concatenate(full[1]), np.concatenate(resumed[0]), strict=True))


def test_epochs_are_shuffled_differently() -> None:
    first, second = (np.concatenate(e) for e in _epochs()[:2])
    assert not np.array_equal(first, second)


def test_no_shuffle_keeps_the_order() -> None:
    assert np.concatenate(_epochs(shuffle=False)[0]).tolist() == list(range(N))


def test_eval_stream_keeps_the_order_in_batches() -> None:
    x = np.arange(N, dtype=np.float32).reshape(N, 1)
    batches = [(xb.numpy(), yb.numpy()) for xb, yb in eval_stream(x, np.arange(N), BATCH)]
    assert [len(yb) for _, yb in batches] == [BATCH] * (N // BATCH) + [N % BATCH]
    assert np.concatenate([yb for _, yb in batches]).tolist() == list(range(N))


def test_eval_stream_without_labels_yields_images_only() -> None:
    x = np.arange(N, dtype=np.float32).reshape(N, 1)
    images = [part.numpy()[:, 0] for batch in eval_stream(x, None, BATCH) for part in batch]
    assert np.concatenate(images).tolist() == list(range(N))


def test_streams_do_not_autotune() -> None:
    # tf.data's autotuning thread makes destroying an iterator wait for it (seconds, at random)
    x = np.zeros((N, 1), np.float32)
    streams = [train_stream(x, np.arange(N), BATCH, 0, 0, 1)[0], eval_stream(x, np.arange(N), BATCH)]
    assert [s.options().autotune.enabled for s in streams] == [False, False]


def test_a_kept_stream_is_served_again_and_repeats_its_batches() -> None:
    x, y = np.arange(N, dtype=np.float32).reshape(N, 1), np.arange(N)
    streams = Streams(kept=2)
    first = streams.train(x, y, BATCH, 5, 0, EPOCHS)
    assert streams.train(x, y, BATCH, 5, 0, EPOCHS) is first  # the next trial with these arguments
    assert streams.train(x, y, BATCH, 6, 0, EPOCHS) is not first  # another seed: another order
    once, again = ([yb.numpy() for _, yb in first[0].take(EPOCHS * first[1])] for _ in range(2))
    assert all(np.array_equal(a, b) for a, b in zip(once, again, strict=True))
    streams.train(x, y, BATCH, 7, 0, EPOCHS)  # a third: the least recently used (seed 5) makes way
    assert streams.train(x, y, BATCH, 5, 0, EPOCHS) is not first


def test_a_kept_evaluation_stream_is_served_again_for_the_same_arrays() -> None:
    x, y = np.arange(N, dtype=np.float32).reshape(N, 1), np.arange(N)
    streams = Streams(kept=2)
    first = streams.evaluation(x, y, 32)
    assert streams.evaluation(x, y, 32) is first
    assert streams.evaluation(x.copy(), y, 32) is not first  # other arrays (a trial's other split)
    assert streams.evaluation(x, y, 64) is not first
    assert [yb.numpy().tolist() for _, yb in first] == [yb.numpy().tolist() for _, yb in eval_stream(x, y, 32)]


@pytest.mark.parametrize("start, shuffle", [(0, True), (1, True), (0, False)])
def test_orders_computed_ahead_give_the_batches_computed_per_epoch(monkeypatch: pytest.MonkeyPatch, start: int,
                                                                  shuffle: bool) -> None:
    """A small run's orders are computed ahead (no function per iterator); a large one's as each epoch
    starts: the same batches either way."""
    from dlrun.engine import pipeline

    x, y = np.arange(N, dtype=np.float32).reshape(N, 1), np.arange(N)

    def labels() -> list[list[int]]:
        stream, steps = train_stream(x, y, BATCH, 5, start, EPOCHS, shuffle)
        assert stream.cardinality() < 0  # no length for Keras to count steps_per_execution calls against
        return [yb.numpy().tolist() for _, yb in stream.take((EPOCHS - start) * steps)]

    ahead = labels()
    monkeypatch.setattr(pipeline, "PRECOMPUTED_ORDERS", 0)
    assert labels() == ahead and len(ahead) == (EPOCHS - start) * math.ceil(N / BATCH)
