"""Keras layer semantics on top of :func:`lstm_scan`: what ``keras.layers.LSTM`` and
``keras.layers.Bidirectional`` return, and how they draw dropout masks. Pure JAX, shared by the
NNX and Linen modules so that both compute exactly the same thing."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlstm._src.core.lstm import LSTMParams, LSTMState, lstm_scan
from jaxlstm._src.errors import UnsupportedOptionError

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def dropout_masks(key, x, units, dropout, recurrent_dropout, time_major=False):
    """Keras 3's per-sequence dropout masks: one ``(*batch, in)`` input mask and one
    ``(*batch, units)`` recurrent mask, shared by all steps and scaled by ``1 / (1 - rate)``.
    As in Keras, a rate outside ``(0, 1)`` means no dropout."""
    batch_shape = x.shape[1:-1] if time_major else x.shape[:-2]
    k_in, k_rec = jax.random.split(key)

    def draw(k, rate, n):
        if not 0.0 < rate < 1.0:
            return None
        keep = jax.random.bernoulli(k, 1.0 - rate, (*batch_shape, n))
        return keep.astype(x.dtype) / (1.0 - rate)

    return draw(k_in, dropout, x.shape[-1]), draw(k_rec, recurrent_dropout, units)


# The options an LSTM layer object (NNX or Linen) keeps as attributes and forwards to
# :func:`lstm_layer` unchanged.
LAYER_OPTIONS = (
    "return_sequences",
    "return_state",
    "dropout",
    "recurrent_dropout",
    "go_backwards",
    "zero_output_for_mask",
    "activation",
    "recurrent_activation",
    "time_major",
    "unroll",
    "compute_dtype",
    "remat_chunk",
    "impl",
)


def layer_options(layer, **per_call) -> dict:
    """``{name: layer.name}`` for every name in :data:`LAYER_OPTIONS`, with the options given for
    one call (those not ``None``) in place of the layer's: wrappers pass options this way
    instead of setting attributes on the layers they were given."""
    options = {name: getattr(layer, name) for name in LAYER_OPTIONS}
    unknown = sorted(set(per_call) - set(LAYER_OPTIONS))
    if unknown:
        raise UnsupportedOptionError(
            f"unknown per-call LSTM option(s) {unknown}; expected some of {list(LAYER_OPTIONS)}."
        )
    options.update({k: v for k, v in per_call.items() if v is not None})
    return options


def check_bidirectional_pair(forward, backward, merge_mode) -> None:
    """What ``keras.layers.Bidirectional`` requires of its two layers, for the NNX and the Linen
    modules alike (both keep their options as attributes): a known merge mode, directions that
    run opposite ways, and the same ``return_sequences``, ``return_state`` and ``time_major``."""
    if merge_mode not in MERGE_MODES:
        raise UnsupportedOptionError(f"merge_mode={merge_mode!r}; expected one of {MERGE_MODES}.")
    for name, layer in (("forward", forward), ("backward", backward)):
        missing = [a for a in ("go_backwards", *LAYER_OPTIONS) if not hasattr(layer, a)]
        if missing:
            raise UnsupportedOptionError(
                f"Bidirectional's {name} layer is a {type(layer).__name__}, not a jaxlstm LSTM "
                f"(it has no {missing[0]!r}); pass two LSTM modules of the same family "
                "(jaxlstm.LSTM with jaxlstm.Bidirectional, jaxlstm.linen.LSTM with "
                "jaxlstm.linen.Bidirectional)."
            )
    if forward.go_backwards == backward.go_backwards:
        raise UnsupportedOptionError(
            f"forward and backward layers both have go_backwards={forward.go_backwards}; "
            "the backward layer must run the other way: build it with "
            f"go_backwards={not forward.go_backwards}."
        )
    for attr in ("return_sequences", "return_state", "time_major"):
        if getattr(forward, attr) != getattr(backward, attr):
            raise UnsupportedOptionError(
                f"forward has {attr}={getattr(forward, attr)} but backward has "
                f"{attr}={getattr(backward, attr)}; Keras requires them equal."
            )


def lstm_layer(
    params: LSTMParams,
    x: jax.Array,
    *,
    mask=None,
    initial_state=None,
    return_sequences: bool = False,
    return_state: bool = False,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    dropout_key=None,
    **scan_options,
):
    """A Keras ``LSTM`` layer call: ``outputs``, or ``(outputs, h, c)`` with ``return_state``.

    ``dropout_key`` turns dropout on (training); ``None`` is inference. ``scan_options`` go to
    :func:`lstm_scan` (activations, ``go_backwards``, ``zero_output_for_mask``, ``compute_dtype``,
    ``remat_chunk``, ``impl``, ...).
    """
    dm = rdm = None
    if dropout_key is not None:
        dm, rdm = dropout_masks(
            dropout_key,
            x,
            params.units,
            dropout,
            recurrent_dropout,
            scan_options.get("time_major", False),
        )
    y, state = lstm_scan(
        params,
        x,
        mask=mask,
        initial_state=initial_state,
        return_sequences=return_sequences,
        dropout_mask=dm,
        recurrent_dropout_mask=rdm,
        **scan_options,
    )
    return (y, state.h, state.c) if return_state else y


def split_bidirectional_state(initial_state):
    """Keras's ``initial_state`` for Bidirectional is ``[h_fw, c_fw, h_bw, c_bw]``; also accept
    ``(LSTMState, LSTMState)``. Returns ``(forward_state, backward_state)``."""
    if initial_state is None:
        return None, None
    flat = []
    for s in initial_state:
        flat.extend(s if isinstance(s, LSTMState) else [s])
    if len(flat) != 4:
        raise UnsupportedOptionError(
            f"Bidirectional initial_state has {len(flat)} arrays; expected 4, "
            "[h_forward, c_forward, h_backward, c_backward] as Keras orders them "
            "(or (LSTMState, LSTMState))."
        )
    return LSTMState(flat[0], flat[1]), LSTMState(flat[2], flat[3])


def merge_bidirectional(fw, bw, *, merge_mode, return_sequences, return_state, time_major=False):
    """Combine the two directions' layer outputs exactly as ``keras.layers.Bidirectional``.

    ``fw`` / ``bw`` are what :func:`lstm_layer` returned for each direction. The backward
    sequence is flipped back to input order. Returns ``output`` or, with ``return_state``,
    ``(output, h_fw, c_fw, h_bw, c_bw)``; with ``merge_mode=None`` the output is the pair
    ``(y_fw, y_bw)`` and states follow it flat, as in Keras.
    """
    states = ()
    if return_state:
        (y, *s_fw), (y_rev, *s_bw) = fw, bw
        states = (*s_fw, *s_bw)
    else:
        y, y_rev = fw, bw
    if return_sequences:
        y_rev = jnp.flip(y_rev, axis=0 if time_major else -2)
    if merge_mode == "concat":
        out = jnp.concatenate([y, y_rev], axis=-1)
    elif merge_mode == "sum":
        out = y + y_rev
    elif merge_mode == "ave":
        out = (y + y_rev) / 2
    elif merge_mode == "mul":
        out = y * y_rev
    elif merge_mode is None:
        out = (y, y_rev)
    else:
        raise UnsupportedOptionError(f"merge_mode={merge_mode!r}; expected one of {MERGE_MODES}.")
    if not return_state:
        return out
    return (*out, *states) if merge_mode is None else (out, *states)
