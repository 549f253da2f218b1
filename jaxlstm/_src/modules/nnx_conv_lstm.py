"""Flax NNX ``ConvLSTM1D``, ``ConvLSTM2D`` and ``ConvLSTM3D``: Keras's convolutional LSTMs,
built like the other recurrent modules (``nnx.py``'s :func:`build_rnn`) over the pure core
(``core/conv_lstm.py``, ``core/layer.py``). Keras's names and defaults."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from jaxlstm._src.core.activations import Activation
from jaxlstm._src.core.conv_lstm import ConvLSTMParams, _tuple, conv_lstm_cell
from jaxlstm._src.core.layer import CONV_LSTM_OPTIONS, conv_lstm_layer
from jaxlstm._src.modules.nnx import (
    GLOROT_UNIFORM,
    ORTHOGONAL,
    _KerasRNN,
    build_rnn,
    keras_bias_init,
)


def conv_lstm_options(rank: int, options: dict) -> dict:
    """``options`` with ``strides`` and ``dilation_rate`` as tuples and ``padding`` in lower
    case, checked as Keras checks them (:func:`conv_lstm_cell`)."""
    cell = conv_lstm_cell(
        rank,
        strides=options["strides"],
        padding=options["padding"],
        dilation_rate=options["dilation_rate"],
        data_format=options["data_format"],
        activation=options["activation"],
        recurrent_activation=options["recurrent_activation"],
    )
    return {
        **options,
        "strides": cell.strides,
        "padding": cell.padding,
        "dilation_rate": cell.dilation_rate,
    }


class ConvLSTM(_KerasRNN):
    """``keras.layers.ConvLSTM1D/2D/3D`` as a Flax NNX module (the rank is the subclass's:
    :class:`ConvLSTM1D`, :class:`ConvLSTM2D`, :class:`ConvLSTM3D`).

    The weights are ``nnx.Param``\\ s in Keras's layout (gate order i, f, c, o)::

        kernel            (*kernel_size, in_channels, 4 * filters)
        recurrent_kernel  (*kernel_size, filters, 4 * filters)
        bias              (4 * filters,)            absent when use_bias=False

    and each step computes ``z = x_t * kernel + bias + h * recurrent_kernel`` (``*`` a
    convolution: the input one with ``strides``, ``padding``, ``dilation_rate``, the recurrent one
    ``"same"`` with strides 1), then the LSTM update ``i, f, o = σ(z_i), σ(z_f), σ(z_o)``,
    ``c = f * c + i * φ(z_c)``, ``h = o * φ(c)`` (see ``jaxlstm._src.core.conv_lstm``).

    Args:
      in_channels: the inputs' channels.
      filters: the state's (and each output's) channels.
      kernel_size: an int or ``rank`` ints, shared by both convolutions.
      strides, padding (``"valid"`` or ``"same"``), dilation_rate: the input convolution's, as
        in Keras (strides > 1 and dilation_rate > 1 exclude each other).
      data_format: ``"channels_last"`` (inputs ``(*batch, T, *spatial, in_channels)``, states
        ``(*batch, *spatial_out, filters)``) or ``"channels_first"`` (``(*batch, T,
        in_channels, *spatial)``, ``(*batch, filters, *spatial_out)``). Keras's ``None`` is
        its ``image_data_format``, ``"channels_last"`` unless configured.
      activation, recurrent_activation, use_bias, unit_forget_bias, return_sequences,
      return_state, go_backwards, zero_output_for_mask, time_major, unroll, compute_dtype,
      remat_chunk, param_dtype, deterministic, rngs: as for :class:`jaxlstm.LSTM`.
      dropout, recurrent_dropout: Keras 3's: four masks per sequence (one per gate) over each
        step's input and over ``h``, active only in training mode.
      impl: ``"auto"`` or ``"scan"`` (``"cudnn"`` is refused: cuDNN has no ConvLSTM).
      kernel_init, recurrent_init: initializers ``(key, shape, dtype)`` (Keras's
        glorot_uniform and orthogonal, with Keras's fans for convolution kernels).
      weights: a :class:`~jaxlstm.ConvLSTMParams` to start from instead of random weights
        (converted to ``param_dtype`` on the host, nothing compiled; how the file loaders build
        modules).

    Call: ``layer(x, *, mask=None, initial_state=None)``, ``mask`` ``(*batch, T)``,
    ``initial_state`` a ``ConvLSTMState(h, c)`` or ``[h, c]``. Returns the output
    (``(*batch, T, *state_shape)`` with ``return_sequences``, else ``(*batch, *state_shape)``),
    or ``(output, h, c)`` with ``return_state``. The input convolution is computed for all
    steps at once; the scan is differentiated by plain autodiff (the fast backward pass is for
    the matmul cells).
    """

    state_fields = ("h", "c")  # Keras's state list, as Bidirectional splits initial_state
    _params_type, _layer = ConvLSTMParams, staticmethod(conv_lstm_layer)
    _options = CONV_LSTM_OPTIONS
    rank: int

    def __init__(
        self,
        in_channels: int,
        filters: int,
        kernel_size,
        *,
        strides=1,
        padding: str = "valid",
        data_format: str = "channels_last",
        dilation_rate=1,
        activation: str | Activation = "tanh",
        recurrent_activation: str | Activation = "sigmoid",
        use_bias: bool = True,
        unit_forget_bias: bool = True,
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
        weights: ConvLSTMParams | None = None,
        rngs: nnx.Rngs | nnx.RngStream | None = None,
    ):
        options = dict(locals())
        options = {name: options[name] for name in (*CONV_LSTM_OPTIONS, "use_bias")}
        options = conv_lstm_options(self.rank, options)
        self.kernel_size = _tuple(kernel_size, self.rank, "kernel_size")
        self.in_channels, self.filters = in_channels, filters
        f, k = filters, self.kernel_size
        build_rnn(
            self, type(self).__name__, in_channels, filters, gates=4, bias_shape=(4 * f,),
            bias_init=lambda dtype: keras_bias_init(f, unit_forget_bias, dtype),
            layout="[i|f|c|o]", options=options, weights=weights,
            params_type=ConvLSTMParams, param_dtype=param_dtype, kernel_init=kernel_init,
            recurrent_init=recurrent_init, deterministic=deterministic, rngs=rngs,
            kernel_shapes=((*k, in_channels, 4 * f), (*k, f, 4 * f)),
        )  # fmt: skip

    @property
    def step_ndim(self) -> int:
        """The axes of one step's input and output after the time axis (``rank + 1``)."""
        return self.rank + 1


class ConvLSTM1D(ConvLSTM):
    """``keras.layers.ConvLSTM1D``: :class:`ConvLSTM` over one spatial axis; inputs
    ``(*batch, T, length, in_channels)`` (channels first ``(*batch, T, in_channels, length)``).

    Example:
      >>> from flax import nnx
      >>> import jax.numpy as jnp
      >>> layer = ConvLSTM1D(2, 4, 3, padding="same", rngs=nnx.Rngs(0))
      >>> layer(jnp.ones((1, 5, 10, 2))).shape
      (1, 10, 4)
    """

    rank = 1


class ConvLSTM2D(ConvLSTM):
    """``keras.layers.ConvLSTM2D``: :class:`ConvLSTM` over two spatial axes; inputs
    ``(*batch, T, rows, cols, in_channels)`` (channels first ``(*batch, T, in_channels, rows,
    cols)``).

    Example:
      >>> from flax import nnx
      >>> import jax.numpy as jnp
      >>> layer = ConvLSTM2D(3, 8, (3, 3), return_sequences=True, rngs=nnx.Rngs(0))
      >>> layer(jnp.ones((2, 5, 6, 6, 3))).shape
      (2, 5, 4, 4, 8)
    """

    rank = 2


class ConvLSTM3D(ConvLSTM):
    """``keras.layers.ConvLSTM3D``: :class:`ConvLSTM` over three spatial axes; inputs
    ``(*batch, T, depth, rows, cols, in_channels)`` (channels first ``(*batch, T,
    in_channels, depth, rows, cols)``).

    Example:
      >>> from flax import nnx
      >>> import jax.numpy as jnp
      >>> layer = ConvLSTM3D(1, 2, 2, strides=2, rngs=nnx.Rngs(0))
      >>> layer(jnp.ones((1, 3, 4, 4, 4, 1))).shape
      (1, 2, 2, 2, 2)
    """

    rank = 3
