"""The ONNX LSTM's extras as a cell of the scan driver (``rnn.py``): peephole connections, a cell
clip and coupled input and forget gates. Pure functions over pytrees; nothing imports Flax.

The LSTM of ``lstm.py`` (gate order i, f, c, o, Keras's layout), with ``p_i, p_f, p_o`` the
rows of ``peephole (3, u)`` (zeros when ``None``) and ``κ`` the clip to ``[-clip, clip]``
(identity when ``clip`` is ``None``)::

    z   = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias
    i   = σ(κ(z_i + p_i * c_{t-1}))
    f   = 1 - i  if input_forget  else  σ(κ(z_f + p_f * c_{t-1}))
    c_t = f * c_{t-1} + i * φ(κ(z_c))
    o   = σ(κ(z_o + p_o * c_t))
    h_t = o * φ(c_t)

which is ONNX's ``LSTM`` operator (the clip bounds the activations' inputs, not ``c_t``: checked
against onnxruntime). The step is not one matmul and an elementwise update of the driver's
kind (the output gate reads ``c_t``), so the scan is differentiated by plain autodiff.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxlstm._src.core import fast, rnn
from jaxlstm._src.core.activations import Activation, get_activation
from jaxlstm._src.core.lstm import LSTMCell, LSTMParams, LSTMState
from jaxlstm._src.errors import ShapeError


class PeepholeLSTMParams(NamedTuple):
    """Weights in Keras's LSTM layout plus the peepholes.

    Attributes:
      kernel: ``(in_features, 4 * units)``. recurrent_kernel: ``(units, 4 * units)``.
      bias: ``(4 * units,)`` or ``None``. peephole: ``(3, units)``, rows i, f, o, or ``None``.
    """

    kernel: jax.Array
    recurrent_kernel: jax.Array
    bias: jax.Array | None = None
    peephole: jax.Array | None = None

    @property
    def units(self) -> int:
        return self.recurrent_kernel.shape[0]

    @property
    def in_features(self) -> int:
        return self.kernel.shape[0]


class PeepholeLSTMCell(NamedTuple):
    """The step above for the scan driver; states ``(h, c)`` (:class:`LSTMState`)."""

    activation: Activation
    recurrent_activation: Activation
    clip: float | None = None
    input_forget: bool = False

    name = "PeepholeLSTM"
    gates = 4
    gate_order = "i|f|c|o"
    params_type = PeepholeLSTMParams
    state_type = LSTMState
    bias_text = "(4*units,)"
    bias_hint = ""
    fused = False

    @property
    def activations(self):
        return (self.activation, self.recurrent_activation)

    @staticmethod
    def bias_shape(units):
        return (4 * units,)

    def check_params(self, params):
        # the LSTM's shape rules for the first three arrays
        rnn.check_params(LSTMCell(None, None), LSTMParams(*params[:3]))
        p = params.peephole
        units = params.recurrent_kernel.shape[0]
        if p is not None and tuple(p.shape) != (3, units):
            raise ShapeError(
                f"peephole has shape {tuple(p.shape)}; expected (3, {units}): rows i, f, o."
            )

    def step(self, params, state, x_t, rdm=None, compute_dtype=None):
        act, rec = self.activation, self.recurrent_activation
        h_prev, c_prev = state
        h = h_prev if rdm is None else h_prev * rdm
        z = fast.matmul(x_t, params.kernel, compute_dtype) + fast.matmul(
            h, params.recurrent_kernel, compute_dtype
        )
        if params.bias is not None:
            z = z + params.bias
        z_i, z_f, z_c, z_o = jnp.split(z, 4, axis=-1)
        p = params.peephole
        if p is not None:
            z_i, z_f = z_i + p[0] * c_prev, z_f + p[1] * c_prev
        clip = (
            (lambda v: v) if self.clip is None else (lambda v: jnp.clip(v, -self.clip, self.clip))
        )
        i = rec(clip(z_i))
        f = 1.0 - i if self.input_forget else rec(clip(z_f))
        c = f * c_prev + i * act(clip(z_c))
        if p is not None:
            z_o = z_o + p[2] * c
        return rec(clip(z_o)) * act(c), c


def peephole_lstm_scan(
    params: PeepholeLSTMParams,
    x: jax.Array,
    *,
    activation: str | Activation = "tanh",
    recurrent_activation: str | Activation = "sigmoid",
    clip: float | None = None,
    input_forget: bool = False,
    **options,
) -> tuple[jax.Array, LSTMState]:
    """Run the LSTM above over a sequence; every other option as for :func:`jaxlstm.lstm_scan`
    (``impl="cudnn"`` raises). Returns ``(outputs, LSTMState(h, c))``.

    Example:
      >>> import jax.numpy as jnp
      >>> p = PeepholeLSTMParams(jnp.ones((3, 8)), jnp.ones((2, 8)), None, jnp.ones((3, 2)))
      >>> y, state = peephole_lstm_scan(p, jnp.ones((4, 5, 3)), clip=1.0)
      >>> y.shape, state.c.shape
      ((4, 5, 2), (4, 2))
    """
    cell = PeepholeLSTMCell(
        get_activation(activation),
        get_activation(recurrent_activation),
        None if clip is None else float(clip),
        bool(input_forget),
    )
    return rnn.scan(cell, params, x, **options)


def peephole_lstm_layer(params: PeepholeLSTMParams, x, **options):
    """A layer call, ``outputs`` or ``(outputs, h, c)``: ``core/layer.py``'s ``rnn_layer`` over
    :func:`peephole_lstm_scan`."""
    from jaxlstm._src.core.layer import rnn_layer

    return rnn_layer(peephole_lstm_scan, params, x, **options)
