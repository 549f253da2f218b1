"""The LSTM as pure functions over pytrees: no Flax, no Keras, no state.

Weights are kept in Keras's layout so that a Keras file maps onto them without reshuffling::

    kernel            (in, 4u)   columns [i | f | c | o]
    recurrent_kernel  (u, 4u)    columns [i | f | c | o]
    bias              (4u,)      [i | f | c | o], or None when use_bias=False

One step, with ``σ`` the recurrent activation (sigmoid by default) and ``φ`` the activation
(tanh by default), is::

    z   = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias
    i   = σ(z[:, 0u:1u])        input gate
    f   = σ(z[:, 1u:2u])        forget gate
    c_t = f * c_{t-1} + i * φ(z[:, 2u:3u])
    o   = σ(z[:, 3u:4u])        output gate
    h_t = o * φ(c_t)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxlstm._src.core import fast, rnn
from jaxlstm._src.core.activations import Activation, get_activation


class LSTMParams(NamedTuple):
    """LSTM weights in Keras's layout, gate order i, f, c, o.

    Attributes:
      kernel: ``(in_features, 4 * units)``, applied to the inputs.
      recurrent_kernel: ``(units, 4 * units)``, applied to the previous ``h``.
      bias: ``(4 * units,)``, or ``None`` for a layer built with ``use_bias=False``.
    """

    kernel: jax.Array
    recurrent_kernel: jax.Array
    bias: jax.Array | None = None

    @property
    def units(self) -> int:
        return self.recurrent_kernel.shape[0]

    @property
    def in_features(self) -> int:
        return self.kernel.shape[0]


class LSTMState(NamedTuple):
    """The LSTM carry. Keras lists it as ``[h, c]``; so do we, by name.

    Attributes:
      h: ``(*batch, units)``, the hidden state, which is also the step's output.
      c: ``(*batch, units)``, the cell state.
    """

    h: jax.Array
    c: jax.Array


def zeros_state(batch_shape: tuple[int, ...], units: int, dtype=jnp.float32) -> LSTMState:
    """An all-zero :class:`LSTMState` of shape ``(*batch_shape, units)``, as Keras starts from."""
    z = jnp.zeros((*batch_shape, units), dtype)
    return LSTMState(z, z)


class LSTMCell(NamedTuple):
    """The LSTM's step math for the scan driver (``rnn.py``, which lists what a cell provides):
    static and hashable, its activations resolved to functions. States are tuples ``(h, c)``."""

    activation: Activation
    recurrent_activation: Activation

    name = "LSTM"
    gates = 4
    gate_order = "i|f|c|o"
    params_type = LSTMParams
    state_type = LSTMState
    bias_text = "(4*units,)"
    bias_hint = ""
    fused = True
    split = False  # z is one array: x @ w_x + h @ w_h + b

    @property
    def activations(self):
        return (self.activation, self.recurrent_activation)

    @staticmethod
    def bias_shape(units):
        return (4 * units,)

    @staticmethod
    def fuse(params):
        return params.kernel, params.recurrent_kernel, params.bias

    def update(self, z, state):
        """``z`` ``(B, 4u)`` in gate order i, f, c, o and ``(h, c)`` -> the new ``(h, c)``."""
        act, rec = self.activation, self.recurrent_activation
        z_i, z_f, z_c, z_o = jnp.split(z, 4, axis=-1)
        c = rec(z_f) * state[1] + rec(z_i) * act(z_c)
        return rec(z_o) * act(c), c

    def linearize(self, z, state):
        """:meth:`update` and the coefficients of its (elementwise) linearisation::

            dc = f * dc_prev + k_i * dz_i + k_f * dz_f + k_c * dz_c
            dh = k_o * dz_o + e * dc

        with ``k = [σ'(z_i) φ(z_c), σ'(z_f) c_prev, σ(z_i) φ'(z_c), σ'(z_o) φ(c)]`` ``(B, 4u)``,
        ``f = σ(z_f)`` and ``e = σ(z_o) φ'(c)``. Returns ``((h, c), (k, f, e))``."""
        act, rec = self.activation, self.recurrent_activation
        c_prev = state[1]
        z_i, z_f, z_c, z_o = jnp.split(z, 4, axis=-1)
        i, di = fast.value_and_slope(rec, z_i)
        f, df = fast.value_and_slope(rec, z_f)
        g, dg = fast.value_and_slope(act, z_c)
        o, do = fast.value_and_slope(rec, z_o)
        c = f * c_prev + i * g
        phi_c, dphi_c = fast.value_and_slope(act, c)
        k = jnp.concatenate([di * g, df * c_prev, i * dg, do * phi_c], axis=-1)
        return (o * phi_c, c), (k, f, o * dphi_c)

    @staticmethod
    def tangent(coefficients, dz, dstate):
        """The step's tangent ``(dh, dc)`` from the coefficients of :meth:`linearize`."""
        k, f, e = coefficients
        kz_i, kz_f, kz_c, kz_o = jnp.split(k * dz, 4, axis=-1)
        dc = f * dstate[1] + kz_i + kz_f + kz_c
        return kz_o + e * dc, dc

    def step(self, params, state, x_t, rdm=None, compute_dtype=None):
        """One Keras step on tuples: ``z = x_t @ kernel + (h * rdm) @ recurrent_kernel + bias``,
        then :meth:`update`."""
        h = state[0] if rdm is None else state[0] * rdm
        z = fast.matmul(x_t, params.kernel, compute_dtype) + fast.matmul(
            h, params.recurrent_kernel, compute_dtype
        )
        if params.bias is not None:
            z = z + params.bias
        return self.update(z, state)


