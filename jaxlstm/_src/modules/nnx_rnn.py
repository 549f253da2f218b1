"""Flax NNX ``GRU`` and ``SimpleRNN``, beside ``nnx.py``'s LSTM: same options, same layer code
(``core/layer.py``), one cell each; and ``StackedRNN``, Keras's ``RNN`` over a list of them.
Keras's names and defaults."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlstm._src.core.activations import Activation
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
from jaxlstm._src.core.simple_rnn import SimpleRNNParams
from jaxlstm._src.core.stacked import cell_of
from jaxlstm._src.errors import ShapeError, UnsupportedOptionError
from jaxlstm._src.modules.nnx import (
    GLOROT_UNIFORM,
    LSTM,
    ORTHOGONAL,
    _KerasRNN,
    build_rnn,
    in_param_dtype,
    needs_dropout_rng,
)


class GRU(_KerasRNN):
    """``keras.layers.GRU`` as a Flax NNX module.

    The weights are ``nnx.Param``\\ s in Keras's layout (gate order z, r, h)::

        kernel            (in_features, 3 * units)
        recurrent_kernel  (units, 3 * units)
        bias              (2, 3 * units) with reset_after=True (input and recurrent biases),
                          (3 * units,) with reset_after=False; absent when use_bias=False

    and each step computes ``z = σ(x_z + r_z)``, ``r = σ(x_r + r_r)``,
    ``hh = φ(x_h + r * r_h)`` (``reset_after=True``; ``φ(x_h + (r * h) @ U_h)`` otherwise),
    ``h = z * h + (1 - z) * hh``, with ``x = x_t @ kernel + b_in``,
    ``r_ = h @ recurrent_kernel + b_rec`` (see ``jaxlstm.gru_scan``).

    Args:
      in_features, units: input and state sizes.
      activation, recurrent_activation: Keras names or callables (``φ`` and ``σ``).
      use_bias: as in Keras (the bias starts at zero, as Keras's ``bias_initializer``).
      reset_after: Keras's GRU convention; ``True`` is Keras 3's (and tf.keras's) default.
      return_sequences, return_state, go_backwards, dropout, recurrent_dropout,
      zero_output_for_mask, time_major, unroll, compute_dtype, remat_chunk, impl, param_dtype,
      kernel_init, recurrent_init, deterministic, rngs: as for :class:`jaxlstm.LSTM`
      (``impl="cudnn"`` is refused: there is no cuDNN GRU in ``jax.experimental.rnn``).
      weights: a :class:`GRUParams` to start from instead of random weights (converted to
        ``param_dtype`` on the host, nothing compiled; how the file loaders build modules).

    Call: ``gru(x, *, mask=None, initial_state=None)``, ``x`` ``(*batch, T, in_features)``,
    ``initial_state`` a ``GRUState(h)``, ``[h]`` or ``h``. Returns the output, or
    ``(output, h)`` with ``return_state``.

    Example:
      >>> from flax import nnx
      >>> import jax.numpy as jnp
      >>> gru = GRU(3, 8, return_sequences=True, rngs=nnx.Rngs(0))
      >>> gru(jnp.ones((2, 5, 3))).shape
      (2, 5, 8)
    """

    _params_type, _layer, _options = GRUParams, staticmethod(gru_layer), GRU_OPTIONS

    def __init__(
        self,
        in_features: int,
        units: int,
        *,
        activation: str | Activation = "tanh",
        recurrent_activation: str | Activation = "sigmoid",
        use_bias: bool = True,
        reset_after: bool = True,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        zero_output_for_mask: bool = False,
        time_major: bool = False,
        unroll: int | bool = 1,
        compute_dtype=None,
        remat_chunk: int | None = None,
        impl: str = "auto",
        param_dtype=jnp.float32,
        kernel_init=GLOROT_UNIFORM,
        recurrent_init=ORTHOGONAL,
        deterministic: bool = False,
        weights: GRUParams | None = None,
        rngs: nnx.Rngs | nnx.RngStream | None = None,
    ):
        options = dict(locals())
        options = {name: options[name] for name in (*GRU_OPTIONS, "use_bias")}
        bias_shape = GRUCell(None, None, reset_after).bias_shape(units)
        build_rnn(
            self, "GRU", in_features, units, gates=3, bias_shape=bias_shape,
            bias_init=lambda dtype: jnp.zeros(bias_shape, dtype),
            layout=f"[z|r|h], bias {bias_shape} for reset_after={reset_after},",
            options=options, weights=weights, params_type=GRUParams, param_dtype=param_dtype,
            kernel_init=kernel_init, recurrent_init=recurrent_init, deterministic=deterministic,
            rngs=rngs,
        )  # fmt: skip


class SimpleRNN(_KerasRNN):
    """``keras.layers.SimpleRNN`` as a Flax NNX module.

    Weights ``kernel (in_features, units)``, ``recurrent_kernel (units, units)``,
    ``bias (units,)`` (absent when ``use_bias=False``); each step computes
    ``h = φ(x_t @ kernel + bias + h @ recurrent_kernel)`` (see ``jaxlstm.simple_rnn_scan``).

    Args:
      in_features, units: input and state sizes.
      activation: a Keras name (``"linear"`` for Keras's ``activation=None``) or a callable.
      use_bias, return_sequences, return_state, go_backwards, dropout, recurrent_dropout,
      zero_output_for_mask, time_major, unroll, compute_dtype, remat_chunk, impl, param_dtype,
      kernel_init, recurrent_init, deterministic, rngs: as for :class:`jaxlstm.GRU`.
      weights: a :class:`SimpleRNNParams` to start from instead of random weights.

    Call: ``rnn(x, *, mask=None, initial_state=None)``; returns the output, or
    ``(output, h)`` with ``return_state``.

    Example:
      >>> from flax import nnx
      >>> import jax.numpy as jnp
      >>> rnn = SimpleRNN(3, 4, activation="relu", rngs=nnx.Rngs(0))
      >>> rnn(jnp.ones((2, 5, 3))).shape
      (2, 4)
    """

    _params_type, _layer = SimpleRNNParams, staticmethod(simple_rnn_layer)
    _options = SIMPLE_RNN_OPTIONS

    def __init__(
        self,
        in_features: int,
        units: int,
        *,
        activation: str | Activation = "tanh",
        use_bias: bool = True,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        zero_output_for_mask: bool = False,
        time_major: bool = False,
        unroll: int | bool = 1,
        compute_dtype=None,
        remat_chunk: int | None = None,
        impl: str = "auto",
        param_dtype=jnp.float32,
        kernel_init=GLOROT_UNIFORM,
        recurrent_init=ORTHOGONAL,
        deterministic: bool = False,
        weights: SimpleRNNParams | None = None,
        rngs: nnx.Rngs | nnx.RngStream | None = None,
    ):
        options = dict(locals())
        options = {name: options[name] for name in (*SIMPLE_RNN_OPTIONS, "use_bias")}
        build_rnn(
            self, "SimpleRNN", in_features, units, gates=1, bias_shape=(units,),
            bias_init=lambda dtype: jnp.zeros((units,), dtype), layout="[h]", options=options,
            weights=weights, params_type=SimpleRNNParams, param_dtype=param_dtype,
            kernel_init=kernel_init, recurrent_init=recurrent_init, deterministic=deterministic,
            rngs=rngs,
        )  # fmt: skip


def stacked_state_fields(cells) -> tuple[str, ...]:
    """A stacked RNN's states as Keras lists them, flat: ``("h0", "c0", "h1")`` for an LSTM cell
    then a GRU cell (each cell's fields with its index)."""
    return tuple(f"{f}{k}" for k, c in enumerate(cells) for f in c.state_fields)


def refuse_stacked_dropout(cells, owner: str) -> None:
    """Dropout inside stacked cells is not implemented: a training-mode call of a stack whose
    cells have dropout rates is refused rather than run without (or with other) masks."""
    rates = [(k, c.dropout, c.recurrent_dropout) for k, c in enumerate(cells)]
    with_dropout = [r for r in rates if needs_dropout_rng(r[1], r[2])]
    if with_dropout:
        k, d, rd = with_dropout[0]
        raise UnsupportedOptionError(
            f"{owner} called in training mode, and its cell {k} has dropout={d}, "
            f"recurrent_dropout={rd}: dropout inside stacked cells is not implemented (Keras "
            "draws it per cell). Call it in eval mode (module.eval(), deterministic=True), or "
            "build the cells with dropout=0 and put a Dropout layer before the stack."
        )


class StackedRNN(nnx.Module):
    """``keras.layers.RNN([cell, ...])`` (equivalently ``RNN(StackedRNNCells([...]))``) as a Flax
    NNX module: at every step the cells run in turn, cell ``k``'s output ``h`` is cell
    ``k + 1``'s input, and the layer outputs the last cell's ``h``.

    The cells are :class:`jaxlstm.LSTM`, :class:`jaxlstm.GRU` and :class:`jaxlstm.SimpleRNN`
    modules: each gives its weights (``nnx.Param``\\ s in Keras's layout) and its cell options
    (``activation``, ``recurrent_activation``, a GRU's ``reset_after``); the layer options are
    the stack's own. The cells are used as given, never changed. The step is
    ``jaxlstm._src.core.stacked`` (the cells' own step math; plain autodiff).

    Args:
      cells: a list of cell modules, cell 0 first; cell ``k + 1``'s ``in_features`` must be
        cell ``k``'s ``units``. Their ``return_sequences``, ``return_state``, ``go_backwards``
        and ``time_major`` must keep their defaults (they are the stack's options), and their
        dropout rates apply only in eval mode: dropout inside stacked cells is not implemented,
        so a training-mode call with a rate set is refused.
      return_sequences, return_state, go_backwards, zero_output_for_mask, time_major, unroll,
      compute_dtype, remat_chunk: as for :class:`jaxlstm.LSTM`.

    Call: ``rnn(x, *, mask=None, initial_state=None)`` with ``x`` ``(*batch, T, in_features)``
    and ``initial_state`` Keras's nested list, one entry per cell (``[[h0, c0], h1]``; each
    entry a state NamedTuple, a list or a lone ``h``), or the same arrays flat
    (``[h0, c0, h1]``). Returns the last cell's output (``(*batch, T, units)`` with
    ``return_sequences``), or with ``return_state`` ``(output, *states)``: one state per cell,
    cell 0 first, each the cell's NamedTuple (``LSTMState(h, c)``, ``GRUState(h)``,
    ``SimpleRNNState(h)``), as Keras nests them. Works inside :class:`jaxlstm.Bidirectional`
    (with a second stack built with ``go_backwards=True``).

    Example:
      >>> from flax import nnx
      >>> import jax.numpy as jnp
      >>> rngs = nnx.Rngs(0)
      >>> rnn = StackedRNN([LSTM(3, 8, rngs=rngs), GRU(8, 4, rngs=rngs)], return_state=True)
      >>> y, (h0, c0), (h1,) = rnn(jnp.ones((2, 5, 3)))
      >>> y.shape, c0.shape, h1.shape
      ((2, 4), (2, 8), (2, 4))
    """

    def __init__(
        self,
        cells,
        *,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        zero_output_for_mask: bool = False,
        time_major: bool = False,
        unroll: int | bool = 1,
        compute_dtype=None,
        remat_chunk: int | None = None,
    ):
        options = dict(locals())
        cells = list(cells) if isinstance(cells, nnx.List) else cells
        families = check_stacked_cells(cells, _FAMILIES)
        for k in range(1, len(cells)):
            if cells[k].in_features != cells[k - 1].units:
                raise ShapeError(
                    f"StackedRNN's cell {k} ({type(cells[k]).__name__}) has in_features="
                    f"{cells[k].in_features}; expected {cells[k - 1].units}: its input is cell "
                    f"{k - 1}'s output h of {cells[k - 1].units} units."
                )
        self.cells = nnx.List(cells)
        self.families = families
        for name in STACKED_OPTIONS:
            setattr(self, name, options[name])
        self.in_features, self.units = cells[0].in_features, cells[-1].units
        self.state_fields = stacked_state_fields(cells)

    @property
    def params(self) -> tuple:
        """The cells' weights, one params pytree per cell, cell 0 first (for the core)."""
        return tuple(c.params for c in self.cells)

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
        if deterministic is None:
            deterministic = all(c.deterministic for c in self.cells)
        if not deterministic:
            refuse_stacked_dropout(self.cells, "StackedRNN")
        out = stacked_layer(
            tuple(cell_of(f, c) for f, c in zip(self.families, self.cells, strict=True)),
            self.params,
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
        return in_param_dtype(out, self.cells[0].kernel.dtype)


_FAMILIES = {LSTM: "LSTM", GRU: "GRU", SimpleRNN: "SimpleRNN"}
