"""Keras 1/2 model configs rewritten into Keras 3's format, with the same numerical meaning.

Keras 3 refuses most tf.keras LSTM files (``Unrecognized keyword arguments passed to LSTM:
{'time_major': False}``), has no ``CuDNNLSTM``, and reads graphs in its own node format. The
rewrite keeps every option that changes the numbers and refuses what Keras 3 cannot express
(``time_major=True``; Keras 1/2's ``hard_sigmoid``, which Keras 3 redefined). Keras 1's LSTM
options get their Keras 2/3 names (``output_dim`` -> ``units``, ``inner_activation`` ->
``recurrent_activation``, ...). A tf.keras stateful RNN whose ``initial_state`` is fed from
the graph is refused too: tf.keras streams it from its carried state, Keras 3 restarts it from the
fed state on every call. Configs Keras 3 itself wrote into a legacy ``.h5`` lack the
``module`` of their models, which Keras 3's ``.keras`` loader needs: it is added."""

from __future__ import annotations

import copy

from jaxlstm._src.errors import UnsupportedOptionError
from jaxlstm._src.load import _KERAS1_NAMES
from jaxlstm._src.readers.records import model_tree
from jaxlstm._src.vocabulary import (
    MODEL_CLASSES,
    RECURRENT_CLASSES,
    RNN_CALL_CLASSES,
    carried_state_wins,
    keras_major,
    layer_calls,
    layer_list,
)

# Options Keras 2 saved that Keras 3 layers no longer accept and that do not change results.
_DROPPED = {
    "LSTM": ("time_major", "implementation"),
    "GRU": ("time_major", "implementation"),
    "SimpleRNN": ("time_major",),
    "RNN": ("time_major",),
    **{f"ConvLSTM{r}D": ("time_major",) for r in (1, 2, 3)},
    **{f"SpatialDropout{r}D": ("trainable", "noise_shape") for r in (1, 2, 3)},
    # tf.keras passes its Conv base options on to layers that never use them (groups is 1).
    **{
        f"SeparableConv{r}D": (
            "groups",
            "kernel_initializer",
            "kernel_regularizer",
            "kernel_constraint",
        )
        for r in (1, 2)
    },
    **{f"DepthwiseConv{r}D": ("groups",) for r in (1, 2)},
    **{f"Conv{r}DTranspose": ("groups",) for r in (1, 2, 3)},
    # input shapes Keras 3 rebuilds from build_config; robust masking changes only rows with
    # every position masked, which are uniform either way.
    "MultiHeadAttention": ("query_shape", "key_shape", "value_shape", "softmax_robust_masking"),
}
# Keras 1 options with no Keras 3 counterpart that do not change a trained layer's numbers
# (initializers; the input shape, which the model's InputLayer carries).
_KERAS1_DROPPED = {
    "LSTM": (
        "init",
        "inner_init",
        "forget_bias_init",
        "consume_less",
        "input_dim",
        "input_length",
        "input_dtype",
    ),
    "Bidirectional": ("input_dtype",),
}
for _cls in ("GRU", "SimpleRNN"):
    _KERAS1_DROPPED[_cls] = tuple(k for k in _KERAS1_DROPPED["LSTM"] if k != "forget_bias_init")
_KERAS1_REGULARIZERS = ("W_regularizer", "U_regularizer", "b_regularizer")
_RNN = RNN_CALL_CLASSES
_ACTIVATION_KEYS = ("activation", "recurrent_activation")
_OBJECT_MODULES = {
    "_initializer": "keras.initializers",
    "_regularizer": "keras.regularizers",
    "_constraint": "keras.constraints",
}


def keras3_config(config: dict, keras_version: str, where: str) -> dict:
    """A copy of ``config`` that Keras 3 can deserialize, with the same numerical meaning."""
    config = copy.deepcopy(config)
    major = keras_major(keras_version)
    if major >= 3:
        _model_modules(config)
        return config
    if carried_state_wins(keras_version):
        _refuse_stateful_initial_state(config, where, keras_version)
    _layer(config, where, major, "keras")
    return config


def _refuse_stateful_initial_state(config: dict, where: str, keras_version: str) -> None:
    """A stateful RNN called with ``initial_state`` tensors: tf.keras starts each call from
    its carried state once that is non-zero, Keras 3 from the fed state on every call
    (:func:`~jaxlstm._src.vocabulary.carried_state_wins`), so streaming it would compute
    different numbers in Keras 3."""
    for node in model_tree(config, where).descendants():
        inner = node.inner.config if node.inner is not None else {}
        if not (node.config.get("stateful") or inner.get("stateful")):
            continue
        if _called_with_initial_state(node.entry, where):
            raise UnsupportedOptionError(
                f"{where}: layer {node.name!r} is stateful and "
                "called with initial_state tensors from the model's inputs. The Keras that "
                f"wrote this file ({keras_version}) streams it from its carried state once "
                "that is non-zero; Keras 3 restarts it from the fed state on every call: "
                "Keras 3 would compute different numbers, so the model is not written. "
                "(jaxlstm itself keeps the original meaning.)"
            )


