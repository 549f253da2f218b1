"""Losses and metrics with Keras's definitions, averaged over the entries a mask keeps.

Every function takes ``(pred, target, mask=None)``: ``pred`` as the model outputs it (Keras
classifiers end in softmax/sigmoid, so probabilities by default), ``mask`` of the leading shape
``(batch,)`` or ``(batch, time)`` (for sequence outputs). The result is the mean over unmasked
entries; a fully masked batch gives 0, not NaN.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxlstm._src.errors import UnsupportedOptionError

EPSILON = 1e-7  # Keras's backend epsilon, used to clip probabilities


def masked_mean(per_entry, mask=None):
    """Mean of ``per_entry`` (shape ``(batch, ...)``) over the entries ``mask`` keeps."""
    if mask is None:
        return jnp.mean(per_entry)
    mask = jnp.asarray(mask, per_entry.dtype)
    while mask.ndim < per_entry.ndim:
        mask = mask[..., None]
    mask = jnp.broadcast_to(mask, per_entry.shape)
    return jnp.sum(per_entry * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def mse(pred, target, mask=None):
    return masked_mean(jnp.square(pred - target), mask)


def mae(pred, target, mask=None):
    return masked_mean(jnp.abs(pred - target), mask)


def rmse(pred, target, mask=None):
    return jnp.sqrt(mse(pred, target, mask))


def binary_crossentropy(pred, target, mask=None):
    p = jnp.clip(pred, EPSILON, 1.0 - EPSILON)
    return masked_mean(-(target * jnp.log(p) + (1.0 - target) * jnp.log(1.0 - p)), mask)


def categorical_crossentropy(pred, target, mask=None):
    p = jnp.clip(pred / jnp.sum(pred, axis=-1, keepdims=True), EPSILON, 1.0 - EPSILON)
    return masked_mean(-jnp.sum(target * jnp.log(p), axis=-1), mask)


def sparse_categorical_crossentropy(pred, target, mask=None):
    p = jnp.clip(pred / jnp.sum(pred, axis=-1, keepdims=True), EPSILON, 1.0 - EPSILON)
    picked = jnp.take_along_axis(jnp.log(p), jnp.asarray(target, jnp.int32)[..., None], axis=-1)
    return masked_mean(-picked[..., 0], mask)


def accuracy(pred, target, mask=None):
    """Class accuracy: argmax vs integer labels (sparse), one-hot labels, or 0.5 threshold."""
    if pred.shape[-1] == 1:
        hit = (pred[..., 0] > 0.5) == (jnp.reshape(target, pred.shape)[..., 0] > 0.5)
        return masked_mean(hit.astype(jnp.float32), mask)
    labels = jnp.argmax(target, -1) if jnp.ndim(target) == pred.ndim else target
    return masked_mean((jnp.argmax(pred, -1) == labels).astype(jnp.float32), mask)


LOSSES = {
    "mse": mse,
    "mae": mae,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
}
METRICS = {"mse": mse, "mae": mae, "rmse": rmse, "accuracy": accuracy}


def get_loss(name_or_fn):
    return _lookup(name_or_fn, LOSSES, "loss")


def get_metric(name_or_fn):
    return _lookup(name_or_fn, METRICS, "metric")


def _lookup(value, table, what):
    if callable(value):
        return value
    if value in table:
        return table[value]
    raise UnsupportedOptionError(
        f"unknown {what} {value!r}; expected one of {sorted(table)} or a callable "
        "(pred, target, mask) -> scalar."
    )
