"""The convolutional LSTM (``keras.layers.ConvLSTM1D``, ``ConvLSTM2D``, ``ConvLSTM3D``) as a cell
of the scan driver (``rnn.py``), exactly as Keras computes it. Pure JAX, no Flax.

An LSTM whose matmuls are convolutions over ``rank`` spatial axes. Weights in Keras's layout,
gate order i, f, c, o::

    kernel            (*kernel_size, in_channels, 4f)   columns [i | f | c | o]
    recurrent_kernel  (*kernel_size, filters, 4f)       columns [i | f | c | o]
    bias              (4f,)                             or None when use_bias=False

Inputs are ``(batch, time, *spatial, channels)`` (``channels_last``) or ``(batch, time, channels,
*spatial)`` (``channels_first``); the states ``h`` and ``c`` (and each output) are
``(batch, *spatial_out, filters)`` (or ``(batch, filters, *spatial_out)``), with
``spatial_out`` the input convolution's output size (``padding``, ``strides``,
``dilation_rate``; ``core/conv.py``'s arithmetic). One step, with ``*`` convolution, ``σ`` the
recurrent activation and ``φ`` the activation::

    z   = x_t * kernel + bias + h_{t-1} * recurrent_kernel    (the recurrent convolution is
                                                               always "same", strides 1,
                                                               no dilation, as in Keras)
    i, f, o = σ(z_i), σ(z_f), σ(z_o)
    c_t = f * c_{t-1} + i * φ(z_c)
    h_t = o * φ(c_t)

The input convolution of every step runs at once, before the scan (it does not depend on the
state). Dropout follows Keras 3: four masks per sequence (one per gate), each over the whole
step input (or ``h``), scaled by ``1 / (1 - rate)``; the masks are ``(*batch, 4, *in_shape)`` and
``(*batch, 4, *state_shape)``, gate order i, f, c, o. The step is two convolutions, not one
matmul and an elementwise update, so the scan is differentiated by plain autodiff (the fast
backward pass of ``fast.py`` is for the matmul cells).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxlstm._src.core import rnn
from jaxlstm._src.core.activations import Activation, get_activation
from jaxlstm._src.core.conv import channel_axis, conv
from jaxlstm._src.errors import ShapeError, UnsupportedOptionError

PADDINGS = ("valid", "same")
DATA_FORMATS = ("channels_last", "channels_first")


class ConvLSTMParams(NamedTuple):
    """ConvLSTM weights in Keras's layout, gate order i, f, c, o.

    Attributes:
      kernel: ``(*kernel_size, in_channels, 4 * filters)``, convolved with the inputs.
      recurrent_kernel: ``(*kernel_size, filters, 4 * filters)``, convolved with ``h``.
      bias: ``(4 * filters,)``, or ``None`` for a layer built with ``use_bias=False``.
    """

    kernel: jax.Array
    recurrent_kernel: jax.Array
    bias: jax.Array | None = None

    @property
    def filters(self) -> int:
        return self.recurrent_kernel.shape[-2]

    @property
    def in_channels(self) -> int:
        return self.kernel.shape[-2]

    @property
    def rank(self) -> int:
        return self.kernel.ndim - 2


class ConvLSTMState(NamedTuple):
    """The ConvLSTM carry; Keras lists it as ``[h, c]``.

    Attributes:
      h: ``(*batch, *spatial_out, filters)`` (channels first: ``(*batch, filters,
        *spatial_out)``), the hidden state, which is also the step's output.
      c: the cell state, same shape.
    """

    h: jax.Array
    c: jax.Array


def _tuple(value, rank: int, name: str) -> tuple[int, ...]:
    """Keras's ``standardize_tuple``: an int, or ``rank`` positive ints."""
    if isinstance(value, int):
        values = (value,) * rank
    elif isinstance(value, list | tuple):
        values = tuple(value)
    else:  # None, a string, a dict: no tuple of ints (a damaged config, a wrong argument)
        values = ()
    if len(values) != rank or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values
    ):
        raise UnsupportedOptionError(
            f"{name}={value!r}; expected a positive int or {rank} positive ints for a rank-{rank} "
            "ConvLSTM."
        )
    return values


