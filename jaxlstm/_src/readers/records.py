"""What every reader produces: the recurrent layers of a Keras file, as plain data.

Readers know file formats (where arrays and configs live); they do not interpret weights.
Converters (``jaxlstm._src.converters``) turn a record's arrays into a cell's params
(``LSTMParams``, ``GRUParams``, ``SimpleRNNParams``). :data:`RECURRENT_CLASSES` is the one table
of which Keras classes are recurrent layers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from jaxlstm._src.core.activations import (
    ACTIVATION_LAYERS,
    layer_activation,
    resolve_activation_name,
)
from jaxlstm._src.errors import KerasFileError, UnsupportedOptionError
from jaxlstm._src.readers import limits


@dataclass(frozen=True)
class RecurrentClass:
    """What a Keras recurrent layer class is to jaxlstm: the one place that says which classes
    are RNNs (readers, loaders, the model graph, inspect and the writers all ask it).

    Attributes:
      family: the jaxlstm module it becomes: ``"LSTM"``, ``"GRU"``, ``"SimpleRNN"`` or
        ``"ConvLSTM"`` (``jaxlstm.ConvLSTM1D/2D/3D`` by its ``rank``).
      gates: column blocks in its kernels (4, 3, 1).
      cudnn: a CuDNN layout (``CuDNNLSTM``/``CuDNNGRU``): bias ``2 * gates * u``, each gate's
        kernel block stored transposed, activations fixed to tanh and sigmoid (and
        ``reset_after=True`` semantics for the GRU).
      rank: a ConvLSTM's spatial axes (1, 2, 3); 0 for the matmul cells.
      gate_order: the gates' names in Keras's packing order.
    """

    family: str
    gates: int
    cudnn: bool = False
    rank: int = 0

    @property
    def gate_order(self) -> tuple[str, ...]:
        return {
            "LSTM": ("i", "f", "c", "o"),
            "GRU": ("z", "r", "h"),
            "SimpleRNN": ("h",),
            "ConvLSTM": ("i", "f", "c", "o"),
        }[self.family]

    @property
    def module_name(self) -> str:
        """The jaxlstm module's class name: ``"LSTM"``, ..., ``"ConvLSTM2D"``."""
        return f"ConvLSTM{self.rank}D" if self.family == "ConvLSTM" else self.family


_LSTM, _GRU, _SIMPLE = (
    RecurrentClass("LSTM", 4),
    RecurrentClass("GRU", 3),
    RecurrentClass("SimpleRNN", 1),
)
# Layer classes that hold recurrent weights, by the class_name Keras writes into configs
# (tf.keras's v1/v2 names included).
RECURRENT_CLASSES = {
    "LSTM": _LSTM,
    "UnifiedLSTM": _LSTM,
    "LSTMV1": _LSTM,
    "CuDNNLSTM": RecurrentClass("LSTM", 4, cudnn=True),
    "GRU": _GRU,
    "UnifiedGRU": _GRU,
    "GRUV1": _GRU,
    "CuDNNGRU": RecurrentClass("GRU", 3, cudnn=True),
    "SimpleRNN": _SIMPLE,
    **{f"ConvLSTM{r}D": RecurrentClass("ConvLSTM", 4, rank=r) for r in (1, 2, 3)},
}
# Cells of Keras's generic ``RNN(cell=...)`` layer, and the layer class each one makes.
RECURRENT_CELLS = {"LSTMCell": "LSTM", "GRUCell": "GRU", "SimpleRNNCell": "SimpleRNN"}
LSTM_CLASSES = tuple(k for k, v in RECURRENT_CLASSES.items() if v.family == "LSTM")
# Classes whose calls take ``initial_state`` tensors after their input (Keras 1/2 graphs).
RNN_CALL_CLASSES = (*RECURRENT_CLASSES, "Bidirectional", "RNN")


def keras_version_tuple(keras_version: str) -> tuple[int, ...]:
    """``"2.2.4-tf"`` -> ``(2, 2, 4)``; Keras 1 files that wrote no version -> ``(1,)``."""
    return tuple(int(n) for n in re.findall(r"\d+", keras_version)[:3]) or (1,)


def default_recurrent_activation(keras_version: str, family: str = "LSTM") -> str:
    """``hard_sigmoid`` (Keras 1/2 definition) before Keras 2.3.0, ``sigmoid`` since: the
    default of every gated cell (LSTM, GRU) of the version that wrote a file. A ``ConvLSTM``
    kept ``hard_sigmoid`` through Keras 2 and tf.keras (2.21 included); Keras 3 made it
    ``sigmoid``."""
    until = (3,) if family == "ConvLSTM" else (2, 3, 0)
    return "hard_sigmoid_keras2" if keras_version_tuple(keras_version) < until else "sigmoid"


