"""Keras's attention layers as pure functions (no Flax): ``Attention`` (Luong, dot or concat
scores), ``AdditiveAttention`` (Bahdanau) and ``MultiHeadAttention``.

Dense attention (``query (B, Tq, dim)``, ``value (B, Tv, dim)``, ``key`` defaulting to
``value``)::

    dot:       scores = scale * query @ key^T
    concat:    scores = w * sum(tanh(scale * (q_i + k_j)))          (w: concat_score_weight)
    additive:  scores = sum(scale * tanh(q_i + k_j))                (scale: a (dim,) vector)
    weights    = softmax(scores - 1e9 * (1 - mask))     mask = value mask AND causal (i >= j)
    output     = (weights @ value) * query_mask

Masking. Keras never sets a masked score to ``-inf``: it subtracts ``1e9`` (Keras 2 and Keras 3
dense attention, Keras 2 MultiHeadAttention) or replaces the score (Keras 3
MultiHeadAttention), which decides what a row with every position masked gets (a query step
masked by its own mask in MultiHeadAttention): :func:`masked_softmax` has the three styles.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

HIGHEST = lax.Precision.HIGHEST
SUBTRACT, FILL, ZERO = "subtract", "fill", "zero"


def masked_softmax(scores: jax.Array, mask, axes: Sequence[int] = (-1,), style=SUBTRACT):
    """Softmax of ``scores`` over ``axes`` where ``mask`` (broadcastable, bool) is False
    positions that must not contribute.

    ``style``: ``"subtract"`` adds ``-1e9`` at masked positions (a fully masked row becomes
    uniform over the original scores' rounding, as in Keras 2 and Keras 3 ``Attention``);
    ``"fill"`` sets them to ``-0.7 * float32 max`` (a fully masked row is uniform: Keras 3's
    ``ops.dot_product_attention``); ``"zero"`` sets them to ``-1e9`` and zeroes the masked
    outputs afterwards (a fully masked row is all zeros: Keras 3's ``Softmax`` layer)."""
    axes = tuple(axes)
    if mask is not None:
        mask = jnp.asarray(mask, bool)
        if style == SUBTRACT:
            scores = scores - 1.0e9 * jnp.logical_not(mask).astype(scores.dtype)
        else:
            fill = -0.7 * jnp.finfo(scores.dtype).max if style == FILL else -1.0e9
            scores = jnp.where(mask, scores, jnp.asarray(fill, scores.dtype))
    if len(axes) == 1:
        out = jax.nn.softmax(scores, axis=axes[0])
    else:
        out = jnp.exp(scores - jax.scipy.special.logsumexp(scores, axis=axes, keepdims=True))
    if mask is not None and style == ZERO:
        out = jnp.where(mask, out, 0.0)
    return out


def causal_mask(tq: int, tv: int) -> jax.Array:
    """``(1, tq, tv)``: step ``i`` may attend to steps ``j <= i``."""
    return (jnp.arange(tq)[:, None] >= jnp.arange(tv)[None, :])[None]


def luong_scores(query, key, *, scale=None, concat_weight=None):
    """``Attention``'s scores ``(B, Tq, Tv)``: dot product (``concat_weight is None``) or
    ``concat_weight * sum(tanh(scale * (q + k)))`` (``score_mode="concat"``)."""
    if concat_weight is None:
        scores = jnp.matmul(query, jnp.swapaxes(key, -2, -1), precision=HIGHEST)
        return scores if scale is None else scores * scale
    summed = query[..., :, None, :] + key[..., None, :, :]
    if scale is not None:
        summed = scale * summed
    return concat_weight * jnp.sum(jnp.tanh(summed), axis=-1)


def bahdanau_scores(query, key, *, scale=None):
    """``AdditiveAttention``'s scores ``(B, Tq, Tv)``: ``sum(scale * tanh(q + k))``."""
    t = jnp.tanh(query[..., :, None, :] + key[..., None, :, :])
    return jnp.sum((1.0 if scale is None else scale) * t, axis=-1)


def dense_attention(
    scores,
    value,
    *,
    query_mask=None,
    value_mask=None,
    causal=False,
    dropout: Callable | None = None,
):
    """``(output (B, Tq, dim), weights (B, Tq, Tv))`` of ``Attention``/``AdditiveAttention``
    from their ``scores``; ``dropout``, if given, is applied to the weights (training)."""
    mask = None if value_mask is None else jnp.asarray(value_mask, bool)[..., None, :]
    if causal:
        c = causal_mask(scores.shape[-2], scores.shape[-1])
        mask = c if mask is None else jnp.logical_and(mask, c)
    weights = masked_softmax(scores, mask, style=SUBTRACT)
    dropped = weights if dropout is None else dropout(weights)
    out = jnp.matmul(dropped, value, precision=HIGHEST)
    if query_mask is not None:
        out = jnp.where(jnp.asarray(query_mask, bool)[..., None], out, 0.0)
    return out, weights


class MHAWeights(NamedTuple):
    """``MultiHeadAttention``'s projections, as Keras stores them: ``query``/``key`` kernels
    ``(dim, heads, key_dim)``, ``value`` ``(dim, heads, value_dim)``, ``output``
    ``(heads, value_dim, *output_shape)``; biases the kernels' trailing shapes, or ``None``."""

    query_kernel: jax.Array
    query_bias: jax.Array | None
    key_kernel: jax.Array
    key_bias: jax.Array | None
    value_kernel: jax.Array
    value_bias: jax.Array | None
    output_kernel: jax.Array
    output_bias: jax.Array | None


def _project(x, kernel, bias, bound: int):
    n = x.ndim
    y = jnp.tensordot(
        x, kernel, axes=(tuple(range(n - bound, n)), tuple(range(bound))), precision=HIGHEST
    )
    return y if bias is None else y + bias


def attention_equations(rank: int, attn_axes: tuple[int, ...]) -> tuple[str, str, int]:
    """Keras's ``_build_attention_equation``: the query-key and combine einsums for projected
    tensors of ``rank`` axes ``(batch, <others>, <attention axes>, heads, channels)``."""
    letters = string.ascii_lowercase
    target = letters[:rank]
    batch_dims = tuple(i for i in range(rank) if i not in (*attn_axes, rank - 1))
    source, offset = "", rank
    for i in range(rank):
        if i in batch_dims or i == rank - 1:
            source += target[i]
        else:
            source += letters[offset]
            offset += 1
    product = "".join(
        [target[i] for i in batch_dims]
        + [target[i] for i in attn_axes]
        + [source[i] for i in attn_axes]
    )
    return f"{source},{target}->{product}", f"{product},{source}->{target}", len(product)


def normalize_attention_axes(attention_axes, input_rank: int) -> tuple[int, ...]:
    """Keras's attention axes for inputs of ``input_rank`` (projected rank ``input_rank + 1``):
    every axis between batch and channels by default; negative axes count from the heads."""
    rank = input_rank + 1
    if attention_axes is None:
        return tuple(range(1, rank - 2))
    axes = (attention_axes,) if isinstance(attention_axes, int) else tuple(attention_axes)
    return tuple(a if a >= 0 else (rank - 1) + a for a in axes)


def multi_head_attention(
    query,
    value,
    key,
    w: MHAWeights,
    *,
    attention_axes=None,
    mask=None,
    style: str = FILL,
    dropout: Callable | None = None,
):
    """``(output, scores)`` of ``MultiHeadAttention``. ``query (B, *Tq, dim_q)``, ``value``
    and ``key`` ``(B, *Tv, dim)``; ``mask`` broadcastable to ``(B, *Tq, *Tv)`` over the
    attention axes (True: attend). Scores are ``(B, <other axes>, heads, *Tq, *Tv)``."""
    key = value if key is None else key
    q = _project(query, w.query_kernel, w.query_bias, 1)
    k = _project(key, w.key_kernel, w.key_bias, 1)
    v = _project(value, w.value_kernel, w.value_bias, 1)
    axes = normalize_attention_axes(attention_axes, query.ndim)
    dot_eq, combine_eq, scores_rank = attention_equations(q.ndim, axes)
    q = q * jnp.asarray(1.0 / jnp.sqrt(float(w.query_kernel.shape[-1])), q.dtype)
    scores = jnp.einsum(dot_eq, k, q, precision=HIGHEST)
    norm_axes = tuple(range(scores_rank - len(axes), scores_rank))
    if mask is not None:
        mask = jnp.asarray(mask, bool)
        while mask.ndim < scores.ndim:
            mask = jnp.expand_dims(mask, -len(axes) * 2 - 1)
    scores = masked_softmax(scores, mask, norm_axes, style)
    dropped = scores if dropout is None else dropout(scores)
    out = jnp.einsum(combine_eq, dropped, v, precision=HIGHEST)
    return _project(out, w.output_kernel, w.output_bias, 2), scores


def mha_mask(
    query,
    value,
    *,
    query_mask=None,
    value_mask=None,
    key_mask=None,
    attention_mask=None,
    causal=False,
):
    """Keras's ``_compute_attention_mask``: query mask ``(B, T, 1)`` AND value/key masks
    ``(B, 1, S)`` AND the causal mask ``(1, T, S)`` AND ``attention_mask``; ``None`` if none."""
    parts = []
    if query_mask is not None:
        parts.append(jnp.asarray(query_mask, bool)[..., None])
    for m in (value_mask, key_mask):
        if m is not None:
            parts.append(jnp.asarray(m, bool)[..., None, :])
    if causal:
        parts.append(causal_mask(query.shape[1], value.shape[1]))
    if attention_mask is not None:
        parts.append(jnp.asarray(attention_mask, bool))
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = jnp.logical_and(out, p)
    return out
