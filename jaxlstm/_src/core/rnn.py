"""The one scan driver behind ``lstm_scan``, ``gru_scan`` and ``simple_rnn_scan``.

A cell (``lstm.LSTMCell``, ``gru.GRUCell``, ``simple_rnn.SimpleRNNCell``) is a small hashable
NamedTuple of its static options (activations, ``reset_after``) with its step math; its params
and state are NamedTuples in Keras's layout. :func:`scan` owns what every Keras RNN shares:
shape checks, any number of batch axes, ``time_major``, ``go_backwards``, masks anywhere with
Keras's semantics, ``initial_state``, dropout masks, ``return_sequences``, ``unroll``,
``remat_chunk`` and the choice of implementation (the scan of ``fast.py``, or cuDNN for the
LSTM). Nothing here imports Flax.

What a cell provides (see ``lstm.LSTMCell`` for the reference implementation)::

    name, gates, gate_order        "GRU", 3 (kernel columns = gates * units), "z|r|h"
    params_type, state_type        its NamedTuples (state fields, h first)
    activations                    the activation functions it applies
    bias_shape(units), bias_text   the bias shape Keras stores, e.g. (2, 3u) and "(2, 3*units)"
    step(params, state, x_t, rdm, compute_dtype) -> state        one Keras step (tuples)
    fused                          the step is one matmul + an elementwise update, so:
    split                          False: z is one array; True: a pair (input, recurrent part)
    fuse(params) -> (w_x, w_h, b)  z = x_t @ w_x + (h * rdm) @ w_h + b; split: b = (b_x, b_h)
                                   and z = (x_t @ w_x + b_x, (h * rdm) @ w_h + b_h)
    update(z, state) -> state      the elementwise rest
    linearize(z, state) -> (state, coefficients), tangent(coefficients, dz, dstate) -> dstate
    tangent_input(coefficients, dz_x) -> d   split only: the input part's share of the tangent
                                   (all steps at once); tangent then gets dz = (d, dz_h)

A cell whose inputs and states are not vectors (``conv_lstm.ConvLSTMCell``: ``(*spatial, C)``
images) also provides::

    input_ndim                     trailing axes of one step's input (1 for a vector)
    input_shape(params, x_shape)   one step's input shape, checked (ShapeError otherwise)
    state_shapes(params, in_shape) each state array's shape without the batch axis
    dropout_shapes(params, in_shape) the input and recurrent dropout masks' shapes
    project(params, x, dropout_mask, compute_dtype)   the input transformation of every step
                                   at once, (B, T, *in) -> what ``step`` takes as ``x_t``
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from jaxlstm._src.core import cudnn, fast
from jaxlstm._src.errors import ShapeError, UnsupportedOptionError


def choose_impl(
    cell,
    impl,
    *,
    dtypes,
    masked,
    go_backwards,
    recurrent_dropout,
    compute_dtype,
    remat_chunk,
) -> str:
    """``"scan"`` or ``"cudnn"`` for ``impl`` (see ``lstm_scan``); raises
    :class:`UnsupportedOptionError` with the reason where ``impl="cudnn"`` cannot run."""
    if impl not in cudnn.IMPLS:
        raise UnsupportedOptionError(f"impl={impl!r}; expected one of {cudnn.IMPLS}.")
    if impl == "scan":
        return "scan"
    if cell.name != "LSTM":
        reason = f"jax.experimental.rnn has a cuDNN kernel for LSTM only, not for {cell.name}"
    else:
        reason = cudnn.unsupported_reason(
            platform=cudnn.default_platform(),
            activation=cell.activation,
            recurrent_activation=cell.recurrent_activation,
            masked=masked,
            go_backwards=go_backwards,
            recurrent_dropout=recurrent_dropout,
            compute_dtype=compute_dtype,
            dtypes=dtypes,
            remat_chunk=remat_chunk,
        )
    if impl == "cudnn":
        if reason is not None:
            raise UnsupportedOptionError(
                f"impl='cudnn' cannot run this call: {reason}. Use impl='scan' (or 'auto', "
                "which picks cuDNN only where it applies)."
            )
        return "cudnn"
    return "cudnn" if reason is None and not masked else "scan"


def scan(
    cell,
    params,
    x,
    *,
    initial_state=None,
    mask=None,
    go_backwards: bool = False,
    return_sequences: bool = True,
    zero_output_for_mask: bool = False,
    dropout_mask=None,
    recurrent_dropout_mask=None,
    time_major: bool = False,
    unroll: int | bool = 1,
    compute_dtype=None,
    remat_chunk: int | None = None,
    impl: str = "auto",
):
    """Run ``cell`` over a sequence with Keras's semantics; the arguments and returns are those
    documented on :func:`jaxlstm.lstm_scan`, with ``initial_state`` and the final state in the
    cell's state NamedTuple."""
    x = jnp.asarray(x)
    n_batch = x.ndim - 1 - getattr(cell, "input_ndim", 1)  # batch axes (time_major: after T)
    if time_major and n_batch >= 0:
        x = jnp.moveaxis(x, 0, n_batch)
        if mask is not None:
            mask = jnp.moveaxis(jnp.asarray(mask), 0, n_batch)
    x, mask, initial_state, dropout_mask, recurrent_dropout_mask, batch_shape, shapes = (
        check_and_flatten(
            cell, params, x, mask, initial_state, dropout_mask, recurrent_dropout_mask
        )
    )
    kernel = first_kernel(cell, params)
    carry_dtype = jnp.float32 if compute_dtype is not None else jnp.result_type(x, kernel)
    if initial_state is None:
        initial_state = tuple(jnp.zeros((x.shape[0], *shape), carry_dtype) for shape in shapes)
    else:
        initial_state = tuple(s.astype(carry_dtype) for s in initial_state)

    if go_backwards:
        x = jnp.flip(x, axis=1)
        mask = None if mask is None else jnp.flip(mask, axis=1)
    if hasattr(cell, "project"):  # the input transformation of all steps at once
        x = cell.project(params, x, dropout_mask, compute_dtype)
    elif dropout_mask is not None:
        x = x * dropout_mask[:, None, :].astype(x.dtype)

    chosen = choose_impl(
        cell,
        impl,
        dtypes=(x.dtype, kernel.dtype, getattr(params, "recurrent_kernel", kernel).dtype),
        masked=mask is not None,
        go_backwards=go_backwards,
        recurrent_dropout=recurrent_dropout_mask is not None,
        compute_dtype=compute_dtype,
        remat_chunk=remat_chunk,
    )
    if chosen == "cudnn":  # the LSTM only (choose_impl)
        ys, *state = cudnn.lstm(
            params.kernel,
            params.recurrent_kernel,
            params.bias,
            x,
            *initial_state,
            mask,
            return_sequences=return_sequences,
            zero_output_for_mask=zero_output_for_mask,
        )
    else:
        cfg = fast.Config(
            cell=cell,
            masked=mask is not None,
            zero_output_for_mask=zero_output_for_mask,
            return_sequences=return_sequences,
            compute_dtype=compute_dtype,
            # True == 1 to Python: spell the full unroll as a step count, so that the jit
            # cache of the (static) Config cannot mistake one for the other.
            unroll=x.shape[1] if unroll is True else max(1, int(unroll)),
        )
        ys, state = fast.run(
            cfg,
            params,
            jnp.swapaxes(x, 0, 1),  # (T, B, F): the scan runs over the leading axis
            initial_state,
            recurrent_dropout_mask,
            # (T, B, 1, ...): broadcast against each state array (B, *state_shape)
            None if mask is None else jnp.swapaxes(mask, 0, 1)[(..., *[None] * len(shapes[0]))],
            remat_chunk=remat_chunk,
        )
        if return_sequences:
            ys = jnp.swapaxes(ys, 0, 1)
    final = cell.state_type(
        *(s.reshape(*batch_shape, *shape) for s, shape in zip(state, shapes, strict=True))
    )
    if not return_sequences:
        return ys.reshape(*batch_shape, *shapes[0]), final
    ys = ys.reshape(*batch_shape, ys.shape[1], *shapes[0])
    return (jnp.moveaxis(ys, len(batch_shape), 0) if time_major else ys), final


