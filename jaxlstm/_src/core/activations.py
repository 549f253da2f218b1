"""Keras's built-in activations, by the name a Keras config stores them under.

Every entry is elementwise over the last axis and matches Keras 3 (``keras.activations``)
with its default arguments. Two names exist for ``hard_sigmoid`` because Keras changed it:

* ``"hard_sigmoid"`` is Keras 3's ``relu6(x + 3) / 6`` (slope 1/6);
* ``"hard_sigmoid_keras2"`` is Keras 1/2 and tf.keras ``clip(0.2 * x + 0.5, 0, 1)`` (slope 0.2).

A file's ``"hard_sigmoid"`` is resolved with :func:`resolve_activation_name` from the Keras version
that wrote it, so the same file gives the numbers Keras gave when it was trained.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxlstm._src.errors import UnknownActivationError

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

# Built-ins that are not a function of one tensor: they take required arguments or change shape.
_NOT_ELEMENTWISE = {
    "glu": "halves the last axis, so it cannot be an LSTM activation",
    "threshold": "needs `threshold` and `default_value` arguments a name cannot carry",
}


def get_activation(activation: str | Activation) -> Activation:
    """Return the function for a Keras activation name (or pass a callable through).

    Args:
      activation: a name from :data:`ACTIVATIONS` (``"tanh"``, ``"hard_sigmoid_keras2"``, ...) or
        any callable mapping an array to an array of the same shape.

    Raises:
      UnknownActivationError: the name is not a Keras built-in.
    """
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


def resolve_activation_name(name: str, keras_version: str) -> str:
    """Map an activation name as stored by a Keras version to its name here.

    Only ``hard_sigmoid`` changed meaning: Keras 1.x and 2.x (and tf.keras) files mean
    ``clip(0.2x + 0.5, 0, 1)``, Keras 3 files mean ``relu6(x + 3) / 6``.

    >>> resolve_activation_name("hard_sigmoid", "2.4.0")
    'hard_sigmoid_keras2'
    >>> resolve_activation_name("hard_sigmoid", "3.5.0")
    'hard_sigmoid'
    """
    key = name.lower()
    if key == "hard_sigmoid" and keras_major(keras_version) < 3:
        return "hard_sigmoid_keras2"
    return key


def keras_major(keras_version: str) -> int:
    """The major version from a Keras version string (``"2.2.4-tf"`` -> 2; ``""`` -> 1)."""
    head = keras_version.strip().split(".")[0] if keras_version else "1"
    return int(head) if head.isdigit() else 1
