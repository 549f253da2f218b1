"""Losses and metrics with Keras 3's definitions and reductions, as pure JAX functions.

Keras's rules, followed exactly (``keras/src/losses/loss.py``, ``metrics/reduction_metrics.py``):

* **shapes**: when the ranks of ``y_true`` and ``y_pred`` differ by one and the longer one ends
  in 1, that 1 is squeezed (or a rank-1 side expanded): targets ``(n,)`` against outputs
  ``(n, 1)`` are the same thing. Any other mismatch is a :class:`~jaxlstm.ShapeError` naming
  both shapes (Keras would broadcast some of them silently, e.g. ``(n, 1)`` against ``(n, 3)``);
* **a loss** is Keras's per-sample value (the mean over the last axis: ``mse`` of ``(n, t, f)``
  outputs is ``(n, t)``), weighted by ``sample_weight`` and by the model's propagated mask
  (masked entries weigh 0, kept ones ``total / kept``), summed and divided by the number of
  per-sample values ("sum_over_batch_size");
* **a metric** is Keras's ``MeanMetricWrapper``: a running ``(total, count)`` pair, where the
  mask multiplies the sample weights, and the value is ``total / count`` over every batch seen.

A loss or metric is named as in Keras (``"mse"``, ``"sparse_categorical_crossentropy"``,
``"accuracy"``...) or given as a :class:`Loss` / :class:`Metric` with options
(``Loss("binary_crossentropy", from_logits=True)``), or as a callable ``fn(y_true, y_pred)``
returning per-sample values, which gets Keras's reduction as a Keras custom loss does.
Where optax has the same function (``squared_error``, ``huber_loss``, cross-entropies from
logits) it is used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import optax

from jaxlstm._src.errors import ShapeError, UnsupportedOptionError

EPSILON = 1e-7  # keras.config.epsilon(): probabilities are clipped to [EPSILON, 1 - EPSILON]


def same_rank(x1, x2, expand_rank_1: bool = True):
    """Keras's ``squeeze_or_expand_to_same_rank``: drop (or add) a trailing 1 when the ranks
    differ by exactly one."""
    r1, r2 = jnp.ndim(x1), jnp.ndim(x2)
    if r1 == r2 + 1 and jnp.shape(x1)[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = jnp.expand_dims(x2, -1)
        else:
            x1 = jnp.squeeze(x1, -1)
    if r2 == r1 + 1 and jnp.shape(x2)[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = jnp.expand_dims(x1, -1)
        else:
            x2 = jnp.squeeze(x2, -1)
    return x1, x2


def _matched(name, y_true, y_pred, sparse=False):
    """``(y_true, y_pred)`` after Keras's shape rule, or a ShapeError naming both shapes."""
    shapes = (jnp.shape(y_true), jnp.shape(y_pred))
    if sparse:  # integer labels: y_true is y_pred's shape without the class axis
        if jnp.ndim(y_true) == jnp.ndim(y_pred) and jnp.shape(y_true)[-1] == 1:
            y_true = jnp.squeeze(y_true, -1)
        ok = jnp.shape(y_true) == jnp.shape(y_pred)[:-1]
        expected = "y_true of y_pred's shape without its last (class) axis, e.g. (n,) for (n, k)"
    else:
        y_true, y_pred = same_rank(y_true, y_pred)
        ok = jnp.shape(y_true) == jnp.shape(y_pred)
        expected = "equal shapes, or shapes that differ only by a trailing 1 as Keras allows"
    if not ok:
        raise ShapeError(
            f"{name}: y_true has shape {shapes[0]} and y_pred has shape {shapes[1]}; expected "
            f"{expected}. Reshape the targets to the model's output shape."
        )
    return y_true, y_pred


# ---- per-sample values, Keras's functional losses (mean over the last axis) -------------------


def _mse(y_true, y_pred):
    return jnp.mean(optax.losses.squared_error(y_pred, y_true), axis=-1)


def _mae(y_true, y_pred):
    return jnp.mean(jnp.abs(y_pred - y_true), axis=-1)


def _mape(y_true, y_pred):
    diff = jnp.abs((y_true - y_pred) / jnp.maximum(jnp.abs(y_true), EPSILON))
    return 100.0 * jnp.mean(diff, axis=-1)


