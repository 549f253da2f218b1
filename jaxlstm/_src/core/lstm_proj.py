"""An LSTM with a projected output (PyTorch's ``nn.LSTM(proj_size=p)``), as a cell of the scan
driver (``rnn.py``). Pure functions over pytrees; nothing here imports Flax.

The LSTM of ``lstm.py`` (gate order i, f, c, o, Keras's layout), except that the step's output
is projected to ``p < units`` entries, and that projection is the recurrent ``h``::

    z   = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias     recurrent_kernel (p, 4u)
    c_t = f * c_{t-1} + i * φ(z_c)                              as the LSTM, c_t (u,)
    h_t = (o * φ(c_t)) @ projection                             projection (u, p), h_t (p,)

which is PyTorch's ``h_t = W_hr (o_t ⊙ tanh(c_t))`` with ``projection = W_hr^T``. The step is
not one matmul and an elementwise update, so the scan is differentiated by plain autodiff.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

from jaxlstm._src.core import fast, rnn
from jaxlstm._src.core.activations import Activation, get_activation
from jaxlstm._src.core.lstm import LSTMCell, LSTMState
from jaxlstm._src.errors import ShapeError


class ProjLSTMParams(NamedTuple):
    """Projected-LSTM weights, Keras's LSTM layout plus the projection.

    Attributes:
      kernel: ``(in_features, 4 * units)``. recurrent_kernel: ``(proj_size, 4 * units)``.
      bias: ``(4 * units,)`` or ``None``. projection: ``(units, proj_size)``.
    """

    kernel: jax.Array
    recurrent_kernel: jax.Array
    bias: jax.Array | None = None
    projection: jax.Array | None = None

    @property
    def units(self) -> int:
        return self.projection.shape[0]

    @property
    def proj_size(self) -> int:
        return self.projection.shape[1]

    @property
    def in_features(self) -> int:
        return self.kernel.shape[0]


class ProjLSTMCell(NamedTuple):
    """The projected LSTM's step for the scan driver. States ``(h, c)``: ``h`` ``(p,)``, ``c``
    ``(u,)`` (:class:`LSTMState`)."""

    activation: Activation
    recurrent_activation: Activation

    name = "ProjLSTM"
    gates = 4
    gate_order = "i|f|c|o"
    params_type = ProjLSTMParams
    state_type = LSTMState
    fused = False

    @property
    def activations(self):
        return (self.activation, self.recurrent_activation)

    def check_params(self, params):
        k, rk, b, proj = params
        if proj is None or proj.ndim != 2:
            raise ShapeError(
                "a projected LSTM needs projection (units, proj_size); received "
                f"{None if proj is None else tuple(proj.shape)}."
            )
        u, p = proj.shape
        want = {"kernel": (None, 4 * u), "recurrent_kernel": (p, 4 * u)}
        for name, a in (("kernel", k), ("recurrent_kernel", rk)):
            shape = want[name]
            if (
                a.ndim != 2
                or (shape[0] is not None and a.shape[0] != shape[0])
                or (a.shape[1] != shape[1])
            ):
                raise ShapeError(
                    f"{name} has shape {tuple(a.shape)}; expected "
                    f"({'in_features' if shape[0] is None else shape[0]}, {shape[1]}) for "
                    f"units={u}, proj_size={p} (projection {tuple(proj.shape)})."
                )
        if b is not None and tuple(b.shape) != (4 * u,):
            raise ShapeError(f"bias has shape {tuple(b.shape)}; expected ({4 * u},).")

    @staticmethod
    def output_units(params):
        return params.projection.shape[1]

    @staticmethod
    def state_units(params):
        return (params.projection.shape[1], params.projection.shape[0])

    def step(self, params, state, x_t, rdm=None, compute_dtype=None):
        h = state[0] if rdm is None else state[0] * rdm
        z = fast.matmul(x_t, params.kernel, compute_dtype) + fast.matmul(
            h, params.recurrent_kernel, compute_dtype
        )
        if params.bias is not None:
            z = z + params.bias
        full, c = LSTMCell(self.activation, self.recurrent_activation).update(z, state)
        return fast.matmul(full, params.projection, compute_dtype), c


def proj_lstm_scan(
    params: ProjLSTMParams,
    x: jax.Array,
    *,
    activation: str | Activation = "tanh",
    recurrent_activation: str | Activation = "sigmoid",
    **options,
) -> tuple[jax.Array, LSTMState]:
    """Run a projected LSTM over a sequence; every option as for :func:`jaxlstm.lstm_scan`
    (``impl="cudnn"`` raises). Returns ``(outputs, LSTMState(h, c))``, outputs and ``h`` of
    ``proj_size`` entries.

    Example:
      >>> import jax.numpy as jnp
      >>> p = ProjLSTMParams(jnp.ones((3, 8)), jnp.ones((1, 8)), None, jnp.ones((2, 1)) / 4)
      >>> y, state = proj_lstm_scan(p, jnp.ones((4, 5, 3)))
      >>> y.shape, state.c.shape
      ((4, 5, 1), (4, 2))
    """
    cell = ProjLSTMCell(get_activation(activation), get_activation(recurrent_activation))
    return rnn.scan(cell, params, x, **options)


def proj_lstm_layer(params: ProjLSTMParams, x, **options):
    """A projected LSTM layer call, ``outputs`` or ``(outputs, h, c)``: ``core/layer.py``'s
    ``rnn_layer`` over :func:`proj_lstm_scan` (Keras 3's dropout masks, ``h`` of
    ``proj_size``)."""
    from jaxlstm._src.core.layer import rnn_layer

    return rnn_layer(proj_lstm_scan, params, x, **options)
