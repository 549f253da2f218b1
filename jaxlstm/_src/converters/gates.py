"""Gate orders: the one permutation between another framework's stacked gate blocks and
jaxlstm's (Keras's) columns, shared by the PyTorch and ONNX converters.

jaxlstm keeps Keras's layout: an LSTM's ``4u`` columns are i, f, c, o, a GRU's ``3u`` are z, r, h,
a SimpleRNN's ``u`` are h. Another framework stores the same gates as row blocks in its own order;
each framework's table (``converters/torch.py``, ``converters/onnx.py``) names its blocks in file
order and says which jaxlstm gate each one is. :func:`to_jaxlstm_order` and
:func:`from_jaxlstm_order` apply such a table, one block per gate, along axis 0.
"""

from __future__ import annotations

import numpy as np

# jaxlstm's (Keras's) gate letters in column order, per family.
JAXLSTM_GATES = {"LSTM": ("i", "f", "c", "o"), "GRU": ("z", "r", "h"), "SimpleRNN": ("h",)}


def check_table(table: dict[str, tuple[tuple[str, str], ...]]) -> None:
    """Every family's blocks are a permutation of jaxlstm's gates (a table written wrong is
    our bug: this runs at import)."""
    for family, blocks in table.items():
        if sorted(g for _, g in blocks) != sorted(JAXLSTM_GATES[family]):
            raise AssertionError(f"gate table for {family} is not a permutation: {blocks}")


def to_jaxlstm_order(array: np.ndarray, blocks: tuple[tuple[str, str], ...]) -> np.ndarray:
    """``array``'s axis 0 holds ``len(blocks)`` gate blocks in the file's order (``blocks``:
    ``(file name, jaxlstm gate)`` pairs); returns them in jaxlstm's order, along axis 0."""
    family = _family(blocks)
    parts = dict(zip((g for _, g in blocks), np.split(np.asarray(array), len(blocks)), strict=True))
    return np.concatenate([parts[g] for g in JAXLSTM_GATES[family]], axis=0)


def from_jaxlstm_order(array: np.ndarray, blocks: tuple[tuple[str, str], ...]) -> np.ndarray:
    """The inverse of :func:`to_jaxlstm_order`: axis 0 in jaxlstm's gate order -> the file's."""
    family = _family(blocks)
    gates = JAXLSTM_GATES[family]
    parts = dict(zip(gates, np.split(np.asarray(array), len(gates)), strict=True))
    return np.concatenate([parts[g] for _, g in blocks], axis=0)


def gate_slices(blocks: tuple[tuple[str, str], ...], units: int) -> list[tuple[str, str, str]]:
    """For ``inspect``: ``(file name, file rows, jaxlstm columns)`` per block in file order,
    e.g. ``("g", "2u:3u = 16:24", "c, 16:24")``."""
    family = _family(blocks)
    gates = JAXLSTM_GATES[family]
    rows = []
    for k, (name, gate) in enumerate(blocks):
        j = gates.index(gate)
        rows.append(
            (name, f"{k * units}:{(k + 1) * units}", f"{gate} {j * units}:{(j + 1) * units}")
        )
    return rows


def _family(blocks) -> str:
    gates = sorted(g for _, g in blocks)
    for family, own in JAXLSTM_GATES.items():
        if sorted(own) == gates:
            return family
    raise AssertionError(f"no family has gates {gates}")
