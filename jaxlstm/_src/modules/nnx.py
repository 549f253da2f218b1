"""Flax NNX modules that hold LSTM weights and call the pure core. Keras's names and defaults."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlstm._src.core.activations import Activation, get_activation
from jaxlstm._src.core.layer import (
    LAYER_OPTIONS,
    check_bidirectional_pair,
    layer_options,
    lstm_layer,
    merge_bidirectional,
    split_bidirectional_state,
)
from jaxlstm._src.core.lstm import LSTMParams
from jaxlstm._src.errors import ShapeError, UnsupportedOptionError

# Keras's LSTM initialisers (glorot_uniform kernel, orthogonal recurrent kernel).
GLOROT_UNIFORM = nnx.initializers.glorot_uniform()
ORTHOGONAL = nnx.initializers.orthogonal()


def keras_bias_init(units: int, unit_forget_bias: bool, dtype=jnp.float32) -> jax.Array:
    """Keras's LSTM bias: zeros, with the forget slice at one when ``unit_forget_bias``."""
    bias = jnp.zeros((4 * units,), dtype)
    return bias.at[units : 2 * units].set(1.0) if unit_forget_bias else bias


def in_float32(init):
    """The initializer ``init`` computed in (at least) float32, its result cast to the dtype
    asked for: low-precision weights are drawn in float32 and cast (the orthogonal
    initializer's QR has no bfloat16/float16 kernel on CPU)."""

    def wide_init(key, shape, dtype=jnp.float32):
        value = init(key, shape, jnp.promote_types(dtype, jnp.float32))
        return jnp.asarray(value).astype(dtype)

    return wide_init


def host_array(array, dtype=jnp.float32) -> jax.Array:
    """``array`` in ``dtype`` on the device, converted on the host and put there as it is:
    building a module from a file's arrays runs (and compiles) no XLA program. A JAX array
    (e.g. a tracer) is cast with ``astype`` instead."""
    if isinstance(array, jax.Array):
        return array if array.dtype == dtype else array.astype(dtype)
    return jax.device_put(np.asarray(array, dtype))


def host_param(array, dtype=jnp.float32) -> nnx.Param:
    """An ``nnx.Param`` holding :func:`host_array` ``(array, dtype)``."""
    return nnx.Param(host_array(array, dtype))


def needs_dropout_rng(dropout: float, recurrent_dropout: float) -> bool:
    """Whether an LSTM with these rates draws dropout masks (Keras: a rate in (0, 1))."""
    return 0.0 < dropout < 1.0 or 0.0 < recurrent_dropout < 1.0


def in_param_dtype(outputs, param_dtype):
    """A layer's outputs (an array or a tuple of them) in ``param_dtype`` when the weights are
    16-bit floats (bfloat16, float16); unchanged otherwise."""
    if jnp.dtype(param_dtype).itemsize >= 4:
        return outputs
    return jax.tree.map(lambda a: a.astype(param_dtype), outputs)


def check_weights_shape(
    weights,
    in_features: int,
    units: int,
    use_bias: bool,
    gates: int,
    bias_shape,
    layout: str,
    kernel_shapes=None,
) -> None:
    """``weights`` (kernel, recurrent_kernel, bias) fit a layer of this size: ``kernel
    (in_features, gates * units)``, ``recurrent_kernel (units, gates * units)`` (or
    ``kernel_shapes``, the pair of them, for a convolutional cell), ``bias bias_shape`` (none
    when ``use_bias=False``); ``layout`` (e.g. ``"[i|f|c|o]"``) goes into the message."""
    kernel, recurrent = kernel_shapes or ((in_features, gates * units), (units, gates * units))
    shapes = {
        "kernel": (tuple(np.shape(weights.kernel)), tuple(kernel)),
        "recurrent_kernel": (tuple(np.shape(weights.recurrent_kernel)), tuple(recurrent)),
    }
    if use_bias:
        shape = None if weights.bias is None else tuple(np.shape(weights.bias))
        shapes["bias"] = (shape, tuple(bias_shape))
    elif weights.bias is not None:
        raise ShapeError(
            f"weights has a bias {tuple(np.shape(weights.bias))} but use_bias=False; pass "
            "use_bias=True or weights without a bias."
        )
    for name, (got, want) in shapes.items():
        if got != want:
            raise ShapeError(
                f"weights.{name} has shape {got}; expected {want} for in_features="
                f"{in_features}, units={units} (gates packed {layout} as Keras stores them)."
            )


