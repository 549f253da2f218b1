"""The GRU as pure functions over pytrees, exactly as Keras computes it (``keras.layers.GRU``).

Weights in Keras's layout, gate order z (update), r (reset), h (candidate)::

    kernel            (in, 3u)   columns [z | r | h]
    recurrent_kernel  (u, 3u)    columns [z | r | h]
    bias              reset_after=True:  (2, 3u), row 0 the input bias b_i, row 1 the
                                         recurrent bias b_r (Keras 3 and tf.keras default)
                      reset_after=False: (3u,)  (standalone Keras 2.0-2.2)
                      or None when use_bias=False

One step, with ``σ`` the recurrent activation (sigmoid by default) and ``φ`` the activation
(tanh by default); ``x = x_t @ kernel + b_i``, ``r_ = h_{t-1} @ recurrent_kernel + b_r``::

    z   = σ(x_z + r_z)                                update gate
    r   = σ(x_r + r_r)                                reset gate
    hh  = φ(x_h + r * r_h)                            reset_after=True: r after the matmul
    hh  = φ(x_h + (r * h_{t-1}) @ recurrent_kernel_h) reset_after=False: r before it (no b_r)
    h_t = z * h_{t-1} + (1 - z) * hh

With ``reset_after=True`` the step is two independent matmuls (``x_t @ kernel`` and
``h_{t-1} @ recurrent_kernel``, ``3u`` columns each) and an elementwise update, so the scan
takes the fast backward pass of ``fast.py`` (as a ``split`` cell: one ``(B, u) @ (u, 3u)``
matmul a step, no zero block); with ``reset_after=False`` the second matmul sits inside the
step and the scan is differentiated by plain autodiff.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxlstm._src.core import fast, rnn
from jaxlstm._src.core.activations import Activation, get_activation


class GRUParams(NamedTuple):
    """GRU weights in Keras's layout, gate order z, r, h.

    Attributes:
      kernel: ``(in_features, 3 * units)``, applied to the inputs.
      recurrent_kernel: ``(units, 3 * units)``, applied to the previous ``h``.
      bias: ``(2, 3 * units)`` (input and recurrent biases) for ``reset_after=True``,
        ``(3 * units,)`` for ``reset_after=False``, or ``None`` for ``use_bias=False``.
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


class GRUState(NamedTuple):
    """The GRU carry; Keras lists it as ``[h]``.

    Attributes:
      h: ``(*batch, units)``, the hidden state, which is also the step's output.
    """

    h: jax.Array


