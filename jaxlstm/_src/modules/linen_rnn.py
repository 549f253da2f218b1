"""Flax Linen twins of :class:`jaxlstm.GRU`, :class:`jaxlstm.SimpleRNN` and
:class:`jaxlstm.StackedRNN`, beside ``linen.py``'s LSTM: same names, options and numbers, same
layer code (``linen.py``'s ``_KerasRNN`` base: each cell names its params, layer call, options,
gates and bias)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlstm._src.core.gru import GRUCell, GRUParams
from jaxlstm._src.core.layer import (
    GRU_OPTIONS,
    SIMPLE_RNN_OPTIONS,
    STACKED_OPTIONS,
    check_stacked_cells,
    gru_layer,
    layer_options,
    simple_rnn_layer,
    stacked_layer,
)
from jaxlstm._src.core.lstm import LSTMParams
from jaxlstm._src.core.simple_rnn import SimpleRNNParams
from jaxlstm._src.core.stacked import cell_of
from jaxlstm._src.modules.linen import LSTM, _KerasRNN, rnn_params
from jaxlstm._src.modules.nnx import in_param_dtype, keras_bias_init, needs_dropout_rng
from jaxlstm._src.modules.nnx_rnn import refuse_stacked_dropout, stacked_state_fields


class GRU(_KerasRNN):
    """``keras.layers.GRU`` as a Linen module; see :class:`jaxlstm.GRU` for the equations.

    Parameters ``kernel (in, 3u)``, ``recurrent_kernel (u, 3u)`` and ``bias`` (``(2, 3u)``
    with ``reset_after=True``, ``(3u,)`` without; gate order z, r, h) are created on first call.
    Dropout uses the ``"dropout"`` RNG stream when ``deterministic=False``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> gru = GRU(units=4, return_sequences=True)
      >>> variables = gru.init(jax.random.key(0), jnp.ones((2, 5, 3)), deterministic=True)
      >>> gru.apply(variables, jnp.ones((2, 5, 3)), deterministic=True).shape
      (2, 5, 4)
    """

    units: int
    activation: Any = "tanh"
    recurrent_activation: Any = "sigmoid"
    use_bias: bool = True
    reset_after: bool = True
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    zero_output_for_mask: bool = False
    time_major: bool = False
    unroll: int | bool = 1
    compute_dtype: Any = None
    remat_chunk: int | None = None
    impl: str = "auto"
    param_dtype: Any = jnp.float32
    kernel_init: Any = nn.initializers.glorot_uniform()
    recurrent_init: Any = nn.initializers.orthogonal()
    deterministic: bool | None = None

    state_fields = ("h",)

    _params_type, _layer, _options = GRUParams, staticmethod(gru_layer), GRU_OPTIONS
    _gates = 3

    def _bias_init(self, dtype):
        return jnp.zeros(GRUCell(None, None, self.reset_after).bias_shape(self.units), dtype)


class SimpleRNN(_KerasRNN):
    """``keras.layers.SimpleRNN`` as a Linen module; see :class:`jaxlstm.SimpleRNN`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> rnn = SimpleRNN(units=4)
      >>> variables = rnn.init(jax.random.key(0), jnp.ones((2, 5, 3)), deterministic=True)
      >>> rnn.apply(variables, jnp.ones((2, 5, 3)), deterministic=True).shape
      (2, 4)
    """

    units: int
    activation: Any = "tanh"
    use_bias: bool = True
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    zero_output_for_mask: bool = False
    time_major: bool = False
    unroll: int | bool = 1
    compute_dtype: Any = None
    remat_chunk: int | None = None
    impl: str = "auto"
    param_dtype: Any = jnp.float32
    kernel_init: Any = nn.initializers.glorot_uniform()
    recurrent_init: Any = nn.initializers.orthogonal()
    deterministic: bool | None = None

    state_fields = ("h",)

    _params_type, _layer = SimpleRNNParams, staticmethod(simple_rnn_layer)
    _options, _gates = SIMPLE_RNN_OPTIONS, 1

    def _bias_init(self, dtype):
        return jnp.zeros((self.units,), dtype)


class _CellParams(nn.Module):
    """One stacked cell's ``kernel``, ``recurrent_kernel`` and ``bias`` params, made as the
    cell's own Linen module makes them (:func:`rnn_params`, its initialisers and dtype)."""

    units: int
    gates: int
    bias_shape: tuple
    use_bias: bool
    unit_forget_bias: bool
    param_dtype: Any
    kernel_init: Any
    recurrent_init: Any

    @nn.compact
    def __call__(self, in_features: int):
        def bias_init(_, dtype):
            if self.gates == 4:
                return keras_bias_init(self.units, self.unit_forget_bias, dtype)
            return jnp.zeros(self.bias_shape, dtype)

        return rnn_params(self, in_features, self.gates, bias_init)


