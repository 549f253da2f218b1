"""What every reader produces: the recurrent layers of a Keras file, as plain data.

Readers know file formats (where arrays and configs live); they do not interpret weights.
Converters (``jaxlstm._src.converters``) turn a record's arrays into a cell's params
(``LSTMParams``, ``GRUParams``, ``SimpleRNNParams``). What Keras's class names, versions and
config entries mean is in :mod:`jaxlstm._src.vocabulary`; this module holds what a file yields
(:class:`LayerRecord`, :class:`KerasFile`) and the walks of a model config that produce it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from jaxlstm._src.core.activations import (
    ACTIVATION_LAYERS,
    layer_activation,
)
from jaxlstm._src.errors import KerasFileError, UnsupportedOptionError
from jaxlstm._src.readers import limits
from jaxlstm._src.vocabulary import (
    MODEL_CLASSES,
    NESTED_KEYS,
    RECURRENT_CLASSES,
    STACKED,
    RecurrentClass,
    builtin_function_name,
    foreign_origin,
    named_in,
    resolve_activation_name,
    rnn_config,
    snake_case,
    split_directions,
    stacked_cells,
)


@dataclass
class LayerRecord:
    """One recurrent layer (LSTM, GRU, SimpleRNN, or a Bidirectional of one) found in a file.

    Attributes:
      name: the name to ask for it by (the layer's Keras name; ``outer/inner`` in nested models).
      class_name: a key of :data:`~jaxlstm._src.vocabulary.RECURRENT_CLASSES` (``"LSTM"``,
        ``"CuDNNGRU"``, ...; ``RNN(GRUCell)`` is ``"GRU"``) or ``"Bidirectional"``.
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
      cells: for stacked cells (class ``"StackedRNNCells"``: ``RNN([cell, ...])``), one record
        per cell, cell 0 first (class ``"LSTM"``, ``"GRU"`` or ``"SimpleRNN"``, the cell's own
        config and arrays); ``config`` is then the ``RNN`` layer's, without its cell.
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
    cells: list[LayerRecord] | None = None

    @property
    def kind(self) -> RecurrentClass:
        """The :class:`RecurrentClass` of this layer (of its forward layer for Bidirectional;
        ``STACKED`` for stacked cells, whose cells have their own)."""
        layer = self.forward or self
        return STACKED if layer.cells is not None else RECURRENT_CLASSES[layer.class_name]

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
    tree: LayerNode | None = None  # that config, parsed (model_tree)
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


# ``select(tree, keras_version)``: the model's own layers whose arrays a reader reads (None:
# all of them); ``tree`` is the config's :func:`model_tree`; see ``read_keras_file``.
Select = Callable[["LayerNode", str], "set[str] | None"]


@dataclass(frozen=True)
class LayerNode:
    """One layer entry of a model config, parsed once by :func:`model_tree` into the tree that
    the readers, :func:`~jaxlstm.load_keras`, ``inspect`` and the writers all walk.

    Attributes:
      names: enclosing model names then the layer's own, e.g. ``("encoder", "lstm")``; ``()``
        for the root (the model itself).
      class_name, config: as in the file (``config`` is ``{}`` for a Keras 1 model, whose
        config is its list of layers).
      entry: the whole entry (``inbound_nodes``, ``module``, ...), as plain JSON data.
      v3_path: where Keras 3 keeps this layer's variables in a ``.weights.h5``
        (``layers/lstm_1``, ``layers/sequential/layers/lstm``, ...), by Keras 3's own naming
        scheme (class name in snake case, numbered per container).
      custom: see :func:`~jaxlstm._src.vocabulary.foreign_origin`.
      children: a model's layers, in file order.
      nested: the layer entries this one holds (:data:`~jaxlstm._src.vocabulary.NESTED_KEYS`:
        a wrapper's ``layer`` and ``backward_layer``, an ``RNN``'s ``cell``), by key.
    """

    names: tuple[str, ...]
    class_name: str
    config: dict
    entry: dict
    v3_path: str = ""
    custom: str | None = None
    children: tuple[LayerNode, ...] = ()
    nested: dict[str, LayerNode] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The layer's Keras name (its own config's ``name``)."""
        return str(self.config.get("name", self.entry.get("name", "")))

    @property
    def key(self) -> str:
        """``"outer/inner"``: how a layer is named across nested models."""
        return "/".join(self.names)

    @property
    def is_model(self) -> bool:
        return self.class_name in MODEL_CLASSES

    @property
    def inner(self) -> LayerNode | None:
        """The layer a wrapper wraps (``TimeDistributed``, ``Bidirectional``), else ``None``."""
        return self.nested.get("layer")

    def leaf(self) -> LayerNode:
        """The innermost wrapped layer (this one if it wraps none)."""
        return self.inner.leaf() if self.inner is not None else self

    def descendants(self):
        """Every layer below this one, depth first in file order, models included."""
        for child in self.children:
            yield child
            yield from child.descendants()


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
    if named_in(class_name, ACTIVATION_LAYERS) and isinstance(config, dict):
        return layer_activation(class_name, config, where)
    return None


def model_tree(model_config, path: str) -> LayerNode:
    """Parse a model config (Sequential or Functional, any Keras version, nested models) into
    its :class:`LayerNode` tree, checking its structure on the way so that a damaged or crafted
    config ends in a :class:`KerasFileError` naming the layer: every layer entry a JSON object
    with a string ``class_name`` and an object ``config``, the same for wrapped layers and cells,
    layer names unique within each model (Keras refuses duplicates too), and models and
    wrappers nested at most ``MAX_MODEL_DEPTH`` deep. The one walk of a model config."""
    if not isinstance(model_config, dict | list):
        raise KerasFileError(
            f"{path}: the model config should be a JSON object; found "
            f"{type(model_config).__name__}."
        )
    entry = (
        model_config
        if isinstance(model_config, dict)
        else {"class_name": "Sequential", "config": model_config}
    )
    own = entry.get("config")
    class_name = entry.get("class_name", "Sequential")
    return _model(
        entry, str(class_name), own if isinstance(own, dict) else {}, path, (), "", 0, None
    )


def _model(entry, class_name, config, path, names, v3_path, depth, custom) -> LayerNode:
    where = f"{path}: model {'/'.join(names)!r}" if names else f"{path}: the model config"
    if depth > limits.MAX_MODEL_DEPTH:
        raise KerasFileError(
            f"{where} nests models or wrappers more than {limits.MAX_MODEL_DEPTH} deep; the file "
            "is damaged or hostile."
        )
    inner = entry.get("config", entry)
    layers = None
    if isinstance(inner, list):
        layers = inner
    elif isinstance(inner, dict) and "layers" in inner:
        layers = inner["layers"]
        if not isinstance(layers, list):
            raise KerasFileError(
                f"{where}: 'layers' should be a list of layer configs; found "
                f"{type(layers).__name__}."
            )
    children, seen, used = [], {}, {}
    for i, sub in enumerate(layers or []):
        node = _entry(sub, where, f"layer #{i}", depth, path, names)
        if node.name in seen:
            raise KerasFileError(
                f"{where} has two layers named {node.name!r} (#{seen[node.name]} and #{i}); "
                "Keras requires unique layer names, so the file is damaged or crafted."
            )
        seen[node.name] = i
        snake = snake_case(node.class_name)
        used[snake] = used.get(snake, -1) + 1
        sub_path = f"{v3_path}layers/{snake}" + (f"_{used[snake]}" if used[snake] else "")
        if node.is_model:
            node = _model(
                sub,
                node.class_name,
                node.config,
                path,
                node.names,
                sub_path + "/",
                depth + 1,
                node.custom,
            )
        children.append(replace(node, v3_path=sub_path))
    return LayerNode(names, class_name, config, entry, v3_path, custom, tuple(children))


def _entry(entry, where: str, label: str, depth: int, path: str, names: tuple) -> LayerNode:
    """One layer entry (and the layers it wraps), checked."""
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
    name = str(own.get("name", entry.get("name", "")))
    nested = {
        key: _entry(own[key], f"{where}: layer {name!r}", key, depth + 1, path, (*names, name))
        for key in NESTED_KEYS
        if isinstance(own.get(key), dict)
    }
    return LayerNode(
        (*names, name), class_name, own, entry, custom=foreign_origin(entry), nested=nested
    )


def stacked_record(name, config, version, path, wrapper=None) -> LayerRecord:
    """The weightless record of an ``RNN`` over stacked cells (``config``: the RNN's config,
    its ``cell`` a ``StackedRNNCells`` of supported cells)."""
    cells = [
        LayerRecord(f"{name}/{c.get('name', f'cell_{k}')}", cls, c, [], version, path)
        for k, (cls, c) in enumerate(stacked_cells("RNN", config))
    ]
    own = {k: v for k, v in config.items() if k != "cell"}
    return LayerRecord(name, STACKED.family, own, [], version, path, wrapper, cells=cells)


def split_cells(record: LayerRecord, weights) -> None:
    """Give each cell of a stacked record its arrays: Keras lists them cell by cell (cell 0's
    kernel, recurrent_kernel, bias, then cell 1's, ...), 3 per cell, 2 without a bias."""
    counts = [2 if c.config.get("use_bias", True) is False else 3 for c in record.cells]
    if len(weights) != sum(counts):
        listing = ", ".join(f"{n} {tuple(np.shape(a))}" for n, a in weights) or "none"
        raise KerasFileError(
            f"{record.path}: layer {record.name!r} has stacked cells "
            f"{[c.class_name for c in record.cells]} that take {sum(counts)} arrays "
            f"({counts} per cell: kernel, recurrent_kernel and bias unless use_bias=False); "
            f"found {len(weights)}: {listing}. The file is damaged or inconsistent."
        )
    i = 0
    for cell, n in zip(record.cells, counts, strict=True):
        cell.weights, i = list(weights[i : i + n]), i + n


def record_from_config(node: LayerNode, name, version, path, wrapper=None):
    """A weightless LayerRecord for a recurrent layer node of the model tree
    (:func:`~jaxlstm._src.vocabulary.rnn_config`), or one in Bidirectional / TimeDistributed,
    else None."""
    hit = rnn_config(node.class_name, node.config)
    if hit is not None and hit[0] == STACKED.family:
        return stacked_record(name, node.config, version, path, wrapper)
    if hit is not None:
        return LayerRecord(name, hit[0], hit[1], [], version, path, wrapper)
    inner = node.inner
    if inner is None:
        return None
    if node.class_name == "TimeDistributed":
        return record_from_config(inner, name, version, path, "TimeDistributed")
    if node.class_name != "Bidirectional" or rnn_config(inner.class_name, inner.config) is None:
        return None
    backward = node.nested.get("backward_layer")
    if backward is None or rnn_config(backward.class_name, backward.config) is None:
        # Keras builds the backward layer as a copy running the other way.
        go_backwards = not inner.config.get("go_backwards", False)
        backward = replace(inner, config={**inner.config, "go_backwards": go_backwards})
    return LayerRecord(
        name,
        "Bidirectional",
        node.config,
        [],
        version,
        path,
        wrapper,
        forward=record_from_config(inner, f"{name}/forward", version, path),
        backward=record_from_config(backward, f"{name}/backward", version, path),
        merge_mode=node.config.get("merge_mode", "concat"),
    )


def attach_weights(record: LayerRecord, weights) -> LayerRecord:
    """Give a record (and its directions, its stacked cells) its arrays, in Keras's order."""
    record.weights = weights
    if record.class_name == "Bidirectional":
        record.forward.weights, record.backward.weights = split_directions(weights, record.name)
    for part in (record.forward, record.backward) if record.forward else (record,):
        if part.cells is not None:
            split_cells(part, part.weights)
    return record
