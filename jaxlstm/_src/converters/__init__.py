"""Converters: one per source weight layout, each to a cell's params in Keras 2/3 layout.

:func:`params_from_arrays` picks the layout from what a file holds, as Keras's own legacy loader
does: per-gate arrays are Keras 1 (twelve for an LSTM, nine for a GRU), a ``8u`` / ``6u`` bias is
CuDNNLSTM / CuDNNGRU, else Keras 2/3.
"""

from __future__ import annotations

import re

import numpy as np

from jaxlstm._src.converters.cudnn import from_cudnn, from_cudnn_gru
from jaxlstm._src.converters.keras1 import (
    KERAS1_GRU_ORDER,
    KERAS1_ORDER,
    from_keras1,
    from_keras1_gru,
)
from jaxlstm._src.core.conv_lstm import ConvLSTMParams
from jaxlstm._src.core.gru import GRUParams
from jaxlstm._src.core.lstm import LSTMParams
from jaxlstm._src.core.simple_rnn import SimpleRNNParams
from jaxlstm._src.errors import KerasFileError
from jaxlstm._src.vocabulary import RECURRENT_CLASSES, RecurrentClass

LSTM_KIND = RECURRENT_CLASSES["LSTM"]

_NAMES = ("kernel", "recurrent_kernel", "bias")


def params_from_arrays(
    weights: list[tuple[str, np.ndarray]], where: str, kind: RecurrentClass = LSTM_KIND
) -> tuple[LSTMParams | GRUParams | SimpleRNNParams, str]:
    """Turn one recurrent layer's arrays (``[(name, array)]`` in file order) into the params of
    its ``kind``'s family (:class:`LSTMParams`, :class:`GRUParams`, :class:`SimpleRNNParams`).

    Returns ``(params, layout)`` with layout ``"keras"``, ``"keras1"`` or ``"cudnn"``, picked
    from the arrays as Keras's legacy loader picks it: Keras 1's per-gate arrays (12 for an LSTM,
    9 for a GRU), a CuDNN bias (``8u`` LSTM, ``6u`` GRU), else Keras 2/3's layout. A GRU's
    bias shape then tells its convention: ``(2, 3u)`` is ``reset_after=True``, ``(3u,)``
    ``False``. ``where`` (file and layer) prefixes error messages.
    """
    listing = ", ".join(f"{n} {tuple(np.shape(a))}" for n, a in weights) or "none"
    family, g = kind.family, kind.gates
    if family == "ConvLSTM":
        return _conv_lstm_params(weights, where, listing, kind.rank), "keras"
    per_gate = {"LSTM": KERAS1_ORDER, "GRU": KERAS1_GRU_ORDER}.get(family)
    if per_gate and len(weights) == len(per_gate):
        arrays = _keras1_arrays(weights, per_gate)
        _check_keras1(arrays, where, listing, per_gate)
        convert = from_keras1 if family == "LSTM" else from_keras1_gru
        return convert(arrays), "keras1"
    if len(weights) not in (2, 3):
        gates_text = f", or Keras 1's {len(per_gate)} per-gate arrays" if per_gate else ""
        raise KerasFileError(
            f"{where}: expected {'an' if family == 'LSTM' else 'a'} {family}'s 3 arrays (kernel, "
            f"recurrent_kernel, bias), 2 without bias{gates_text}; found {len(weights)}: "
            f"{listing}."
        )
    arrays = _by_name(weights)
    kernel, recurrent, bias = (arrays.get(n) for n in _NAMES)
    cols = f"{g}*units" if g > 1 else "units"
    if recurrent is None or recurrent.ndim != 2 or recurrent.shape[1] != g * recurrent.shape[0]:
        raise KerasFileError(
            f"{where}: recurrent_kernel should have shape (units, {cols}); found {listing}."
        )
    units = recurrent.shape[0]
    if kernel is None or kernel.ndim != 2 or kernel.shape[1] != g * units:
        raise KerasFileError(
            f"{where}: kernel should have shape (in_features, {cols}) = (in_features, "
            f"{g * units}) for units={units} (from recurrent_kernel); found {listing}."
        )
    shape = None if bias is None else bias.shape
    if family != "SimpleRNN" and shape == (2 * g * units,):
        convert = from_cudnn if family == "LSTM" else from_cudnn_gru
        return convert(kernel, recurrent, bias), "cudnn"
    allowed = {"LSTM": [(4 * units,)], "GRU": [(3 * units,), (2, 3 * units)]}.get(
        family, [(units,)]
    )
    if shape is not None and shape not in allowed:
        texts = {
            "LSTM": f"(4*units,) = ({4 * units},) (or ({8 * units},) for CuDNNLSTM)",
            "GRU": f"(3*units,) = ({3 * units},) for reset_after=False, (2, 3*units) = (2, "
            f"{3 * units}) for reset_after=True (or ({6 * units},) for CuDNNGRU)",
            "SimpleRNN": f"(units,) = ({units},)",
        }
        raise KerasFileError(
            f"{where}: bias should have shape {texts[family]} for units={units}; found {listing}."
        )
    params_type = {"LSTM": LSTMParams, "GRU": GRUParams, "SimpleRNN": SimpleRNNParams}[family]
    return params_type(kernel, recurrent, bias), "keras"


