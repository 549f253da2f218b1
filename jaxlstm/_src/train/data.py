"""Training data as Keras's ``model.fit`` takes it: arrays, ``(x, y[, sample_weight])``, several
inputs and outputs, ``validation_split``, ``class_weight``, or an iterable of batches; batches
go to the device ahead of the step that uses them."""

from __future__ import annotations

import collections
import itertools
import math
from collections.abc import Iterable, Iterator

import jax
import numpy as np

from jaxlstm._src.errors import ShapeError, UnsupportedOptionError


def _as_tuple(value) -> tuple:
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return tuple(value)
    return (value,)


class Data:
    """In-memory data: ``inputs`` (one array, or a tuple/list for several model inputs),
    ``targets`` (one array, or one per model output) and an optional ``sample_weight`` (one
    array for every output, or one per output), as Keras's ``model.fit(x, y, sample_weight=)``.
    """

    def __init__(self, inputs, targets, sample_weight=None):
        self.inputs = tuple(np.asarray(a) for a in _as_tuple(inputs))
        self.targets = tuple(np.asarray(a) for a in _as_tuple(targets))
        sw = _as_tuple(sample_weight)
        self.sample_weight = tuple(np.asarray(a, np.float32) for a in sw) or None
        if not self.inputs or not self.targets:
            raise UnsupportedOptionError(
                "Data needs inputs and targets; received "
                f"{len(self.inputs)} input and {len(self.targets)} target array(s)."
            )
        counts = {
            name: len(a)
            for group, arrays in (
                ("inputs", self.inputs),
                ("targets", self.targets),
                ("sample_weight", self.sample_weight or ()),
            )
            for name, a in ((f"{group}[{i}]", a) for i, a in enumerate(arrays))
        }
        if len(set(counts.values())) != 1:
            raise ShapeError(
                f"inputs, targets and sample_weight disagree on the number of examples: "
                f"{counts}; every array's first axis counts examples."
            )

    def __len__(self) -> int:
        return len(self.targets[0])

    def take(self, idx) -> tuple:
        """The batch ``(x, y, sample_weight)`` of examples ``idx``, as tuples of arrays."""
        sw = None if self.sample_weight is None else tuple(a[idx] for a in self.sample_weight)
        return tuple(a[idx] for a in self.inputs), tuple(a[idx] for a in self.targets), sw

    def split(self, fraction: float) -> tuple[Data, Data]:
        """Keras's ``validation_split``: the last ``fraction`` of the examples (before any
        shuffling) become the validation data."""
        if not 0.0 < fraction < 1.0:
            raise UnsupportedOptionError(
                f"validation_split={fraction!r}; expected a float strictly between 0 and 1."
            )
        at = math.floor(len(self) * (1.0 - fraction))
        if at in (0, len(self)):
            raise UnsupportedOptionError(
                f"validation_split={fraction} of {len(self)} examples leaves an empty training "
                "or validation set; provide more data or another fraction."
            )

        def part(sl):
            sw = None if self.sample_weight is None else [a[sl] for a in self.sample_weight]
            return Data([a[sl] for a in self.inputs], [a[sl] for a in self.targets], sw)

        return part(slice(0, at)), part(slice(at, None))


def class_weights_to_sample_weights(targets, class_weight: dict) -> np.ndarray:
    """Keras's ``class_weight_to_sample_weights``: a weight per example from its class (the
    argmax of one-hot targets, else the rounded label); classes not named weigh 1."""
    y = np.asarray(targets)
    if y.ndim > 1:
        y = np.argmax(y, axis=-1) if y.shape[-1] != 1 else np.squeeze(y, axis=-1)
    y = np.round(y).astype(np.int32)
    if y.ndim != 1:
        raise ShapeError(
            f"class_weight needs one class per example; the targets have shape "
            f"{np.shape(targets)}. Use sample_weight for per-timestep weights."
        )
    return np.array([class_weight.get(int(c), 1.0) for c in y], np.float32)