def _msle(y_true, y_pred):
    first = jnp.log(jnp.maximum(y_pred, EPSILON) + 1.0)
    second = jnp.log(jnp.maximum(y_true, EPSILON) + 1.0)
    return jnp.mean(jnp.square(first - second), axis=-1)


def _huber(y_true, y_pred, delta=1.0):
    return jnp.mean(optax.losses.huber_loss(y_pred, y_true, delta=delta), axis=-1)


def _binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        values = optax.losses.sigmoid_binary_cross_entropy(y_pred, y_true)
    else:
        p = jnp.clip(y_pred, EPSILON, 1.0 - EPSILON)
        values = -(y_true * jnp.log(p) + (1.0 - y_true) * jnp.log(1.0 - p))
    return jnp.mean(values, axis=-1)


def _log_probs(y_pred, from_logits):
    if from_logits:
        return jax.nn.log_softmax(y_pred, axis=-1)
    p = y_pred / jnp.sum(y_pred, axis=-1, keepdims=True)
    return jnp.log(jnp.clip(p, EPSILON, 1.0 - EPSILON))


def _categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    if label_smoothing:
        k = jnp.shape(y_pred)[-1]
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / k
    if from_logits:
        return optax.losses.softmax_cross_entropy(y_pred, y_true)
    return -jnp.sum(y_true * _log_probs(y_pred, False), axis=-1)


def _sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    labels = jnp.asarray(y_true).astype(jnp.int32)
    # one_hot: a label outside [0, k) counts 0, as in Keras's JAX backend.
    onehot = jax.nn.one_hot(labels, jnp.shape(y_pred)[-1], dtype=y_pred.dtype)
    return -jnp.sum(onehot * _log_probs(y_pred, from_logits), axis=-1)


# ---- per-sample metric values --------------------------------------------------------------


def _binary_accuracy(y_true, y_pred, threshold=0.5):
    return jnp.equal(y_true, (y_pred > threshold).astype(y_true.dtype)).astype(jnp.float32)


def _categorical_accuracy(y_true, y_pred):
    return jnp.equal(jnp.argmax(y_true, -1), jnp.argmax(y_pred, -1)).astype(jnp.float32)


def _sparse_categorical_accuracy(y_true, y_pred):
    labels = jnp.asarray(y_true).astype(jnp.int32)
    return jnp.equal(labels, jnp.argmax(y_pred, -1)).astype(jnp.float32)


def _rmse_squares(y_true, y_pred):
    return optax.losses.squared_error(y_pred, y_true)


@dataclass(frozen=True)
class _Fn:
    """One Keras function: its per-sample values and how its arguments are matched."""

    values: Callable
    sparse: bool = False  # y_true holds integer labels (no class axis)
    options: tuple = ()  # the keyword options it takes
    reduce_last: bool = True  # values already reduce the last axis (else: elementwise)


_FUNCTIONS = {
    "mean_squared_error": _Fn(_mse),
    "mean_absolute_error": _Fn(_mae),
    "mean_absolute_percentage_error": _Fn(_mape),
    "mean_squared_logarithmic_error": _Fn(_msle),
    "huber": _Fn(_huber, options=("delta",)),
    "binary_crossentropy": _Fn(_binary_crossentropy, options=("from_logits", "label_smoothing")),
    "categorical_crossentropy": _Fn(
        _categorical_crossentropy, options=("from_logits", "label_smoothing")
    ),
    "sparse_categorical_crossentropy": _Fn(
        _sparse_categorical_crossentropy, sparse=True, options=("from_logits",)
    ),
    "binary_accuracy": _Fn(_binary_accuracy, options=("threshold",), reduce_last=False),
    "categorical_accuracy": _Fn(_categorical_accuracy),
    "sparse_categorical_accuracy": _Fn(_sparse_categorical_accuracy, sparse=True),
    "root_mean_squared_error": _Fn(_rmse_squares, reduce_last=False),
}
ALIASES = {  # Keras's short names
    "mse": "mean_squared_error",
    "mae": "mean_absolute_error",
    "mape": "mean_absolute_percentage_error",
    "msle": "mean_squared_logarithmic_error",
    "huber_loss": "huber",
    "rmse": "root_mean_squared_error",
}
LOSSES = (
    "mean_squared_error",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error",
    "huber",
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
)
METRICS = (
    *LOSSES[:5],
    "root_mean_squared_error",
    "accuracy",
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    *LOSSES[5:],
)


