"""Input streams for Keras: the training stream, in a per-epoch order that depends only on
(seed, epoch) so a resumed run sees exactly the batches the uninterrupted run would have, and the
in-order stream that validation, evaluation and prediction read.

None of them uses tf.data autotuning: its model thread sleeps between tuning rounds, longer and
longer as a run goes on, and destroying an iterator waits for that thread. At the end of a fit this
stalled runs at random by seconds (up to 20 s seen on 2 cores; Keras' own array streams do it too).
Fixed parallelism is plenty here: a batch is one gather from arrays already in memory.

Images arrive as uint8 pixels (data/prepare.py: a quarter of float32's memory) and are scaled to
float32 per batch here, by the very division data preparation used to make (x / 255 in float32,
correctly rounded), so the model sees the same values to the bit. Float arrays (tables, images a
source stored as floats) pass through as they are.
"""

from __future__ import annotations

import math
import mmap
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from dlrun.data.mapped import release_pages
from dlrun.engine import backend
from dlrun.engine.augment import Augmentation, augmented

PARALLEL_CALLS = 2
PREFETCH = 2
PRECOMPUTED_ORDERS = 1 << 21  # indices (int64) a training stream computes ahead: 16 MiB, 60,000 images x 34 epochs
PIXEL_SCALE = 255.0  # uint8 pixels -> [0, 1]; the divisor data preparation used for float32 arrays
STREAMS_KEPT = 8  # streams a `Streams` keeps: training, validation and test, for a few seeds or batch sizes


def scale_pixels(x: Any) -> Any:
    """A batch as the model takes it: uint8 pixels divided by 255 in float32; anything else as it is."""
    tf = backend.tf()
    if x.dtype != tf.uint8:
        return x
    return tf.math.divide(tf.cast(x, tf.float32), tf.constant(PIXEL_SCALE, tf.float32))


def _finish(dataset: Any) -> Any:
    tf = backend.tf()
    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_optimization.apply_default_optimizations = False  # only start-up cost here
    return dataset.with_options(options).prefetch(PREFETCH)


class Streams:
    """Input streams kept for the next trials of one process (engine/reuse.py's TrialModels holds one).

    A stream is a pure function of its arguments (no state: the training order is keyed by (seed,
    epoch)), so a trial on the same arrays with the same batch size, seed and epochs iterates the very
    stream the previous one did, without tracing its functions or copying the arrays into TensorFlow
    again (~0.03 s a trial for training, ~4 ms for validation and test). The arrays are held with their
    streams, so an id is never reused meanwhile.
    """

    def __init__(self, kept: int = STREAMS_KEPT):
        self._kept = kept
        self._streams: OrderedDict[tuple[Any, ...], tuple[Any, np.ndarray, np.ndarray | None]] = OrderedDict()

    def train(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, start_epoch: int, epochs: int,
              shuffle: bool = True, augment: Augmentation | None = None) -> tuple[Any, int]:
        """train_stream(...), the same object for the same arguments while kept."""
        key = ("train", id(x), id(y), batch_size, seed, start_epoch, epochs, shuffle, augment)
        return self._kept_stream(key, x, y, lambda: train_stream(x, y, batch_size, seed, start_epoch, epochs, shuffle,
                                                                 augment))

    def evaluation(self, x: np.ndarray, y: np.ndarray | None, batch_size: int) -> Any:
        """eval_stream(...), the same object for the same arrays and batch size while kept."""
        return self._kept_stream(("eval", id(x), id(y), batch_size), x, y, lambda: eval_stream(x, y, batch_size))

    def _kept_stream(self, key: tuple[Any, ...], x: np.ndarray, y: np.ndarray | None, make: Callable[[], Any]) -> Any:
        if not self._kept:
            return make()
        if key not in self._streams:
            self._streams[key] = make(), x, y
            while len(self._streams) > self._kept:
                self._streams.popitem(last=False)
        self._streams.move_to_end(key)
        return self._streams[key][0]


