"""Flax Linen twins of :class:`jaxlstm.ProjLSTM` (PyTorch's ``proj_size``) and
:class:`jaxlstm.PeepholeLSTM` (ONNX's peepholes, clip, ``input_forget``): same names, options
and numbers, on ``linen.py``'s ``_KerasRNN`` base (the same layer call as every Linen cell)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlstm._src.core.layer import LAYER_OPTIONS
from jaxlstm._src.core.lstm_peephole import PeepholeLSTMParams, peephole_lstm_layer
from jaxlstm._src.core.lstm_proj import ProjLSTMParams, proj_lstm_layer
from jaxlstm._src.errors import UnsupportedOptionError
from jaxlstm._src.modules.linen import _KerasRNN, rnn_params
from jaxlstm._src.modules.nnx import in_float32, keras_bias_init
from jaxlstm._src.modules.nnx_peephole import PEEPHOLE_OPTIONS
from jaxlstm._src.vocabulary import is_int


class _LSTMFields(_KerasRNN):
    """The Linen LSTM's options, in its order (the variants add theirs after)."""

    units: int
    activation: Any = "tanh"
    recurrent_activation: Any = "sigmoid"
    use_bias: bool = True
    unit_forget_bias: bool = True
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

    state_fields = ("h", "c")
    _gates = 4

    def _bias_init(self, dtype):
        return keras_bias_init(self.units, self.unit_forget_bias, dtype)


class ProjLSTM(_LSTMFields):
    """``nn.LSTM(proj_size=p)`` as a Linen module; see :class:`jaxlstm.ProjLSTM`. Params
    ``kernel (in, 4u)``, ``recurrent_kernel (p, 4u)``, ``bias (4u,)`` (gates i, f, c, o) and
    ``projection (u, p)``, created on first call; outputs and ``h`` have ``p`` entries.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> lstm = ProjLSTM(units=8, proj_size=2, return_sequences=True)
      >>> v = lstm.init(jax.random.key(0), jnp.ones((4, 5, 3)), deterministic=True)
      >>> lstm.apply(v, jnp.ones((4, 5, 3)), deterministic=True).shape
      (4, 5, 2)
    """

    proj_size: int | None = None  # required (a field after defaulted ones)

    _params_type, _layer, _options = ProjLSTMParams, staticmethod(proj_lstm_layer), LAYER_OPTIONS

    def _make_params(self, x: jax.Array) -> ProjLSTMParams:
        u, p, dtype = self.units, self.proj_size, self.param_dtype
        if not is_int(p) or p < 1:
            raise UnsupportedOptionError(
                f"ProjLSTM(proj_size={p!r}); expected the projection's size, an int >= 1: "
                "ProjLSTM(units=..., proj_size=...)."
            )
        kernel = self.param("kernel", in_float32(self.kernel_init), (x.shape[-1], 4 * u), dtype)
        recurrent = self.param(
            "recurrent_kernel", in_float32(self.recurrent_init), (p, 4 * u), dtype
        )
        bias = self.param("bias", lambda _, d: self._bias_init(d), dtype) if self.use_bias else None
        projection = self.param("projection", in_float32(self.kernel_init), (u, p), dtype)
        return ProjLSTMParams(kernel, recurrent, bias, projection)


class PeepholeLSTM(_LSTMFields):
    """ONNX's ``LSTM`` with peepholes, ``clip`` and ``input_forget`` as a Linen module; see
    :class:`jaxlstm.PeepholeLSTM`. Params: the LSTM's and ``peephole (3, u)`` (rows i, f, o).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> lstm = PeepholeLSTM(units=4, clip=3.0)
      >>> v = lstm.init(jax.random.key(0), jnp.ones((2, 5, 3)), deterministic=True)
      >>> lstm.apply(v, jnp.ones((2, 5, 3)), deterministic=True).shape
      (2, 4)
    """

    clip: float | None = None
    input_forget: bool = False

    _params_type, _layer = PeepholeLSTMParams, staticmethod(peephole_lstm_layer)
    _options = PEEPHOLE_OPTIONS

    def _make_params(self, x: jax.Array) -> PeepholeLSTMParams:
        kernel, recurrent, bias = rnn_params(self, x.shape[-1], 4, lambda _, d: self._bias_init(d))
        peephole = self.param(
            "peephole", in_float32(self.kernel_init), (3, self.units), self.param_dtype
        )
        return PeepholeLSTMParams(kernel, recurrent, bias, peephole)
