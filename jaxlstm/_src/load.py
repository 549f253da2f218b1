"""``load_keras_layer``: a Keras file's recurrent layer (LSTM, GRU, SimpleRNN, ConvLSTM) as a
ready-to-call Flax NNX module."""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
from flax import nnx

from jaxlstm._src.converters import params_from_arrays
from jaxlstm._src.errors import (
    KerasFileError,
    LayerNotFoundError,
    NonFiniteWeightsError,
    UnsupportedLayerError,
    UnsupportedOptionError,
)
from jaxlstm._src.modules.nnx import LSTM, Bidirectional, DropoutStreams, needs_dropout_rng
from jaxlstm._src.modules.nnx_conv_lstm import ConvLSTM, ConvLSTM1D, ConvLSTM2D, ConvLSTM3D
from jaxlstm._src.modules.nnx_rnn import GRU, SimpleRNN, StackedRNN
from jaxlstm._src.readers import KerasFile, LayerRecord, read_keras_file
from jaxlstm._src.readers.records import resolve_activation
from jaxlstm._src.vocabulary import (
    AMBIGUOUS_VERSIONS,
    default_recurrent_activation,
    default_reset_after,
    keras_major,
)

# Config keys that become LSTM module options, under their Keras 2/3 names.
_OPTIONS = (
    "activation",
    "recurrent_activation",
    "use_bias",
    "return_sequences",
    "return_state",
    "go_backwards",
    "dropout",
    "recurrent_dropout",
    "zero_output_for_mask",
    "time_major",
)
# Keras 1 spelled some of them differently.
_KERAS1_NAMES = {
    "output_dim": "units",
    "inner_activation": "recurrent_activation",
    "dropout_W": "dropout",
    "dropout_U": "recurrent_dropout",
}
# Keys that do not change what a trained layer computes at inference.
_IGNORED = re.compile(
    r"^(name|trainable|dtype|units|unit_forget_bias|stateful|unroll|implementation|seed|use_cudnn"
    r"|batch_input_shape|batch_shape|input_shape|input_dim|input_length|input_dtype|consume_less"
    r"|init|inner_init|forget_bias_init|reset_after|[WUb]_(regularizer|constraint)"
    r"|.*_(initializer|regularizer|constraint))$"
)
OVERRIDABLE = (*_OPTIONS, "unroll", "compute_dtype")
# A ConvLSTM's input convolution, which a weights-only file does not describe.
CONV_OPTIONS = ("strides", "padding", "dilation_rate", "data_format")
_CONV_MODULES = {1: ConvLSTM1D, 2: ConvLSTM2D, 3: ConvLSTM3D}
_BOOL_OPTIONS = (
    "use_bias",
    "return_sequences",
    "return_state",
    "go_backwards",
    "zero_output_for_mask",
    "time_major",
)
NONFINITE_POLICIES = ("warn", "error", "ignore")


def check_nonfinite_policy(nonfinite: str) -> None:
    if nonfinite not in NONFINITE_POLICIES:
        raise UnsupportedOptionError(
            f"nonfinite={nonfinite!r}; expected one of {NONFINITE_POLICIES} (what to do with "
            "NaN or Inf weights: warn and load them, refuse the file, or load them silently)."
        )


def check_weights(weights, where: str, nonfinite: str = "warn", floats: bool = True) -> None:
    """Check a layer's arrays from a file: floating point (when ``floats``; float16 and float64
    are fine, they become float32) and, per ``nonfinite``, free of NaN and Inf."""
    for name, array in weights:
        array = np.asarray(array)
        if floats and array.dtype.kind != "f":
            raise KerasFileError(
                f"{where}: array {name!r} holds {array.dtype} values; expected floating-point "
                "weights (float16, float32 or float64). The file is damaged or was not written "
                "by Keras."
            )
        if nonfinite == "ignore" or array.dtype.kind not in "fc":
            continue
        finite = np.isfinite(array)
        if finite.all():
            continue
        nan = int(np.isnan(array).sum())
        inf = int(array.size - finite.sum()) - nan
        what = (
            f"{where}: array {name!r} {tuple(array.shape)} holds {nan} NaN and {inf} infinite "
            f"value(s) out of {array.size}"
        )
        if nonfinite == "error":
            raise NonFiniteWeightsError(
                f"{what}; refused (nonfinite='error'). The model was saved after training "
                "diverged, or the file is damaged."
            )
        warnings.warn(
            f"{what}; outputs will be NaN. Pass nonfinite='error' to refuse such files or "
            "nonfinite='ignore' to silence this.",
            RuntimeWarning,
            stacklevel=5,
        )