def with_class_weight(data: Data, class_weight: dict | None) -> Data:
    if class_weight is None:
        return data
    if data.sample_weight is not None:
        raise UnsupportedOptionError(
            "class_weight and sample_weight were both given; Keras refuses this too. Fold the "
            "class weights into sample_weight."
        )
    if len(data.targets) != 1:
        raise UnsupportedOptionError(
            f"class_weight is for models with one output; this data has {len(data.targets)} "
            "target arrays. Pass sample_weight per output instead."
        )
    return Data(
        data.inputs, data.targets, class_weights_to_sample_weights(data.targets[0], class_weight)
    )


def as_data(x, y=None, sample_weight=None, what="x"):
    """``x``/``y`` as ``model.fit`` takes them: a :class:`Data`; arrays (``y`` given); a tuple
    ``(x, y[, sample_weight])``; or, for data that does not fit in memory, an iterable of such
    batches (returned as a :class:`Batches`)."""
    if isinstance(x, Data | Batches):
        if y is not None or sample_weight is not None:
            raise UnsupportedOptionError(
                f"{what} is a {type(x).__name__}; pass y and sample_weight inside it."
            )
        return x
    if y is not None:
        return Data(x, y, sample_weight)
    if isinstance(x, tuple) and len(x) in (2, 3):
        return Data(*x)
    if isinstance(x, list) and x and all(isinstance(b, tuple) for b in x):
        return Batches(x)  # a list of (x, y[, sample_weight]) batches
    if isinstance(x, Iterable) and not isinstance(x, np.ndarray | jax.Array | list | dict):
        return Batches(x)
    raise UnsupportedOptionError(
        f"{what} is {type(x).__name__} without targets; expected arrays with y=..., a tuple "
        "(x, y[, sample_weight]), a jaxlstm.train.Data, or an iterable of such batches."
    )


class Batches:
    """An iterable of batches ``(x, y[, sample_weight])`` (a generator, a data loader), for
    data that does not fit in memory. An iterable that can be iterated again (a list, a loader)
    gives one epoch per pass; a one-shot iterator needs ``steps_per_epoch``."""

    def __init__(self, source: Iterable, steps_per_epoch: int | None = None):
        self.source, self.steps_per_epoch = source, steps_per_epoch
        self._shared = iter(source) if iter(source) is source else None

    def epoch(self) -> Iterator[tuple]:
        it = self._shared if self._shared is not None else iter(self.source)
        if self.steps_per_epoch is not None:
            it = itertools.islice(it, self.steps_per_epoch)
        for item in it:
            yield normalize_batch(item)


def normalize_batch(item) -> tuple:
    if not isinstance(item, tuple | list) or len(item) not in (2, 3):
        raise UnsupportedOptionError(
            f"a batch is {type(item).__name__}; expected a tuple (x, y) or (x, y, sample_weight)."
        )
    x, y = _as_tuple(item[0]), _as_tuple(item[1])
    sw = _as_tuple(item[2]) if len(item) == 3 and item[2] is not None else None
    return x, y, sw


def array_batches(data: Data, batch_size: int, order=None) -> Iterator[tuple]:
    """The batches of an epoch in ``order`` (all of them; the last one may be smaller, as in
    Keras: its shape is compiled once more, then reused)."""
    n = len(data)
    order = np.arange(n) if order is None else order
    for start in range(0, n, batch_size):
        yield data.take(order[start : start + batch_size])


def prefetch(batches: Iterator[tuple], place, size: int = 2) -> Iterator[tuple]:
    """``place(batch)`` (a device transfer) runs ``size`` batches ahead of the consumer."""
    queue = collections.deque()
    for batch in batches:
        queue.append(place(batch))
        if len(queue) > size:
            yield queue.popleft()
    while queue:
        yield queue.popleft()


def batch_size_of(batch) -> int:
    return int(np.shape(batch[1][0])[0])