def _canonical(name: str) -> str:
    return ALIASES.get(name, name)


@dataclass(frozen=True)
class Loss:
    """A Keras loss by name, with its options (``from_logits``, ``label_smoothing``, ``delta``).

    Hashable, so a step compiled for it is reused. ``Loss("mse")`` is what ``loss="mse"`` means.
    """

    name: str
    options: tuple = field(default=())

    def __init__(self, name, **options):
        object.__setattr__(self, "name", _checked(name, LOSSES, "loss", options))
        object.__setattr__(self, "options", tuple(sorted(options.items())))

    def __call__(self, y_true, y_pred, sample_weight=None, mask=None):
        """The batch's loss, as ``keras.losses.get(name)(y_true, y_pred, sample_weight)``
        would give with ``y_pred``'s Keras mask set to ``mask``."""
        values = per_sample(self.name, y_true, y_pred, dict(self.options))
        return reduce_loss(values, sample_weight, mask, self.name)


@dataclass(frozen=True)
class Metric:
    """A Keras metric by name and options. ``"accuracy"`` picks binary, sparse or categorical
    accuracy from the shapes, as Keras's ``compile`` does."""

    name: str
    options: tuple = field(default=())

    def __init__(self, name, **options):
        name = "accuracy" if name == "acc" else name
        object.__setattr__(self, "name", _checked(name, METRICS, "metric", options))
        object.__setattr__(self, "options", tuple(sorted(options.items())))

    def resolved(self, y_true_shape, y_pred_shape) -> str:
        if self.name != "accuracy":
            return self.name
        if y_pred_shape[-1] == 1:
            return "binary_accuracy"
        if len(y_true_shape) < len(y_pred_shape) or y_true_shape[-1] == 1:
            return "sparse_categorical_accuracy"
        return "categorical_accuracy"

    def update(self, y_true, y_pred, sample_weight=None, mask=None):
        """This batch's ``(total, count)``; the metric's value is their sum over batches,
        divided: ``total / count`` (Keras's ``Mean`` state). Keras's RootMeanSquaredError
        ignores the output mask (only ``sample_weight`` counts); so does ``"rmse"`` here."""
        name = self.resolved(jnp.shape(y_true), jnp.shape(y_pred))
        if name == "root_mean_squared_error":
            mask = None
        values = per_sample(name, y_true, y_pred, dict(self.options))
        return metric_sums(values, sample_weight, mask, self.name)

    def result(self, total, count):
        value = jnp.where(count == 0, 0.0, total / jnp.where(count == 0, 1.0, count))
        return jnp.sqrt(value) if self.name == "root_mean_squared_error" else value


@dataclass(frozen=True)
class CustomLoss:
    """A callable ``fn(y_true, y_pred) -> per-sample values`` reduced as Keras reduces it."""

    fn: Callable

    @property
    def name(self) -> str:
        return getattr(self.fn, "__name__", "loss")

    def __call__(self, y_true, y_pred, sample_weight=None, mask=None):
        y_true, y_pred = same_rank(y_true, y_pred)
        return reduce_loss(self.fn(y_true, y_pred), sample_weight, mask, self.name)


@dataclass(frozen=True)
class CustomMetric:
    """A callable ``fn(y_true, y_pred) -> per-sample values``, averaged as Keras averages it."""

    fn: Callable

    @property
    def name(self) -> str:
        return getattr(self.fn, "__name__", "metric")

    def update(self, y_true, y_pred, sample_weight=None, mask=None):
        y_true, y_pred = same_rank(y_true, y_pred)
        return metric_sums(self.fn(y_true, y_pred), sample_weight, mask, self.name)

    def result(self, total, count):
        return jnp.where(count == 0, 0.0, total / jnp.where(count == 0, 1.0, count))