def default_reset_after(keras_version: str) -> bool:
    """A GRU's ``reset_after`` when its config does not say: ``False`` for Keras 1 (which has
    no such option and resets before the matmul) and standalone Keras 2.0-2.2, ``True`` for
    tf.keras (``2.x.y-tf``; from 2.4 on plain ``2.x.y``) and Keras 2.3+ / 3. (Every Keras that
    has the option writes it into configs; weights-only files are decided by the bias shape.)"""
    return "-tf" in keras_version or keras_version_tuple(keras_version) >= (2, 3, 0)


@dataclass
class LayerRecord:
    """One recurrent layer (LSTM, GRU, SimpleRNN, or a Bidirectional of one) found in a file.

    Attributes:
      name: the name to ask for it by (the layer's Keras name; ``outer/inner`` in nested models).
      class_name: a key of :data:`RECURRENT_CLASSES` (``"LSTM"``, ``"CuDNNGRU"``, ...;
        ``RNN(GRUCell)`` is ``"GRU"``) or ``"Bidirectional"``.
      config: the layer's own Keras config (empty for weights-only files).
      weights: ``[(array name, array)]`` in file order; for Bidirectional, see ``forward``.
      keras_version: the version that wrote the file (``"1"`` when Keras 1 wrote none).
      path: the file, for messages.
      wrapper: ``"TimeDistributed"`` when the layer was wrapped in it.
      forward, backward: the two directions of a Bidirectional layer.
      merge_mode: Bidirectional's merge mode.
      custom: set when the config says the class is not Keras's own (its ``module`` or
        ``registered_name`` names other code): what it names. Such a layer is not loaded.
      inferred: for a weights-only file (no config), what the reader inferred and from what:
        ``{"class_name": "CuDNN layout, bias 8u", "go_backwards": "backward half of a
        Bidirectional"}``; empty when a config says it all.
    """

    name: str
    class_name: str
    config: dict
    weights: list[tuple[str, np.ndarray]]
    keras_version: str
    path: str
    wrapper: str | None = None
    forward: LayerRecord | None = None
    backward: LayerRecord | None = None
    merge_mode: str | None = "concat"
    custom: str | None = None
    inferred: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> RecurrentClass:
        """The :class:`RecurrentClass` of this layer (of its forward layer for Bidirectional)."""
        return RECURRENT_CLASSES[(self.forward or self).class_name]

    @property
    def weights_only(self) -> bool:
        """Whether the record comes from a file without a model config."""
        return bool(self.inferred)


@dataclass
class KerasFile:
    """The recurrent layers of one Keras file (LSTM, GRU, SimpleRNN) and what the file says
    about itself."""

    path: str
    format: str  # human-readable, e.g. "Keras 2 HDF5 model (model.save)"
    keras_version: str
    layers: dict[str, LayerRecord] = field(default_factory=dict)
    other_layers: list[tuple[str, str]] = field(default_factory=list)  # (name, class_name)
    config: dict | None = None  # the model config, when the file has one
    arrays: dict[str, list[tuple[str, np.ndarray]]] = field(default_factory=dict)  # every layer's
    # what model.compile was given (loss, metrics, loss_weights, weighted_metrics: JSON data,
    # never the optimizer), when the file says: compile_settings
    compile_config: dict | None = None


COMPILE_KEYS = ("loss", "loss_weights", "metrics", "weighted_metrics")


def compile_settings(raw, what: str, path: str) -> dict | None:
    """The loss and metrics a model was compiled with, as plain data: from a ``.keras``
    archive's ``compile_config`` or a legacy ``.h5`` file's ``training_config`` (Keras 2 and
    Keras 3 forms). ``None`` when the file has none (an uncompiled model); the optimizer and
    its state are left out."""
    if raw is None or raw == {}:
        return None
    if not isinstance(raw, dict):
        raise KerasFileError(
            f"{path}: {what} is {raw!r:.80}; expected a JSON object (what model.compile was "
            "given). The file is damaged."
        )
    settings = {k: raw.get(k) for k in COMPILE_KEYS}
    return settings if any(v is not None for v in settings.values()) else None


_VERSION = re.compile(r"[0-9A-Za-z.+\-_ ]{0,64}")