def layer_options(record: LayerRecord) -> dict:
    """The module options of one recurrent layer's record: its config in Keras 2/3 terms, with
    the defaults of the Keras version that wrote the file for what the file does not say."""
    return options_and_sources(record)[0]


def options_and_sources(record: LayerRecord) -> tuple[dict, dict[str, str]]:
    """``(options, inferred)``: :func:`layer_options` and, for each option the file's config
    does not state, where its value comes from (``{"recurrent_activation": "CuDNN layout, bias
    8u"}``, ``{"activation": "Keras 2.2.4 default"}``).

    The layer's class comes first: a ``CuDNNLSTM`` (named by the config or, in a weights-only
    file, proven by its arrays' layout) computes tanh and sigmoid whatever the Keras version;
    any other LSTM gets the defaults of the version that wrote the file."""
    where = f"{record.path}: layer {record.name!r}"
    kind = record.kind
    config = {_KERAS1_NAMES.get(k, k): v for k, v in record.config.items()}
    default = f"Keras {record.keras_version} default"
    options = {"activation": "tanh"}
    if kind.family != "SimpleRNN":
        options["recurrent_activation"] = default_recurrent_activation(
            record.keras_version, kind.family
        )
    sources = dict.fromkeys(options, default)
    if options.get("recurrent_activation", "") is None:  # the version does not decide
        del options["recurrent_activation"]
        sources["recurrent_activation"] = f"unknown: {AMBIGUOUS_VERSIONS[record.keras_version]}"
    if kind.cudnn:  # cuDNN's activations are fixed (and its GRU resets after the matmul).
        config = {
            k: v
            for k, v in config.items()
            if k not in ("activation", "recurrent_activation", "reset_after")
        }
        options["recurrent_activation"] = "sigmoid"
        why = record.inferred.get("class_name", f"fixed by {record.class_name}")
        sources = {"activation": why, "recurrent_activation": why}
        if kind.family == "GRU":
            options["reset_after"], sources["reset_after"] = True, why
    elif kind.family == "GRU":
        options["reset_after"], sources["reset_after"] = _reset_after_evidence(record)
    names = (*_OPTIONS, "reset_after") if kind.family == "GRU" else _OPTIONS
    if kind.family == "SimpleRNN":
        names = tuple(n for n in names if n != "recurrent_activation")
    if kind.family == "ConvLSTM":  # (filters and kernel_size are checked against the weights)
        names = (*names, *CONV_OPTIONS)
        config = {k: v for k, v in config.items() if k not in ("filters", "kernel_size")}
        if config.get("data_format", "") is None:  # Keras's image_data_format, by default
            config["data_format"] = "channels_last"
    for key, value in config.items():
        if key in _BOOL_OPTIONS or (key == "reset_after" and kind.family == "GRU"):
            options[key] = _bool_option(key, value, where)
        elif key in ("dropout", "recurrent_dropout"):
            options[key] = _rate_option(key, value, where)
        elif key in names:
            options[key] = value
        elif not _IGNORED.match(key):
            warnings.warn(
                f"{where}: ignoring unknown {kind.family} option {key}={value!r}.", stacklevel=3
            )
        if key in record.inferred:
            sources[key] = record.inferred[key]
        else:
            sources.pop(key, None)
    for key in ("activation", "recurrent_activation"):
        if key not in options:
            continue
        value = resolve_activation(options[key], record.keras_version, f"{where}: {key}")
        if value is None:
            raise UnsupportedOptionError(
                f"{where}: {key} is a custom object {options[key]!r:.200}; jaxlstm runs no code "
                f"from files. Pass its JAX version: load_keras_layer(path, name, {key}=my_fn)."
            )
        options[key] = value
    return options, sources