def _checked(name, allowed, what, options):
    if not isinstance(name, str) or _canonical(name) not in (*allowed, "accuracy"):
        short = sorted(k for k, v in ALIASES.items() if v in allowed)
        raise UnsupportedOptionError(
            f"unknown {what} {name!r}; expected one of {sorted(allowed)} (or {short}), or a "
            f"callable fn(y_true, y_pred) returning per-sample values."
        )
    name = _canonical(name)
    fn = _FUNCTIONS.get(name)
    taken = fn.options if fn else ()
    extra = sorted(set(options) - set(taken))
    if extra:
        raise UnsupportedOptionError(
            f"{what} {name!r} received option(s) {extra}; it takes {list(taken) or 'none'}."
        )
    return name


def per_sample(name: str, y_true, y_pred, options: dict | None = None):
    """Keras's per-sample values of the named function, after Keras's shape rule."""
    fn = _FUNCTIONS[_canonical(name)]
    y_pred = jnp.asarray(y_pred)
    y_true = jnp.asarray(y_true)
    if not fn.sparse:
        y_true = y_true.astype(y_pred.dtype)
    y_true, y_pred = _matched(name, y_true, y_pred, fn.sparse)
    return fn.values(y_true, y_pred, **(options or {}))


def _weights(values, sample_weight, mask, reduction, name):
    """Keras's ``apply_mask`` then the match of the weights to the values' shape."""
    dtype = values.dtype
    if mask is not None:
        mask = jnp.asarray(mask, bool)
        if reduction == "sum_over_batch_size":
            total = jnp.asarray(mask.size, dtype)
            valid = jnp.sum(mask.astype(dtype))
            scale = jnp.where(valid == 0, 0.0, total / jnp.where(valid == 0, 1.0, valid))
            float_mask = jnp.where(mask, scale, 0.0).astype(dtype)
        else:
            float_mask = mask.astype(dtype)
        if sample_weight is not None:
            float_mask, sample_weight = same_rank(float_mask, jnp.asarray(sample_weight, dtype))
            sample_weight = _broadcast(sample_weight, float_mask.shape, name, "mask")
            sample_weight = sample_weight * float_mask
        else:
            sample_weight = float_mask
    if sample_weight is None:
        return values, None
    values, sample_weight = same_rank(values, jnp.asarray(sample_weight, dtype))
    return values, sample_weight


def _broadcast(weight, shape, name, what):
    """The weight broadcast to ``shape`` aligned on the leading (batch) axes, or a ShapeError
    (Keras would align trailing axes, silently wrong when the lengths happen to agree)."""
    wshape = tuple(jnp.shape(weight))
    if wshape != tuple(shape[: len(wshape)]):
        raise ShapeError(
            f"{name}: sample_weight has shape {wshape} and the {what} has shape {tuple(shape)}; "
            "expected the leading axes of the latter, e.g. (n,) or (n, time)."
        )
    weight = jnp.reshape(weight, wshape + (1,) * (len(shape) - len(wshape)))
    return jnp.broadcast_to(weight, shape)


def reduce_loss(values, sample_weight=None, mask=None, name="loss"):
    """Keras's ``reduce_weighted_values`` with ``"sum_over_batch_size"``."""
    values = jnp.asarray(values)
    values, weight = _weights(values, sample_weight, mask, "sum_over_batch_size", name)
    if weight is not None:
        values = values * _broadcast(weight, values.shape, name, "loss values")
    if values.ndim == 0:
        return values
    return jnp.sum(values) / max(values.size, 1)


def metric_sums(values, sample_weight=None, mask=None, name="metric"):
    """``(total, count)`` of Keras's ``MeanMetricWrapper.update_state`` for one batch."""
    values = jnp.asarray(values, jnp.float32)
    if sample_weight is None and mask is None:
        n = values.shape[0] if values.ndim else 1
        per = jnp.mean(values, axis=tuple(range(1, values.ndim))) if values.ndim > 1 else values
        return jnp.sum(per), jnp.asarray(n, jnp.float32)
    if sample_weight is None:  # Keras: the mask alone is the sample weight
        sample_weight = jnp.asarray(mask, jnp.float32)
        mask = None
    values, weight = _weights(values, sample_weight, mask, "sum", name)
    w_ndim = weight.ndim
    if values.ndim > w_ndim:
        values = jnp.mean(values, axis=tuple(range(w_ndim, values.ndim)))
    weight = _broadcast(weight, values.shape, name, "metric values")
    values = values * weight
    if w_ndim > 1:
        weight = jnp.mean(weight, axis=tuple(range(1, w_ndim)))
    if values.ndim > 1:
        values = jnp.mean(values, axis=tuple(range(1, values.ndim)))
    return jnp.sum(values), jnp.sum(weight)


