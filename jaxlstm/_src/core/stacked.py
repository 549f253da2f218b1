"""Stacked cells: Keras's ``RNN([cell, cell, ...])`` and ``RNN(StackedRNNCells([...]))`` as one
cell of the scan driver (``rnn.py``).

At each time step the cells run in sequence: cell ``k``'s output ``h`` is cell ``k + 1``'s input,
and the layer's output is the last cell's ``h`` (``keras/src/layers/rnn/stacked_rnn_cells.py``).
Params are a tuple of the cells' params (cell 0 first, each in its Keras layout); the state is,
as Keras lists it, one entry per cell, each that cell's state NamedTuple (``[h]`` or ``[h, c]``).

Inside the driver the state is one flat tuple whose first array is the last cell's ``h`` (the
driver's output and what a mask carries): the last cell's arrays, then cells ``0 .. n-2``'s.
The step is not one matmul and an elementwise update, so the scan is differentiated by plain
autodiff (no fast backward pass). Nothing here imports Flax.
"""

from __future__ import annotations

import functools
from collections import namedtuple
from typing import NamedTuple

import jax

from jaxlstm._src.core import rnn
from jaxlstm._src.core.activations import get_activation
from jaxlstm._src.core.gru import GRUCell
from jaxlstm._src.core.lstm import LSTMCell
from jaxlstm._src.core.simple_rnn import SimpleRNNCell
from jaxlstm._src.errors import ShapeError, UnsupportedOptionError

FAMILIES = ("LSTM", "GRU", "SimpleRNN")


def cell_of(family: str, options) -> LSTMCell | GRUCell | SimpleRNNCell:
    """The core cell of one recurrent layer: ``family`` ``"LSTM"``, ``"GRU"`` or
    ``"SimpleRNN"`` and ``options`` with its ``activation`` (and ``recurrent_activation``,
    a GRU's ``reset_after``) as attributes, e.g. a ``jaxlstm.LSTM`` module (NNX or Linen)."""
    act = get_activation(options.activation)
    if family == "LSTM":
        return LSTMCell(act, get_activation(options.recurrent_activation))
    if family == "GRU":
        return GRUCell(act, get_activation(options.recurrent_activation), bool(options.reset_after))
    if family == "SimpleRNN":
        return SimpleRNNCell(act)
    raise UnsupportedOptionError(f"a cell of family {family!r}; expected one of {FAMILIES}.")


@functools.cache
def _flat_state_type(fields: tuple[str, ...]):
    return namedtuple("StackedFlatState", fields)


class StackedCell(NamedTuple):
    """Cells run in sequence at every step (``lstm.LSTMCell``, ``gru.GRUCell``,
    ``simple_rnn.SimpleRNNCell``), cell 0 first."""

    cells: tuple

    name = "Stacked"
    fused = False

    @property
    def activations(self):
        return tuple(f for c in self.cells for f in c.activations)

    def _order(self):
        """Cell indices in the flat state's order: the last cell first, then 0 .. n-2."""
        n = len(self.cells)
        return (n - 1, *range(n - 1))

    @property
    def state_type(self):
        return _flat_state_type(
            tuple(f"{f}{k}" for k in self._order() for f in self.cells[k].state_type._fields)
        )

    def check_params(self, params):
        if not isinstance(params, tuple) or len(params) != len(self.cells):
            got = len(params) if isinstance(params, tuple) else type(params).__name__
            raise ShapeError(
                f"stacked params have {got} entries; expected a tuple of {len(self.cells)}, one "
                "params NamedTuple per cell, cell 0 first."
            )
        width = None
        for k, (cell, p) in enumerate(zip(self.cells, params, strict=True)):
            rnn.check_params(cell, p)
            if width is not None and p.kernel.shape[0] != width:
                raise ShapeError(
                    f"cell {k}'s kernel has shape {tuple(p.kernel.shape)}; expected "
                    f"({width}, ...): its input is cell {k - 1}'s output h of {width} units."
                )
            width = p.recurrent_kernel.shape[0]

    def output_units(self, params):
        return params[-1].recurrent_kernel.shape[0]

    def state_units(self, params):
        return tuple(
            params[k].recurrent_kernel.shape[0]
            for k in self._order()
            for _ in self.cells[k].state_type._fields
        )

    @staticmethod
    def first_kernel(params):
        return params[0].kernel

    def split(self, flat):
        """The flat driver state as one tuple per cell, cell 0 first."""
        per_cell, i = {}, 0
        for k in self._order():
            n = len(self.cells[k].state_type._fields)
            per_cell[k] = tuple(flat[i : i + n])
            i += n
        return [per_cell[k] for k in range(len(self.cells))]

    def join(self, states):
        """One tuple per cell (cell 0 first) as the flat driver state."""
        return tuple(a for k in self._order() for a in states[k])

    def step(self, params, state, x_t, rdm=None, compute_dtype=None):
        if rdm is not None:
            raise UnsupportedOptionError("recurrent dropout on stacked cells is not supported.")
        new = []
        for cell, p, s in zip(self.cells, params, self.split(state), strict=True):
            s = cell.step(p, s, x_t, None, compute_dtype)
            x_t = s[0]
            new.append(s)
        return self.join(new)


