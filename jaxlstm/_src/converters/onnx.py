"""ONNX's recurrent layouts (the ``LSTM``, ``GRU`` and ``RNN`` operators) <-> jaxlstm's (Keras's).

Per direction ``d`` (forward 0, backward 1 of a bidirectional node) ONNX keeps::

    W[d]  (G*H, in)   row blocks in the order of ONNX_GATES
    R[d]  (G*H, H)
    B[d]  (2*G*H,)    [Wb | Rb]: the input biases, then the recurrent ones, each in that order

An LSTM's step (no peepholes, no clip, no input_forget) is Keras's with ``f = recurrent
activation``, ``g = h = activation``; an RNN's is Keras's SimpleRNN; a GRU with
``linear_before_reset=1`` computes ``g(x W_h^T + Wb_h + r * (h R_h^T + Rb_h))``, Keras's
``reset_after=True`` (bias ``(2, 3u)``: Wb, Rb), and with ``linear_before_reset=0``
``g(x W_h^T + (r * h) R_h^T + Rb_h + Wb_h)``, Keras's ``reset_after=False`` with bias
``Wb + Rb`` ``(3u,)``. So each conversion is a transpose and a row-block permutation.
"""

from __future__ import annotations

import numpy as np

from jaxlstm._src.converters.gates import check_table, from_jaxlstm_order, to_jaxlstm_order
from jaxlstm._src.core.gru import GRUParams
from jaxlstm._src.core.lstm import LSTMParams
from jaxlstm._src.core.simple_rnn import SimpleRNNParams

# ONNX's row blocks in file order: (ONNX's name, jaxlstm's gate).
ONNX_GATES = {
    "LSTM": (("i", "i"), ("o", "o"), ("f", "f"), ("c", "c")),
    "GRU": (("z", "z"), ("r", "r"), ("h", "h")),
    "SimpleRNN": (("i", "h"),),
}
check_table(ONNX_GATES)

ONNX_OPS = {"LSTM": "LSTM", "GRU": "GRU", "SimpleRNN": "RNN"}
FAMILY_OF_OP = {op: family for family, op in ONNX_OPS.items()}

_PARAMS = {"LSTM": LSTMParams, "GRU": GRUParams, "SimpleRNN": SimpleRNNParams}


def from_onnx(family: str, w, r, b=None, *, reset_after: bool = True):
    """One direction of an ONNX node (``W[d]``, ``R[d]``, ``B[d]`` or ``None``) as the family's
    params in Keras's layout."""
    blocks = ONNX_GATES[family]
    kernel = np.ascontiguousarray(to_jaxlstm_order(w, blocks).T)
    recurrent = np.ascontiguousarray(to_jaxlstm_order(r, blocks).T)
    bias = None
    if b is not None:
        wb, rb = np.split(np.asarray(b), 2)
        wb, rb = to_jaxlstm_order(wb, blocks), to_jaxlstm_order(rb, blocks)
        bias = np.stack([wb, rb]) if family == "GRU" and reset_after else wb + rb
    return _PARAMS[family](kernel, recurrent, bias)


def to_onnx(family: str, params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inverse of :func:`from_onnx` for one direction: ``(W[d], R[d], B[d])``, a zero
    ``B[d]`` when ``params.bias`` is ``None``. A GRU's ``(2, 3u)`` bias is ``[Wb | Rb]``
    (``linear_before_reset=1``), a ``(3u,)`` one ``[bias | 0]`` (``linear_before_reset=0``)."""
    blocks = ONNX_GATES[family]
    w = from_jaxlstm_order(np.asarray(params.kernel).T, blocks)
    r = from_jaxlstm_order(np.asarray(params.recurrent_kernel).T, blocks)
    rows = w.shape[0]
    if params.bias is None:
        b = np.zeros(2 * rows, w.dtype)
    else:
        bias = np.asarray(params.bias)
        wb, rb = (bias[0], bias[1]) if bias.ndim == 2 else (bias, np.zeros_like(bias))
        b = np.concatenate([from_jaxlstm_order(wb, blocks), from_jaxlstm_order(rb, blocks)])
    return tuple(np.ascontiguousarray(a, np.float32) for a in (w, r, b))


def peephole_from_onnx(p) -> np.ndarray:
    """ONNX's ``P[d]`` ``(3H,)``, blocks i, o, f, as jaxlstm's ``peephole`` ``(3, u)``, rows
    i, f, o."""
    p_i, p_o, p_f = np.split(np.asarray(p), 3)
    return np.stack([p_i, p_f, p_o])


def peephole_to_onnx(peephole) -> np.ndarray:
    """The inverse of :func:`peephole_from_onnx`."""
    p_i, p_f, p_o = np.asarray(peephole)
    return np.ascontiguousarray(np.concatenate([p_i, p_o, p_f]), np.float32)