def lstm_step(
    params: LSTMParams,
    state: LSTMState,
    x_t: jax.Array,
    *,
    activation: str | Activation = "tanh",
    recurrent_activation: str | Activation = "sigmoid",
    compute_dtype=None,
) -> LSTMState:
    """One LSTM step (the equations in this module's docstring).

    Args:
      params: :class:`LSTMParams`.
      state: :class:`LSTMState` with ``h`` and ``c`` of shape ``(*batch, units)``.
      x_t: ``(*batch, in_features)``.
      activation, recurrent_activation: Keras names or callables (see ``jaxlstm.ACTIVATIONS``).
      compute_dtype: e.g. ``jnp.bfloat16`` to run the matmuls in that dtype, accumulating and
        keeping the carry in float32. ``None`` computes in the inputs' dtype.

    Returns:
      The new :class:`LSTMState`; its ``h`` is the step's output.

    Example:
      >>> import jax.numpy as jnp
      >>> p = LSTMParams(jnp.ones((3, 8)), jnp.ones((2, 8)), jnp.zeros(8))
      >>> lstm_step(p, zeros_state((1,), 2), jnp.ones((1, 3))).h.shape
      (1, 2)
    """
    cell = LSTMCell(get_activation(activation), get_activation(recurrent_activation))
    return rnn.step(cell, params, state, x_t, compute_dtype)