def _called_with_initial_state(entry: dict, where: str) -> bool:
    """Whether a call of this RNN layer entry passes ``initial_state`` tensors (Keras 2: more
    than one input tensor, or the call's ``initial_state``), read by the one parser of layer
    calls (:func:`~jaxlstm._src.vocabulary.layer_calls`)."""
    if entry.get("class_name") not in _RNN:
        return False
    cfg = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    name = str(cfg.get("name", entry.get("name", "")))
    calls = layer_calls(name, entry["class_name"], entry.get("inbound_nodes"), where, config=cfg)
    return any(dict(call.kwargs).get("initial_state") for call in calls)


def _registered(node: dict, module: str) -> None:
    """Where Keras 3's deserializer finds the class: ``module`` and ``registered_name``, as
    Keras 3's own ``.keras`` saver writes them, unless the entry has them."""
    class_name = node.get("class_name")
    if class_name in ("Model", "Functional"):
        node["class_name"] = class_name = "Functional"
    if class_name == "Functional":  # where Keras 3 itself says Functional lives
        node.setdefault("module", "keras.src.models.functional")
        node.setdefault("registered_name", "Functional")
    node.setdefault("module", "keras" if class_name in MODEL_CLASSES else module)
    node.setdefault("registered_name", None)


def _model_modules(node: dict) -> None:
    """A Keras 3 config: give its models (top level and nested) their ``module``. Keras 3's
    legacy ``.h5`` saver leaves it out; its ``.keras`` loader cannot find the class without it
    (layers inside a model are found by name either way, and are left as they are)."""
    _registered(node, "keras")
    for entry in layer_list(node):
        if isinstance(entry, dict) and entry.get("class_name") in MODEL_CLASSES:
            _model_modules(entry)


def _activation_layer(node: dict) -> str:
    """Keras 1/2 activation layers in Keras 3's terms, in place; returns the class name.
    LeakyReLU's ``alpha`` is Keras 3's ``negative_slope``; ``ThresholdedReLU(theta)``, which
    Keras 3 dropped, computes ``x * (x > theta)``: exactly ``ReLU(threshold=theta)``; tf.keras's
    ``Softmax(robust_masking)`` is how Keras 3 masks anyway (the option is gone)."""
    class_name, cfg = node.get("class_name"), node.get("config")
    if class_name == "LeakyReLU" and "alpha" in cfg:
        cfg["negative_slope"] = cfg.pop("alpha")
    elif class_name == "ThresholdedReLU":
        node["class_name"] = "ReLU"
        cfg.update(threshold=cfg.pop("theta", 1.0), max_value=None, negative_slope=0.0)
    elif class_name == "Softmax":
        cfg.pop("robust_masking", None)
    return node["class_name"]


def _keras1_options(class_name: str, cfg: dict, where: str, name: str) -> None:
    """Keras 1's LSTM (and Bidirectional) option names -> Keras 2/3's, in place."""
    for key in _KERAS1_REGULARIZERS:
        if cfg.pop(key, None) is not None:
            raise UnsupportedOptionError(
                f"{where}: layer {name!r} has a Keras 1 {key}, which Keras 3 cannot read; the "
                "model cannot be written as a Keras 3 file. Load it with jaxlstm.load_keras and "
                "add the penalty to your loss instead."
            )
    if "forget_bias_init" in cfg:
        cfg["unit_forget_bias"] = cfg["forget_bias_init"] == "one"
    for key in _KERAS1_DROPPED.get(class_name, ()):
        cfg.pop(key, None)
    if class_name in ("LSTM", "GRU", "SimpleRNN"):
        for old, new in _KERAS1_NAMES.items():
            if old in cfg:
                cfg[new] = cfg.pop(old)


