"""Converters: one per source weight layout, each to :class:`LSTMParams` in Keras layout.

:func:`params_from_arrays` picks the layout from what a file holds, as Keras's own legacy loader
does: twelve per-gate arrays are Keras 1, a ``8u`` bias is CuDNNLSTM, else Keras 2/3.
"""

from __future__ import annotations

import re

import numpy as np

from jaxlstm._src.converters.cudnn import from_cudnn
from jaxlstm._src.converters.keras import from_keras
from jaxlstm._src.converters.keras1 import KERAS1_ORDER, from_keras1
from jaxlstm._src.core.lstm import LSTMParams
from jaxlstm._src.errors import KerasFileError

_NAMES = ("kernel", "recurrent_kernel", "bias")


def params_from_arrays(weights: list[tuple[str, np.ndarray]], where: str) -> tuple[LSTMParams, str]:
    """Turn one LSTM's arrays (``[(name, array)]`` in file order) into ``LSTMParams``.

    Returns ``(params, layout)`` with layout ``"keras"``, ``"keras1"`` or ``"cudnn"``.
    ``where`` (file and layer) prefixes error messages.
    """
    listing = ", ".join(f"{n} {tuple(np.shape(a))}" for n, a in weights) or "none"
    if len(weights) == 12:
        arrays = _keras1_arrays(weights)
        _check_keras1(arrays, where, listing)
        return from_keras1(arrays), "keras1"
    if len(weights) not in (2, 3):
        raise KerasFileError(
            f"{where}: expected an LSTM's 3 arrays (kernel, recurrent_kernel, bias), 2 without "
            f"bias, or Keras 1's 12 per-gate arrays; found {len(weights)}: {listing}."
        )
    arrays = _by_name(weights)
    kernel, recurrent, bias = (arrays.get(n) for n in _NAMES)
    if recurrent is None or recurrent.ndim != 2 or recurrent.shape[1] != 4 * recurrent.shape[0]:
        raise KerasFileError(
            f"{where}: recurrent_kernel should have shape (units, 4*units); found {listing}."
        )
    units = recurrent.shape[0]
    if kernel is None or kernel.ndim != 2 or kernel.shape[1] != 4 * units:
        raise KerasFileError(
            f"{where}: kernel should have shape (in_features, 4*units) = (in_features, "
            f"{4 * units}) for units={units} (from recurrent_kernel); found {listing}."
        )
    if bias is not None and bias.shape == (8 * units,):
        return from_cudnn(kernel, recurrent, bias), "cudnn"
    if bias is not None and bias.shape != (4 * units,):
        raise KerasFileError(
            f"{where}: bias should have shape (4*units,) = ({4 * units},) (or ({8 * units},) for "
            f"CuDNNLSTM) for units={units}; found {listing}."
        )
    return from_keras(kernel, recurrent, bias), "keras"


def _by_name(weights) -> dict[str, np.ndarray]:
    """Map arrays to kernel / recurrent_kernel / bias by the last part of their names
    (``lstm_1/kernel:0``), else by position (Keras always saves them in that order)."""
    found = {}
    for name, array in weights:
        tail = re.sub(r":\d+$", "", name).split("/")[-1]
        if tail in _NAMES:
            found[tail] = np.asarray(array)
    if len(found) != len(weights):
        found = {key: np.asarray(a) for key, (_, a) in zip(_NAMES, weights, strict=False)}
    return found


def _check_keras1(arrays: dict[str, np.ndarray], where: str, listing: str) -> None:
    """Keras 1's per-gate arrays fit one LSTM: every ``W_g`` ``(in, u)``, ``U_g`` ``(u, u)``,
    ``b_g`` ``(u,)``, with the same ``in`` and ``u`` for the four gates."""
    w = np.shape(arrays["W_i"])
    u = w[-1] if len(w) == 2 else -1
    want = {"W": (w[0] if w else -1, u), "U": (u, u), "b": (u,)}
    if u < 1 or any(np.shape(a) != want[key[0]] for key, a in arrays.items()):
        raise KerasFileError(
            f"{where}: Keras 1's per-gate arrays should be W_* (in_features, units), U_* (units, "
            f"units) and b_* (units,), the same for the four gates (W_i gives {w}); found "
            f"{listing}. The file is damaged or inconsistent."
        )


def _keras1_arrays(weights) -> dict[str, np.ndarray]:
    """Keras 1's per-gate arrays by their name suffix (``lstm_1_W_i``), else in saved order."""
    found = {}
    for name, array in weights:
        m = re.search(r"_([WUb]_[icfo])$", re.sub(r":\d+$", "", name))
        if m:
            found[m.group(1)] = np.asarray(array)
    if set(found) != set(KERAS1_ORDER):
        found = {key: np.asarray(a) for key, (_, a) in zip(KERAS1_ORDER, weights, strict=True)}
    return found