class ConvLSTMCell(NamedTuple):
    """The ConvLSTM's step math for the scan driver (``rnn.py`` lists what a cell provides):
    static and hashable; states are tuples ``(h, c)``."""

    rank: int
    strides: tuple[int, ...]
    padding: str
    dilation_rate: tuple[int, ...]
    data_format: str
    activation: Activation
    recurrent_activation: Activation

    name = "ConvLSTM"
    gates = 4
    gate_order = "i|f|c|o"
    params_type = ConvLSTMParams
    state_type = ConvLSTMState
    fused = False

    @property
    def activations(self):
        return (self.activation, self.recurrent_activation)

    @property
    def input_ndim(self) -> int:
        return self.rank + 1

    def _channel(self, ndim: int) -> int:
        return channel_axis(ndim, self.data_format)

    def check_params(self, params):
        k, rk, b = params
        r = self.rank
        if rk.ndim != r + 2 or rk.shape[-1] != 4 * rk.shape[-2]:
            raise ShapeError(
                f"recurrent_kernel has shape {tuple(rk.shape)}; expected (*kernel_size, filters, "
                f"4*filters) with {r} kernel axes for a ConvLSTM{r}D (gates packed [i|f|c|o] as "
                "Keras stores them)."
            )
        f = rk.shape[-2]
        if k.ndim != r + 2 or k.shape[-1] != 4 * f or k.shape[:r] != rk.shape[:r]:
            raise ShapeError(
                f"kernel has shape {tuple(k.shape)} but recurrent_kernel has shape "
                f"{tuple(rk.shape)}; expected kernel (*kernel_size, in_channels, 4*filters) = "
                f"({_text(rk.shape[:r])}, in_channels, {4 * f}), the same kernel_size as the "
                "recurrent kernel."
            )
        if b is not None and tuple(b.shape) != (4 * f,):
            raise ShapeError(
                f"bias has shape {tuple(b.shape)}; expected (4*filters,) = ({4 * f},)."
            )

    @staticmethod
    def first_kernel(params):
        return params.kernel

    def _conv(self, x, kernel, compute_dtype, *, input_conv: bool, groups: int = 1):
        """The input convolution (``strides``, ``padding``, ``dilation_rate``) or the recurrent
        one (``"same"``, strides 1, no dilation); ``groups=4`` for four gate copies stacked in
        the channels of ``x``, each convolved with its gate's block of the kernel."""
        if compute_dtype is not None:
            x, kernel = x.astype(compute_dtype), kernel.astype(compute_dtype)
        ones = (1,) * self.rank
        return conv(
            x,
            kernel,
            strides=self.strides if input_conv else ones,
            padding=self.padding if input_conv else "same",
            dilation=self.dilation_rate if input_conv else ones,
            data_format=self.data_format,
            groups=groups,
            preferred_element_type=None if compute_dtype is None else jnp.float32,
        )

    def input_shape(self, params, x_shape):
        """One step's input shape (the trailing ``rank + 1`` axes of ``x_shape``), checked:
        the channels match the kernel's and the input convolution has an output."""
        r, cin = self.rank, params.kernel.shape[-2]
        if self.data_format == "channels_last":
            layout, expected = "(*batch, time, *spatial, channels)", f"(*spatial, {cin})"
        else:
            layout, expected = "(*batch, time, channels, *spatial)", f"({cin}, *spatial)"
        in_shape = tuple(x_shape[len(x_shape) - r - 1 :])
        channels = in_shape[-1] if self.data_format == "channels_last" else in_shape[0]
        if len(x_shape) < r + 2 or channels != cin:
            raise ShapeError(
                f"inputs have shape {tuple(x_shape)}; expected {layout} with {r} spatial axes and "
                f"a step shape {expected} (data_format={self.data_format!r}): the layer has "
                f"in_channels={cin}."
            )
        out = self._output_shape(params, in_shape)
        if min(out) < 1:
            spatial = in_shape[:-1] if self.data_format == "channels_last" else in_shape[1:]
            raise ShapeError(
                f"inputs have spatial shape {spatial}, too small for kernel_size "
                f"{tuple(params.kernel.shape[:r])} with padding={self.padding!r}, dilation_rate="
                f"{self.dilation_rate}: the convolution would have no output. Use larger inputs "
                "or padding='same'."
            )
        return in_shape

    def _output_shape(self, params, in_shape):
        """The input convolution's output shape for one step (channels included): what
        ``core/conv.py`` gives, by shape inference only."""
        x = jax.ShapeDtypeStruct((1, *in_shape), params.kernel.dtype)
        k = jax.ShapeDtypeStruct(params.kernel.shape, params.kernel.dtype)
        try:
            return jax.eval_shape(
                lambda a, b: conv(
                    a,
                    b,
                    strides=self.strides,
                    padding=self.padding,
                    dilation=self.dilation_rate,
                    data_format=self.data_format,
                ),
                x,
                k,
            ).shape[1:]
        except (TypeError, ValueError):  # lax refuses a negative output size
            return (0,)

    def state_shapes(self, params, in_shape):
        out = list(self._output_shape(params, in_shape))
        out[self._channel(len(out) + 1) - 1] = params.recurrent_kernel.shape[-2]
        return (tuple(out), tuple(out))

    def dropout_shapes(self, params, in_shape):
        return (4, *in_shape), (4, *self.state_shapes(params, in_shape)[0])

    def _gate_stack(self, a):
        """``(N, 4, *shape)`` (one copy per gate) -> one array whose channels are the four
        copies' channels in gate order, for a convolution with ``feature_group_count=4``."""
        if self.data_format == "channels_first":
            return a.reshape(a.shape[0], 4 * a.shape[2], *a.shape[3:])
        a = jnp.moveaxis(a, 1, -2)
        return a.reshape(*a.shape[:-2], 4 * a.shape[-1])

    def _add_bias(self, z, bias):
        if bias is None:
            return z
        shape = [1] * z.ndim
        shape[self._channel(z.ndim)] = bias.shape[0]
        return z + bias.reshape(shape).astype(z.dtype)

    def project(self, params, x, dropout_mask=None, compute_dtype=None):
        """The input convolution (and bias) of every step: ``x`` ``(B, T, *in)`` ->
        ``(B, T, *state_shape[:-1], 4f)`` (channels first: ``(B, T, 4f, *spatial_out)``).
        With ``dropout_mask`` ``(B, 4, *in)`` each gate's kernel sees its own masked input."""
        b, t = x.shape[:2]
        if dropout_mask is None:
            x = x.reshape(b * t, *x.shape[2:])
            z = self._conv(x, params.kernel, compute_dtype, input_conv=True)
        else:  # four masked copies of x, one per gate
            masked = x[:, :, None] * dropout_mask[:, None].astype(x.dtype)  # (B, T, 4, *in)
            stacked = self._gate_stack(masked.reshape(b * t, *masked.shape[2:]))
            z = self._conv(stacked, params.kernel, compute_dtype, input_conv=True, groups=4)
        z = self._add_bias(z, params.bias)
        return z.reshape(b, t, *z.shape[1:])

    def _recurrent_conv(self, params, h, rdm, compute_dtype):
        rk = params.recurrent_kernel
        if rdm is None:
            return self._conv(h, rk, compute_dtype, input_conv=False)
        stacked = self._gate_stack(h[:, None] * rdm.astype(h.dtype))  # one masked h per gate
        return self._conv(stacked, rk, compute_dtype, input_conv=False, groups=4)

    def step(self, params, state, xz_t, rdm=None, compute_dtype=None):
        """One Keras step on tuples, from the step's projected input :meth:`project`
        (``x_t * kernel + bias``)."""
        act, rec = self.activation, self.recurrent_activation
        h, c = state
        z = xz_t + self._recurrent_conv(params, h, rdm, compute_dtype)
        z_i, z_f, z_c, z_o = jnp.split(z, 4, axis=self._channel(z.ndim))
        c = rec(z_f) * c + rec(z_i) * act(z_c)
        return rec(z_o) * act(c), c