def build_rnn(
    module: nnx.Module,
    cls: str,
    in_features: int,
    units: int,
    *,
    gates: int,
    bias_shape: tuple,
    bias_init,
    layout: str,
    options: dict,
    weights,
    params_type,
    param_dtype,
    kernel_init,
    recurrent_init,
    deterministic: bool,
    rngs,
    kernel_shapes=None,
) -> None:
    """Set up one recurrent NNX module (LSTM, GRU, SimpleRNN or ConvLSTM), the same way for
    all: ``options`` become attributes; ``kernel``, ``recurrent_kernel`` and ``bias`` become
    ``nnx.Param``\\ s, either from ``weights`` (converted on the host, nothing compiled) or drawn
    with ``kernel_init`` / ``recurrent_init`` in float32 and cast to ``param_dtype``
    (``bias_init(dtype)`` gives the bias); ``rngs`` gives the dropout stream when the options
    have dropout. ``cls`` names the module in messages. ``kernel_shapes``: the kernel and
    recurrent kernel shapes when they are not ``(in_features, gates * units)`` and ``(units,
    gates * units)`` (a ConvLSTM's ``(*kernel_size, in, 4f)`` and ``(*kernel_size, f, 4f)``)."""
    for name in ("activation", "recurrent_activation"):
        if name in options:
            get_activation(options[name])  # fail early
    module.in_features, module.units = in_features, units
    for name, value in options.items():
        setattr(module, name, value)
    module.deterministic = deterministic
    use_bias = options["use_bias"]
    dropout, recurrent_dropout = options["dropout"], options["recurrent_dropout"]
    needs_rng = needs_dropout_rng(dropout, recurrent_dropout)
    if weights is not None:
        check_weights_shape(
            weights, in_features, units, use_bias, gates, bias_shape, layout, kernel_shapes
        )
        module.kernel = host_param(weights.kernel, param_dtype)
        module.recurrent_kernel = host_param(weights.recurrent_kernel, param_dtype)
        module.bias = host_param(weights.bias, param_dtype) if use_bias else None
    elif not isinstance(rngs, nnx.Rngs):
        fields = ", ".join(params_type._fields)
        raise UnsupportedOptionError(
            f"{cls}({in_features}, {units}) received rngs={rngs!r}; expected an nnx.Rngs to "
            f"draw the initial weights from (e.g. rngs=nnx.Rngs(0)), or weights="
            f"{params_type.__name__}({fields}) to start from given arrays."
        )
    else:
        key, rec_key = rngs.params(), rngs.params()
        shape, rec_shape = kernel_shapes or ((in_features, gates * units), (units, gates * units))
        module.kernel = nnx.Param(in_float32(kernel_init)(key, tuple(shape), param_dtype))
        module.recurrent_kernel = nnx.Param(
            in_float32(recurrent_init)(rec_key, tuple(rec_shape), param_dtype)
        )
        module.bias = nnx.Param(bias_init(param_dtype)) if use_bias else None
    if needs_rng and rngs is None:
        raise UnsupportedOptionError(
            f"{cls} with dropout={dropout}, recurrent_dropout={recurrent_dropout} received no "
            "rngs; expected rngs=nnx.Rngs(...) (or an nnx.RngStream) to draw dropout masks "
            "from in training mode."
        )
    if not needs_rng:
        module.rngs = nnx.data(None)
    elif isinstance(rngs, nnx.RngStream):
        module.rngs = rngs  # the module's own stream, as given
    else:
        module.rngs = rngs.dropout.fork()