def clean_version(value, path: str) -> str:
    """A ``keras_version`` as written by Keras (``"2.4.0"``, ``"2.2.4-tf"``, ``"3.5.0"``), or a
    KerasFileError: it is parsed for numbers, so nothing long or exotic gets through."""
    version = str(value)
    if not _VERSION.fullmatch(version):
        raise KerasFileError(
            f"{path}: keras_version {version!r:.80} is not a Keras version number; the file is "
            "damaged."
        )
    return version


def strip_suffix(name: str) -> str:
    """``'lstm_1/kernel:0'`` -> ``'lstm_1/kernel'``."""
    return re.sub(r":\d+$", "", name)


def snake_case(name: str) -> str:
    """Keras's ``naming.to_snake_case``: ``TimeDistributed`` -> ``time_distributed``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def split_directions(weights, what: str):
    """Split a Bidirectional layer's arrays into (forward, backward) by their names
    (``forward_*`` / ``backward_*`` path components), else in half as Keras saves them."""
    fw = [w for w in weights if _has_component(w[0], "forward")]
    bw = [w for w in weights if _has_component(w[0], "backward")]
    if fw and bw and len(fw) + len(bw) == len(weights):
        return fw, bw
    half = len(weights) // 2
    return weights[:half], weights[half:]


def _has_component(name: str, prefix: str) -> bool:
    return any(part.startswith(prefix) for part in re.split(r"[/]", strip_suffix(name)))


def rnn_config(class_name: str, config: dict) -> tuple[str, dict] | None:
    """If a layer is a recurrent layer jaxlstm loads (:data:`RECURRENT_CLASSES`), return
    ``(class_name, its options)``, else ``None``.

    Understands ``RNN(cell=LSTMCell(...))`` (``GRUCell``, ``SimpleRNNCell``) too, whose options
    are split between the RNN layer and its cell: it becomes ``("LSTM", merged options)``.
    """
    if class_name in RECURRENT_CLASSES:
        return class_name, config
    cell = config.get("cell") if class_name == "RNN" else None
    if isinstance(cell, dict) and cell.get("class_name") in RECURRENT_CELLS:
        merged = {k: v for k, v in config.items() if k != "cell"}
        merged.update(cell.get("config", {}))
        merged["name"] = config.get("name", merged.get("name"))
        return RECURRENT_CELLS[cell["class_name"]], merged
    return None


MODEL_CLASSES = ("Sequential", "Model", "Functional")

# ``select(config, keras_version)``: the model's own layers whose arrays a reader reads (None:
# all of them); see ``read_keras_file``.
Select = Callable[[dict, str], "set[str] | None"]


@dataclass
class ConfigLayer:
    """A layer found by walking a model config.

    Attributes:
      names: enclosing model names then the layer's own, e.g. ``("encoder", "lstm")``.
      class_name, config: as in the file.
      v3_path: where Keras 3 keeps this layer's variables in a ``.weights.h5``
        (``layers/lstm_1``, ``layers/sequential/layers/lstm``, ...), by Keras 3's own naming
        scheme (class name in snake case, numbered per container).
      custom: see :func:`foreign_origin`.
    """

    names: tuple[str, ...]
    class_name: str
    config: dict
    v3_path: str
    custom: str | None = None


# Top-level packages whose classes Keras configs name for Keras's own layers.
KERAS_PACKAGES = ("keras", "tf_keras")


def builtin_function_name(value) -> str | None:
    """The name of a Keras built-in function (an activation) as a config stores it: a plain
    string, or Keras 3's ``{"class_name": "function", "config": name, "module": "keras...."}``.
    ``None`` for anything else, including a function dict naming a module outside Keras (a
    user's ``mymodule.tanh`` is not Keras's ``tanh``, whatever its name)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value.get("class_name") == "function":
        module, name = value.get("module"), value.get("config")
        if module is None or (isinstance(module, str) and module.split(".")[0] in KERAS_PACKAGES):
            return name if isinstance(name, str) else None
    return None


