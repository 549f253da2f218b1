"""Keras's built-in activations, by the name a Keras config stores them under.

Every entry is elementwise over the last axis and matches Keras 3 (``keras.activations``)
with its default arguments. Two names exist for ``hard_sigmoid`` because Keras changed it:

* ``"hard_sigmoid"`` is Keras 3's ``relu6(x + 3) / 6`` (slope 1/6);
* ``"hard_sigmoid_keras2"`` is Keras 1/2 and tf.keras ``clip(0.2 * x + 0.5, 0, 1)`` (slope 0.2).

A file's ``"hard_sigmoid"`` is resolved from the Keras version that wrote it
(:func:`jaxlstm._src.vocabulary.resolve_activation_name`), so the same file gives the numbers
Keras gave when it was trained.

Activations with parameters (:data:`PARAMETERS`: ``relu`` with ``max_value``, ``negative_slope``
and ``threshold``, ``leaky_relu``'s slope, ``elu(alpha)``, ``gelu(approximate)``,
``softmax(axis)``, ...) are :class:`KerasActivation` values: ``get_activation("relu",
max_value=6.0)``. Keras configs store them as activation layers (``ReLU``, ``LeakyReLU``,
``ELU``, ``ThresholdedReLU``, ``Softmax``), whose options :data:`ACTIVATION_LAYERS` maps onto
those parameters, for Keras 1, 2 and 3 spellings alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from jaxlstm._src.errors import KerasFileError, UnknownActivationError

Activation = Callable[[jax.Array], jax.Array]


def _hard_sigmoid_keras2(x):
    return jnp.clip(0.2 * x + 0.5, 0.0, 1.0)


def _softsign(x):
    return x / (1.0 + jnp.abs(x))


def _squareplus(x, b=4.0):
    return (x + jnp.sqrt(jnp.square(x) + b)) / 2.0


def _soft_shrink(x, threshold=0.5):
    return jnp.where(x > threshold, x - threshold, jnp.where(x < -threshold, x + threshold, 0.0))


def _hard_shrink(x, threshold=0.5):
    return jnp.where(jnp.abs(x) > threshold, x, 0.0)


def _sparse_plus(x):
    return jnp.where(x <= -1.0, 0.0, jnp.where(x >= 1.0, x, 0.25 * jnp.square(x + 1.0)))


def _sparse_sigmoid(x):
    return jnp.where(x <= -1.0, 0.0, jnp.where(x >= 1.0, 1.0, 0.5 * (x + 1.0)))


def _sparsemax(x, axis=-1):
    # Exactly as every Keras 3 backend computes it (keras.src.backend.*.nn.sparsemax): tau is
    # taken from the sum of the supported cumulative sums, which differs from Martins &
    # Astudillo's sparsemax whenever more than one entry is supported. Keras models computed this.
    z = -jnp.sort(-x, axis=axis)
    cumsum = jnp.cumsum(z, axis=axis)
    r = jnp.arange(1, x.shape[axis] + 1, dtype=x.dtype)
    support = z - (cumsum - 1.0) / r > 0
    k = jnp.sum(support, axis=axis, keepdims=True)
    tau = (jnp.sum(jnp.where(support, cumsum, 0.0), axis=axis, keepdims=True) - 1.0) / k
    return jnp.maximum(x - tau, 0.0)


def _relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    # Keras 3's ReLU.static_call, operation for operation (tf.keras's backend.relu is the same):
    # the threshold zeroes x <= threshold, then max_value clips, then the slope is subtracted.
    if negative_slope != 0.0:
        if max_value is None and threshold == 0:
            return jax.nn.leaky_relu(x, negative_slope=negative_slope)
        negative = jax.nn.relu(-x + threshold) if threshold != 0 else jax.nn.relu(-x)
    if threshold != 0:
        x = jnp.where(x > threshold, x, 0.0)
    else:
        x = jax.nn.relu(x)
    if max_value is not None:
        x = jnp.clip(x, 0.0, max_value)
    if negative_slope != 0.0:
        x = x - negative_slope * negative
    return x


def _softmax(x, axis=-1):
    if isinstance(axis, tuple):  # the Softmax layer's list of axes: exp(x - logsumexp(x))
        return jnp.exp(x - jax.nn.logsumexp(x, axis=axis, keepdims=True))
    return jax.nn.softmax(x, axis=axis)


def _mish(x):
    return x * jnp.tanh(jax.nn.softplus(x))


ACTIVATIONS: dict[str, Activation] = {
    "linear": lambda x: x,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "hard_sigmoid": jax.nn.hard_sigmoid,  # Keras 3: relu6(x + 3) / 6
    "hard_sigmoid_keras2": _hard_sigmoid_keras2,  # Keras 1/2, tf.keras
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, negative_slope=0.2),
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "celu": jax.nn.celu,
    "softplus": jax.nn.softplus,
    "softsign": _softsign,
    "squareplus": _squareplus,
    "exponential": jnp.exp,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "hard_silu": jax.nn.hard_silu,
    "hard_swish": jax.nn.hard_silu,
    "hard_tanh": lambda x: jnp.clip(x, -1.0, 1.0),
    "tanh_shrink": lambda x: x - jnp.tanh(x),
    "soft_shrink": _soft_shrink,
    "hard_shrink": _hard_shrink,
    "sparse_plus": _sparse_plus,
    "sparse_sigmoid": _sparse_sigmoid,
    "log_sigmoid": jax.nn.log_sigmoid,
    "mish": _mish,
    "softmax": lambda x: jax.nn.softmax(x, axis=-1),
    "log_softmax": lambda x: jax.nn.log_softmax(x, axis=-1),
    "sparsemax": _sparsemax,
}

# Activations that take parameters: name -> (function, {parameter: Keras's default}).
PARAMETERS: dict[str, tuple[Callable, dict[str, Any]]] = {
    "relu": (_relu, {"negative_slope": 0.0, "max_value": None, "threshold": 0.0}),
    "leaky_relu": (jax.nn.leaky_relu, {"negative_slope": 0.2}),
    "elu": (jax.nn.elu, {"alpha": 1.0}),
    "celu": (jax.nn.celu, {"alpha": 1.0}),
    "gelu": (jax.nn.gelu, {"approximate": False}),
    "softmax": (_softmax, {"axis": -1}),
    "log_softmax": (jax.nn.log_softmax, {"axis": -1}),
    "squareplus": (_squareplus, {"b": 4.0}),
    "soft_shrink": (_soft_shrink, {"threshold": 0.5}),
    "hard_shrink": (_hard_shrink, {"threshold": 0.5}),
    "sparsemax": (_sparsemax, {"axis": -1}),
}


@dataclass(frozen=True)
class KerasActivation:
    """A Keras activation with parameters, e.g. ``relu(max_value=6.0)``: a function of one array.

    It is static and hashable (equal parameters, equal values), so modules keep it as an option
    and ``jax.jit`` compiles once per activation. Made by :func:`get_activation`.

    Attributes:
      name: a key of :data:`PARAMETERS`.
      params: ``((parameter, value), ...)``, sorted by parameter.
    """

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    def __call__(self, x: jax.Array) -> jax.Array:
        return PARAMETERS[self.name][0](x, **dict(self.params))

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.params)})"


def _parameter(name: str, key: str, value):
    default = PARAMETERS[name][1][key]
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif key == "axis":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if (
            name == "softmax"
            and isinstance(value, list | tuple)
            and value
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            return value[0] if len(value) == 1 else tuple(value)
    elif value is None and default is None:
        return None
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    kind = (
        "true or false"
        if isinstance(default, bool)
        else "an integer"
        if key == "axis"
        else ("a finite number" + (" or None" if default is None else ""))
    )
    raise UnknownActivationError(f"activation {name!r}: {key}={value!r:.80}; expected {kind}.")


def _with_parameters(name: str, params: dict) -> KerasActivation:
    if name not in PARAMETERS:
        raise UnknownActivationError(
            f"activation {name!r} takes no parameters; received {sorted(params)}. Activations "
            f"with parameters: {sorted(PARAMETERS)}."
        )
    defaults = PARAMETERS[name][1]
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise UnknownActivationError(
            f"activation {name!r} has no parameter(s) {unknown}; it takes {sorted(defaults)}."
        )
    values = {k: _parameter(name, k, v) for k, v in params.items()}
    return KerasActivation(name, tuple(sorted(values.items())))


# Built-ins that are not a function of one tensor: they take required arguments or change shape.
_NOT_ELEMENTWISE = {
    "glu": "halves the last axis, so it cannot be an LSTM activation",
    "threshold": "needs `threshold` and `default_value` arguments a name cannot carry",
}


def get_activation(activation: str | Activation, **params) -> Activation:
    """Return the function for a Keras activation name (or pass a callable through).

    Args:
      activation: a name from :data:`ACTIVATIONS` (``"tanh"``, ``"hard_sigmoid_keras2"``, ...) or
        any callable mapping an array to an array of the same shape.
      **params: parameters of an activation in :data:`PARAMETERS`, by Keras's names
        (``get_activation("relu", max_value=6.0)``, ``get_activation("leaky_relu",
        negative_slope=0.1)``, ``get_activation("gelu", approximate=True)``); the result is a
        :class:`KerasActivation`.

    Raises:
      UnknownActivationError: the name is not a Keras built-in, or a parameter is not one it
        takes (or not of its type).

    >>> get_activation("relu", max_value=6.0)
    relu(max_value=6.0)
    """
    if params:
        if not isinstance(activation, str):
            raise UnknownActivationError(
                f"parameters {sorted(params)} were given with activation {activation!r}; "
                "parameters go with an activation name, e.g. get_activation('relu', max_value=6)."
            )
        key = activation.lower()
        get_activation(key)  # an unknown name is reported as such
        return _with_parameters(key, params)
    if callable(activation):
        return activation
    if isinstance(activation, str):
        key = activation.lower()
        if key in ACTIVATIONS:
            return ACTIVATIONS[key]
        if key in _NOT_ELEMENTWISE:
            raise UnknownActivationError(
                f"activation {activation!r} {_NOT_ELEMENTWISE[key]}; "
                "pass a callable instead (e.g. activation=lambda x: ...)."
            )
    raise UnknownActivationError(
        f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)} "
        "or a callable. For a custom activation from a Keras file, pass its JAX version "
        "as an override, e.g. load_keras_layer(path, name, activation=my_fn)."
    )


# Keras's activation layers, as a config names them -> (activation, {config key: parameter},
# {parameter: the layer's default}). Keras 1/2 spell LeakyReLU's slope ``alpha``, Keras 3
# ``negative_slope`` (the layer's default is 0.3 in both; the leaky_relu function's is 0.2).
# ThresholdedReLU (Keras 1/2) is ``x * (x > theta)``, which is relu(threshold=theta) exactly.
ACTIVATION_LAYERS: dict[str, tuple[str, dict[str, str], dict[str, Any]]] = {
    "ReLU": (
        "relu",
        {"max_value": "max_value", "negative_slope": "negative_slope", "threshold": "threshold"},
        {},
    ),
    "LeakyReLU": (
        "leaky_relu",
        {"negative_slope": "negative_slope", "alpha": "negative_slope"},
        {"negative_slope": 0.3},
    ),
    "ELU": ("elu", {"alpha": "alpha"}, {}),
    "ThresholdedReLU": ("relu", {"theta": "threshold"}, {"threshold": 1.0}),
    "Softmax": ("softmax", {"axis": "axis"}, {}),
}


def layer_activation(class_name: str, config: dict, where: str) -> KerasActivation:
    """The activation an activation layer's config (``ReLU``, ``LeakyReLU``, ``ELU``,
    ``ThresholdedReLU``, ``Softmax``) computes, from its options as Keras 1, 2 or 3 stored them.

    Raises:
      KerasFileError: an option holds a value Keras never writes there.
    """
    name, keys, layer_defaults = ACTIVATION_LAYERS[class_name]
    params = dict(layer_defaults)
    for key, param in keys.items():
        if key in config:
            params[param] = config[key]
    try:
        return _with_parameters(name, params)
    except UnknownActivationError as err:
        raise KerasFileError(
            f"{where}: {err} The file is damaged or was not written by Keras."
        ) from None