def _layer(node: dict, where: str, major: int, module: str = "keras.layers") -> None:
    """Rewrite one serialized layer (or model) dict of a Keras ``major`` (1 or 2) in place."""
    _registered(node, module)
    class_name, cfg = node.get("class_name"), node.get("config")
    if class_name == "Sequential" and isinstance(cfg, list):  # Keras 1/2.0: a bare list
        node["config"] = cfg = {"name": "sequential", "layers": cfg}
    if not isinstance(cfg, dict):
        return
    name = cfg.get("name", class_name)
    kind = RECURRENT_CLASSES.get(class_name)
    if kind is not None and class_name != kind.module_name:  # CuDNNLSTM, CuDNNGRU, GRUV1, ...
        node["class_name"] = class_name = kind.module_name
        if kind.cudnn and "activation" not in cfg:  # cuDNN's fixed activations
            cfg.update(activation="tanh", recurrent_activation="sigmoid")
        if kind.cudnn and kind.family == "GRU":  # its weights convert to reset_after=True
            cfg["reset_after"] = True
    if class_name in ("GRU", "GRUCell"):  # a Keras 1/2 GRU config without it predates it
        cfg.setdefault("reset_after", False)
    if major == 1:
        _keras1_options(class_name, cfg, where, name)
    if major < 3 and class_name == "Bidirectional" and _masked_conv_lstm_outputs(cfg):
        raise UnsupportedOptionError(
            f"{where}: layer {name!r} is a tf.keras Bidirectional(ConvLSTM) returning sequences: "
            "tf.keras's ConvLSTM repeats the previous output at masked steps there, Keras 3's "
            "outputs zeros, so Keras 3 would compute different numbers for masked inputs and "
            "the model is not written. (jaxlstm itself keeps tf.keras's numbers.)"
        )
    if cfg.get("time_major"):
        raise UnsupportedOptionError(
            f"{where}: layer {name!r} has time_major=True, which Keras 3 layers do not support; "
            "the model cannot be written as a Keras 3 file. Transpose its inputs to batch-major "
            "in the model instead."
        )
    for key in _DROPPED.get(class_name, ()):
        cfg.pop(key, None)
    class_name = _activation_layer(node)
    for key in _ACTIVATION_KEYS:
        if isinstance(cfg.get(key), dict) and isinstance(cfg[key].get("config"), dict):
            _activation_layer(cfg[key])  # an activation layer as the activation
        if cfg.get(key) == "hard_sigmoid":
            raise UnsupportedOptionError(
                f"{where}: layer {name!r} uses {key}='hard_sigmoid', which meant "
                "clip(0.2x + 0.5, 0, 1) in the Keras that wrote this file but relu6(x + 3) / 6 in "
                "Keras 3: Keras 3 would compute different numbers, so the model is not written. "
                "(jaxlstm itself keeps the original meaning.)"
            )
    if class_name == "InputLayer" and "batch_input_shape" in cfg:
        cfg["batch_shape"] = cfg.pop("batch_input_shape")
    elif class_name not in MODEL_CLASSES:
        cfg.pop("batch_input_shape", None)  # Keras 3 keeps input shapes on InputLayer only
    if class_name == "BatchNormalization" and isinstance(cfg.get("axis"), list):
        if len(cfg["axis"]) != 1:
            raise UnsupportedOptionError(f"{where}: layer {name!r} normalises over several axes.")
        cfg["axis"] = cfg["axis"][0]
    for key, value in cfg.items():
        suffix = next((s for s in _OBJECT_MODULES if key.endswith(s)), None)
        if suffix and isinstance(value, dict) and "class_name" in value:
            value.setdefault("module", _OBJECT_MODULES[suffix])
            value.setdefault("registered_name", None)
        elif key in ("layer", "backward_layer", "cell") and isinstance(value, dict):
            _layer(value, where, major)  # wrapped layers, an RNN's cell(s)
        elif key == "cells" and isinstance(value, list):  # a StackedRNNCells' cells
            for cell in value:
                if isinstance(cell, dict):
                    _layer(cell, where, major)
    if class_name in MODEL_CLASSES:
        _model(node, where, major)


def _masked_conv_lstm_outputs(cfg: dict) -> bool:
    """A Bidirectional config wrapping a ConvLSTM that returns sequences."""
    inner = cfg.get("layer") if isinstance(cfg.get("layer"), dict) else {}
    inner_cfg = inner.get("config") if isinstance(inner.get("config"), dict) else {}
    kind = RECURRENT_CLASSES.get(str(inner.get("class_name")))
    return (
        kind is not None and kind.family == "ConvLSTM" and bool(inner_cfg.get("return_sequences"))
    )