class StackedRNN(nn.Module):
    """``keras.layers.RNN([cell, ...])`` as a Linen module, over Linen :class:`LSTM`,
    :class:`GRU` and :class:`SimpleRNN` cells; see :class:`jaxlstm.StackedRNN`. Cell ``k``'s
    parameters (``kernel``, ``recurrent_kernel``, ``bias``, made by the cell's own initialisers
    and ``param_dtype``) are created on first call under ``cell_k``; the cells' layer options
    must keep their defaults (they are the stack's own), and a training-mode call of cells with
    dropout rates is refused.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> rnn = StackedRNN(cells=(LSTM(units=8), GRU(units=4)), return_sequences=True)
      >>> variables = rnn.init(jax.random.key(0), jnp.ones((2, 5, 3)))
      >>> rnn.apply(variables, jnp.ones((2, 5, 3))).shape
      (2, 5, 4)
    """

    cells: Sequence[nn.Module]
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    zero_output_for_mask: bool = False
    time_major: bool = False
    unroll: int | bool = 1
    compute_dtype: Any = None
    remat_chunk: int | None = None

    @property
    def state_fields(self) -> tuple[str, ...]:
        return stacked_state_fields(self.cells)

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        *,
        mask: jax.Array | None = None,
        initial_state: Any = None,
        deterministic: bool | None = None,
        return_state: bool | None = None,
        zero_output_for_mask: bool | None = None,
    ) -> Any:
        cells = list(self.cells)
        families = check_stacked_cells(cells, _FAMILIES, "jaxlstm.linen.StackedRNN")
        if any(needs_dropout_rng(c.dropout, c.recurrent_dropout) for c in cells):
            given = [c.deterministic for c in cells if c.deterministic is not None]
            default = all(given) if given else None
            if not nn.merge_param("deterministic", default, deterministic):
                refuse_stacked_dropout(cells, "jaxlstm.linen.StackedRNN")
        params, width = [], x.shape[-1]
        for k, (family, c) in enumerate(zip(families, cells, strict=True)):
            bias_shape = cell_of(family, c).bias_shape(c.units) if family != "LSTM" else ()
            kernel, recurrent, bias = _CellParams(
                c.units,
                {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}[family],
                tuple(bias_shape),
                c.use_bias,
                getattr(c, "unit_forget_bias", False),
                c.param_dtype,
                c.kernel_init,
                c.recurrent_init,
                name=f"cell_{k}",
            )(width)
            params_type = {"LSTM": LSTMParams, "GRU": GRUParams, "SimpleRNN": SimpleRNNParams}
            params.append(params_type[family](kernel, recurrent, bias))
            width = c.units
        out = stacked_layer(
            tuple(cell_of(f, c) for f, c in zip(families, cells, strict=True)),
            tuple(params),
            x,
            mask=mask,
            initial_state=initial_state,
            **layer_options(
                self,
                STACKED_OPTIONS,
                return_state=return_state,
                zero_output_for_mask=zero_output_for_mask,
            ),
        )
        return in_param_dtype(out, cells[0].param_dtype)


_FAMILIES = {LSTM: "LSTM", GRU: "GRU", SimpleRNN: "SimpleRNN"}
