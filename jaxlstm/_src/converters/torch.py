"""PyTorch's recurrent layouts (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``) <-> jaxlstm's (Keras's).

PyTorch keeps, per layer ``k`` and direction (``_reverse`` for the backward one)::

    weight_ih_l{k}   (G*H, in)   row blocks in the order of TORCH_GATES
    weight_hh_l{k}   (G*H, H)
    bias_ih_l{k}     (G*H,)      absent with bias=False
    bias_hh_l{k}     (G*H,)

and computes, for the LSTM, ``gates = x W_ih^T + b_ih + h W_hh^T + b_hh`` split i, f, g, o
(g is Keras's c; the same order as Keras's), for the RNN ``h = act(x W_ih^T + b_ih + h W_hh^T
+ b_hh)``, and for the GRU (rows r, z, n)::

    r = σ(x W_ir^T + b_ir + h W_hr^T + b_hr)
    z = σ(x W_iz^T + b_iz + h W_hz^T + b_hz)
    n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))
    h = (1 - z) * n + z * h

which is Keras's ``GRU(reset_after=True)`` exactly: ``r * (h @ U_h + b_rec_h)``, the input
and recurrent biases apart (Keras's bias ``(2, 3u)``), ``h = z * h + (1 - z) * hh``. So each
conversion is a transpose and a row-block permutation; an LSTM's or RNN's two biases (added
in the same sum) become Keras's one bias ``b_ih + b_hh``, and written back as ``bias_ih = bias,
bias_hh = 0``.
"""

from __future__ import annotations

import numpy as np

from jaxlstm._src.converters.gates import (
    JAXLSTM_GATES,
    check_table,
    from_jaxlstm_order,
    to_jaxlstm_order,
)
from jaxlstm._src.core.gru import GRUParams
from jaxlstm._src.core.lstm import LSTMParams
from jaxlstm._src.core.lstm_proj import ProjLSTMParams
from jaxlstm._src.core.simple_rnn import SimpleRNNParams

# PyTorch's row blocks in file order: (PyTorch's name, jaxlstm's gate).
TORCH_GATES = {
    "LSTM": (("i", "i"), ("f", "f"), ("g", "c"), ("o", "o")),
    "GRU": (("r", "r"), ("z", "z"), ("n", "h")),
    "SimpleRNN": (("h", "h"),),
}
check_table(TORCH_GATES)

# PyTorch's class per jaxlstm family, and back.
TORCH_CLASSES = {"LSTM": "LSTM", "GRU": "GRU", "SimpleRNN": "RNN"}
GATES_PER_FAMILY = {family: len(gates) for family, gates in JAXLSTM_GATES.items()}

_PARAMS = {"LSTM": LSTMParams, "GRU": GRUParams, "SimpleRNN": SimpleRNNParams}


def from_torch(family: str, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None):
    """One direction of one PyTorch layer as the family's params in Keras's layout:
    ``kernel = W_ih^T``, ``recurrent_kernel = W_hh^T`` with columns in jaxlstm's gate order;
    bias ``b_ih + b_hh`` (LSTM, SimpleRNN) or ``[b_ih; b_hh]`` ``(2, 3u)`` (GRU); ``None``
    without biases. An LSTM with ``proj_size`` (``w_hr`` ``(P, H)``) gives
    :class:`ProjLSTMParams` with ``projection = W_hr^T``. Arrays are numpy, shapes already
    checked by the caller."""
    blocks = TORCH_GATES[family]
    kernel = to_jaxlstm_order(w_ih, blocks).T
    recurrent = to_jaxlstm_order(w_hh, blocks).T
    bias = None
    if b_ih is not None:
        b_ih, b_hh = to_jaxlstm_order(b_ih, blocks), to_jaxlstm_order(b_hh, blocks)
        bias = np.stack([b_ih, b_hh]) if family == "GRU" else b_ih + b_hh
    kernel, recurrent = np.ascontiguousarray(kernel), np.ascontiguousarray(recurrent)
    if w_hr is not None:
        return ProjLSTMParams(kernel, recurrent, bias, np.ascontiguousarray(np.asarray(w_hr).T))
    return _PARAMS[family](kernel, recurrent, bias)


def to_torch(family: str, params) -> dict[str, np.ndarray]:
    """The inverse of :func:`from_torch` for one direction of one layer: ``{"weight_ih": ...,
    "weight_hh": ..., "bias_ih": ..., "bias_hh": ...}`` (no biases when ``params.bias`` is
    ``None``), and ``"weight_hr"`` for :class:`ProjLSTMParams`. A GRU's bias must be ``(2, 3u)``
    (``reset_after=True``; the caller refuses the other convention)."""
    blocks = TORCH_GATES[family]
    out = {
        "weight_ih": from_jaxlstm_order(np.asarray(params.kernel).T, blocks),
        "weight_hh": from_jaxlstm_order(np.asarray(params.recurrent_kernel).T, blocks),
    }
    if params.bias is not None:
        bias = np.asarray(params.bias)
        if family == "GRU":
            b_ih, b_hh = bias[0], bias[1]
        else:
            b_ih, b_hh = bias, np.zeros_like(bias)
        out["bias_ih"] = from_jaxlstm_order(b_ih, blocks)
        out["bias_hh"] = from_jaxlstm_order(b_hh, blocks)
    if getattr(params, "projection", None) is not None:  # nn.LSTM(proj_size=p)
        out["weight_hr"] = np.asarray(params.projection).T
    return {k: np.ascontiguousarray(v) for k, v in out.items()}
