"""CuDNN layouts (Keras 2 ``CuDNNLSTM`` / ``CuDNNGRU``, ``tf.compat.v1.keras.layers.CuDNN*``).

Gates i, f, c, o as in Keras, but cuDNN keeps separate input and recurrent biases (``bias`` has
``8u`` entries) and stores each gate's kernel block transposed in its own memory order. This is
exactly Keras 2's ``_convert_rnn_weights`` (legacy HDF5 loader), CuDNNLSTM -> LSTM:

* each ``(in, u)`` block ``k`` of ``kernel`` becomes ``k.T.reshape(k.shape, order="F")``;
* each ``(u, u)`` block of ``recurrent_kernel`` is transposed;
* the two bias halves are summed.

``CuDNNGRU`` -> ``GRU(reset_after=True)`` is the same with three gates z, r, h, except that the
bias ``(6u,)`` is reshaped to ``(2, 3u)`` (input and recurrent biases stay apart).
"""

from __future__ import annotations

import numpy as np

from jaxlstm._src.core.gru import GRUParams
from jaxlstm._src.core.lstm import LSTMParams


def _per_gate(kernel: np.ndarray, fn, gates: int = 4) -> np.ndarray:
    return np.hstack([fn(k) for k in np.hsplit(kernel, gates)])


def from_cudnn(kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray) -> LSTMParams:
    """CuDNNLSTM arrays ``kernel (in, 4u)``, ``recurrent_kernel (u, 4u)``, ``bias (8u,)``."""
    return LSTMParams(
        _per_gate(kernel, lambda k: k.T.reshape(k.shape, order="F")),
        _per_gate(recurrent_kernel, lambda k: k.T),
        np.sum(np.split(bias, 2), axis=0),
    )


def from_cudnn_gru(kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray) -> GRUParams:
    """CuDNNGRU arrays ``kernel (in, 3u)``, ``recurrent_kernel (u, 3u)``, ``bias (6u,)``, as
    ``GRU(reset_after=True)`` params (bias ``(2, 3u)``)."""
    return GRUParams(
        _per_gate(kernel, lambda k: k.T.reshape(k.shape, order="F"), 3),
        _per_gate(recurrent_kernel, lambda k: k.T, 3),
        np.asarray(bias).reshape(2, -1),
    )


def to_cudnn(params: LSTMParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inverse of :func:`from_cudnn` (Keras's LSTM -> CuDNNLSTM), for writing files."""
    return (
        _per_gate(np.asarray(params.kernel), lambda k: k.T.reshape(k.shape, order="C")),
        _per_gate(np.asarray(params.recurrent_kernel), lambda k: k.T),
        np.tile(0.5 * np.asarray(params.bias), 2),
    )