def _conv_lstm_params(weights, where: str, listing: str, rank: int) -> ConvLSTMParams:
    """A ``ConvLSTM{rank}D``'s kernel ``(*k, in, 4f)``, recurrent_kernel ``(*k, f, 4f)`` and
    bias ``(4f,)`` (Keras 2 and 3 store them alike; Keras 1's per-gate ConvLSTM arrays are not
    read)."""
    if len(weights) not in (2, 3):
        raise KerasFileError(
            f"{where}: expected a ConvLSTM{rank}D's 3 arrays (kernel, recurrent_kernel, bias), "
            f"2 without bias; found {len(weights)}: {listing}. (Keras 1's per-gate ConvLSTM "
            "arrays are not read: re-save the model with Keras 2 or 3.)"
        )
    arrays = _by_name(weights)
    kernel, recurrent, bias = (arrays.get(n) for n in _NAMES)
    f = recurrent.shape[-2] if recurrent is not None and recurrent.ndim == rank + 2 else -1
    if f < 1 or recurrent.shape[-1] != 4 * f:
        raise KerasFileError(
            f"{where}: recurrent_kernel should have shape (*kernel_size, filters, 4*filters) "
            f"with {rank} kernel axes; found {listing}."
        )
    k = recurrent.shape[:rank]
    if (
        kernel is None
        or kernel.ndim != rank + 2
        or kernel.shape[:rank] != k
        or (kernel.shape[-1] != 4 * f)
    ):
        raise KerasFileError(
            f"{where}: kernel should have shape (*kernel_size, in_channels, 4*filters) = "
            f"({', '.join(map(str, k))}, in_channels, {4 * f}) for filters={f} (from "
            f"recurrent_kernel); found {listing}."
        )
    if bias is not None and bias.shape != (4 * f,):
        raise KerasFileError(
            f"{where}: bias should have shape (4*filters,) = ({4 * f},) for filters={f}; found "
            f"{listing}."
        )
    return ConvLSTMParams(kernel, recurrent, bias)


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


def _check_keras1(arrays: dict[str, np.ndarray], where: str, listing: str, order) -> None:
    """Keras 1's per-gate arrays fit one layer: every ``W_g`` ``(in, u)``, ``U_g`` ``(u, u)``,
    ``b_g`` ``(u,)``, with the same ``in`` and ``u`` for all gates."""
    first = order[0]
    w = np.shape(arrays[first])
    u = w[-1] if len(w) == 2 else -1
    want = {"W": (w[0] if w else -1, u), "U": (u, u), "b": (u,)}
    if u < 1 or any(np.shape(a) != want[key[0]] for key, a in arrays.items()):
        raise KerasFileError(
            f"{where}: Keras 1's per-gate arrays should be W_* (in_features, units), U_* (units, "
            f"units) and b_* (units,), the same for every gate ({first} gives {w}); found "
            f"{listing}. The file is damaged or inconsistent."
        )


def _keras1_arrays(weights, order) -> dict[str, np.ndarray]:
    """Keras 1's per-gate arrays by their name suffix (``lstm_1_W_i``, ``gru_1_U_z``), else in
    saved order (``order``)."""
    found = {}
    for name, array in weights:
        m = re.search(r"_([WUb]_[icforzh])$", re.sub(r":\d+$", "", name))
        if m:
            found[m.group(1)] = np.asarray(array)
    if set(found) != set(order):
        found = {key: np.asarray(a) for key, (_, a) in zip(order, weights, strict=True)}
    return found