def stacked_scan(
    cells,
    params,
    x: jax.Array,
    *,
    initial_state=None,
    mask: jax.Array | None = None,
    go_backwards: bool = False,
    return_sequences: bool = True,
    zero_output_for_mask: bool = False,
    dropout_mask: jax.Array | None = None,
    time_major: bool = False,
    unroll: int | bool = 1,
    compute_dtype=None,
    remat_chunk: int | None = None,
):
    """Run stacked cells over a sequence with Keras's semantics (``keras.layers.RNN`` over a
    list of cells or a ``StackedRNNCells``).

    Args:
      cells: the cells, cell 0 first (``jaxlstm._src.core.lstm.LSTMCell``, ``gru.GRUCell``,
        ``simple_rnn.SimpleRNNCell`` instances).
      params: one params NamedTuple per cell, same order, each in Keras's layout.
      initial_state: ``None`` (zeros) or one state per cell, cell 0 first, each the cell's
        state NamedTuple or a list (``[h, c]``, ``[h]`` or a lone ``h``), Keras's nested order;
        or all those arrays flat in the same order (``[h0, c0, h1]``, as ``Bidirectional``
        hands each direction its half).
      mask, go_backwards, return_sequences, zero_output_for_mask, dropout_mask (applied to the
        inputs of cell 0), time_major, unroll, compute_dtype, remat_chunk: as for
        :func:`jaxlstm.lstm_scan`.

    Returns:
      ``(outputs, states)``: the last cell's ``h`` (every step's, or the last), and the final
      state of each cell, cell 0 first, each in the cell's state NamedTuple.
    """
    cell = StackedCell(tuple(cells))
    params = tuple(params)
    flat = None
    if initial_state is not None:
        initial_state = nest_state(cell.cells, initial_state)
        flat = cell.state_type(
            *cell.join(
                [tuple(rnn.as_state(c, s)) for c, s in zip(cell.cells, initial_state, strict=True)]
            )
        )
    ys, final = rnn.scan(
        cell,
        params,
        x,
        initial_state=flat,
        mask=mask,
        go_backwards=go_backwards,
        return_sequences=return_sequences,
        zero_output_for_mask=zero_output_for_mask,
        dropout_mask=dropout_mask,
        time_major=time_major,
        unroll=unroll,
        compute_dtype=compute_dtype,
        remat_chunk=remat_chunk,
        impl="scan",
    )
    states = [c.state_type(*s) for c, s in zip(cell.cells, cell.split(tuple(final)), strict=True)]
    return ys, states


def nest_state(cells, initial_state) -> list:
    """``initial_state`` as one entry per cell (cell 0 first): Keras's nested list as it is, or
    a flat list of every cell's arrays (``[h0, c0, h1]``) grouped per cell. Raises
    :class:`ShapeError` for any other length."""
    sizes = [len(c.state_type._fields) for c in cells]
    state = list(initial_state)
    if len(state) == len(cells):
        return state
    if len(state) == sum(sizes) and all(hasattr(a, "shape") for a in state):
        out, i = [], 0
        for n in sizes:
            out.append(state[i : i + n])
            i += n
        return out
    names = ", ".join(f"{f}{k}" for k, c in enumerate(cells) for f in c.state_type._fields)
    raise ShapeError(
        f"initial_state has {len(state)} entries; expected {len(cells)}, one state per cell, "
        f"cell 0 first (each [h] or [h, c]), as Keras nests them, or the {sum(sizes)} arrays "
        f"[{names}] flat."
    )