def _a(family: str) -> str:
    return f"an {family}" if family == "LSTM" else f"a {family}"


def _reset_after_evidence(record: LayerRecord) -> tuple[bool, str]:
    """A GRU's ``reset_after`` when its config does not say, and why: the arrays first (a bias
    ``(2, 3u)`` exists only with ``reset_after=True``, ``(3u,)`` only without; Keras 1's nine
    per-gate arrays reset before the matmul), else the writing version's default."""
    weights = record.weights
    if len(weights) == 9:
        return False, "Keras 1 layout, 9 per-gate arrays"
    if len(weights) == 3:
        u = np.shape(weights[1][1])[0] if np.ndim(weights[1][1]) == 2 else -1
        shape = np.shape(weights[2][1])
        if shape == (2, 3 * u):
            return True, "bias (2, 3u)"
        if shape == (3 * u,):
            return False, "bias (3u,)"
    value = default_reset_after(record.keras_version)
    if value is None:
        raise UnsupportedOptionError(
            f"{record.path}: layer {record.name!r}: a GRU whose config and arrays do not say "
            f"reset_after, in a file written by Keras {record.keras_version}, which "
            f"{AMBIGUOUS_VERSIONS[record.keras_version]}; jaxlstm will not guess (the two "
            "compute different numbers). Re-save the model with a Keras that records it."
        )
    return value, f"Keras {record.keras_version} default"


def _bool_option(key: str, value, where: str) -> bool:
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise KerasFileError(f"{where}: option {key}={value!r:.80}; expected true or false.")


def _rate_option(key: str, value, where: str) -> float:
    if value is None:
        return 0.0
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and 0.0 <= value <= 1.0  # False for NaN; ints of any size compare exactly
    ):
        return float(value)
    raise KerasFileError(f"{where}: option {key}={value!r:.80}; expected a rate in [0, 1].")


# What an RNN over stacked cells takes from its own config (the cells' options are theirs).
_STACKED_OPTIONS = ("return_sequences", "return_state", "go_backwards", "zero_output_for_mask",
                    "time_major")  # fmt: skip
_STACKED_OVERRIDABLE = (*_STACKED_OPTIONS, "unroll", "compute_dtype")


def _check_overrides(overrides: dict, bidirectional: bool, family: str = "LSTM"):
    allowed = OVERRIDABLE if family != "StackedRNNCells" else _STACKED_OVERRIDABLE
    allowed = (*allowed, "merge_mode") if bidirectional else allowed
    if family == "SimpleRNN":
        allowed = tuple(n for n in allowed if n != "recurrent_activation")
    if family == "StackedRNNCells" and set(overrides) - set(allowed):
        raise UnsupportedOptionError(
            f"unknown option(s) {sorted(set(overrides) - set(allowed))} for load_keras_layer "
            f"of stacked cells; options that can be overridden: {sorted(allowed)} (each cell's "
            "activations, dropout and sizes are its own: build a jaxlstm.StackedRNN from "
            "cells with the options you want to change them)."
        )
    if family == "ConvLSTM":
        allowed = (*allowed, *CONV_OPTIONS)
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise UnsupportedOptionError(
            f"unknown option(s) {unknown} for load_keras_layer; options that can be overridden: "
            f"{sorted(allowed)} for {_a(family)} (units, use_bias and a GRU's reset_after come "
            "from the weights)."
        )
    if bidirectional and "go_backwards" in overrides:
        raise UnsupportedOptionError(
            "go_backwards cannot be overridden for a Bidirectional layer: its two directions "
            "run opposite ways by construction."
        )


