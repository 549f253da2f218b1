"""Flax Linen twins of :class:`jaxlstm.GRU` and :class:`jaxlstm.SimpleRNN`, beside
``linen.py``'s LSTM: same names, options and numbers, same layer code (``linen.py``'s
``_KerasRNN`` base: each cell names its params, layer call, options, gates and bias)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxlstm._src.core.gru import GRUCell, GRUParams
from jaxlstm._src.core.layer import (
    GRU_OPTIONS,
    SIMPLE_RNN_OPTIONS,
    gru_layer,
    simple_rnn_layer,
)
from jaxlstm._src.core.simple_rnn import SimpleRNNParams
from jaxlstm._src.modules.linen import _KerasRNN


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
