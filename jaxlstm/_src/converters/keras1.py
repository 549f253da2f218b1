"""Keras 1 layouts. The LSTM: twelve arrays, one kernel, recurrent kernel and bias per gate,
saved in the order i, c, f, o (``W_i, U_i, b_i, W_c, U_c, b_c, W_f, U_f, b_f, W_o, U_o, b_o``).

Repacked as Keras 2's own legacy loader does (``preprocess_weights_for_loading``)::

    kernel = [W_i | W_f | W_c | W_o]   recurrent_kernel = [U_i | U_f | U_c | U_o]   bias likewise

The GRU: nine arrays ``W_z, U_z, b_z, W_r, U_r, b_r, W_h, U_h, b_h``, concatenated in that gate
order (Keras 2's loader again), with ``reset_after=False`` semantics (Keras 1 resets ``h``
before the recurrent matmul). Keras 1's SimpleRNN (``W, U, b``) is Keras 2's layout already.
"""

from __future__ import annotations

import numpy as np

from jaxlstm._src.core.gru import GRUParams
from jaxlstm._src.core.lstm import LSTMParams

KERAS1_GRU_ORDER = ("W_z", "U_z", "b_z", "W_r", "U_r", "b_r", "W_h", "U_h", "b_h")
KERAS1_ORDER = ("W_i", "U_i", "b_i", "W_c", "U_c", "b_c", "W_f", "U_f", "b_f", "W_o", "U_o", "b_o")


def from_keras1(arrays: dict[str, np.ndarray]) -> LSTMParams:
    """``arrays`` maps each name of :data:`KERAS1_ORDER` to its array."""
    gates = ("i", "f", "c", "o")  # Keras 2 packing order
    return LSTMParams(
        np.concatenate([arrays[f"W_{g}"] for g in gates], axis=-1),
        np.concatenate([arrays[f"U_{g}"] for g in gates], axis=-1),
        np.concatenate([arrays[f"b_{g}"] for g in gates], axis=-1),
    )


def from_keras1_gru(arrays: dict[str, np.ndarray]) -> GRUParams:
    """``arrays`` maps each name of :data:`KERAS1_GRU_ORDER` to its array."""
    return GRUParams(*(np.concatenate([arrays[f"{p}_{g}"] for g in "zrh"], axis=-1) for p in "WUb"))