def train_stream(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, start_epoch: int, epochs: int,
                 shuffle: bool = True, augment: Augmentation | None = None) -> tuple[Any, int]:
    """(dataset, steps_per_epoch) covering epochs start_epoch..epochs-1, prefetched, of no known length:
    read steps_per_epoch x (epochs - start_epoch) batches (past them, the stream may start over).
    `augment`: changes to the images keyed by (seed, batch number from epoch 0): see engine/augment.py.

    Built the way Keras' own array adapter is (what model.fit(x, y) uses), so it costs no more:
    the arrays are held once as one tensor (no per-epoch copy); an epoch's indices are cut into
    full batches by a reshape, not a batch op; each batch is gathered by index in a parallel map.
    The differences: the order is a stateless shuffle keyed by (seed, epoch) instead of a stateful
    one, and there is no autotuning (see the module docstring).

    When every epoch's order fits PRECOMPUTED_ORDERS indices, the orders are computed here, once,
    and the stream cuts batches from them with no function of its own: making an iterator then
    instantiates one function (the gather) instead of three (~4 ms instead of ~10 ms a fit, which a
    sweep's trials pay each). Larger runs compute each epoch's order as the epoch starts. Both give
    the same batches.
    """
    tf = backend.tf()
    n = len(x)
    steps = math.ceil(n / batch_size)
    full, rest = divmod(n, batch_size)

    def epoch_order(epoch: Any) -> Any:
        order = tf.range(n, dtype=tf.int64)
        if shuffle:
            key = tf.stack([tf.constant(seed, tf.int64), epoch])  # epoch: an int64 scalar
            order = tf.random.experimental.stateless_shuffle(order, seed=key)
        return order

    # Plain tensor code with no data-dependent Python control flow: autograph's source conversion
    # would only add ~0.1 s of start-up to every run.
    @tf.autograph.experimental.do_not_convert
    def epoch_batches(epoch: Any) -> Any:
        order = epoch_order(epoch)
        batches = tf.data.Dataset.from_tensor_slices(tf.reshape(order[: full * batch_size], [full, batch_size]))
        if rest:
            batches = batches.concatenate(tf.data.Dataset.from_tensors(order[full * batch_size:]))
        return batches

    @tf.autograph.experimental.do_not_convert
    def gather(idx: Any, data: Any) -> Any:
        return scale_pixels(tf.gather(data[0], idx)), tf.gather(data[1], idx)

    if (epochs - start_epoch) * n <= PRECOMPUTED_ORDERS:
        orders = [epoch_order(tf.constant(e, tf.int64)) for e in range(start_epoch, epochs)]
        lengths = ([batch_size] * full + ([rest] if rest else [])) * (epochs - start_epoch)
        flat = tf.concat(orders, 0) if orders else tf.zeros([0], tf.int64)
        # repeated, so it has no length (as flat_map's stream has none): Keras, told a stream's length,
        # counts each call of steps_per_execution steps as that many batches and would end the last epoch early
        indices = tf.data.Dataset.from_tensor_slices(tf.RaggedTensor.from_row_lengths(flat, lengths)).repeat()
    else:
        indices = tf.data.Dataset.range(start_epoch, epochs).flat_map(epoch_batches)
    arrays, gather = _held_arrays(x, y, gather)
    if augment is not None:
        indices = tf.data.Dataset.zip((indices, tf.data.Dataset.counter(start_epoch * steps)))
        gather = augmented(gather, augment, seed)
    batches = tf.data.Dataset.zip((indices, arrays)).map(gather, num_parallel_calls=PARALLEL_CALLS,
                                                         deterministic=True)
    return _finish(batches), steps


def _held_arrays(x: np.ndarray, y: np.ndarray, gather: Any) -> tuple[Any, Any]:
    """(the arrays as a repeated one-element dataset, the gather of a batch from them): held whole as
    tensors, or for a memory-mapped x only y, its rows read from disk batch by batch (MappedRows)."""
    tf = backend.tf()
    if isinstance(x, np.memmap):
        # y alone: x stays on disk
        return tf.data.Dataset.from_tensors((np.zeros(0, np.uint8), y)).repeat(), MappedRows(x).gather_with(tf.gather)
    return tf.data.Dataset.from_tensors((x, y)).repeat(), gather