def zero_output_for_mask(own: bool | None, return_sequences: bool) -> bool:
    """What a Bidirectional's layers output at masked steps: zeros when it returns sequences,
    as Keras's Bidirectional forces on its layers, unless it was built with
    ``zero_output_for_mask=own`` (``False``: a tf.keras ConvLSTM, which ignored the flag)."""
    return return_sequences if own is None else bool(own) and return_sequences


def dropout_key(module, deterministic):
    """The key for one call's dropout masks: ``None`` in eval mode or without dropout."""
    deterministic = module.deterministic if deterministic is None else deterministic
    return None if deterministic or module.rngs is None else module.rngs()


class HostRngStream(nnx.RngStream):
    """An ``nnx.RngStream`` whose key and count are made on the host and put on the device as
    they are, so that building a module with a dropout stream compiles nothing (``RngStream``
    itself runs ``jnp.zeros`` for its count). It draws, forks and re-keys as any ``RngStream``.

    Args:
      key: a JAX PRNG key, or raw key data (uint32, the default PRNG's key-data shape).
      tag: the stream's name (``"dropout"``).
    """

    def __init__(self, key, *, tag: str = "dropout"):
        if not (isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)):
            key = jax.random.wrap_key_data(jax.device_put(np.asarray(key, np.uint32)))
        self.tag = tag
        self.key = nnx.RngKey(key, tag=tag)
        self.count = nnx.RngCount(jax.device_put(np.zeros(key.shape, np.uint32)), tag=tag)


class DropoutStreams:
    """Where modules built from a file get their dropout streams, one per module that needs one.

    With ``rngs`` (the caller's ``nnx.Rngs``) each stream is ``rngs.dropout.fork()``, as Flax
    modules do. Without, stream ``k`` (in build order) has the default PRNG's key ``k``
    (``jax.random.key(k)`` for threefry), made on the host: loading compiles nothing.
    """

    def __init__(self, rngs: nnx.Rngs | None = None):
        self.rngs, self.count = rngs, 0

    def __call__(self) -> nnx.RngStream:
        if self.rngs is not None:
            return self.rngs.dropout.fork()
        shape = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0))).shape
        data = np.zeros(shape, np.uint32)
        data[..., -1] = self.count
        self.count += 1
        return HostRngStream(data)


class _KerasRNN(nnx.Module):
    """What every single-cell recurrent module (LSTM, GRU, SimpleRNN, ConvLSTM) is: built by
    :func:`build_rnn` (options as attributes, weights as ``nnx.Param``\\ s in Keras's layout,
    from ``weights=`` or drawn in float32 and cast), one call through the cell's layer code
    (``core/layer.py``), dropout keys in training mode, outputs in a 16-bit ``param_dtype``."""

    state_fields = ("h",)
    # per cell: its params pytree, its layer call (core/layer.py) and the options it takes
    _params_type: Any
    _layer: Any
    _options: tuple[str, ...]

    @property
    def params(self) -> Any:
        """The weights as the cell's plain params pytree (``LSTMParams``, ``GRUParams``,
        ``SimpleRNNParams``, ``ConvLSTMParams``), for the functional core."""
        bias = None if self.bias is None else self.bias[...]
        return self._params_type(self.kernel[...], self.recurrent_kernel[...], bias)

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
        out = self._layer(
            self.params,
            x,
            mask=mask,
            initial_state=initial_state,
            dropout_key=dropout_key(self, deterministic),
            **layer_options(
                self,
                self._options,
                return_state=return_state,
                zero_output_for_mask=zero_output_for_mask,
            ),
        )
        return in_param_dtype(out, self.kernel.dtype)