def resolve_activation(value, keras_version: str, where: str):
    """The one reader of an activation as a Keras config stores it, for every layer option that
    takes one (``activation``, ``recurrent_activation``, ...): a name (``"relu"``), Keras 3's
    function dict, ``None`` (Keras's linear), or an activation layer object (``{"class_name":
    "ReLU", "config": {"max_value": 6.0, ...}}``, which is how Keras 2 and 3 save
    ``activation=keras.layers.ReLU(...)``). Returns a name of
    :data:`~jaxlstm._src.core.activations.ACTIVATIONS` (``hard_sigmoid`` resolved by the
    writing version) or a :class:`~jaxlstm._src.core.activations.KerasActivation`; ``None`` for
    a custom object, which the caller refuses (nothing named in the file is imported or run).

    A name is returned as it is (``get_activation`` refuses an unknown one where it is used, so
    that an override can replace it).

    Raises:
      UnsupportedOptionError: an activation layer with weights (``PReLU``).
      KerasFileError: an activation layer's options hold values Keras never writes.
    """
    if value is None:
        return "linear"
    name = builtin_function_name(value)
    if name is not None:  # checked where it is used (a load_keras_layer override may replace it)
        return resolve_activation_name(name, keras_version)
    if not isinstance(value, dict) or foreign_origin(value):
        return None
    class_name, config = value.get("class_name"), value.get("config", {})
    if class_name == "PReLU":
        raise UnsupportedOptionError(
            f"{where}: the activation is a PReLU layer, whose weights Keras keeps inside the "
            "layer that uses it; jaxlstm does not read those. Use a PReLU layer after this one."
        )
    if class_name in ACTIVATION_LAYERS and isinstance(config, dict):
        return layer_activation(class_name, config, where)
    return None


def foreign_origin(entry) -> str | None:
    """If a layer entry (or a layer it wraps) says its class is not Keras's own, what it names
    instead (``module 'os'``, ``registered name 'MyPackage>LSTM'``), else ``None``.

    Keras 3 writes ``module: "keras.layers"`` and ``registered_name: null`` (or the class name)
    for its own layers; custom classes carry their module and registration. jaxlstm never imports
    either: a layer claiming to come from elsewhere is refused, even with a familiar class name."""
    if not isinstance(entry, dict):
        return None
    module, registered = entry.get("module"), entry.get("registered_name")
    if module is not None and (
        not isinstance(module, str) or module.split(".")[0] not in KERAS_PACKAGES
    ):
        return f"module {module!r:.80}"
    if registered is not None and registered != entry.get("class_name"):
        return f"registered name {registered!r:.80}"
    config = entry.get("config")
    if isinstance(config, dict):
        for key in _NESTED_KEYS:
            found = foreign_origin(config.get(key))
            if found:
                return found
    return None


def layer_list(model_config: dict | list) -> list[dict]:
    """The layer dicts of a Sequential/Functional config (Keras 1 Sequential is a bare list)."""
    cfg = (
        model_config.get("config", model_config) if isinstance(model_config, dict) else model_config
    )
    if isinstance(cfg, list):
        return cfg
    layers = cfg.get("layers", []) if isinstance(cfg, dict) else []
    return layers if isinstance(layers, list) else []


# Keys under which Keras nests one layer's config inside another's (wrappers, RNN cells).
_NESTED_KEYS = ("layer", "backward_layer", "forward_layer", "cell")


def validate_model_config(model_config, path: str) -> None:
    """Check a model config's structure before anything interprets it, so that a damaged or
    crafted config ends in a :class:`KerasFileError` naming the layer: every layer entry a JSON
    object with a string ``class_name`` and an object ``config``, the same for wrapped layers and
    cells, layer names unique within each model (Keras refuses duplicates too), and models and
    wrappers nested at most ``MAX_MODEL_DEPTH`` deep."""
    if not isinstance(model_config, dict | list):
        raise KerasFileError(
            f"{path}: the model config should be a JSON object; found "
            f"{type(model_config).__name__}."
        )
    _validate_container(model_config, path, (), 0)


def _validate_container(model_config, path: str, names: tuple, depth: int) -> None:
    where = f"{path}: model {'/'.join(names)!r}" if names else f"{path}: the model config"
    if depth > limits.MAX_MODEL_DEPTH:
        raise KerasFileError(
            f"{where} nests models or wrappers more than {limits.MAX_MODEL_DEPTH} deep; the file "
            "is damaged or hostile."
        )
    inner = model_config.get("config", model_config) if isinstance(model_config, dict) else None
    layers = model_config if isinstance(model_config, list) else None
    if isinstance(inner, list):
        layers = inner
    elif isinstance(inner, dict) and "layers" in inner:
        layers = inner["layers"]
        if not isinstance(layers, list):
            raise KerasFileError(
                f"{where}: 'layers' should be a list of layer configs; found "
                f"{type(layers).__name__}."
            )
    seen: dict[str, int] = {}
    for i, entry in enumerate(layers or []):
        name = _validate_entry(entry, where, f"layer #{i}", depth)
        if name in seen:
            raise KerasFileError(
                f"{where} has two layers named {name!r} (#{seen[name]} and #{i}); Keras requires "
                "unique layer names, so the file is damaged or crafted."
            )
        seen[name] = i
        if entry.get("class_name") in MODEL_CLASSES:
            _validate_container(entry, path, (*names, name), depth + 1)