class GRUCell(NamedTuple):
    """The GRU's step math for the scan driver (``rnn.py`` lists what a cell provides)."""

    activation: Activation
    recurrent_activation: Activation
    reset_after: bool

    name = "GRU"
    gates = 3
    gate_order = "z|r|h"
    params_type = GRUParams
    state_type = GRUState

    @property
    def activations(self):
        return (self.activation, self.recurrent_activation)

    @property
    def fused(self) -> bool:
        return self.reset_after

    def bias_shape(self, units):
        return (2, 3 * units) if self.reset_after else (3 * units,)

    @property
    def bias_text(self):
        return "(2, 3*units)" if self.reset_after else "(3*units,)"

    @property
    def bias_hint(self):
        other = "(3*units,)" if self.reset_after else "(2, 3*units)"
        return (
            f" for reset_after={self.reset_after} (a {other} bias is "
            f"reset_after={not self.reset_after}'s)"
        )

    split = True  # (read where fused) z is a pair: input part, recurrent part

    @staticmethod
    def fuse(params):
        """``z = (x @ w_x + b_x, h @ w_h + b_h)``: the input and recurrent parts stay apart
        (``3u`` columns each, no zero block), because the reset gate multiplies the recurrent
        part of the candidate only. Returns ``(kernel, recurrent_kernel, (b_i, b_r))``."""
        k, rk, b = params
        return k, rk, None if b is None else (b[0], b[1])

    def update(self, z, state):
        """``z = (x_t @ kernel + b_i, h @ recurrent_kernel + b_r)``, each ``(B, 3u)`` in gate
        order z, r, h, and ``(h,)`` -> the new ``(h,)`` (reset_after=True)."""
        act, rec = self.activation, self.recurrent_activation
        (x_z, x_r, x_h), (h_z, h_r, h_h) = (jnp.split(part, 3, axis=-1) for part in z)
        gate = rec(x_z + h_z)
        hh = act(x_h + rec(x_r + h_r) * h_h)
        return (gate * state[0] + (1.0 - gate) * hh,)

    def linearize(self, z, state):
        """:meth:`update` and the coefficients of its linearisation::

            dh = g * dh_prev + k_z (dx_z + dh_z) + k_r (dx_r + dh_r) + k_x dx_h + k_h dh_h

        with ``g = σ(a_z)``, ``p = x_h + r * h_h`` and ``k_z = σ'(a_z) (h_prev - hh)``,
        ``k_r = (1-g) φ'(p) h_h σ'(a_r)``, ``k_x = (1-g) φ'(p)``, ``k_h = k_x r``."""
        act, rec = self.activation, self.recurrent_activation
        h_prev = state[0]
        (x_z, x_r, x_h), (h_z, h_r, h_h) = (jnp.split(part, 3, axis=-1) for part in z)
        gate, d_gate = fast.value_and_slope(rec, x_z + h_z)
        r, dr = fast.value_and_slope(rec, x_r + h_r)
        hh, dhh = fast.value_and_slope(act, x_h + r * h_h)
        k_x = (1.0 - gate) * dhh
        k = (d_gate * (h_prev - hh), k_x * h_h * dr, k_x, k_x * r)
        return (gate * h_prev + (1.0 - gate) * hh,), (*k, gate)

    @staticmethod
    def tangent_input(coefficients, dz_x):
        """The input part's share of ``dh`` (any leading axes: all steps at once)."""
        k_z, k_r, k_x, _, _ = coefficients
        d_z, d_r, d_h = jnp.split(dz_x, 3, axis=-1)
        return k_z * d_z + k_r * d_r + k_x * d_h

    @staticmethod
    def tangent(coefficients, dz, dstate):
        """``dz = (tangent_input(...), dz_h)`` -> the step's ``(dh,)``."""
        k_z, k_r, _, k_h, gate = coefficients
        d_input, dz_h = dz
        d_z, d_r, d_h = jnp.split(dz_h, 3, axis=-1)
        return (gate * dstate[0] + d_input + k_z * d_z + k_r * d_r + k_h * d_h,)

    def step(self, params, state, x_t, rdm=None, compute_dtype=None):
        """One step as Keras writes it (both ``reset_after`` conventions)."""
        act, rec = self.activation, self.recurrent_activation
        k, rk, b = params
        u = rk.shape[0]
        h = state[0]
        h_r = h if rdm is None else h * rdm
        xz = fast.matmul(x_t, k, compute_dtype)
        if b is not None:
            xz = xz + (b[0] if self.reset_after else b)
        if self.reset_after:
            hz = fast.matmul(h_r, rk, compute_dtype)
            return self.update((xz, hz if b is None else hz + b[1]), state)
        x_z, x_r, x_h = jnp.split(xz, 3, axis=-1)
        h_z, h_r_gate = jnp.split(fast.matmul(h_r, rk[:, : 2 * u], compute_dtype), 2, axis=-1)
        gate, r = rec(x_z + h_z), rec(x_r + h_r_gate)
        hh = act(x_h + fast.matmul(r * h_r, rk[:, 2 * u :], compute_dtype))
        return (gate * h + (1.0 - gate) * hh,)


def _cell(activation, recurrent_activation, reset_after) -> GRUCell:
    return GRUCell(
        get_activation(activation), get_activation(recurrent_activation), bool(reset_after)
    )