class LSTM(_KerasRNN):
    """``keras.layers.LSTM`` as a Flax NNX module.

    The weights are ``nnx.Param``\\ s in Keras's layout (gate order i, f, c, o)::

        kernel            (in_features, 4 * units)
        recurrent_kernel  (units, 4 * units)
        bias              (4 * units,)            absent when use_bias=False

    and each step computes ``z = x_t @ kernel + h @ recurrent_kernel + bias``,
    ``i, f, o = σ(z_i), σ(z_f), σ(z_o)``, ``c = f * c + i * φ(z_c)``, ``h = o * φ(c)`` with
    ``σ = recurrent_activation`` and ``φ = activation``.

    Args:
      in_features: size of the last input axis.
      units: size of the state and of each output.
      activation, recurrent_activation: Keras names (see ``jaxlstm.ACTIVATIONS``; note
        ``"hard_sigmoid"`` is Keras 3's, ``"hard_sigmoid_keras2"`` the Keras 1/2 one) or callables.
      use_bias, unit_forget_bias: as in Keras (forget-gate bias initialised to one).
      return_sequences: return ``(*batch, T, units)`` instead of the last output
        ``(*batch, units)``.
      return_state: also return the final ``h`` and ``c``: the call gives ``(outputs, h, c)``.
      go_backwards: run from the last step to the first; sequences come back in that order.
      dropout, recurrent_dropout: Keras 3 dropout on the inputs and on ``h``, one mask per sequence,
        active only when the module is in training mode (``deterministic=False``).
      zero_output_for_mask: zeros instead of the previous output at masked steps.
      time_major: inputs ``(T, *batch, in_features)``.
      unroll: steps per ``lax.scan`` iteration.
      compute_dtype: e.g. ``jnp.bfloat16`` for bfloat16 matmuls with a float32 carry.
      remat_chunk: checkpoint the backward pass in chunks of this many steps (long sequences:
        memory ~ ``T / remat_chunk + remat_chunk`` steps instead of ``T``); see ``lstm_scan``.
      impl: ``"auto"`` (cuDNN on GPU where it applies, else the scan), ``"scan"`` or ``"cudnn"``
        (raises ``UnsupportedOptionError`` where cuDNN cannot run); see ``jaxlstm.lstm_scan``.
      param_dtype: dtype of the weights. Low-precision weights (``jnp.bfloat16``,
        ``jnp.float16``) are drawn in float32 and cast, and the module then returns its outputs
        and states in that dtype (the recurrence runs in the inputs' dtype, float32 for float32
        inputs, with the rounded weights).
      kernel_init, recurrent_init: initializers ``(key, shape, dtype)`` (Keras's
        glorot_uniform and orthogonal).
      deterministic: ``True`` turns dropout off; ``model.eval()`` / ``model.train()`` set it.
      weights: an :class:`LSTMParams` to start from instead of drawing random weights: the
        arrays (numpy or JAX) are converted to ``param_dtype`` on the host and nothing is
        computed or compiled (this is how the file loaders build modules). Their shapes must be
        ``(in_features, 4 * units)``, ``(units, 4 * units)`` and ``(4 * units,)``.
      rngs: ``nnx.Rngs`` for the initial weights (``params`` stream; not needed with
        ``weights``) and dropout (``dropout`` stream, forked). An ``nnx.RngStream`` is taken
        as the module's own dropout stream as it is.

    Call: ``lstm(x, *, mask=None, initial_state=None)`` with ``x`` of shape
    ``(*batch, T, in_features)`` (no batch axes for one sequence), ``mask`` ``(*batch, T)`` and
    ``initial_state`` an ``LSTMState(h, c)`` or ``[h, c]``. ``return_state=`` and
    ``zero_output_for_mask=`` given to a call replace the module's own for that call only (how
    :class:`Bidirectional` and ``load_keras`` models call it: the module is never changed).

    Example:
      >>> from flax import nnx
      >>> import jax.numpy as jnp
      >>> lstm = LSTM(3, 8, return_sequences=True, rngs=nnx.Rngs(0))
      >>> lstm(jnp.ones((2, 5, 3))).shape
      (2, 5, 8)
    """

    state_fields = ("h", "c")  # Keras's state list, as Bidirectional splits initial_state
    _params_type, _layer, _options = LSTMParams, staticmethod(lstm_layer), LAYER_OPTIONS

    def __init__(
        self,
        in_features: int,
        units: int,
        *,
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
        weights: LSTMParams | None = None,
        rngs: nnx.Rngs | nnx.RngStream | None = None,
    ):
        options = dict(locals())
        options = {name: options[name] for name in (*LAYER_OPTIONS, "use_bias")}
        build_rnn(
            self, "LSTM", in_features, units, gates=4, bias_shape=(4 * units,),
            bias_init=lambda dtype: keras_bias_init(units, unit_forget_bias, dtype),
            layout="[i|f|c|o]", options=options, weights=weights,
            params_type=LSTMParams, param_dtype=param_dtype, kernel_init=kernel_init,
            recurrent_init=recurrent_init, deterministic=deterministic, rngs=rngs,
        )  # fmt: skip


