"""Flax Linen twins of :class:`jaxlstm.ProjLSTM` (PyTorch's ``proj_size``) and
:class:`jaxlstm.PeepholeLSTM` (ONNX's peepholes, clip, ``input_forget``): same names, options
and numbers: the Linen LSTM (its options, in its order, and its bias) with their own params and
layer call after them."""

from __future__ import annotations

import jax

from jaxlstm._src.core.layer import LAYER_OPTIONS
from jaxlstm._src.core.lstm_peephole import PeepholeLSTMParams, peephole_lstm_layer
from jaxlstm._src.core.lstm_proj import ProjLSTMParams, proj_lstm_layer
from jaxlstm._src.errors import UnsupportedOptionError
from jaxlstm._src.modules.linen import LSTM, rnn_params
from jaxlstm._src.modules.nnx import in_float32
from jaxlstm._src.modules.nnx_peephole import PEEPHOLE_OPTIONS
from jaxlstm._src.vocabulary import is_int


class ProjLSTM(LSTM):
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


class PeepholeLSTM(LSTM):
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