def lstm_scan(
    params: LSTMParams,
    x: jax.Array,
    *,
    initial_state: LSTMState | None = None,
    mask: jax.Array | None = None,
    go_backwards: bool = False,
    return_sequences: bool = True,
    zero_output_for_mask: bool = False,
    activation: str | Activation = "tanh",
    recurrent_activation: str | Activation = "sigmoid",
    dropout_mask: jax.Array | None = None,
    recurrent_dropout_mask: jax.Array | None = None,
    time_major: bool = False,
    unroll: int | bool = 1,
    compute_dtype=None,
    remat_chunk: int | None = None,
    impl: str = "auto",
) -> tuple[jax.Array, LSTMState]:
    """Run an LSTM over a sequence with ``lax.scan``, with Keras's semantics.

    Args:
      params: :class:`LSTMParams` in Keras layout.
      x: ``(*batch, T, in_features)``: any number of batch axes, none for one sequence
        (``(T, in_features)``). With ``time_major=True``: ``(T, *batch, in_features)``.
      initial_state: :class:`LSTMState` with arrays ``(*batch, units)``; zeros when ``None``.
      mask: ``(*batch, T)`` (or ``(*batch, T, 1)``), bool or 0/1. At a masked step the state is
        carried unchanged and the output repeats the previous step's output (zeros before the
        first unmasked step), exactly as Keras's TensorFlow, PyTorch and NumPy backends do.
        Masked steps may be anywhere: left padding, gaps, whole rows.
      go_backwards: process the sequence from last step to first. As in Keras, the returned
        sequence is in processing order (``outputs[..., 0, :]`` belongs to the last input step).
      return_sequences: return every step's output ``(*batch, T, units)``; otherwise only the
        last one ``(*batch, units)``.
      zero_output_for_mask: output zeros at masked steps instead of repeating the previous output
        (what Keras does for an LSTM inside ``Bidirectional`` with ``return_sequences=True``).
      activation, recurrent_activation: Keras names or callables (a callable is part of the
        compile cache key: pass the same function object, not a new lambda, on every call).
      dropout_mask: optional ``(*batch, in_features)`` multiplier for the inputs at every step
        (Keras 3 draws one per sequence, scaled by ``1 / (1 - rate)``).
      recurrent_dropout_mask: optional ``(*batch, units)`` multiplier for ``h_{t-1}``.
      time_major: inputs, masks and returned sequences have time as their first axis.
      unroll: steps per ``lax.scan`` iteration (``True``: the whole sequence).
      compute_dtype: e.g. ``jnp.bfloat16`` to run matmuls in bfloat16 with a float32 carry.
      remat_chunk: checkpoint the backward pass in chunks of this many steps: differentiation
        then keeps the state only at chunk boundaries and recomputes one chunk at a time (about
        one more forward pass of compute). With ``remat_chunk ~ sqrt(T)`` memory grows as
        ``sqrt(T)``: e.g. ``T=100_000, B=8, units=256`` trains in well under 2 GiB. Gradients
        are those of the plain path. ``None``: no checkpointing.
      impl: ``"scan"`` (``lax.scan`` with a hand-written JVP whose transpose computes the weight
        and input gradients as single matmuls over all steps; every option, any backend),
        ``"cudnn"`` (``jax.experimental.rnn``: GPU, tanh/sigmoid, float32, no recurrent dropout,
        no checkpointing, masks right-padded and not with ``go_backwards``; raises
        :class:`UnsupportedOptionError` saying why otherwise), or ``"auto"``: cuDNN where it
        applies and no mask is given, the scan otherwise. :func:`which_impl` tells which runs.

    Returns:
      ``(outputs, final_state)``: ``outputs`` as selected by ``return_sequences``, and the final
      :class:`LSTMState` (the state after the last unmasked step), always, since it is free.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> k1, k2 = jax.random.split(jax.random.key(0))
      >>> p = LSTMParams(jax.random.normal(k1, (3, 8)), jax.random.normal(k2, (2, 8)), jnp.zeros(8))
      >>> y, state = lstm_scan(p, jnp.ones((4, 5, 3)))
      >>> y.shape, state.h.shape
      ((4, 5, 2), (4, 2))
    """
    cell = LSTMCell(get_activation(activation), get_activation(recurrent_activation))
    return rnn.scan(
        cell,
        params,
        x,
        initial_state=initial_state,
        mask=mask,
        go_backwards=go_backwards,
        return_sequences=return_sequences,
        zero_output_for_mask=zero_output_for_mask,
        dropout_mask=dropout_mask,
        recurrent_dropout_mask=recurrent_dropout_mask,
        time_major=time_major,
        unroll=unroll,
        compute_dtype=compute_dtype,
        remat_chunk=remat_chunk,
        impl=impl,
    )


def which_impl(
    params: LSTMParams,
    x: jax.Array,
    *,
    impl: str = "auto",
    mask: jax.Array | None = None,
    go_backwards: bool = False,
    activation: str | Activation = "tanh",
    recurrent_activation: str | Activation = "sigmoid",
    recurrent_dropout_mask: jax.Array | None = None,
    compute_dtype=None,
    remat_chunk: int | None = None,
) -> str:
    """Which implementation :func:`lstm_scan` runs for these arguments: ``"scan"`` or
    ``"cudnn"`` (``gru_scan`` and ``simple_rnn_scan`` always run the scan). Raises
    :class:`UnsupportedOptionError` (with the reason) for ``impl="cudnn"`` where cuDNN cannot
    run. Only the arguments that decide it are taken; arrays may be ``jax.ShapeDtypeStruct``\\ s.
    ``"auto"`` picks cuDNN on a GPU backend when the call has tanh/sigmoid activations, float32
    weights and inputs, no ``compute_dtype``, no recurrent dropout, no ``remat_chunk`` and no
    mask (a mask may not be right-padded, which cannot be
    known while tracing: force ``impl="cudnn"`` for right-padded masks).

    Example:
      >>> import jax.numpy as jnp
      >>> p = LSTMParams(jnp.ones((3, 8)), jnp.ones((2, 8)), jnp.zeros(8))
      >>> which_impl(p, jnp.ones((1, 5, 3)), impl="scan")
      'scan'
    """
    cell = LSTMCell(get_activation(activation), get_activation(recurrent_activation))
    return rnn.choose_impl(
        cell,
        impl,
        dtypes=(x.dtype, params.kernel.dtype, params.recurrent_kernel.dtype),
        masked=mask is not None,
        go_backwards=go_backwards,
        recurrent_dropout=recurrent_dropout_mask is not None,
        compute_dtype=compute_dtype,
        remat_chunk=remat_chunk,
    )