def _text(shape) -> str:
    return ", ".join(str(n) for n in shape)


def conv_lstm_cell(
    rank: int,
    *,
    strides=1,
    padding: str = "valid",
    dilation_rate=1,
    data_format: str = "channels_last",
    activation: str | Activation = "tanh",
    recurrent_activation: str | Activation = "sigmoid",
) -> ConvLSTMCell:
    """The :class:`ConvLSTMCell` for these Keras options, checked as Keras checks them."""
    if rank not in (1, 2, 3):
        raise UnsupportedOptionError(
            f"rank={rank!r}; expected 1, 2 or 3 (ConvLSTM1D, ConvLSTM2D, ConvLSTM3D)."
        )
    pad = padding.lower() if isinstance(padding, str) else padding
    if pad not in PADDINGS:
        raise UnsupportedOptionError(
            f"padding={padding!r}; expected one of {PADDINGS} (a ConvLSTM has no causal padding)."
        )
    if data_format not in DATA_FORMATS:
        raise UnsupportedOptionError(
            f"data_format={data_format!r}; expected one of {DATA_FORMATS}."
        )
    strides = _tuple(strides, rank, "strides")
    dilation = _tuple(dilation_rate, rank, "dilation_rate")
    if max(strides) > 1 and max(dilation) > 1:
        raise UnsupportedOptionError(
            f"strides={strides} with dilation_rate={dilation}; Keras allows strides > 1 or "
            "dilation_rate > 1, not both: pass strides=1 or dilation_rate=1."
        )
    return ConvLSTMCell(
        rank,
        strides,
        pad,
        dilation,
        data_format,
        get_activation(activation),
        get_activation(recurrent_activation),
    )