def _model(node: dict, where: str, major: int) -> None:
    """Rewrite a model's layers and, for Functional, its graph into Keras 3's node format."""
    layers = layer_list(node)
    first = layers[0] if layers else {}
    shape = first.get("config", {}).get("batch_input_shape")
    if node["class_name"] == "Sequential" and first.get("class_name") != "InputLayer" and shape:
        # Keras 2 kept a Sequential's input shape on its first layer; Keras 3 wants an InputLayer.
        dtype = first["config"].get("dtype", first["config"].get("input_dtype", "float32"))
        layers.insert(
            0,
            {
                "class_name": "InputLayer",
                "config": {
                    "batch_shape": shape,
                    "dtype": dtype if isinstance(dtype, str) else "float32",
                    "name": f"{first['config'].get('name', 'layer')}_input",
                },
            },
        )
    for entry in layers:
        _layer(entry, where, major)
    if node["class_name"] != "Functional":
        return
    _refuse_masked_initial_state(layers, where)
    # Keras 2 numbers a nested model's calls from 1 when it has its own Input (that internal
    # call is counted but not saved); Keras 3 numbers saved calls from 0.
    shift = {e["name"] for e in layers if e.get("class_name") in MODEL_CLASSES and _own_input(e)}

    def tensor(ref):
        history = [ref[0], int(ref[1]) - (ref[0] in shift), int(ref[2])]
        return {
            "class_name": "__keras_tensor__",
            "config": {"shape": [None], "dtype": "float32", "keras_history": history},
        }

    def convert(value):
        if isinstance(value, list) and len(value) in (3, 4) and isinstance(value[0], str):
            return tensor(value)
        if isinstance(value, list):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    for entry in layers:
        nodes = []
        for inbound in entry.get("inbound_nodes", []):
            if isinstance(inbound, dict):
                nodes.append(inbound)
                continue
            tensors = [convert(e) for e in inbound]  # stacked cells nest states: [x, [h0, c0], h1]
            kwargs = convert(inbound[0][3]) if len(inbound[0]) > 3 else {}
            if entry.get("class_name") in _RNN:
                _no_constants(kwargs, entry, where)
            if entry.get("class_name") == "Softmax" and kwargs.get("mask") is not None:
                raise UnsupportedOptionError(
                    f"{where}: layer {entry.get('name')!r} is a Softmax called with a mask. "
                    "tf.keras leaves a row that is masked entirely (near) uniform, Keras 3 "
                    "zeroes it, so Keras 3 would compute different numbers: the model is not "
                    "written. (jaxlstm itself keeps the original meaning.)"
                )
            if entry.get("class_name") in _RNN and len(tensors) > 1:
                args, kwargs["initial_state"] = [tensors[0]], tensors[1:]
            else:
                args = [tensors[0]] if len(tensors) == 1 else [tensors]
            nodes.append({"args": args, "kwargs": kwargs})
        entry["inbound_nodes"] = nodes
    cfg = node["config"]
    for key in ("input_layers", "output_layers"):
        refs = cfg.get(key, [])
        refs = [refs] if refs and isinstance(refs[0], str) else refs
        cfg[key] = [[r[0], int(r[1]) - (r[0] in shift), int(r[2])] for r in refs]


def _no_constants(kwargs: dict, entry: dict, where: str) -> None:
    """tf.keras records ``constants=None`` in RNN calls; Keras 3's RNN layers take no such
    argument (and refuse the keyword)."""
    if kwargs.pop("constants", None) is not None:
        raise UnsupportedOptionError(
            f"{where}: layer {entry.get('name')!r} is called with constants, which Keras 3's "
            "recurrent layers do not take; the model cannot be written as a Keras 3 file."
        )


def _own_input(entry: dict) -> bool:
    layers = layer_list(entry)
    return bool(layers) and layers[0].get("class_name") == "InputLayer"


def _refuse_masked_initial_state(layers: list, where: str) -> None:
    """Keras 3 fills in a layer's mask only when the layer is called on one tensor, so an RNN
    called with ``initial_state`` tensors runs unmasked there, where Keras 1/2 masked it: a
    Keras 2 encoder-decoder with masked decoder inputs would compute different numbers."""
    sources = [
        e
        for e in layers
        if e.get("class_name") == "Masking"
        or (e.get("class_name") == "Embedding" and e.get("config", {}).get("mask_zero"))
    ]
    if not sources:
        return
    for entry in layers:
        if _called_with_initial_state(entry, where):
            name = entry.get("config", {}).get("name", entry.get("name"))
            raise UnsupportedOptionError(
                f"{where}: layer {name!r} is called with initial_state in a model with masks "
                f"(from {sources[0].get('config', {}).get('name')!r}). Keras 3 runs an RNN "
                "called on several tensors without its input's mask, where the Keras that "
                "wrote this file applied it, so Keras 3 would compute different numbers: "
                "the model is not written. (jaxlstm itself keeps the original meaning.)"
            )