def gru_step(
    params: GRUParams,
    state: GRUState,
    x_t: jax.Array,
    *,
    activation: str | Activation = "tanh",
    recurrent_activation: str | Activation = "sigmoid",
    reset_after: bool = True,
    compute_dtype=None,
) -> GRUState:
    """One GRU step (the equations in this module's docstring).

    Args:
      params: :class:`GRUParams`; its bias shape must match ``reset_after``.
      state: :class:`GRUState` with ``h`` ``(*batch, units)`` (or ``[h]``).
      x_t: ``(*batch, in_features)``.
      activation, recurrent_activation: Keras names or callables (see ``jaxlstm.ACTIVATIONS``).
      reset_after: Keras's GRU convention (``True``: Keras 3 and tf.keras default).
      compute_dtype: e.g. ``jnp.bfloat16`` for bfloat16 matmuls with float32 accumulation.

    Returns:
      The new :class:`GRUState`; its ``h`` is the step's output.

    Example:
      >>> import jax.numpy as jnp
      >>> p = GRUParams(jnp.ones((3, 6)), jnp.ones((2, 6)), jnp.zeros((2, 6)))
      >>> gru_step(p, GRUState(jnp.zeros((1, 2))), jnp.ones((1, 3))).h.shape
      (1, 2)
    """
    cell = _cell(activation, recurrent_activation, reset_after)
    return rnn.step(cell, params, state, x_t, compute_dtype)


def gru_scan(
    params: GRUParams,
    x: jax.Array,
    *,
    initial_state: GRUState | None = None,
    mask: jax.Array | None = None,
    go_backwards: bool = False,
    return_sequences: bool = True,
    zero_output_for_mask: bool = False,
    activation: str | Activation = "tanh",
    recurrent_activation: str | Activation = "sigmoid",
    reset_after: bool = True,
    dropout_mask: jax.Array | None = None,
    recurrent_dropout_mask: jax.Array | None = None,
    time_major: bool = False,
    unroll: int | bool = 1,
    compute_dtype=None,
    remat_chunk: int | None = None,
    impl: str = "auto",
) -> tuple[jax.Array, GRUState]:
    """Run a GRU over a sequence with Keras's semantics.

    Every option but ``reset_after`` means what it means for :func:`jaxlstm.lstm_scan` (one
    driver runs both): ``x`` ``(*batch, T, in_features)`` (``(T, *batch, in)`` with
    ``time_major``), ``mask`` ``(*batch, T)`` anywhere (a masked step carries ``h`` and repeats
    the previous output, or zeros with ``zero_output_for_mask``), ``go_backwards`` (sequences
    come back in processing order), dropout multipliers ``(*batch, in)`` / ``(*batch, units)``
    (the recurrent one scales ``h_{t-1}`` in the matmuls, not in ``z * h_{t-1}``, as in Keras),
    ``unroll``, ``compute_dtype``, ``remat_chunk``. ``impl``: ``"auto"`` and ``"scan"`` run the
    scan; ``"cudnn"`` raises (there is no cuDNN GRU in ``jax.experimental.rnn``).

    Args:
      params: :class:`GRUParams` in Keras layout (bias ``(2, 3u)`` for ``reset_after=True``,
        ``(3u,)`` for ``False``).
      reset_after: Keras's convention: ``True`` (Keras 3 and tf.keras default) applies the reset
        gate after the recurrent matmul, ``False`` before it.

    Returns:
      ``(outputs, final_state)``: ``(*batch, T, units)`` (or the last output ``(*batch, units)``
      without ``return_sequences``) and the :class:`GRUState` after the last unmasked step.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> k1, k2 = jax.random.split(jax.random.key(0))
      >>> p = GRUParams(jax.random.normal(k1, (3, 6)), jax.random.normal(k2, (2, 6)))
      >>> y, state = gru_scan(p, jnp.ones((4, 5, 3)))
      >>> y.shape, state.h.shape
      ((4, 5, 2), (4, 2))
    """
    return rnn.scan(
        _cell(activation, recurrent_activation, reset_after),
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
