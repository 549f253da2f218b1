"""Keras's vocabulary, in one place: what the names, numbers and layouts in a Keras file mean.

* **Versions**: :func:`keras_version_tuple` is the one parser of a ``keras_version`` string;
  what differs between the Keras versions that write files (``hard_sigmoid``, GRU
  ``reset_after``, which state a stateful RNN streams from) is decided here from it.
* **Classes**: :data:`RECURRENT_CLASSES` is the one table of which Keras classes are recurrent
  layers (and the cell family, gate order and layout each one has); :data:`RECURRENT_CELLS`
  the cells of Keras's generic ``RNN(cell)``; :data:`MODEL_CLASSES` the containers.
* **Config entries**: how a layer entry nests others (:func:`layer_list`, wrappers and cells),
  and whether it names code outside Keras (:func:`foreign_origin`; nothing named is imported).
* **Array names**: ``lstm_1/kernel:0`` and Keras 3's snake-case variable paths.

Plain Python: no JAX, no Flax, no h5py, so that any layer (the pure core included) may ask.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jaxlstm._src.errors import KerasFileError, UnsupportedOptionError

# --- versions -----------------------------------------------------------------------------


def keras_version_tuple(keras_version: str) -> tuple[int, ...]:
    """``"2.2.4-tf"`` -> ``(2, 2, 4)``; Keras 1 files that wrote no version -> ``(1,)``."""
    return tuple(int(n) for n in re.findall(r"\d+", keras_version)[:3]) or (1,)


# tf.keras wrote "2.2.4-tf" from TF 1.13 to TF 2.1 (``tensorflow/python/keras/__init__.py``,
# ``__version__``), across the switch to its v2 recurrent layers: TF 1.x's ``tf.keras.layers``
# LSTM and GRU (``layers/recurrent.py``) default to ``recurrent_activation='hard_sigmoid'`` and
# ``reset_after=False``; TF 2.0's (``layers/recurrent_v2.py``, ``keras_export('keras.layers.
# GRU', v1=[])``, also TF 1.14/1.15's ``tf.compat.v2``) to ``'sigmoid'`` and ``True``. A file
# that says only "2.2.4-tf" does not tell which one wrote it.
AMBIGUOUS_VERSIONS = {
    "2.2.4-tf": "TF 1.13-1.15 (tf.keras v1 layers: hard_sigmoid, reset_after=False) and TF "
    "2.0-2.1 (v2 layers: sigmoid, reset_after=True) both wrote it"
}


def default_recurrent_activation(keras_version: str, family: str = "LSTM") -> str | None:
    """``hard_sigmoid`` (Keras 1/2 definition) before Keras 2.3.0, ``sigmoid`` since: the
    default of every gated cell (LSTM, GRU) of the version that wrote a file; ``None`` where
    the version does not decide (:data:`AMBIGUOUS_VERSIONS`). A ``ConvLSTM`` kept
    ``hard_sigmoid`` through Keras 2 and tf.keras (2.21 included, v1 and v2 alike); Keras 3
    made it ``sigmoid``."""
    if family == "ConvLSTM":
        return "hard_sigmoid_keras2" if keras_major(keras_version) < 3 else "sigmoid"
    if keras_version in AMBIGUOUS_VERSIONS:
        return None
    return "hard_sigmoid_keras2" if keras_version_tuple(keras_version) < (2, 3, 0) else "sigmoid"


def default_reset_after(keras_version: str) -> bool | None:
    """A GRU's ``reset_after`` when its config does not say: ``False`` before Keras 2.3.0
    (Keras 1 has no such option and resets before the matmul; standalone Keras 2.0-2.2 and
    tf.keras before TF 1.13, ``2.1.6-tf``, default to it), ``True`` from 2.3.0 (standalone
    Keras 2.3, tf.keras ``2.3.0-tf`` and plain ``2.x.y`` from 2.4, Keras 3); ``None`` where the
    version does not decide (:data:`AMBIGUOUS_VERSIONS`). (Every Keras that has the option
    writes it into configs; weights-only files are decided by the bias shape.)"""
    if keras_version in AMBIGUOUS_VERSIONS:
        return None
    return keras_version_tuple(keras_version) >= (2, 3, 0)


def keras_major(keras_version: str) -> int:
    """The major version (``"2.2.4-tf"`` -> 2; Keras 1 files, which wrote none, -> 1)."""
    return keras_version_tuple(keras_version)[0]


def is_tf_keras(keras_version: str) -> bool:
    """Whether tf.keras wrote the file: it writes ``2.x.y-tf`` or, from 2.4 on, plain ``2.x.y``
    (standalone Keras ended at 2.3.1)."""
    return "-tf" in keras_version or (2, 4) <= keras_version_tuple(keras_version) < (3,)


def carried_state_wins(keras_version: str) -> bool:
    """Which state a ``stateful`` RNN called with an ``initial_state`` starts from, in the Keras
    that wrote the file. tf.keras (``tf_keras/src/layers/rnn/base_rnn.py``, ``_process_inputs``)
    takes its carried state as soon as any of it is non-zero (so the fed state starts the first
    call after ``reset_states`` only); Keras 3 (``keras/src/layers/rnn/rnn.py``, ``call``) and
    standalone Keras 2 before tf.keras (``if initial_state is not None: pass``) take the fed
    state on every call."""
    return is_tf_keras(keras_version)


def resolve_activation_name(name: str, keras_version: str) -> str:
    """Map an activation name as stored by a Keras version to its name here.

    Only ``hard_sigmoid`` changed meaning: Keras 1.x and 2.x (and tf.keras) files mean
    ``clip(0.2x + 0.5, 0, 1)``, Keras 3 files mean ``relu6(x + 3) / 6``.

    >>> resolve_activation_name("hard_sigmoid", "2.4.0")
    'hard_sigmoid_keras2'
    >>> resolve_activation_name("hard_sigmoid", "3.5.0")
    'hard_sigmoid'
    """
    key = name.lower()
    if key == "hard_sigmoid" and keras_major(keras_version) < 3:
        return "hard_sigmoid_keras2"
    return key


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


# --- classes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecurrentClass:
    """What a Keras recurrent layer class is to jaxlstm: the one place that says which classes
    are RNNs (readers, loaders, the model graph, inspect and the writers all ask it).

    Attributes:
      family: the jaxlstm module it becomes: ``"LSTM"``, ``"GRU"``, ``"SimpleRNN"`` or
        ``"ConvLSTM"`` (``jaxlstm.ConvLSTM1D/2D/3D`` by its ``rank``); ``"StackedRNNCells"``
        for ``RNN([cell, ...])`` (:data:`STACKED`).
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
            "StackedRNNCells": (),
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
# ``RNN([cell, ...])`` / ``RNN(StackedRNNCells([...]))``: a record of class "StackedRNNCells"
# whose ``cells`` are one record per cell (each a RECURRENT_CELLS layer class).
STACKED = RecurrentClass("StackedRNNCells", 0)