def conv_lstm_dropout_masks(
    key, cell: ConvLSTMCell, params, x, dropout, recurrent_dropout, time_major=False
):
    """Keras 3's dropout masks for one ConvLSTM call: four per sequence (one per gate) over
    the step input, ``(*batch, 4, *in_shape)``, and over ``h``, ``(*batch, 4, *state_shape)``,
    scaled by ``1 / (1 - rate)``; ``None`` for a rate outside ``(0, 1)``, as in Keras."""
    n_in = cell.input_ndim
    batch_shape = x.shape[1 : x.ndim - n_in] if time_major else x.shape[: x.ndim - n_in - 1]
    in_shape, rec_shape = cell.dropout_shapes(params, tuple(x.shape[x.ndim - n_in :]))
    k_in, k_rec = jax.random.split(key)

    def draw(k, rate, shape):
        if not 0.0 < rate < 1.0:
            return None
        keep = jax.random.bernoulli(k, 1.0 - rate, (*batch_shape, *shape))
        return keep.astype(x.dtype) / (1.0 - rate)

    return draw(k_in, dropout, in_shape), draw(k_rec, recurrent_dropout, rec_shape)


def conv_lstm_step(
    params: ConvLSTMParams,
    state: ConvLSTMState,
    x_t: jax.Array,
    *,
    strides=1,
    padding: str = "valid",
    dilation_rate=1,
    data_format: str = "channels_last",
    activation: str | Activation = "tanh",
    recurrent_activation: str | Activation = "sigmoid",
    compute_dtype=None,
) -> ConvLSTMState:
    """One ConvLSTM step (the equations in this module's docstring).

    Args:
      params: :class:`ConvLSTMParams`; the rank is ``kernel.ndim - 2``.
      state: :class:`ConvLSTMState` (or ``[h, c]``), each ``(*batch, *spatial_out, filters)``
        (channels first: ``(*batch, filters, *spatial_out)``).
      x_t: ``(*batch, *spatial, in_channels)`` (channels first: ``(*batch, in_channels,
        *spatial)``).
      strides, padding, dilation_rate, data_format, activation, recurrent_activation: Keras's
        ConvLSTM options.
      compute_dtype: e.g. ``jnp.bfloat16`` for bfloat16 convolutions with float32 results.

    Returns:
      The new :class:`ConvLSTMState`; its ``h`` is the step's output.

    Example:
      >>> import jax.numpy as jnp
      >>> p = ConvLSTMParams(jnp.ones((3, 3, 2, 8)), jnp.ones((3, 3, 2, 8)), jnp.zeros(8))
      >>> s = ConvLSTMState(jnp.zeros((1, 4, 4, 2)), jnp.zeros((1, 4, 4, 2)))
      >>> conv_lstm_step(p, s, jnp.ones((1, 6, 6, 2))).h.shape
      (1, 4, 4, 2)
    """
    cell = conv_lstm_cell(
        jnp.ndim(params.kernel) - 2,
        strides=strides,
        padding=padding,
        dilation_rate=dilation_rate,
        data_format=data_format,
        activation=activation,
        recurrent_activation=recurrent_activation,
    )
    rnn.check_params(cell, params)
    x_t = jnp.asarray(x_t)
    n_in = cell.input_ndim
    batch_shape = x_t.shape[: x_t.ndim - n_in]
    in_shape = cell.input_shape(params, (*batch_shape, 1, *x_t.shape[x_t.ndim - n_in :]))
    shapes = cell.state_shapes(params, in_shape)
    state = rnn.as_state(cell, state)
    flat = []
    for name, s, shape in zip(state._fields, state, shapes, strict=True):
        if tuple(jnp.shape(s)) != (*batch_shape, *shape):
            raise ShapeError(
                f"state.{name} has shape {tuple(jnp.shape(s))}; expected (*batch, "
                f"{_text(shape)}) = {(*batch_shape, *shape)} for inputs of shape "
                f"{tuple(x_t.shape)}."
            )
        flat.append(jnp.asarray(s).reshape(-1, *shape))
    n = math.prod(batch_shape)
    xz = cell.project(params, x_t.reshape(n, 1, *in_shape), None, compute_dtype)[:, 0]
    h, c = cell.step(params, tuple(flat), xz, None, compute_dtype)
    return ConvLSTMState(h.reshape(*batch_shape, *shapes[0]), c.reshape(*batch_shape, *shapes[1]))