def get_loss(value) -> Loss | CustomLoss:
    """A loss from a name, a :class:`Loss`, or a callable ``fn(y_true, y_pred)``."""
    if isinstance(value, Loss | CustomLoss):
        return value
    if isinstance(value, str):
        return Loss(value)
    if callable(value):
        return CustomLoss(value)
    return Loss(value)  # raises, naming what is allowed


def get_metric(value) -> Metric | CustomMetric:
    """A metric from a name, a :class:`Metric`, or a callable ``fn(y_true, y_pred)``."""
    if isinstance(value, Metric | CustomMetric):
        return value
    if isinstance(value, str):
        return Metric(value)
    if callable(value):
        return CustomMetric(value)
    return Metric(value)


def _loss_fn(name):
    def fn(y_true, y_pred, sample_weight=None, mask=None, **options):
        return Loss(name, **options)(y_true, y_pred, sample_weight, mask)

    fn.__name__ = name
    fn.__doc__ = (
        f"Keras's ``{name}`` loss of one batch (``sum_over_batch_size``), weighted by "
        "``sample_weight`` and the output ``mask`` as Keras weighs them."
    )
    return fn


mse = _loss_fn("mean_squared_error")
mae = _loss_fn("mean_absolute_error")
binary_crossentropy = _loss_fn("binary_crossentropy")
categorical_crossentropy = _loss_fn("categorical_crossentropy")
sparse_categorical_crossentropy = _loss_fn("sparse_categorical_crossentropy")


# ---- a file's compile_config (plain JSON data) as jaxlstm losses and metrics ------------------
# Keras's built-in loss and metric classes, by the class_name their configs carry.
_CLASSES = {
    "MeanSquaredError": "mean_squared_error",
    "MeanAbsoluteError": "mean_absolute_error",
    "MeanAbsolutePercentageError": "mean_absolute_percentage_error",
    "MeanSquaredLogarithmicError": "mean_squared_logarithmic_error",
    "Huber": "huber",
    "BinaryCrossentropy": "binary_crossentropy",
    "CategoricalCrossentropy": "categorical_crossentropy",
    "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
    "RootMeanSquaredError": "root_mean_squared_error",
    "BinaryAccuracy": "binary_accuracy",
    "CategoricalAccuracy": "categorical_accuracy",
    "SparseCategoricalAccuracy": "sparse_categorical_accuracy",
}
_KERAS_MODULES = (None, "keras.losses", "keras.metrics")
# Config keys that carry no computation (or the reduction every built-in uses), and options
# jaxlstm's functions do not take, accepted at their default values only.
_NO_EFFECT = ("name", "dtype", "fn")
_DEFAULTS = {"axis": -1, "ignore_class": None, "label_smoothing": 0.0, "from_logits": False}
_REDUCTIONS = (None, "sum_over_batch_size", "auto")  # tf.keras's "auto" is the former
_ACCURACIES = ("binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy")


class _NotBuiltin(Exception):
    """Why one serialized loss or metric is not one jaxlstm computes (internal)."""