# Classes whose calls take ``initial_state`` tensors after their input (Keras 1/2 graphs).
RNN_CALL_CLASSES = (*RECURRENT_CLASSES, "Bidirectional", "RNN")


# --- config entries -----------------------------------------------------------------------


def named_in(value: Any, table) -> bool:
    """Whether a config value is one of ``table``'s names (a damaged file's list or dict is
    not, rather than a TypeError)."""
    return isinstance(value, str) and value in table


def rnn_config(class_name: str, config: dict) -> tuple[str, dict] | None:
    """If a layer is a recurrent layer jaxlstm loads (:data:`RECURRENT_CLASSES`), return
    ``(class_name, its options)``, else ``None``.

    Understands ``RNN(cell=LSTMCell(...))`` (``GRUCell``, ``SimpleRNNCell``) too, whose options
    are split between the RNN layer and its cell: it becomes ``("LSTM", merged options)``.
    """
    if named_in(class_name, RECURRENT_CLASSES):
        return class_name, config
    cell = config.get("cell") if class_name == "RNN" else None
    if isinstance(cell, dict) and named_in(cell.get("class_name"), RECURRENT_CELLS):
        merged = {k: v for k, v in config.items() if k != "cell"}
        merged.update(cell.get("config", {}))
        merged["name"] = config.get("name", merged.get("name"))
        return RECURRENT_CELLS[cell["class_name"]], merged
    if stacked_cells(class_name, config) is not None:
        return STACKED.family, {k: v for k, v in config.items() if k != "cell"}
    return None