def output_units(cell, params) -> int:
    """The width of the cell's output ``h`` (a stacked cell's: its last cell's)."""
    if hasattr(cell, "output_units"):
        return cell.output_units(params)
    return params.recurrent_kernel.shape[0]


def state_units(cell, params) -> tuple[int, ...]:
    """The width of each array of the cell's state, in its state NamedTuple's order."""
    if hasattr(cell, "state_units"):
        return cell.state_units(params)
    return (params.recurrent_kernel.shape[0],) * len(cell.state_type._fields)


def first_kernel(cell, params):
    """The kernel applied to the inputs (a stacked cell's: its first cell's)."""
    return cell.first_kernel(params) if hasattr(cell, "first_kernel") else params.kernel


def check_params(cell, params):
    """Raise :class:`ShapeError` unless ``params`` has the shapes Keras gives ``cell``."""
    if hasattr(cell, "check_params"):
        return cell.check_params(params)
    g, units = cell.gates, params.recurrent_kernel.shape[0]
    if params.kernel.ndim != 2 or params.kernel.shape[1] != g * units:
        raise ShapeError(
            f"kernel has shape {tuple(params.kernel.shape)} but recurrent_kernel has shape "
            f"{tuple(params.recurrent_kernel.shape)}; expected kernel (in_features, {g}*units) = "
            f"(in_features, {g * units}) with the gates packed [{cell.gate_order}] as Keras "
            "stores them."
        )
    if params.recurrent_kernel.shape != (units, g * units):
        raise ShapeError(
            f"recurrent_kernel has shape {tuple(params.recurrent_kernel.shape)}; expected "
            f"(units, {g}*units) = ({units}, {g * units})."
        )
    if params.bias is not None and tuple(params.bias.shape) != cell.bias_shape(units):
        raise ShapeError(
            f"bias has shape {tuple(params.bias.shape)}; expected {cell.bias_text} = "
            f"{cell.bias_shape(units)}{cell.bias_hint}."
        )