class Bidirectional(nnx.Module):
    """``keras.layers.Bidirectional`` around two :class:`LSTM`, :class:`GRU`,
    :class:`SimpleRNN` or ConvLSTM (:class:`jaxlstm.ConvLSTM2D`, ...) modules.

    ``backward`` must run the other way (``go_backwards`` differs, as Keras requires) and both must
    agree on ``return_sequences`` and ``return_state``. As in Keras, inside Bidirectional an LSTM
    returning sequences outputs zeros at masked steps (``zero_output_for_mask``), and the backward
    sequence is flipped back to input order before merging. ``zero_output_for_mask=False``
    keeps the previous outputs at masked steps instead (what a tf.keras ConvLSTM computes
    inside Bidirectional: its ConvRNN never applied the flag; ``load_keras`` sets it so).

    Call: ``bi(x, *, mask=None, initial_state=None)``; ``initial_state`` is Keras's
    ``[h_fw, c_fw, h_bw, c_bw]`` (``[h_fw, h_bw]`` for GRUs and SimpleRNNs). Returns the merged
    output, or with ``return_state`` ``(output, h_fw, c_fw, h_bw, c_bw)`` (``(output, h_fw,
    h_bw)``); with ``merge_mode=None`` the output is ``(y_fw, y_bw)``.
    ``return_state=`` given to a call replaces the layers' own for that call. The two layers are
    used as given, never changed (``zero_output_for_mask`` is passed to them per call).

    Example:
      >>> from flax import nnx
      >>> import jax.numpy as jnp
      >>> rngs = nnx.Rngs(0)
      >>> bi = Bidirectional(LSTM(3, 4, rngs=rngs), LSTM(3, 4, go_backwards=True, rngs=rngs))
      >>> bi(jnp.ones((2, 5, 3))).shape
      (2, 8)
    """

    def __init__(
        self,
        forward: nnx.Module,
        backward: nnx.Module,
        merge_mode: str | None = "concat",
        zero_output_for_mask: bool | None = None,
    ):
        check_bidirectional_pair(forward, backward, merge_mode)
        self.forward, self.backward, self.merge_mode = forward, backward, merge_mode
        self.return_sequences = forward.return_sequences
        self.return_state = forward.return_state
        self.zero_output_for_mask = zero_output_for_mask

    def __call__(
        self,
        x: jax.Array,
        *,
        mask: jax.Array | None = None,
        initial_state: Any = None,
        deterministic: bool | None = None,
        return_state: bool | None = None,
    ) -> Any:
        return_state = self.return_state if return_state is None else return_state
        fw_state, bw_state = split_bidirectional_state(initial_state, self.forward.state_fields)
        per_call = dict(
            mask=mask,
            deterministic=deterministic,
            return_state=return_state,
            zero_output_for_mask=zero_output_for_mask(
                self.zero_output_for_mask, self.return_sequences
            ),
        )
        fw = self.forward(x, initial_state=fw_state, **per_call)
        bw = self.backward(x, initial_state=bw_state, **per_call)
        return merge_bidirectional(
            fw,
            bw,
            merge_mode=self.merge_mode,
            return_sequences=self.return_sequences,
            return_state=return_state,
            time_major=self.forward.time_major,
            step_ndim=getattr(self.forward, "step_ndim", 1),
        )
