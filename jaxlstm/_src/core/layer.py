"""Keras layer semantics on top of the scans (:func:`lstm_scan`, :func:`gru_scan`,
:func:`simple_rnn_scan`, :func:`conv_lstm_scan`): what ``keras.layers.LSTM``, ``GRU``,
``SimpleRNN``, ``ConvLSTM1D/2D/3D`` and ``Bidirectional`` return, and how they draw dropout
masks. Pure JAX, shared by the NNX and Linen
modules of every cell so that all compute exactly the same thing."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlstm._src.core.conv_lstm import conv_lstm_cell, conv_lstm_dropout_masks, conv_lstm_scan
from jaxlstm._src.core.gru import gru_scan
from jaxlstm._src.core.lstm import LSTMParams, lstm_scan
from jaxlstm._src.core.simple_rnn import simple_rnn_scan
from jaxlstm._src.core.stacked import stacked_scan
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


# The same for a GRU (plus Keras's reset_after) and a SimpleRNN (no recurrent activation).
GRU_OPTIONS = (*LAYER_OPTIONS, "reset_after")
SIMPLE_RNN_OPTIONS = tuple(name for name in LAYER_OPTIONS if name != "recurrent_activation")
# A ConvLSTM's: the LSTM's and its input convolution's.
CONV_LSTM_OPTIONS = (*LAYER_OPTIONS, "strides", "padding", "dilation_rate", "data_format")
# A stacked-cells RNN's own options (the cells' activations and sizes come from the cells).
STACKED_OPTIONS = (
    "return_sequences",
    "return_state",
    "go_backwards",
    "zero_output_for_mask",
    "time_major",
    "unroll",
    "compute_dtype",
    "remat_chunk",
)


def layer_options(layer, names=LAYER_OPTIONS, **per_call) -> dict:
    """``{name: layer.name}`` for every name in ``names`` (:data:`LAYER_OPTIONS`,
    :data:`GRU_OPTIONS` or :data:`SIMPLE_RNN_OPTIONS`), with the options given for one call
    (those not ``None``) in place of the layer's: wrappers pass options this way instead of
    setting attributes on the layers they were given."""
    options = {name: getattr(layer, name) for name in names}
    unknown = sorted(set(per_call) - set(names))
    if unknown:
        raise UnsupportedOptionError(
            f"unknown per-call option(s) {unknown} for a {type(layer).__name__}; expected some "
            f"of {list(names)}."
        )
    options.update({k: v for k, v in per_call.items() if v is not None})
    return options


def check_bidirectional_pair(forward, backward, merge_mode) -> None:
    """What ``keras.layers.Bidirectional`` requires of its two layers, for the NNX and the Linen
    modules alike (both keep their options as attributes): a known merge mode, directions that
    run opposite ways, the same ``return_sequences``, ``return_state`` and ``time_major``, and
    layers with the same states (two LSTMs, two GRUs or two SimpleRNNs)."""
    if merge_mode not in MERGE_MODES:
        raise UnsupportedOptionError(f"merge_mode={merge_mode!r}; expected one of {MERGE_MODES}.")
    for name, layer in (("forward", forward), ("backward", backward)):
        needed = ("state_fields", *STACKED_OPTIONS)  # what every recurrent layer has
        missing = [a for a in needed if not hasattr(layer, a)]
        if missing:
            raise UnsupportedOptionError(
                f"Bidirectional's {name} layer is a {type(layer).__name__}, not a jaxlstm "
                f"recurrent layer (it has no {missing[0]!r}); pass two LSTM, GRU, SimpleRNN or "
                "StackedRNN modules of the same family (jaxlstm.LSTM with "
                "jaxlstm.Bidirectional, jaxlstm.linen.LSTM with jaxlstm.linen.Bidirectional)."
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
    if forward.state_fields != backward.state_fields:
        raise UnsupportedOptionError(
            f"forward is a {type(forward).__name__} with states {forward.state_fields} but "
            f"backward is a {type(backward).__name__} with states {backward.state_fields}; "
            "expected two layers with the same states (e.g. two GRUs)."
        )


def rnn_layer(
    scan,
    params,
    x: jax.Array,
    *,
    mask=None,
    initial_state=None,
    return_sequences: bool = False,
    return_state: bool = False,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    dropout_key=None,
    draw_masks=None,
    **scan_options,
):
    """A Keras recurrent layer call through ``scan`` (``lstm_scan``, ``gru_scan`` or
    ``simple_rnn_scan``): ``outputs``, or ``(outputs, *state)`` with ``return_state``
    (``(outputs, h, c)`` for an LSTM, ``(outputs, h)`` for a GRU or SimpleRNN, as Keras).

    ``dropout_key`` turns dropout on (training); ``None`` is inference. ``draw_masks(key, x,
    dropout, recurrent_dropout, time_major)`` draws the masks of a cell whose masks are not
    :func:`dropout_masks`' (the ConvLSTM's). ``scan_options`` go to ``scan`` (activations,
    ``go_backwards``, ``zero_output_for_mask``, ``compute_dtype``, ``remat_chunk``, ``impl``,
    ``reset_after``, ...).
    """
    dm = rdm = None
    if dropout_key is not None and draw_masks is not None:
        time_major = scan_options.get("time_major", False)
        dm, rdm = draw_masks(dropout_key, x, dropout, recurrent_dropout, time_major)
    elif dropout_key is not None:
        dm, rdm = dropout_masks(
            dropout_key,
            x,
            params.recurrent_kernel.shape[0],
            dropout,
            recurrent_dropout,
            scan_options.get("time_major", False),
        )
    y, state = scan(
        params,
        x,
        mask=mask,
        initial_state=initial_state,
        return_sequences=return_sequences,
        dropout_mask=dm,
        recurrent_dropout_mask=rdm,
        **scan_options,
    )
    return (y, *state) if return_state else y


def gru_layer(params, x, **options):
    """A Keras ``GRU`` layer call: :func:`rnn_layer` over :func:`gru_scan`."""
    return rnn_layer(gru_scan, params, x, **options)


def simple_rnn_layer(params, x, **options):
    """A Keras ``SimpleRNN`` layer call: :func:`rnn_layer` over :func:`simple_rnn_scan`."""
    return rnn_layer(simple_rnn_scan, params, x, **options)


def conv_lstm_layer(params, x, **options):
    """A Keras ``ConvLSTM1D/2D/3D`` layer call, ``outputs`` or ``(outputs, h, c)``:
    :func:`rnn_layer` over :func:`conv_lstm_scan`, with Keras 3's four dropout masks per
    sequence (:func:`~jaxlstm._src.core.conv_lstm.conv_lstm_dropout_masks`)."""
    conv_options = {
        name: options[name]
        for name in ("strides", "padding", "dilation_rate", "data_format")
        if name in options
    }
    cell = conv_lstm_cell(
        jnp.ndim(params.kernel) - 2,
        **conv_options,
        activation=options.get("activation", "tanh"),
        recurrent_activation=options.get("recurrent_activation", "sigmoid"),
    )

    def draw_masks(key, x, dropout, recurrent_dropout, time_major):
        return conv_lstm_dropout_masks(key, cell, params, x, dropout, recurrent_dropout, time_major)

    return rnn_layer(conv_lstm_scan, params, x, draw_masks=draw_masks, **options)


def lstm_layer(params: LSTMParams, x, **options):
    """A Keras ``LSTM`` layer call, ``outputs`` or ``(outputs, h, c)``: :func:`rnn_layer` over
    :func:`lstm_scan`."""
    return rnn_layer(lstm_scan, params, x, **options)


# A cell's own layer options, which a stacked RNN does not use: they must keep their defaults.
_CELL_LAYER_OPTIONS = ("return_sequences", "return_state", "go_backwards", "time_major")


def check_stacked_cells(cells, families: dict, owner: str = "StackedRNN") -> tuple[str, ...]:
    """What a stacked RNN (NNX or Linen) requires of its cells: at least one, each a module of
    ``families`` (``{module class: "LSTM" | "GRU" | "SimpleRNN"}``) whose own layer options
    (``return_sequences``, ``return_state``, ``go_backwards``, ``time_major``) keep their
    defaults, as they are the stacked RNN's. Returns each cell's family."""
    names = " / ".join(sorted({f"jaxlstm.{c.__name__}" for c in families}))
    if not isinstance(cells, list | tuple):
        raise UnsupportedOptionError(
            f"{owner} received cells={type(cells).__name__}; expected a list of cell modules "
            f"({names}), cell 0 first, as keras.layers.RNN([cell, ...])."
        )
    if not cells:
        raise UnsupportedOptionError(
            f"{owner} received no cells; expected a list of one or more ({names}), cell 0 first."
        )
    out = []
    for k, cell in enumerate(cells):
        family = next((f for cls, f in families.items() if isinstance(cell, cls)), None)
        if family is None:
            raise UnsupportedOptionError(
                f"{owner}'s cell {k} is a {type(cell).__name__}; expected one of {names} (of "
                f"the same family as the {owner}: NNX cells in jaxlstm.StackedRNN, Linen cells "
                "in jaxlstm.linen.StackedRNN)."
            )
        for option in _CELL_LAYER_OPTIONS:
            if getattr(cell, option):
                raise UnsupportedOptionError(
                    f"{owner}'s cell {k} ({type(cell).__name__}) has {option}=True; a cell's "
                    f"layer options are not used in a stack: build the cell without it and pass "
                    f"{option}=True to the {owner}."
                )
        out.append(family)
    return tuple(out)


def stacked_layer(
    cells,
    params,
    x: jax.Array,
    *,
    mask=None,
    initial_state=None,
    return_sequences: bool = False,
    return_state: bool = False,
    **scan_options,
):
    """A Keras ``RNN`` over stacked cells (``RNN([cell, ...])``, ``RNN(StackedRNNCells(...))``):
    ``outputs`` (the last cell's ``h``), or with ``return_state`` ``(outputs, *states)``, one
    state NamedTuple per cell, cell 0 first (Keras's nested order). ``scan_options`` go to
    :func:`~jaxlstm._src.core.stacked.stacked_scan`."""
    y, states = stacked_scan(
        cells,
        params,
        x,
        mask=mask,
        initial_state=initial_state,
        return_sequences=return_sequences,
        **scan_options,
    )
    return (y, *states) if return_state else y


def split_bidirectional_state(initial_state, fields=("h", "c")):
    """Keras's ``initial_state`` for Bidirectional is the forward layer's states then the
    backward layer's: ``[h_fw, c_fw, h_bw, c_bw]`` for LSTMs (``fields=("h", "c")``),
    ``[h_fw, h_bw]`` for GRUs and SimpleRNNs (``fields=("h",)``); a pair of state NamedTuples
    is accepted too (for stacked cells, the arrays of all cells of a direction, nested or
    flat). Returns ``(forward_state, backward_state)`` as lists."""
    if initial_state is None:
        return None, None
    flat = jax.tree.leaves(list(initial_state))
    n = len(fields)
    if len(flat) != 2 * n:
        names = ", ".join([f"{f}_forward" for f in fields] + [f"{f}_backward" for f in fields])
        raise UnsupportedOptionError(
            f"Bidirectional initial_state has {len(flat)} arrays; expected {2 * n}, "
            f"[{names}] as Keras orders them (or a pair of state tuples)."
        )
    return flat[:n], flat[n:]


def merge_bidirectional(
    fw, bw, *, merge_mode, return_sequences, return_state, time_major=False, step_ndim=1
):
    """Combine the two directions' layer outputs exactly as ``keras.layers.Bidirectional``.

    ``fw`` / ``bw`` are what :func:`rnn_layer` returned for each direction. The backward
    sequence is flipped back to input order along its time axis (``step_ndim``: the axes of
    one step's output after it, 1 for ``(units,)``, ``rank + 1`` for a ConvLSTM's images);
    ``concat`` joins the last axis, as Keras does for every layer. Returns ``output`` or, with
    ``return_state``, ``(output, *states_fw, *states_bw)`` (``(output, h_fw, c_fw, h_bw,
    c_bw)`` for LSTMs); with ``merge_mode=None`` the output is the pair ``(y_fw, y_bw)`` and
    states follow it flat, as in Keras.
    """
    states = ()
    if return_state:
        (y, *s_fw), (y_rev, *s_bw) = fw, bw
        states = (*s_fw, *s_bw)
    else:
        y, y_rev = fw, bw
    if return_sequences:
        y_rev = jnp.flip(y_rev, axis=0 if time_major else -1 - step_ndim)
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