def build_recurrent(
    record: LayerRecord, overrides: dict, streams: DropoutStreams, nonfinite: str = "warn"
) -> LSTM | GRU | SimpleRNN:
    """The :class:`LSTM`, :class:`GRU` or :class:`SimpleRNN` (the record's
    :attr:`~LayerRecord.kind`) with the record's weights and options (``overrides`` win), built
    from the arrays as they are (no random initialisation, nothing compiled); ``streams`` gives
    it a dropout stream when its options have dropout."""
    where = f"{record.path}: layer {record.name!r}"
    kind = record.kind
    g, family = kind.gates, kind.family
    check_weights(record.weights, where, nonfinite)
    params, _ = params_from_arrays(record.weights, where, kind)  # checks the shapes it needs
    if family == "ConvLSTM":
        return _build_conv_lstm(record, params, overrides, streams, where)
    shapes = [tuple(np.shape(a)) for a in (params.kernel, params.recurrent_kernel)]
    u = shapes[1][0] if shapes[1] else -1
    bias_shape = None if params.bias is None else tuple(np.shape(params.bias))
    if (
        len(shapes[0]) != 2
        or shapes[0][1] != g * u
        or shapes[1] != (u, g * u)
        or bias_shape not in (None, (g * u,), *([(2, 3 * u)] if family == "GRU" else []))
    ):  # converters assemble these from per-gate arrays that may not fit together
        listing = ", ".join(f"{n} {tuple(np.shape(a))}" for n, a in record.weights)
        cols = f"{g}*units" if g > 1 else "units"
        raise KerasFileError(
            f"{where}: the arrays {listing} do not make {_a(family)}'s kernel (in_features, "
            f"{cols}), recurrent_kernel (units, {cols}) and bias (they give {shapes[0]}, "
            f"{shapes[1]}, {bias_shape}); the file is damaged or inconsistent."
        )
    if params.units < 1 or params.in_features < 1:
        raise KerasFileError(
            f"{where}: the weights have units={params.units} and in_features="
            f"{params.in_features} (kernel {tuple(params.kernel.shape)}); {_a(family)} needs at "
            "least one of each."
        )
    units = record.config.get("units", record.config.get("output_dim", params.units))
    if units != params.units:
        raise KerasFileError(
            f"{where}: the config says units={units} but the weights have units={params.units} "
            f"(recurrent_kernel {tuple(params.recurrent_kernel.shape)}); the file is inconsistent."
        )
    options = {**layer_options(record), **overrides}
    if family != "SimpleRNN" and "recurrent_activation" not in options:
        raise UnsupportedOptionError(
            f"{where}: the file does not say the layer's recurrent_activation, and the Keras "
            f"that wrote it ({record.keras_version}) does not decide its default: "
            f"{AMBIGUOUS_VERSIONS[record.keras_version]}. Pass the one it was trained with: "
            "load_keras_layer(path, name, recurrent_activation='sigmoid') (TF 2.x) or "
            "recurrent_activation='hard_sigmoid_keras2' (TF 1.x: clip(0.2x + 0.5, 0, 1))."
        )
    _check_use_bias(options, params, record, where)
    if family == "GRU" and bias_shape is not None:
        proven = len(bias_shape) == 2
        if options["reset_after"] != proven:
            raise KerasFileError(
                f"{where}: the config says reset_after={options['reset_after']} but the bias "
                f"has shape {bias_shape}, which only a GRU with reset_after={proven} has; the "
                "file is inconsistent."
            )
    rates = options.get("dropout", 0.0), options.get("recurrent_dropout", 0.0)
    module = {"LSTM": LSTM, "GRU": GRU, "SimpleRNN": SimpleRNN}[family]
    return module(
        params.in_features,
        params.units,
        use_bias=params.bias is not None,
        **options,
        weights=params,
        rngs=streams() if needs_dropout_rng(*rates) else None,
    )