def _validate_entry(entry, where: str, label: str, depth: int) -> str:
    """Check one layer entry (and the layers it wraps); return its name."""
    if depth > limits.MAX_MODEL_DEPTH:
        raise KerasFileError(
            f"{where}: {label} nests wrappers more than {limits.MAX_MODEL_DEPTH} deep; the file is "
            "damaged or hostile."
        )
    if not isinstance(entry, dict):
        raise KerasFileError(
            f"{where}: {label} should be a JSON object with class_name and config; found "
            f"{type(entry).__name__} {entry!r:.80}."
        )
    class_name, config = entry.get("class_name"), entry.get("config", {})
    if not isinstance(class_name, str):
        raise KerasFileError(
            f"{where}: {label} has class_name {class_name!r:.80}; expected a string."
        )
    keras1_model = class_name in MODEL_CLASSES and isinstance(config, list)
    if not isinstance(config, dict) and not keras1_model:
        raise KerasFileError(
            f"{where}: {label} ({class_name}) has a config of type {type(config).__name__}; "
            "expected a JSON object."
        )
    own = config if isinstance(config, dict) else {}
    name = str(own.get("name", entry.get("name", "")))  # as walk_model_config names it
    if isinstance(config, dict):
        for key in _NESTED_KEYS:
            if isinstance(config.get(key), dict):
                _validate_entry(config[key], f"{where}: layer {name!r}", key, depth + 1)
    return name


def walk_model_config(model_config: dict, names=(), v3_path="") -> list[ConfigLayer]:
    """Every layer of a (possibly nested) model config, in file order, models included."""
    found, used = [], {}
    for entry in layer_list(model_config):
        if not isinstance(entry, dict):
            continue
        class_name = str(entry.get("class_name", ""))
        config = entry.get("config", {}) if isinstance(entry.get("config"), dict) else {}
        name = str(config.get("name", entry.get("name", "")))
        snake = snake_case(class_name)
        used[snake] = used.get(snake, -1) + 1
        path = f"{v3_path}layers/{snake}" + (f"_{used[snake]}" if used[snake] else "")
        found.append(ConfigLayer((*names, name), class_name, config, path, foreign_origin(entry)))
        if class_name in MODEL_CLASSES:
            found.extend(walk_model_config(entry, (*names, name), path + "/"))
    return found


def record_from_config(class_name, config, name, version, path, wrapper=None):
    """A weightless LayerRecord for a recurrent layer (:func:`rnn_config`), or one in
    Bidirectional / TimeDistributed, else None."""
    hit = rnn_config(class_name, config)
    if hit is not None:
        return LayerRecord(name, hit[0], hit[1], [], version, path, wrapper)
    inner = config.get("layer") if isinstance(config.get("layer"), dict) else None
    if inner is None:
        return None
    inner_class, inner_config = str(inner.get("class_name")), inner.get("config", {})
    if class_name == "TimeDistributed":
        return record_from_config(inner_class, inner_config, name, version, path, "TimeDistributed")
    if class_name != "Bidirectional" or rnn_config(inner_class, inner_config) is None:
        return None
    fw_class, fw_config = rnn_config(inner_class, inner_config)
    bw_entry = config.get("backward_layer")
    if isinstance(bw_entry, dict) and rnn_config(
        str(bw_entry.get("class_name")), bw_entry.get("config", {})
    ):
        bw_class, bw_config = rnn_config(str(bw_entry["class_name"]), bw_entry.get("config", {}))
    else:  # Keras builds the backward layer as a copy running the other way.
        bw_class = fw_class
        bw_config = {**fw_config, "go_backwards": not fw_config.get("go_backwards", False)}
    return LayerRecord(
        name,
        "Bidirectional",
        config,
        [],
        version,
        path,
        wrapper,
        forward=LayerRecord(f"{name}/forward", fw_class, fw_config, [], version, path),
        backward=LayerRecord(f"{name}/backward", bw_class, bw_config, [], version, path),
        merge_mode=config.get("merge_mode", "concat"),
    )


def attach_weights(record: LayerRecord, weights) -> LayerRecord:
    record.weights = weights
    if record.class_name == "Bidirectional":
        record.forward.weights, record.backward.weights = split_directions(weights, record.name)
    return record
