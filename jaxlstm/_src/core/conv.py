"""Convolution, pooling and resizing over any number of spatial axes, as Keras computes them.

Pure functions over arrays (no Flax), used by the conv/pool layers of ``load_keras``. Keras's
layouts: inputs ``(batch, *spatial, channels)`` (``channels_last``) or ``(batch, channels,
*spatial)`` (``channels_first``); kernels ``(*kernel_size, in_channels / groups, filters)`` in
both data formats. Everything runs on :func:`jax.lax.conv_general_dilated` and
:func:`jax.lax.reduce_window`.

Padding arithmetic (per spatial axis of size ``n``, kernel ``k``, stride ``s``, dilation ``d``,
effective kernel ``k' = (k - 1) d + 1``):

- ``"valid"``: no padding, ``out = floor((n - k') / s) + 1``.
- ``"same"``: ``out = ceil(n / s)``, total padding ``max((out - 1) s + k' - n, 0)``, the smaller
  half before and the larger after (an even kernel or a stride pads one more at the end), as
  TensorFlow and Keras 3 do; ``lax``'s ``"SAME"`` is that rule.
- ``"causal"`` (1-D convolutions): ``k' - 1`` zeros before, none after.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

HIGHEST = lax.Precision.HIGHEST


def channel_axis(ndim: int, data_format: str) -> int:
    """The channel axis of an ``ndim``-dimensional input in ``data_format``."""
    return 1 if data_format == "channels_first" else ndim - 1


def spatial_axes(ndim: int, data_format: str) -> tuple[int, ...]:
    """The spatial axes of an ``ndim``-dimensional input in ``data_format``."""
    return tuple(range(2, ndim)) if data_format == "channels_first" else tuple(range(1, ndim - 1))


def _dimension_numbers(n: int, data_format: str) -> tuple[str, str, str]:
    space = "DHW"[-n:] if n <= 3 else "".join(chr(ord("a") + i) for i in range(n))
    lhs = f"NC{space}" if data_format == "channels_first" else f"N{space}C"
    return lhs, f"{space}IO", lhs


def conv(
    x: jax.Array,
    kernel: jax.Array,
    *,
    strides: Sequence[int],
    padding: str,
    dilation: Sequence[int],
    data_format: str = "channels_last",
    groups: int = 1,
    preferred_element_type=None,
) -> jax.Array:
    """Keras's ``ops.conv``: ``x`` ``(batch, *spatial, in)`` (or channels first) with ``kernel``
    ``(*kernel_size, in / groups, filters)``; ``padding`` ``"valid"``, ``"same"`` or ``"causal"``.
    Returns ``(batch, *out_spatial, filters)`` (or channels first), in
    ``preferred_element_type`` when given (e.g. float32 for bfloat16 operands)."""
    n = kernel.ndim - 2
    if padding == "causal":
        pads = [(0, 0)] * x.ndim
        for axis, k, d in zip(
            spatial_axes(x.ndim, data_format), kernel.shape[:n], dilation, strict=True
        ):
            pads[axis] = ((k - 1) * d, 0)
        x, padding = jnp.pad(x, pads), "valid"
    return lax.conv_general_dilated(
        x,
        kernel,
        window_strides=tuple(strides),
        padding=padding.upper(),
        rhs_dilation=tuple(dilation),
        dimension_numbers=_dimension_numbers(n, data_format),
        feature_group_count=groups,
        precision=HIGHEST,
        preferred_element_type=preferred_element_type,
    )


def depthwise_conv(x, kernel, *, strides, padding, dilation, data_format="channels_last"):
    """Keras's ``ops.depthwise_conv``: ``kernel`` ``(*kernel_size, in, multiplier)``; output
    channel ``c * multiplier + m`` is input channel ``c`` convolved with ``kernel[..., c, m]``."""
    *size, c, m = kernel.shape
    return conv(
        x,
        kernel.reshape(*size, 1, c * m),
        strides=strides,
        padding=padding,
        dilation=dilation,
        data_format=data_format,
        groups=c,
    )


def separable_conv(x, depthwise, pointwise, *, strides, padding, dilation, data_format):
    """Keras's ``ops.separable_conv``: a depthwise convolution (with the strides, padding and
    dilation), then a pointwise one (``pointwise`` ``(1, ..., 1, in * multiplier, filters)``)."""
    y = depthwise_conv(
        x, depthwise, strides=strides, padding=padding, dilation=dilation, data_format=data_format
    )
    ones = (1,) * (pointwise.ndim - 2)
    return conv(y, pointwise, strides=ones, padding="valid", dilation=ones, data_format=data_format)


def transpose_padding(
    k: int, s: int, d: int, padding: str, output_padding: int | None
) -> tuple[int, int]:
    """Padding of the dilated input for a transposed convolution along one axis, as Keras 3
    computes it (``backend_utils._convert_conv_transpose_padding_args_from_keras_to_jax``).

    Output length: ``"valid"``: ``(n - 1) s + max(k', s)`` without ``output_padding``, else
    ``(n - 1) s + k' + output_padding``; ``"same"``: ``n s`` without, else
    ``(n - 1) s + k' % 2 + output_padding``, with ``k'`` the dilated kernel size."""
    k = (k - 1) * d + 1
    if padding == "valid":
        extra = max(k, s) - k if output_padding is None else output_padding
        return k - 1, k - 1 + extra
    total = s + k - 2 if output_padding is None else k + k % 2 - 2 + output_padding
    left = min(total // 2 + total % 2, k - 1)
    return left, total - left


def conv_transpose(
    x, kernel, *, strides, padding, dilation, output_padding=None, data_format="channels_last"
):
    """Keras's ``ops.conv_transpose``: ``kernel`` ``(*kernel_size, filters, in)``;
    ``output_padding`` ``None`` or one int per spatial axis."""
    n = kernel.ndim - 2
    outs = (None,) * n if output_padding is None else tuple(output_padding)
    pads = [
        transpose_padding(k, s, d, padding, op)
        for k, s, d, op in zip(kernel.shape[:n], strides, dilation, outs, strict=True)
    ]
    return lax.conv_transpose(
        x,
        kernel,
        tuple(strides),
        padding=pads,
        rhs_dilation=tuple(dilation),
        dimension_numbers=_dimension_numbers(n, data_format),
        transpose_kernel=True,
        precision=HIGHEST,
    )


def _window(ndim, data_format, values):
    full = [1] * ndim
    for axis, v in zip(spatial_axes(ndim, data_format), values, strict=True):
        full[axis] = int(v)
    return tuple(full)


def pool(x, kind: str, *, pool_size, strides, padding: str, data_format="channels_last"):
    """Max (``kind="max"``) or average pooling over the spatial axes. ``"same"`` average
    pooling divides by the number of real (unpadded) elements in each window, as Keras."""
    dims = _window(x.ndim, data_format, pool_size)
    steps = _window(x.ndim, data_format, strides)
    pad = padding.upper()
    if kind == "max":
        return lax.reduce_window(x, -jnp.inf, lax.max, dims, steps, pad)
    total = lax.reduce_window(x, 0.0, lax.add, dims, steps, pad)
    if pad == "VALID":
        return total / float(math.prod(int(p) for p in pool_size))
    count = lax.reduce_window(jnp.ones(x.shape, x.dtype), 0.0, lax.add, dims, steps, pad)
    return total / count


def global_pool(x, kind: str, *, data_format="channels_last", keepdims=False, mask=None):
    """Global max or average over the spatial axes; an average with ``mask``
    ``(batch, steps)`` (1-D only) is over the unmasked steps."""
    axes = spatial_axes(x.ndim, data_format)
    if kind == "max":
        return jnp.max(x, axis=axes, keepdims=keepdims)
    if mask is None:
        return jnp.mean(x, axis=axes, keepdims=keepdims)
    m = mask[..., None] if data_format == "channels_last" else mask[:, None, :]
    m = m.astype(x.dtype)
    total = jnp.sum(jnp.where(m > 0, x, 0.0), axis=axes, keepdims=keepdims)
    return total / jnp.sum(m, axis=axes, keepdims=keepdims)


def pad_spatial(x, pads, data_format="channels_last"):
    """Zero padding: ``pads`` one ``(before, after)`` per spatial axis."""
    full = [(0, 0)] * x.ndim
    for axis, p in zip(spatial_axes(x.ndim, data_format), pads, strict=True):
        full[axis] = tuple(p)
    return jnp.pad(x, full)


def crop_spatial(x, crops, data_format="channels_last"):
    """Cropping: ``crops`` one ``(start, end)`` per spatial axis."""
    index = [slice(None)] * x.ndim
    for axis, (a, b) in zip(spatial_axes(x.ndim, data_format), crops, strict=True):
        index[axis] = slice(a, x.shape[axis] - b)
    return x[tuple(index)]


def upsample(x, size, *, data_format="channels_last", interpolation="nearest"):
    """Repeat each element ``size[i]`` times along spatial axis ``i`` (``"nearest"``), or
    ``"bilinear"`` resizing with half-pixel centres (``tf.image.resize``, ``jax.image.resize``)."""
    axes = spatial_axes(x.ndim, data_format)
    if interpolation == "nearest":
        for axis, s in zip(axes, size, strict=True):
            x = jnp.repeat(x, int(s), axis=axis)
        return x
    shape = list(x.shape)
    for axis, s in zip(axes, size, strict=True):
        shape[axis] *= int(s)
    return jax.image.resize(x, tuple(shape), method=interpolation, antialias=False)