def stacked_options(record: LayerRecord) -> dict:
    """The options of an RNN over stacked cells that its config states (``return_sequences``,
    ``return_state``, ``go_backwards``, ``zero_output_for_mask``, ``time_major``); the cells'
    own options are read per cell (:func:`layer_options`)."""
    where = f"{record.path}: layer {record.name!r}"
    options = {}
    for key, value in record.config.items():
        if key in _STACKED_OPTIONS:
            options[key] = _bool_option(key, value, where)
        elif not _IGNORED.match(key) and key not in ("num_constants", "input_spec"):
            warnings.warn(f"{where}: ignoring unknown RNN option {key}={value!r}.", stacklevel=3)
    return options


def build_stacked(
    record: LayerRecord, overrides: dict, streams: DropoutStreams, nonfinite: str = "warn"
) -> StackedRNN:
    """The :class:`StackedRNN` of a stacked-cells record: each cell built by
    :func:`build_recurrent` from its own config and arrays (with the defaults of the Keras
    version that wrote the file, as a single cell gets them), the RNN's options from its
    config (``overrides`` win)."""
    where = f"{record.path}: layer {record.name!r}"
    cells = [build_recurrent(cell, {}, streams, nonfinite) for cell in record.cells]
    options = stacked_options(record)
    for k in range(1, len(cells)):
        if cells[k].in_features != cells[k - 1].units:
            raise KerasFileError(
                f"{where}: stacked cell {k} ({record.cells[k].name!r}) has a kernel for "
                f"in_features={cells[k].in_features}, but cell {k - 1} outputs "
                f"{cells[k - 1].units} units; the file is inconsistent."
            )
    return StackedRNN(cells, **{**options, **overrides})


def _check_use_bias(options: dict, params, record: LayerRecord, where: str) -> None:
    """Take ``use_bias`` out of ``options``; it must agree with the arrays."""
    if options.pop("use_bias", params.bias is not None) != (params.bias is not None):
        raise KerasFileError(
            f"{where}: the config says use_bias={record.config.get('use_bias')} but the file "
            f"{'has' if params.bias is not None else 'has no'} bias array."
        )


def _build_conv_lstm(record, params, overrides, streams, where) -> ConvLSTM:
    """The ``jaxlstm.ConvLSTM{1,2,3}D`` of a record, its ``filters`` and ``kernel_size``
    checked against the arrays. A weights-only file does not say how the input convolution
    runs, and a guess would give other numbers: ``padding``, ``strides``, ``dilation_rate``
    and ``data_format`` must then be passed."""
    rank = record.kind.rank
    f, k = params.recurrent_kernel.shape[-2], tuple(params.recurrent_kernel.shape[:rank])
    filters = record.config.get("filters", f)
    size = record.config.get("kernel_size", k)
    size = (
        (size,) * rank
        if isinstance(size, int)
        else tuple(size)
        if isinstance(size, list | tuple)
        else size
    )
    if filters != f or size != k:
        raise KerasFileError(
            f"{where}: the config says filters={filters}, kernel_size={size} but the weights have "
            f"filters={f}, kernel_size={k} (recurrent_kernel "
            f"{tuple(params.recurrent_kernel.shape)}); the file is inconsistent."
        )
    if record.weights_only:
        missing = [n for n in CONV_OPTIONS if n not in overrides]
        if missing:
            raise UnsupportedOptionError(
                f"{where}: a ConvLSTM{rank}D from a weights-only file, which does not say its "
                f"{', '.join(missing)}; pass them (Keras's defaults are padding='valid', "
                "strides=1, dilation_rate=1, data_format='channels_last'): "
                f"load_keras_layer(path, name, {', '.join(f'{n}=...' for n in missing)})."
            )
    options = {**layer_options(record), **overrides}
    _check_use_bias(options, params, record, where)
    rates = options.get("dropout", 0.0), options.get("recurrent_dropout", 0.0)
    return _CONV_MODULES[rank](
        params.kernel.shape[-2],
        f,
        k,
        use_bias=params.bias is not None,
        **options,
        weights=params,
        rngs=streams() if needs_dropout_rng(*rates) else None,
    )