def stacked_cells(class_name: str, config: dict) -> list[tuple[str, dict]] | None:
    """``[(layer class, cell config), ...]`` (cell 0 first) for an ``RNN`` over stacked cells
    (Keras writes ``RNN([cell, cell])`` as ``RNN(StackedRNNCells([...]))``) whose cells are all
    ``LSTMCell``, ``GRUCell`` or ``SimpleRNNCell`` (:data:`RECURRENT_CELLS`), else ``None``."""
    cell = config.get("cell") if class_name == "RNN" else None
    if not isinstance(cell, dict) or cell.get("class_name") != "StackedRNNCells":
        return None
    inner = cell.get("config")
    cells = inner.get("cells") if isinstance(inner, dict) else None
    if not isinstance(cells, list) or not cells:
        return None
    found = []
    for c in cells:
        if not isinstance(c, dict) or not named_in(c.get("class_name"), RECURRENT_CELLS):
            return None
        if not isinstance(c.get("config", {}), dict):
            return None
        found.append((RECURRENT_CELLS[c["class_name"]], c.get("config", {})))
    return found


MODEL_CLASSES = ("Sequential", "Model", "Functional")


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
        for key in NESTED_KEYS:
            found = foreign_origin(config.get(key))
            if found:
                return found
        cells = config.get("cells")  # a StackedRNNCells' cells
        for cell in cells if isinstance(cells, list) else ():
            found = foreign_origin(cell)
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
NESTED_KEYS = ("layer", "backward_layer", "forward_layer", "cell")


# --- layer calls (inbound nodes) -----------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """Output ``index`` of call number ``node`` of layer ``layer`` (Keras's keras_history)."""

    layer: str
    node: int
    index: int


@dataclass(frozen=True)
class Node:
    """One call of a layer: positional ``args`` and keyword ``kwargs`` hold :class:`Ref` s."""

    layer: str
    node: int
    args: tuple
    kwargs: tuple  # ((key, value), ...)


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_tensor_ref(value) -> bool:
    """Whether ``value`` is ``[layer, node, index]`` as Keras writes a tensor reference (Keras
    1/2 add a kwargs dict)."""
    return (
        isinstance(value, list)
        and len(value) in (3, 4)
        and isinstance(value[0], str)
        and is_int(value[1])
        and is_int(value[2])
    )


def tensor_ref(value, where: str) -> Ref:
    """``[layer, node, index]`` as Keras writes it (Keras 1/2 add a kwargs dict) -> Ref."""
    if is_tensor_ref(value):
        return Ref(value[0], value[1], value[2])
    raise KerasFileError(
        f"{where}: a tensor reference {value!r:.80}; expected [layer name, node index, tensor "
        "index]. The config is damaged."
    )