def as_state(cell, state):
    """``state`` as the cell's state NamedTuple (a list ``[h, c]`` as Keras passes it, or a lone
    array for a one-array state); :class:`ShapeError` for the wrong number of arrays."""
    state_type = cell.state_type
    if isinstance(state, state_type):
        return state
    fields = state_type._fields
    if len(fields) == 1 and hasattr(state, "shape"):
        return state_type(state)
    if len(state) != len(fields):
        names = ", ".join(fields)
        raise ShapeError(
            f"initial_state has {len(state)} arrays; expected {len(fields)}, ({names}): "
            f"pass jaxlstm.{state_type.__name__}({names})."
        )
    return state_type(*state)


def _text(shape) -> str:
    return ", ".join(str(n) for n in shape)


def check_and_flatten(cell, params, x, mask, initial_state, dropout_mask, recurrent_dropout_mask):
    """Validate shapes and fold all batch axes into one, so the scan sees (B, T, *in): (B, T, F)
    for a vector cell. Also returns the batch shape and each state array's shape."""
    check_params(cell, params)
    if hasattr(cell, "input_shape"):
        in_shape = cell.input_shape(params, tuple(x.shape))
        sizes = cell.state_shapes(params, in_shape)
        dropout_shape, recurrent_shape = cell.dropout_shapes(params, in_shape)
    else:
        in_features = first_kernel(cell, params).shape[0]
        if x.ndim < 2 or x.shape[-1] != in_features:
            raise ShapeError(
                f"inputs have shape {tuple(x.shape)}; expected (*batch, time, {in_features}) "
                f"(or (time, {in_features}) for one sequence): the layer has "
                f"in_features={in_features}."
            )
        in_shape = (in_features,)
        sizes = tuple((n,) for n in state_units(cell, params))
        dropout_shape, recurrent_shape = in_shape, (output_units(cell, params),)
    n_in = len(in_shape)
    batch_shape, steps = tuple(x.shape[: -n_in - 1]), x.shape[-n_in - 1]
    x = x.reshape(math.prod(batch_shape), steps, *in_shape)

    def flat(a, trailing, what, expected):
        a = jnp.asarray(a)
        if tuple(a.shape) != (*batch_shape, *trailing):
            raise ShapeError(
                f"{what} has shape {tuple(a.shape)}; expected {expected} = "
                f"{(*batch_shape, *trailing)} for inputs of shape "
                f"{(*batch_shape, steps, *in_shape)}."
            )
        return a.reshape(math.prod(batch_shape), *trailing)

    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.ndim == len(batch_shape) + 2 and mask.shape[-1] == 1:
            mask = mask[..., 0]
        mask = flat(mask, (steps,), "mask", "(*batch, time)")
        mask = mask if mask.dtype == jnp.bool_ else mask != 0
    if initial_state is not None:
        initial_state = as_state(cell, initial_state)
        initial_state = cell.state_type(
            *(
                flat(s, shape, f"initial_state.{name}", f"(*batch, {_text(shape)})")
                for name, s, shape in zip(initial_state._fields, initial_state, sizes, strict=True)
            )
        )
    vector = not hasattr(cell, "input_shape")
    if dropout_mask is not None:
        expected = "(*batch, in_features)" if vector else f"(*batch, {_text(dropout_shape)})"
        dropout_mask = flat(dropout_mask, dropout_shape, "dropout_mask", expected)
    if recurrent_dropout_mask is not None:
        expected = "(*batch, units)" if vector else f"(*batch, {_text(recurrent_shape)})"
        recurrent_dropout_mask = flat(
            recurrent_dropout_mask, recurrent_shape, "recurrent_dropout_mask", expected
        )
    return x, mask, initial_state, dropout_mask, recurrent_dropout_mask, batch_shape, sizes


def step(cell, params, state, x_t, compute_dtype=None):
    """One step of ``cell`` (``lstm_step`` and its siblings): ``state`` in the cell's
    NamedTuple (or a list), ``x_t`` ``(*batch, in_features)``."""
    check_params(cell, params)
    state = as_state(cell, state)
    return cell.state_type(*cell.step(params, tuple(state), jnp.asarray(x_t), None, compute_dtype))