def find_layer(kf: KerasFile, name: str | None) -> LayerRecord:
    """The record named ``name`` (or the only recurrent layer when ``name`` is None)."""
    available = sorted(kf.layers)
    if name is None:
        if len(available) == 1:
            return kf.layers[available[0]]
        if available:
            raise LayerNotFoundError(
                f"{kf.path}: the file has {len(available)} recurrent layers {available}; "
                "pass name=... to choose one."
            )
        raise LayerNotFoundError(
            f"{kf.path}: the file has no recurrent layers (LSTM, GRU, SimpleRNN; its other layers: "
            f"{[n for n, _ in kf.other_layers]})."
        )
    if name in kf.layers:
        return kf.layers[name]
    suffix = [n for n in available if n.split("/")[-1] == name]
    if len(suffix) == 1:
        return kf.layers[suffix[0]]
    others = {n: c for n, c in kf.other_layers}
    hint = f" ({name!r} is a {others[name]} layer, not a recurrent one)" if name in others else ""
    raise LayerNotFoundError(
        f"{kf.path}: no recurrent layer named {name!r}{hint}; the file's recurrent layers "
        f"(LSTM, GRU, SimpleRNN) are {available}."
    )


def load_keras_layer(
    path: str | os.PathLike,
    name: str | None = None,
    *,
    rngs: nnx.Rngs | None = None,
    sha256: str | None = None,
    nonfinite: str = "warn",
    weights: str | os.PathLike | None = None,
    **overrides,
) -> LSTM | GRU | SimpleRNN | StackedRNN | ConvLSTM | Bidirectional:
    """Load one recurrent layer (LSTM, GRU, SimpleRNN, stacked cells, ConvLSTM1D/2D/3D, or a
    Bidirectional of one) from any Keras file, ready to call.

    Reads ``.keras`` archives, Keras 3 ``.weights.h5``, legacy ``.h5`` files (full models
    and ``save_weights`` files) written by Keras 1, Keras 2, tf.keras or Keras 3, TensorFlow
    SavedModel directories and TF-format checkpoints written by tf.keras 2.x, including
    CuDNNLSTM / CuDNNGRU weights, Keras 1's per-gate arrays, ``RNN(LSTMCell | GRUCell |
    SimpleRNNCell)``, stacked cells (``RNN([cell, ...])``, as a :class:`jaxlstm.StackedRNN`:
    overrides then apply to the RNN's own options only), and layers wrapped in
    ``Bidirectional`` or ``TimeDistributed`` (returned
    as the inner layer: it accepts any number of leading batch axes). Nothing in the file is
    executed. ``hard_sigmoid`` means what it meant in the Keras version that wrote the file.

    Args:
      path: the Keras file, SavedModel directory or TF checkpoint (``ckpt.index``, its prefix
        or its directory); with ``weights``, the architecture (see there).
      name: the layer's name in the model (``"outer/inner"`` or just ``"inner"`` for a layer in
        a nested model). May be omitted when the file has exactly one recurrent layer.
      rngs: ``nnx.Rngs`` to fork dropout streams from when the module is put in training mode
        (default: streams seeded from key 0 on, made without running XLA: loading compiles
        nothing).
      sha256: the file's expected SHA-256 (hex digits), for files pinned by their checksum: a
        mismatch raises ``ChecksumError`` before anything is parsed.
      nonfinite: what to do with NaN or Inf weights: ``"warn"`` (default: load them with a
        ``RuntimeWarning``), ``"error"`` (raise ``NonFiniteWeightsError``) or ``"ignore"``.
      weights: a TF-format checkpoint (``model.save_weights("ckpt")``) whose arrays go into
        the architecture ``path`` gives: a ``model.to_json()`` file or a ``.keras`` / ``.h5``
        model (Keras's ``model_from_json`` + ``load_weights``).
      **overrides: any of ``activation``, ``recurrent_activation``, ``return_sequences``,
        ``return_state``, ``go_backwards``, ``dropout``, ``recurrent_dropout``,
        ``zero_output_for_mask``, ``time_major``, ``unroll``, ``compute_dtype`` (and
        ``merge_mode`` for Bidirectional): replace what the file says. Weights-only files say
        nothing: the class their arrays prove (kernels of ``4u``/``3u``/``u`` columns are an
        LSTM/GRU/SimpleRNN; an ``8u``/``6u`` bias a ``CuDNNLSTM``/``CuDNNGRU``: tanh and
        sigmoid; a GRU bias ``(2, 3u)`` is ``reset_after=True``, ``(3u,)`` ``False``) and then
        the writing version's defaults apply, unless overridden. A ConvLSTM also takes
        ``padding``, ``strides``, ``dilation_rate`` and ``data_format``, which a weights-only
        file does not say and must then be given (its recurrent activation defaults to
        tf.keras's ``hard_sigmoid`` for files from Keras 1/2, ``sigmoid`` from Keras 3).

    Returns:
      :class:`jaxlstm.LSTM`, :class:`jaxlstm.GRU`, :class:`jaxlstm.SimpleRNN`,
      :class:`jaxlstm.StackedRNN`, :class:`jaxlstm.ConvLSTM2D` (1D, 3D) or
      :class:`jaxlstm.Bidirectional`, in eval mode (dropout off).

    Raises:
      KerasFileError: the file is unreadable, inconsistent, or refused for safety
        (``UnsafeFileError``: zip bomb, oversized arrays, links out of the file, ...), or its
        checksum differs from ``sha256`` (``ChecksumError``), or it holds non-float weights, or
        NaN/Inf weights with ``nonfinite="error"`` (``NonFiniteWeightsError``).
      LayerNotFoundError: no such recurrent layer; the message lists those the file has.
      UnsupportedOptionError: an option jaxlstm does not implement, or an unknown override.

    Example:
      >>> lstm = load_keras_layer("model.h5", "lstm_1")            # doctest: +SKIP
      >>> y = lstm(x, mask=mask)                                    # doctest: +SKIP
    """
    check_nonfinite_policy(nonfinite)
    kf = read_keras_file(path, sha256=sha256, weights=weights)
    record = find_layer(kf, name)
    module = module_from_record(record, overrides, DropoutStreams(rngs), nonfinite=nonfinite)
    module.eval()  # in place: dropout off
    return module