def call_refs(value, where: str) -> Any:
    """Keras 2 ``["name", node, index]`` lists and Keras 3 ``__keras_tensor__`` dicts -> Ref;
    other dicts become ``((key, value), ...)``, lists tuples."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            config = value.get("config")
            history = config.get("keras_history") if isinstance(config, dict) else None
            return tensor_ref(history, where)
        return tuple((k, call_refs(v, where)) for k, v in value.items())
    if isinstance(value, list | tuple):
        if len(value) in (3, 4) and isinstance(value[0], str) and is_int(value[1]):
            return tensor_ref(list(value), where)
        return tuple(call_refs(v, where) for v in value)
    return value


def io_refs(spec, where: str) -> tuple[Ref, ...]:
    if not isinstance(spec, list):
        raise KerasFileError(f"{where}: {spec!r:.80}; expected a list of [layer, node, index].")
    if spec and isinstance(spec[0], str):  # a single [name, node, index]
        spec = [spec]
    return tuple(tensor_ref(s, where) for s in flat_histories(spec))


def flat_histories(entries) -> list:
    """``entries`` with nested lists of tensor references flattened, in order: Keras nests the
    tensors of a nested structure (stacked cells' states, ``[[h0, c0], h1]``) where it lists a
    call's inputs, an RNN's ``initial_state`` or a model's outputs; each is one tensor to
    jaxlstm, as Keras numbers them."""
    out = []
    for e in entries:
        nested = isinstance(e, list | tuple) and e and all(isinstance(v, list | tuple) for v in e)
        out.extend(flat_histories(e) if nested else [e])
    return out


def call_kwargs(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise KerasFileError(f"{where}: call arguments {value!r:.80}; expected a JSON object.")
    kwargs = dict(call_refs(value, where))
    state = kwargs.get("initial_state")
    if isinstance(state, Ref):
        kwargs["initial_state"] = state = (state,)
    if isinstance(state, tuple):  # stacked cells' states come nested: [[h0, c0], h1]
        kwargs["initial_state"] = state = tuple(_flat_refs(state))
    if state is not None and not (
        isinstance(state, tuple) and all(isinstance(r, Ref) for r in state)
    ):
        raise KerasFileError(
            f"{where}: initial_state {state!r:.80}; expected a list of tensor references."
        )
    return kwargs


def layer_calls(
    name: str, class_name: str, inbound, where: str, first: int = 0, config: dict | None = None
) -> list[Node]:
    """A layer's calls; ``first`` is the index Keras gives the first one (1 for a Keras 2 nested
    model that has its own Input: Keras 2 keeps that internal call out of the config but still
    counts it). ``config``, the layer's own config, tells an RNN called with constants."""
    if class_name in RNN_CALL_CLASSES:
        _refuse_constants(name, (config or {}).get("num_constants"), where)
    where = f"{where}: layer {name!r}: inbound_nodes"
    if not isinstance(inbound, list | type(None)):
        raise KerasFileError(f"{where} is {inbound!r:.80}; expected a list of calls.")
    nodes = []
    for i, node in enumerate(inbound or []):
        if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
            args = node.get("args", [])
            if not isinstance(args, list):
                raise KerasFileError(f"{where}: args {args!r:.80}; expected a list.")
            args = call_refs(args, where)
            kwargs = call_kwargs(node.get("kwargs", {}), where)
        elif isinstance(node, list) and node and all(isinstance(e, list) for e in node):
            # Keras 1/2: [[name, node, index, kwargs], ...]; stacked cells' initial states
            # nested per cell: [x, [h0, c0], h1]
            flat = flat_histories(node)
            entries = [tensor_ref(e, where) for e in flat]
            extra = flat[0][3] if len(flat[0]) > 3 and isinstance(flat[0][3], dict) else {}
            kwargs = call_kwargs(extra, where)
            if class_name in RNN_CALL_CLASSES and len(entries) > 1:
                args, kwargs["initial_state"] = (entries[0],), tuple(entries[1:])
            else:
                args = (entries[0],) if len(entries) == 1 else (tuple(entries),)
        else:
            raise KerasFileError(
                f"{where}: call #{i} is {node!r:.80}; expected a list of [layer, node, index, "
                "kwargs] (Keras 1/2) or an object with args and kwargs (Keras 3)."
            )
        if class_name in RNN_CALL_CLASSES:
            _refuse_constants(name, kwargs.get("constants"), where)
        nodes.append(Node(name, first + i, tuple(args), tuple(sorted(kwargs.items()))))
    return nodes


def _refuse_constants(name: str, constants, where: str) -> None:
    """An RNN called with ``constants`` (Keras 2: the call's ``constants`` argument, or the
    layer config's ``num_constants``, in which case the constants are the last tensors of the
    call) conditions its cell on them: jaxlstm's recurrent layers take none, and reading those
    tensors as initial states would give wrong numbers. ``constants: null`` (what tf.keras
    records for every call) is fine."""
    if constants is None or constants == 0 or constants == ():
        return
    raise UnsupportedOptionError(
        f"{where}: layer {name!r} is called with constants ({constants!r:.80}); expected none "
        "(constants: null): jaxlstm's recurrent layers take no constants, and ignoring them "
        "would compute different numbers than Keras. Rebuild the model without constants."
    )


def is_ref(x) -> bool:
    return isinstance(x, Ref)


def _flat_refs(tree) -> list:
    """The leaves of nested tuples of :class:`Ref` s, in order (``None`` s left out)."""
    if isinstance(tree, tuple):
        return [leaf for t in tree for leaf in _flat_refs(t)]
    return [] if tree is None else [tree]


# --- array names --------------------------------------------------------------------------


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
    fw = [w for w in weights if has_component(w[0], "forward")]
    bw = [w for w in weights if has_component(w[0], "backward")]
    if fw and bw and len(fw) + len(bw) == len(weights):
        return fw, bw
    half = len(weights) // 2
    return weights[:half], weights[half:]


def has_component(name: str, prefix: str) -> bool:
    return any(part.startswith(prefix) for part in re.split(r"[/]", strip_suffix(name)))