def _serialized(value, kind: str, outputs: tuple = ()):
    """One serialized Keras loss or metric (a name, or a ``{"class_name", "config"}`` dict) ->
    a jaxlstm ``Loss``/``Metric`` or a name string; raises _NotBuiltin saying why not.
    ``outputs``: the model's output names (tf.keras prefixes a metric's name with them)."""
    make = Loss if kind == "loss" else Metric
    if isinstance(value, str):
        try:
            make(value)
        except UnsupportedOptionError as err:
            raise _NotBuiltin(str(err)) from None
        return value
    if not isinstance(value, dict) or "class_name" not in value:
        raise _NotBuiltin(f"not a Keras {kind} name or serialized {kind}")
    class_name, config = value.get("class_name"), value.get("config")
    registered = value.get("registered_name")
    if value.get("module") not in _KERAS_MODULES or registered not in (None, class_name):
        raise _NotBuiltin(f"a custom class ({value.get('module')}, {registered})")
    if class_name == "function" and isinstance(config, str):  # a built-in function by name
        return _serialized(config, kind, outputs)
    config = config if isinstance(config, dict) else {}
    if class_name == "MeanMetricWrapper" and kind == "metric":  # tf.keras: the function's name
        fn, name = config.get("fn"), config.get("name")
        chosen = _serialized(fn, kind) if isinstance(fn, str) else None
        if chosen is None:
            raise _NotBuiltin("a MeanMetricWrapper of a custom function")
        if isinstance(name, str) and len(outputs) > 1:  # tf.keras: "reg_mae" for output reg
            name = next((name[len(o) + 1 :] for o in outputs if name.startswith(f"{o}_")), name)
        if isinstance(name, str) and name in ALIASES and _canonical(name) == _canonical(fn):
            return name  # logged under the name Keras logs ("mae")
        if name in ("accuracy", "acc") and _canonical(fn) in _ACCURACIES:
            return name  # what compile(metrics=["accuracy"]) chose by shapes, as Metric does
        return chosen
    if class_name not in _CLASSES:
        raise _NotBuiltin(f"{class_name} is not a Keras built-in jaxlstm implements")
    name = _CLASSES[class_name]
    fn = _FUNCTIONS[name]
    if config.get("reduction") not in _REDUCTIONS:
        raise _NotBuiltin(f"reduction={config.get('reduction')!r}; jaxlstm reduces by batch size")
    if isinstance(config.get("fn"), str) and _canonical(config["fn"]) != name:
        raise _NotBuiltin(f"fn={config['fn']!r} is not {name}")
    options = {}
    for key, v in config.items():
        if key in _NO_EFFECT or key == "reduction":
            continue
        if key in fn.options:
            options[key] = v
        elif key not in _DEFAULTS or v != _DEFAULTS[key]:
            raise _NotBuiltin(f"option {key}={v!r}, which jaxlstm's {name} does not take")
    try:
        return make(name, **options)
    except UnsupportedOptionError as err:
        raise _NotBuiltin(str(err)) from None


def _mapped(value, kind: str, outputs: tuple, what: str):
    """A compile_config entry (one value, a list per output, a dict by output name, or, for
    metrics, lists of them) with each serialized loss/metric mapped by :func:`_serialized`."""
    if value is None:
        return None
    if isinstance(value, dict) and "class_name" not in value:  # by output name
        return {k: _mapped(v, kind, outputs, what) for k, v in value.items()}
    if isinstance(value, list):
        if (
            kind == "metric"
            and len(outputs) == 1
            and len(value) == 1
            and isinstance(value[0], list)
        ):
            value = value[0]  # tf.keras: one list per output, also for one output
        return [_mapped(v, kind, outputs, what) for v in value]
    try:
        return _serialized(value, kind, outputs)
    except _NotBuiltin as why:
        raise UnsupportedOptionError(
            f"{what} gives {kind} {value!r:.120}: {why}. jaxlstm computes Keras's built-in "
            f"losses and metrics only ({sorted(LOSSES if kind == 'loss' else METRICS)}) and "
            f"never imports what a config names: pass {'loss' if kind == 'loss' else 'metrics'}"
            "= to fit / evaluate instead (a Keras name, a jaxlstm.train.Loss / Metric, or a "
            "callable fn(y_true, y_pred))."
        ) from None


def from_compile_config(settings: dict, outputs, what: str = "the compile_config") -> dict:
    """A file's compile settings (``KerasModel.compile_config``: plain JSON data) as the
    ``loss``, ``loss_weights``, ``metrics`` and ``weighted_metrics`` arguments of ``fit``:
    Keras's names and serialized built-in classes mapped onto :class:`Loss` / :class:`Metric`
    (options such as ``from_logits`` kept); anything else (a custom class or function, an
    option jaxlstm does not implement) is an :class:`~jaxlstm.UnsupportedOptionError` saying to
    pass ``loss=`` / ``metrics=``. Nothing the config names is imported. ``outputs``: the
    model's output names."""
    outputs = tuple(outputs)
    return {
        "loss": _mapped(settings.get("loss"), "loss", outputs, what),
        "loss_weights": settings.get("loss_weights"),
        "metrics": _mapped(settings.get("metrics"), "metric", outputs, what),
        "weighted_metrics": _mapped(settings.get("weighted_metrics"), "metric", outputs, what),
    }