class MappedRows:
    """Batches gathered from a memory-mapped array (a data cache entry too big to read, data/cache.py)
    in the order the stream's indices give; x is never a tensor, so it is never read whole.

    Rows of an array mapped straight from its file (what cache.read_entry makes) are read with pread
    into each batch's own buffer, in file order: nothing is mapped into this process, so its resident
    memory is a few batches whatever the data's size (the page cache still keeps what fits, so the next
    epoch need not read the disk). Any other memmap is indexed, and its pages released
    (madvise DONTNEED) after every batch: the kernel may map a large folio for each row read.
    """

    def __init__(self, x: np.memmap):
        self.x = x
        self.row_bytes = int(np.prod(x.shape[1:], dtype=np.int64)) * x.itemsize
        direct = isinstance(x.base, mmap.mmap) and x.flags.c_contiguous and bool(x.filename)
        self._fd = os.open(x.filename, os.O_RDONLY) if direct else None
        self._offset = int(x.offset)

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def take(self, idx: np.ndarray) -> np.ndarray:
        """x[idx], read in file order (sorted) and put back in the order asked."""
        order = np.argsort(idx, kind="stable")
        out = np.empty((len(idx), *self.x.shape[1:]), self.x.dtype)
        if self._fd is None:
            out[order] = self.x[idx[order]]
            release_pages(self.x)
            return out
        flat = out.view(np.uint8).reshape(len(idx), self.row_bytes)
        for k in order:
            self._read_into(flat[k], int(idx[k]))
        return out

    def rows(self, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
        """A copy of x[start:stop]."""
        if self._fd is None:
            out = np.array(self.x[int(start):int(stop)])
            release_pages(self.x)
            return out
        out = np.empty((int(stop) - int(start), *self.x.shape[1:]), self.x.dtype)
        self._read_into(out.view(np.uint8).reshape(-1), int(start))
        return out

    def _read_into(self, buffer: np.ndarray, row: int) -> None:
        view, position = memoryview(buffer), self._offset + row * self.row_bytes
        while len(view):
            n = os.preadv(self._fd, [view], position)
            if not n:
                raise OSError(f"{self.x.filename}: ends before row {row}; the data cache entry was truncated "
                              "while in use")
            view, position = view[n:], position + n

    def tensor(self, batch: Any) -> Any:
        """A numpy_function batch given its static shape, then scaled (scale_pixels)."""
        batch.set_shape([None, *self.x.shape[1:]])
        return scale_pixels(batch)

    def gather_with(self, gather_labels: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """The stream's map function: (indices, (unused, y)) -> (x batch, y batch)."""
        tf = backend.tf()
        dtype = tf.as_dtype(self.x.dtype)

        @tf.autograph.experimental.do_not_convert
        def gather(idx: Any, data: Any) -> Any:
            batch = tf.numpy_function(self.take, [idx], dtype, stateful=False)
            return self.tensor(batch), gather_labels(data[1], idx)

        return gather


def eval_batch_size(batch_size: int) -> int:
    """The batch size of validation, final test metrics and `dlrun evaluate`: one value everywhere,
    so a validation pass on the test split is exactly the pass evaluate would make; at least 256,
    since evaluation holds no gradients and small batches only add steps."""
    return max(batch_size, 256)


def eval_stream(x: np.ndarray, y: np.ndarray | None, batch_size: int) -> Any:
    """Consecutive batches of (x, y), or of x alone for prediction, in order: the batches Keras
    would cut from the arrays with this batch size, without its autotuned pipeline.

    Keras makes a new iterator for every validation pass (two, in fact), and an iterator over a
    `map` costs 5-10 ms to make (its function is instantiated each time): more than the whole pass
    over 2,000 validation images at batch 256. `batch` has no function to instantiate.
    """
    tf = backend.tf()
    if isinstance(x, np.memmap):
        return _finish(_mapped_eval(x, y, batch_size))
    arrays = (x,) if y is None else (x, y)
    batches = tf.data.Dataset.from_tensor_slices(arrays).batch(batch_size)
    if x.dtype == np.uint8:  # pixels: scaled per batch (a map, paid only by image data kept as bytes)
        batches = batches.map(scale_pixels if y is None else lambda xb, yb: (scale_pixels(xb), yb))
    return _finish(batches)


def _mapped_eval(x: np.memmap, y: np.ndarray | None, batch_size: int) -> Any:
    """eval_stream's batches read from a memory-mapped x, slice by slice (MappedRows)."""
    tf = backend.tf()
    rows, n, dtype = MappedRows(x), len(x), tf.as_dtype(x.dtype)

    @tf.autograph.experimental.do_not_convert
    def batch(start: Any) -> Any:
        stop = tf.minimum(start + batch_size, n)
        xb = rows.tensor(tf.numpy_function(rows.rows, [start, stop], dtype, stateful=False))
        return xb if y is None else (xb, tf.constant(y)[start:stop])

    return tf.data.Dataset.range(0, n, batch_size).map(batch, num_parallel_calls=PARALLEL_CALLS, deterministic=True)
