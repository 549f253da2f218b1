"""Flax Linen twins of :class:`jaxlstm.ConvLSTM1D`, ``ConvLSTM2D`` and ``ConvLSTM3D``: same
names, options and numbers, same layer code (``core/layer.py``), on ``linen.py``'s
``_KerasRNN`` base (its own params: convolution kernels)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlstm._src.core.conv_lstm import ConvLSTMParams, _tuple
from jaxlstm._src.core.layer import CONV_LSTM_OPTIONS, conv_lstm_layer
from jaxlstm._src.modules.linen import _KerasRNN
from jaxlstm._src.modules.nnx import in_float32, keras_bias_init


class ConvLSTM(_KerasRNN):
    """``keras.layers.ConvLSTM1D/2D/3D`` as a Linen module (the rank is the subclass's); see
    :class:`jaxlstm.ConvLSTM2D` for the equations and options.

    Parameters ``kernel (*kernel_size, in_channels, 4f)``, ``recurrent_kernel (*kernel_size,
    f, 4f)`` and ``bias (4f,)`` (gate order i, f, c, o) are created on first call, the input
    channels read from ``x`` (its ``data_format`` channel axis). Dropout uses the ``"dropout"``
    RNG stream when ``deterministic=False``.
    """

    filters: int
    kernel_size: Any
    strides: Any = 1
    padding: str = "valid"
    data_format: str = "channels_last"
    dilation_rate: Any = 1
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

    state_fields = ("h", "c")  # Keras's state list, as Bidirectional splits initial_state
    _params_type, _layer = ConvLSTMParams, staticmethod(conv_lstm_layer)
    _options = CONV_LSTM_OPTIONS
    rank = 0  # set by each subclass

    @property
    def step_ndim(self) -> int:
        return self.rank + 1

    def _make_params(self, x: jax.Array) -> ConvLSTMParams:
        k, f, dtype = (
            _tuple(self.kernel_size, self.rank, "kernel_size"),
            self.filters,
            self.param_dtype,
        )
        axis = -1 if self.data_format == "channels_last" else x.ndim - self.rank - 1
        cin = x.shape[axis]
        kernel = self.param("kernel", in_float32(self.kernel_init), (*k, cin, 4 * f), dtype)
        recurrent = self.param(
            "recurrent_kernel", in_float32(self.recurrent_init), (*k, f, 4 * f), dtype
        )
        bias = None
        if self.use_bias:
            bias = self.param(
                "bias", lambda _, d: keras_bias_init(f, self.unit_forget_bias, d), dtype
            )
        return ConvLSTMParams(kernel, recurrent, bias)


class ConvLSTM1D(ConvLSTM):
    """``keras.layers.ConvLSTM1D`` as a Linen module; see :class:`jaxlstm.ConvLSTM1D`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> layer = ConvLSTM1D(filters=4, kernel_size=3, padding="same")
      >>> x = jnp.ones((1, 5, 10, 2))
      >>> variables = layer.init(jax.random.key(0), x, deterministic=True)
      >>> layer.apply(variables, x, deterministic=True).shape
      (1, 10, 4)
    """

    rank = 1


class ConvLSTM2D(ConvLSTM):
    """``keras.layers.ConvLSTM2D`` as a Linen module; see :class:`jaxlstm.ConvLSTM2D`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> layer = ConvLSTM2D(filters=8, kernel_size=3, return_sequences=True)
      >>> x = jnp.ones((2, 5, 6, 6, 3))
      >>> variables = layer.init(jax.random.key(0), x, deterministic=True)
      >>> layer.apply(variables, x, deterministic=True).shape
      (2, 5, 4, 4, 8)
    """

    rank = 2


class ConvLSTM3D(ConvLSTM):
    """``keras.layers.ConvLSTM3D`` as a Linen module; see :class:`jaxlstm.ConvLSTM3D`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> layer = ConvLSTM3D(filters=2, kernel_size=2, strides=2)
      >>> x = jnp.ones((1, 3, 4, 4, 4, 1))
      >>> variables = layer.init(jax.random.key(0), x, deterministic=True)
      >>> layer.apply(variables, x, deterministic=True).shape
      (1, 2, 2, 2, 2)
    """

    rank = 3