def module_from_record(
    record: LayerRecord, overrides: dict, streams: DropoutStreams, nonfinite: str = "warn"
) -> LSTM | GRU | SimpleRNN | StackedRNN | Bidirectional:
    """The :class:`LSTM`, :class:`GRU`, :class:`SimpleRNN`, :class:`StackedRNN` or
    :class:`Bidirectional` for one record (in training mode)."""
    if record.custom:
        raise UnsupportedLayerError(
            f"{record.path}: layer {record.name!r} ({record.class_name}) is a custom class "
            f"({record.custom}), not Keras's own: it may compute something else, and jaxlstm "
            "runs no code from files. Nothing from the file was run."
        )
    bidirectional = record.class_name == "Bidirectional"
    _check_overrides(overrides, bidirectional, record.kind.family)
    build = build_stacked if record.kind.family == "StackedRNNCells" else build_recurrent
    if bidirectional:
        merge_mode = overrides.pop("merge_mode", record.merge_mode)
        fw = build(record.forward, overrides, streams, nonfinite)
        bw = build(record.backward, overrides, streams, nonfinite)
        # tf.keras's ConvRNN never passed zero_output_for_mask on: masked steps keep the
        # previous output even inside Bidirectional (Keras 3's ConvLSTM outputs zeros there).
        tf_conv = record.kind.family == "ConvLSTM" and keras_major(record.keras_version) < 3
        return Bidirectional(
            fw, bw, merge_mode=merge_mode, zero_output_for_mask=False if tf_conv else None
        )
    return build(record, overrides, streams, nonfinite)