def conv_lstm_scan(
    params: ConvLSTMParams,
    x: jax.Array,
    *,
    initial_state: ConvLSTMState | None = None,
    mask: jax.Array | None = None,
    go_backwards: bool = False,
    return_sequences: bool = True,
    zero_output_for_mask: bool = False,
    strides=1,
    padding: str = "valid",
    dilation_rate=1,
    data_format: str = "channels_last",
    activation: str | Activation = "tanh",
    recurrent_activation: str | Activation = "sigmoid",
    dropout_mask: jax.Array | None = None,
    recurrent_dropout_mask: jax.Array | None = None,
    time_major: bool = False,
    unroll: int | bool = 1,
    compute_dtype=None,
    remat_chunk: int | None = None,
    impl: str = "auto",
) -> tuple[jax.Array, ConvLSTMState]:
    """Run a ConvLSTM over a sequence with Keras's semantics (``keras.layers.ConvLSTM1D/2D/3D``).

    The sequence options mean what they mean for :func:`jaxlstm.lstm_scan` (one driver runs
    both): ``mask`` ``(*batch, T)`` anywhere (a masked step carries ``(h, c)`` and repeats the
    previous output, or zeros with ``zero_output_for_mask``), ``go_backwards`` (sequences come
    back in processing order), ``time_major`` (``(T, *batch, ...)``), ``unroll``,
    ``remat_chunk``; ``impl``: ``"auto"`` and ``"scan"`` run the scan (``"cudnn"`` raises).

    Args:
      params: :class:`ConvLSTMParams` in Keras layout; its kernel's rank (1, 2, 3) is the
        layer's.
      x: ``(*batch, T, *spatial, in_channels)`` (channels first: ``(*batch, T, in_channels,
        *spatial)``).
      initial_state: :class:`ConvLSTMState` (or ``[h, c]``), each of the state's shape
        ``(*batch, *spatial_out, filters)`` (channels first: ``(*batch, filters,
        *spatial_out)``); zeros when ``None``.
      strides, padding (``"valid"`` or ``"same"``), dilation_rate, data_format: the input
        convolution's, as in Keras; the recurrent one is always ``"same"`` with strides 1.
      activation, recurrent_activation: Keras names or callables (``φ`` and ``σ``).
      dropout_mask: ``(*batch, 4, *in_shape)`` multipliers of the inputs, one per gate (i, f,
        c, o), e.g. from Keras 3's four dropout masks. recurrent_dropout_mask: ``(*batch, 4,
        *state_shape)`` multipliers of ``h`` in the recurrent convolutions.
      compute_dtype: e.g. ``jnp.bfloat16`` for bfloat16 convolutions with float32 results and
        carry.

    Returns:
      ``(outputs, final_state)``: ``(*batch, T, *state_shape)`` (or the last output
      ``(*batch, *state_shape)`` without ``return_sequences``) and the :class:`ConvLSTMState`
      after the last unmasked step.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> k1, k2 = jax.random.split(jax.random.key(0))
      >>> p = ConvLSTMParams(jax.random.normal(k1, (3, 2, 8)), jax.random.normal(k2, (3, 2, 8)))
      >>> y, state = conv_lstm_scan(p, jnp.ones((4, 5, 10, 2)), padding="same")
      >>> y.shape, state.c.shape
      ((4, 5, 10, 2), (4, 10, 2))
    """
    cell = conv_lstm_cell(
        jnp.ndim(params.kernel) - 2,
        strides=strides,
        padding=padding,
        dilation_rate=dilation_rate,
        data_format=data_format,
        activation=activation,
        recurrent_activation=recurrent_activation,
    )
    return rnn.scan(
        cell,
        params,
        x,
        initial_state=initial_state,
        mask=mask,
        go_backwards=go_backwards,
        return_sequences=return_sequences,
        zero_output_for_mask=zero_output_for_mask,
        dropout_mask=dropout_mask,
        recurrent_dropout_mask=recurrent_dropout_mask,
        time_major=time_major,
        unroll=unroll,
        compute_dtype=compute_dtype,
        remat_chunk=remat_chunk,
        impl=impl,
    )
