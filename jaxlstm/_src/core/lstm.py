"""The LSTM as pure functions over pytrees: no Flax, no Keras, no state.

Weights are kept in Keras's layout so that a Keras file maps onto them without reshuffling::

    kernel            (in, 4u)   columns [i | f | c | o]
    recurrent_kernel  (u, 4u)    columns [i | f | c | o]
    bias              (4u,)      [i | f | c | o], or None when use_bias=False

One step, with ``σ`` the recurrent activation (sigmoid by default) and ``φ`` the activation
(tanh by default), is::

    z   = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias
    i   = σ(z[:, 0u:1u])        input gate
    f   = σ(z[:, 1u:2u])        forget gate
    c_t = f * c_{t-1} + i * φ(z[:, 2u:3u])
    o   = σ(z[:, 3u:4u])        output gate
    h_t = o * φ(c_t)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxlstm._src.core import cudnn, fast
from jaxlstm._src.core.activations import Activation, get_activation
from jaxlstm._src.errors import ShapeError, UnsupportedOptionError


class LSTMParams(NamedTuple):
    """LSTM weights in Keras's layout, gate order i, f, c, o.

    Attributes:
      kernel: ``(in_features, 4 * units)``, applied to the inputs.
      recurrent_kernel: ``(units, 4 * units)``, applied to the previous ``h``.
      bias: ``(4 * units,)``, or ``None`` for a layer built with ``use_bias=False``.
    """

    kernel: jax.Array
    recurrent_kernel: jax.Array
    bias: jax.Array | None = None

    @property
    def units(self) -> int:
        return self.recurrent_kernel.shape[0]

    @property
    def in_features(self) -> int:
        return self.kernel.shape[0]


class LSTMState(NamedTuple):
    """The LSTM carry. Keras lists it as ``[h, c]``; so do we, by name.

    Attributes:
      h: ``(*batch, units)``, the hidden state, which is also the step's output.
      c: ``(*batch, units)``, the cell state.
    """

    h: jax.Array
    c: jax.Array


def zeros_state(batch_shape: tuple[int, ...], units: int, dtype=jnp.float32) -> LSTMState:
    """An all-zero :class:`LSTMState` of shape ``(*batch_shape, units)``, as Keras starts from."""
    z = jnp.zeros((*batch_shape, units), dtype)
    return LSTMState(z, z)


def _gates(z, c_prev, act: Activation, rec_act: Activation) -> LSTMState:
    z_i, z_f, z_c, z_o = jnp.split(z, 4, axis=-1)
    c = rec_act(z_f) * c_prev + rec_act(z_i) * act(z_c)
    h = rec_act(z_o) * act(c)
    return LSTMState(h, c)


def lstm_step(
    params: LSTMParams,
    state: LSTMState,
    x_t: jax.Array,
    *,
    activation: str | Activation = "tanh",
    recurrent_activation: str | Activation = "sigmoid",
    compute_dtype=None,
) -> LSTMState:
    """One LSTM step (the equations in this module's docstring).

    Args:
      params: :class:`LSTMParams`.
      state: :class:`LSTMState` with ``h`` and ``c`` of shape ``(*batch, units)``.
      x_t: ``(*batch, in_features)``.
      activation, recurrent_activation: Keras names or callables (see ``jaxlstm.ACTIVATIONS``).
      compute_dtype: e.g. ``jnp.bfloat16`` to run the matmuls in that dtype, accumulating and
        keeping the carry in float32. ``None`` computes in the inputs' dtype.

    Returns:
      The new :class:`LSTMState`; its ``h`` is the step's output.

    Example:
      >>> import jax.numpy as jnp
      >>> p = LSTMParams(jnp.ones((3, 8)), jnp.ones((2, 8)), jnp.zeros(8))
      >>> lstm_step(p, zeros_state((1,), 2), jnp.ones((1, 3))).h.shape
      (1, 2)
    """
    act, rec_act = get_activation(activation), get_activation(recurrent_activation)
    z = fast.matmul(x_t, params.kernel, compute_dtype) + fast.matmul(
        state.h, params.recurrent_kernel, compute_dtype
    )
    if params.bias is not None:
        z = z + params.bias
    return _gates(z, state.c, act, rec_act)


def lstm_scan(
    params: LSTMParams,
    x: jax.Array,
    *,
    initial_state: LSTMState | None = None,
    mask: jax.Array | None = None,
    go_backwards: bool = False,
    return_sequences: bool = True,
    zero_output_for_mask: bool = False,
    activation: str | Activation = "tanh",
    recurrent_activation: str | Activation = "sigmoid",
    dropout_mask: jax.Array | None = None,
    recurrent_dropout_mask: jax.Array | None = None,
    time_major: bool = False,
    unroll: int | bool = 1,
    compute_dtype=None,
    remat_chunk: int | None = None,
    impl: str = "auto",
) -> tuple[jax.Array, LSTMState]:
    """Run an LSTM over a sequence with ``lax.scan``, with Keras's semantics.

    Args:
      params: :class:`LSTMParams` in Keras layout.
      x: ``(*batch, T, in_features)``: any number of batch axes, none for one sequence
        (``(T, in_features)``). With ``time_major=True``: ``(T, *batch, in_features)``.
      initial_state: :class:`LSTMState` with arrays ``(*batch, units)``; zeros when ``None``.
      mask: ``(*batch, T)`` (or ``(*batch, T, 1)``), bool or 0/1. At a masked step the state is
        carried unchanged and the output repeats the previous step's output (zeros before the
        first unmasked step), exactly as Keras's TensorFlow, PyTorch and NumPy backends do.
        Masked steps may be anywhere: left padding, gaps, whole rows.
      go_backwards: process the sequence from last step to first. As in Keras, the returned
        sequence is in processing order (``outputs[..., 0, :]`` belongs to the last input step).
      return_sequences: return every step's output ``(*batch, T, units)``; otherwise only the
        last one ``(*batch, units)``.
      zero_output_for_mask: output zeros at masked steps instead of repeating the previous output
        (what Keras does for an LSTM inside ``Bidirectional`` with ``return_sequences=True``).
      activation, recurrent_activation: Keras names or callables (a callable is part of the
        compile cache key: pass the same function object, not a new lambda, on every call).
      dropout_mask: optional ``(*batch, in_features)`` multiplier for the inputs at every step
        (Keras 3 draws one per sequence, scaled by ``1 / (1 - rate)``).
      recurrent_dropout_mask: optional ``(*batch, units)`` multiplier for ``h_{t-1}``.
      time_major: inputs, masks and returned sequences have time as their first axis.
      unroll: steps per ``lax.scan`` iteration (``True``: the whole sequence).
      compute_dtype: e.g. ``jnp.bfloat16`` to run matmuls in bfloat16 with a float32 carry.
      remat_chunk: checkpoint the backward pass in chunks of this many steps: differentiation
        then keeps the state only at chunk boundaries and recomputes one chunk at a time (about
        one more forward pass of compute). With ``remat_chunk ~ sqrt(T)`` memory grows as
        ``sqrt(T)``: e.g. ``T=100_000, B=8, units=256`` trains in well under 2 GiB. Gradients
        are those of the plain path. ``None``: no checkpointing.
      impl: ``"scan"`` (``lax.scan`` with a hand-written JVP whose transpose computes the weight
        and input gradients as single matmuls over all steps; every option, any backend),
        ``"cudnn"`` (``jax.experimental.rnn``: GPU, tanh/sigmoid, float32, no recurrent dropout,
        no checkpointing, masks right-padded and not with ``go_backwards``; raises
        :class:`UnsupportedOptionError` saying why otherwise), or ``"auto"``: cuDNN where it
        applies and no mask is given, the scan otherwise. :func:`which_impl` tells which runs.

    Returns:
      ``(outputs, final_state)``: ``outputs`` as selected by ``return_sequences``, and the final
      :class:`LSTMState` (the state after the last unmasked step), always, since it is free.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> k1, k2 = jax.random.split(jax.random.key(0))
      >>> p = LSTMParams(jax.random.normal(k1, (3, 8)), jax.random.normal(k2, (2, 8)), jnp.zeros(8))
      >>> y, state = lstm_scan(p, jnp.ones((4, 5, 3)))
      >>> y.shape, state.h.shape
      ((4, 5, 2), (4, 2))
    """
    act, rec_act = get_activation(activation), get_activation(recurrent_activation)
    x = jnp.asarray(x)
    if time_major and x.ndim >= 2:
        x = jnp.moveaxis(x, 0, -2)
        if mask is not None:
            mask = jnp.moveaxis(jnp.asarray(mask), 0, x.ndim - 2)
    x, mask, initial_state, dropout_mask, recurrent_dropout_mask, batch_shape = _check_and_flatten(
        params, x, mask, initial_state, dropout_mask, recurrent_dropout_mask
    )
    units = params.units
    carry_dtype = jnp.float32 if compute_dtype is not None else jnp.result_type(x, params.kernel)
    if initial_state is None:
        initial_state = zeros_state((x.shape[0],), units, carry_dtype)
    else:
        initial_state = LSTMState(*(s.astype(carry_dtype) for s in initial_state))

    if go_backwards:
        x = jnp.flip(x, axis=1)
        mask = None if mask is None else jnp.flip(mask, axis=1)
    if dropout_mask is not None:
        x = x * dropout_mask[:, None, :].astype(x.dtype)

    chosen = which_impl(
        params,
        x,
        impl=impl,
        mask=mask,
        go_backwards=go_backwards,
        activation=act,
        recurrent_activation=rec_act,
        recurrent_dropout_mask=recurrent_dropout_mask,
        compute_dtype=compute_dtype,
        remat_chunk=remat_chunk,
    )
    if chosen == "cudnn":
        ys, h, c = cudnn.lstm(
            params.kernel,
            params.recurrent_kernel,
            params.bias,
            x,
            initial_state.h,
            initial_state.c,
            mask,
            return_sequences=return_sequences,
            zero_output_for_mask=zero_output_for_mask,
        )
    else:
        cfg = fast.Config(
            activation=act,
            recurrent_activation=rec_act,
            masked=mask is not None,
            zero_output_for_mask=zero_output_for_mask,
            return_sequences=return_sequences,
            compute_dtype=compute_dtype,
            # True == 1 to Python: spell the full unroll as a step count, so that the jit
            # cache of the (static) Config cannot mistake one for the other.
            unroll=x.shape[1] if unroll is True else max(1, int(unroll)),
        )
        ys, h, c = fast.run(
            cfg,
            params.kernel,
            params.recurrent_kernel,
            params.bias,
            jnp.swapaxes(x, 0, 1),  # (T, B, F): the scan runs over the leading axis
            initial_state.h,
            initial_state.c,
            recurrent_dropout_mask,
            None if mask is None else jnp.swapaxes(mask, 0, 1)[..., None],  # (T, B, 1)
            remat_chunk=remat_chunk,
        )
        if return_sequences:
            ys = jnp.swapaxes(ys, 0, 1)
    final = LSTMState(h.reshape(*batch_shape, units), c.reshape(*batch_shape, units))
    if not return_sequences:
        return ys.reshape(*batch_shape, units), final
    ys = ys.reshape(*batch_shape, ys.shape[1], units)
    return (jnp.moveaxis(ys, -2, 0) if time_major else ys), final


def _choose_impl(impl, **conditions) -> str:
    if impl not in cudnn.IMPLS:
        raise UnsupportedOptionError(f"impl={impl!r}; expected one of {cudnn.IMPLS}.")
    if impl == "scan":
        return "scan"
    reason = cudnn.unsupported_reason(platform=cudnn.default_platform(), **conditions)
    if impl == "cudnn":
        if reason is not None:
            raise UnsupportedOptionError(
                f"impl='cudnn' cannot run this call: {reason}. Use impl='scan' (or 'auto', "
                "which picks cuDNN only where it applies)."
            )
        return "cudnn"
    return "cudnn" if reason is None and not conditions["masked"] else "scan"


def which_impl(
    params: LSTMParams,
    x: jax.Array,
    *,
    impl: str = "auto",
    mask: jax.Array | None = None,
    go_backwards: bool = False,
    activation: str | Activation = "tanh",
    recurrent_activation: str | Activation = "sigmoid",
    recurrent_dropout_mask: jax.Array | None = None,
    compute_dtype=None,
    remat_chunk: int | None = None,
) -> str:
    """Which implementation :func:`lstm_scan` runs for these arguments: ``"scan"`` or
    ``"cudnn"``. Raises :class:`UnsupportedOptionError` (with the reason) for ``impl="cudnn"``
    where cuDNN cannot run. Only the arguments that decide it are taken; arrays may be
    ``jax.ShapeDtypeStruct``\\ s. ``"auto"`` picks cuDNN on a GPU backend when the call has
    tanh/sigmoid activations, float32 weights and inputs, no ``compute_dtype``, no recurrent
    dropout, no ``remat_chunk`` and no mask (a mask may not be right-padded, which cannot be
    known while tracing: force ``impl="cudnn"`` for right-padded masks).

    Example:
      >>> import jax.numpy as jnp
      >>> p = LSTMParams(jnp.ones((3, 8)), jnp.ones((2, 8)), jnp.zeros(8))
      >>> which_impl(p, jnp.ones((1, 5, 3)), impl="scan")
      'scan'
    """
    return _choose_impl(
        impl,
        activation=get_activation(activation),
        recurrent_activation=get_activation(recurrent_activation),
        masked=mask is not None,
        go_backwards=go_backwards,
        recurrent_dropout=recurrent_dropout_mask is not None,
        compute_dtype=compute_dtype,
        dtypes=(x.dtype, params.kernel.dtype, params.recurrent_kernel.dtype),
        remat_chunk=remat_chunk,
    )


def _check_and_flatten(params, x, mask, initial_state, dropout_mask, recurrent_dropout_mask):
    """Validate shapes and fold all batch axes into one, so the scan sees (B, T, F)."""
    in_features, units = params.kernel.shape[0], params.recurrent_kernel.shape[0]
    if params.kernel.ndim != 2 or params.kernel.shape[1] != 4 * units:
        raise ShapeError(
            f"kernel has shape {tuple(params.kernel.shape)} but recurrent_kernel has shape "
            f"{tuple(params.recurrent_kernel.shape)}; expected kernel (in_features, 4*units) = "
            f"(in_features, {4 * units}) with the gates packed [i|f|c|o] as Keras stores them."
        )
    if params.recurrent_kernel.shape != (units, 4 * units):
        raise ShapeError(
            f"recurrent_kernel has shape {tuple(params.recurrent_kernel.shape)}; expected "
            f"(units, 4*units) = ({units}, {4 * units})."
        )
    if params.bias is not None and params.bias.shape != (4 * units,):
        raise ShapeError(
            f"bias has shape {tuple(params.bias.shape)}; expected (4*units,) = ({4 * units},)."
        )
    if x.ndim < 2 or x.shape[-1] != in_features:
        raise ShapeError(
            f"inputs have shape {tuple(x.shape)}; expected (*batch, time, {in_features}) "
            f"(or (time, {in_features}) for one sequence): the layer has "
            f"in_features={in_features}."
        )
    batch_shape, steps = tuple(x.shape[:-2]), x.shape[-2]
    x = x.reshape(math.prod(batch_shape), steps, in_features)

    def flat(a, trailing, what, expected):
        a = jnp.asarray(a)
        if tuple(a.shape) != (*batch_shape, *trailing):
            raise ShapeError(
                f"{what} has shape {tuple(a.shape)}; expected {expected} = "
                f"{(*batch_shape, *trailing)} for inputs of shape "
                f"{(*batch_shape, steps, in_features)}."
            )
        return a.reshape(math.prod(batch_shape), *trailing)

    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.ndim == len(batch_shape) + 2 and mask.shape[-1] == 1:
            mask = mask[..., 0]
        mask = flat(mask, (steps,), "mask", "(*batch, time)")
        mask = mask if mask.dtype == jnp.bool_ else mask != 0
    if initial_state is not None:
        if not isinstance(initial_state, LSTMState):
            if len(initial_state) != 2:
                raise ShapeError(
                    f"initial_state has {len(initial_state)} arrays; expected 2, (h, c): "
                    "pass jaxlstm.LSTMState(h, c)."
                )
            initial_state = LSTMState(*initial_state)
        initial_state = LSTMState(
            flat(initial_state.h, (units,), "initial_state.h", "(*batch, units)"),
            flat(initial_state.c, (units,), "initial_state.c", "(*batch, units)"),
        )
    if dropout_mask is not None:
        dropout_mask = flat(dropout_mask, (in_features,), "dropout_mask", "(*batch, in_features)")
    if recurrent_dropout_mask is not None:
        recurrent_dropout_mask = flat(
            recurrent_dropout_mask, (units,), "recurrent_dropout_mask", "(*batch, units)"
        )
    return x, mask, initial_state, dropout_mask, recurrent_dropout_mask, batch_shape
