"""The SimpleRNN as pure functions over pytrees, exactly as Keras computes it
(``keras.layers.SimpleRNN``).

Weights in Keras's layout: ``kernel (in, u)``, ``recurrent_kernel (u, u)``, ``bias (u,)`` (or
``None`` for ``use_bias=False``). One step, with ``φ`` the activation (tanh by default; any
activation, ``"linear"`` for Keras's ``activation=None``)::

    h_t = φ(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)

The step is one matmul and an elementwise update, so the scan takes the fast backward pass of
``fast.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

from jaxlstm._src.core import fast, rnn
from jaxlstm._src.core.activations import Activation, get_activation


class SimpleRNNParams(NamedTuple):
    """SimpleRNN weights in Keras's layout.

    Attributes:
      kernel: ``(in_features, units)``. recurrent_kernel: ``(units, units)``.
      bias: ``(units,)``, or ``None`` for ``use_bias=False``.
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


class SimpleRNNState(NamedTuple):
    """The SimpleRNN carry; Keras lists it as ``[h]``.

    Attributes:
      h: ``(*batch, units)``, the previous output.
    """

    h: jax.Array


class SimpleRNNCell(NamedTuple):
    """The SimpleRNN's step math for the scan driver (``rnn.py`` lists what a cell provides)."""

    activation: Activation

    name = "SimpleRNN"
    gates = 1
    gate_order = "h"
    params_type = SimpleRNNParams
    state_type = SimpleRNNState
    bias_text = "(units,)"
    bias_hint = ""
    fused = True
    split = False  # z is one array: x @ w_x + h @ w_h + b

    @property
    def activations(self):
        return (self.activation,)

    @staticmethod
    def bias_shape(units):
        return (units,)

    @staticmethod
    def fuse(params):
        return params.kernel, params.recurrent_kernel, params.bias

    def update(self, z, state):
        return (self.activation(z),)

    def linearize(self, z, state):
        h, slope = fast.value_and_slope(self.activation, z)
        return (h,), slope

    @staticmethod
    def tangent(slope, dz, dstate):
        return (slope * dz,)

    def step(self, params, state, x_t, rdm=None, compute_dtype=None):
        """One step as Keras writes it: ``φ((x_t @ kernel + bias) + (h * rdm) @ recurrent)``."""
        z = fast.matmul(x_t, params.kernel, compute_dtype)
        if params.bias is not None:
            z = z + params.bias
        h = state[0] if rdm is None else state[0] * rdm
        return self.update(z + fast.matmul(h, params.recurrent_kernel, compute_dtype), state)


def simple_rnn_step(
    params: SimpleRNNParams,
    state: SimpleRNNState,
    x_t: jax.Array,
    *,
    activation: str | Activation = "tanh",
    compute_dtype=None,
) -> SimpleRNNState:
    """One SimpleRNN step, ``h_t = φ(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)``.

    Args:
      params: :class:`SimpleRNNParams`. state: :class:`SimpleRNNState` (or ``[h]``),
        ``h`` ``(*batch, units)``. x_t: ``(*batch, in_features)``.
      activation: a Keras name or a callable. compute_dtype: as for ``lstm_step``.

    Returns:
      The new :class:`SimpleRNNState`.

    Example:
      >>> import jax.numpy as jnp
      >>> p = SimpleRNNParams(jnp.ones((3, 2)), jnp.ones((2, 2)), jnp.zeros(2))
      >>> simple_rnn_step(p, SimpleRNNState(jnp.zeros((1, 2))), jnp.ones((1, 3))).h.shape
      (1, 2)
    """
    cell = SimpleRNNCell(get_activation(activation))
    return rnn.step(cell, params, state, x_t, compute_dtype)


def simple_rnn_scan(
    params: SimpleRNNParams,
    x: jax.Array,
    *,
    initial_state: SimpleRNNState | None = None,
    mask: jax.Array | None = None,
    go_backwards: bool = False,
    return_sequences: bool = True,
    zero_output_for_mask: bool = False,
    activation: str | Activation = "tanh",
    dropout_mask: jax.Array | None = None,
    recurrent_dropout_mask: jax.Array | None = None,
    time_major: bool = False,
    unroll: int | bool = 1,
    compute_dtype=None,
    remat_chunk: int | None = None,
    impl: str = "auto",
) -> tuple[jax.Array, SimpleRNNState]:
    """Run a SimpleRNN over a sequence with Keras's semantics.

    Every option means what it means for :func:`jaxlstm.lstm_scan` (one driver runs both):
    ``x`` ``(*batch, T, in_features)``, masks anywhere, ``go_backwards``, dropout multipliers,
    ``time_major``, ``unroll``, ``compute_dtype``, ``remat_chunk``; ``impl="cudnn"`` raises
    (jaxlstm runs cuDNN for the LSTM only).

    Returns:
      ``(outputs, final_state)``: ``(*batch, T, units)`` (or ``(*batch, units)`` without
      ``return_sequences``) and the :class:`SimpleRNNState` after the last unmasked step.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> k1, k2 = jax.random.split(jax.random.key(0))
      >>> p = SimpleRNNParams(jax.random.normal(k1, (3, 2)), jax.random.normal(k2, (2, 2)))
      >>> y, state = simple_rnn_scan(p, jnp.ones((4, 5, 3)), activation="relu")
      >>> y.shape, state.h.shape
      ((4, 5, 2), (4, 2))
    """
    return rnn.scan(
        SimpleRNNCell(get_activation(activation)),
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
