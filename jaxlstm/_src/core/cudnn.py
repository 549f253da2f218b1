"""The cuDNN LSTM (``jax.experimental.rnn.lstm``) behind :func:`lstm_scan`'s ``impl`` option.

cuDNN computes the same LSTM as Keras (gate order i, f, c(g), o, ``σ = sigmoid``, ``φ = tanh``)
with weights packed into one flat array::

    [W_ih (4u, in), W_hh (4u, u), b_ih (4u,), b_hh (4u,)]   W_ih = kernel.T, W_hh = recurrent.T

(Keras's single bias goes in ``b_ih``, ``b_hh`` is zero). It handles variable lengths as
``seq_lengths``, i.e. right-padded masks only; outside them jaxlstm fills in Keras's semantics
(repeat the last output, or zeros with ``zero_output_for_mask``). Anything cuDNN cannot do
(other activations, bfloat16, recurrent dropout, masks with ``go_backwards``, checkpointing, a
non-GPU backend) is listed by :func:`unsupported_reason`; ``impl="auto"`` then takes the scan, and
``impl="cudnn"`` raises :class:`UnsupportedOptionError` with the reason. Errors raised by cuDNN
itself are never caught.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlstm._src.core.activations import ACTIVATIONS

IMPLS = ("auto", "scan", "cudnn")


def unsupported_reason(
    *,
    platform,
    activation,
    recurrent_activation,
    masked,
    go_backwards,
    recurrent_dropout,
    compute_dtype,
    dtypes,
    remat_chunk,
):
    """Why the cuDNN path cannot run this call, or ``None`` when it can."""
    if platform not in ("gpu", "cuda", "rocm"):
        return f"cuDNN runs on GPU only, and JAX's backend here is {platform!r}"
    if activation is not ACTIVATIONS["tanh"] or recurrent_activation is not ACTIVATIONS["sigmoid"]:
        return "cuDNN implements activation='tanh' with recurrent_activation='sigmoid' only"
    if compute_dtype is not None or any(jnp.dtype(d) != jnp.float32 for d in dtypes):
        return "jax.experimental.rnn supports float32 weights and inputs only (no compute_dtype)"
    if recurrent_dropout:
        return "cuDNN has no recurrent dropout mask"
    if masked and go_backwards:
        return "cuDNN takes right-padded masks, which go_backwards turns into left padding"
    if remat_chunk:
        return "remat_chunk checkpoints the scan; cuDNN keeps its own residuals"
    return None


def pack_weights(kernel, recurrent, bias):
    """Keras-layout weights -> cuDNN's flat array (see the module docstring)."""
    b = jnp.zeros(kernel.shape[1], kernel.dtype) if bias is None else bias
    return jnp.concatenate([kernel.T.ravel(), recurrent.T.ravel(), b, jnp.zeros_like(b)])


def _reference_rnn(x, h0, c0, w, seq_lengths, *, input_size, hidden_size):
    """``jax.experimental.rnn.lstm_ref`` with the same calling convention as the cuDNN call, so
    that the wrapper's packing and mask handling are tested on CPU."""
    from jax.experimental import rnn

    w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(w, input_size, hidden_size, 1, False)
    return rnn.lstm_ref(
        x, h0, c0, w_ih, w_hh, b_ih, b_hh, seq_lengths, input_size, hidden_size, 1, 0.0, False
    )


def _cudnn_rnn(x, h0, c0, w, seq_lengths, *, input_size, hidden_size):
    from jax.experimental import rnn

    return rnn.lstm(
        x,
        h0,
        c0,
        w,
        seq_lengths,
        input_size=input_size,
        hidden_size=hidden_size,
        num_layers=1,
        dropout=0.0,
        bidirectional=False,
    )


def lstm(
    kernel,
    recurrent,
    bias,
    x,
    h0,
    c0,
    mask,
    *,
    return_sequences,
    zero_output_for_mask,
    reference=False,
):
    """The LSTM through cuDNN, with Keras's outputs.

    Args:
      x: ``(B, T, in)`` batch-major (already reversed for ``go_backwards``, dropped out).
      h0, c0: ``(B, u)``. mask: ``(B, T)`` bool, right-padded, or ``None``. A mask that is not
        right-padded cannot be run by cuDNN; rather than return wrong numbers, the outputs and
        state of the whole call are NaN then.
      reference: run ``jax.experimental.rnn.lstm_ref`` instead of cuDNN (tests on CPU).

    Returns:
      ``(ys_or_last, h, c)``: ``(B, T, u)`` outputs (or the last output ``(B, u)``), final state.
    """
    batch, steps, in_features = x.shape
    units = recurrent.shape[0]
    w = pack_weights(kernel, recurrent, bias)
    if mask is None:
        lengths = jnp.full((batch,), steps, jnp.int32)
    else:
        lengths = jnp.sum(mask, axis=1, dtype=jnp.int32)
    rnn = _reference_rnn if reference else _cudnn_rnn
    y, h, c = rnn(
        x,
        h0[None],
        c0[None],
        w,
        jnp.maximum(lengths, 1),  # cuDNN needs a step; empty rows are fixed up below
        input_size=in_features,
        hidden_size=units,
    )
    h, c = h[0], c[0]
    if mask is not None:
        right_padded = jnp.all(mask == (jnp.arange(steps)[None, :] < lengths[:, None]))
        empty = (lengths == 0)[:, None]
        h, c = jnp.where(empty, h0, h), jnp.where(empty, c0, c)
        valid = mask[..., None]
        if zero_output_for_mask:
            y = jnp.where(valid, y, 0.0)
        else:  # repeat the last valid output (zeros for an empty row)
            last = jnp.take_along_axis(y, jnp.maximum(lengths - 1, 0)[:, None, None], axis=1)
            y = jnp.where(valid, y, jnp.where(empty[..., None], 0.0, last))
        nan = jnp.float32(jnp.nan)
        y, h, c = (jnp.where(right_padded, a, nan) for a in (y, h, c))
    return (y if return_sequences else y[:, -1]), h, c


def default_platform():
    """The platform a traced call will run on (JAX's default backend)."""
    return jax.default_backend()
