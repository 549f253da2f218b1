"""``load_keras``: a whole Keras model (Sequential or Functional, nested, several inputs and
outputs) as one NNX module that runs its layers in graph order with Keras's mask propagation."""

from __future__ import annotations

import functools
import heapq
import json
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlstm._src.core.conv_lstm import ConvLSTMState
from jaxlstm._src.core.gru import GRUState
from jaxlstm._src.core.lstm import LSTMState
from jaxlstm._src.core.simple_rnn import SimpleRNNState
from jaxlstm._src.errors import (
    KerasFileError,
    ShapeError,
    UnsupportedLayerError,
)
from jaxlstm._src.load import check_nonfinite_policy, check_weights, module_from_record
from jaxlstm._src.models.layers import (
    ALIASES,
    LAYERS,
    OP_MODULE_PREFIX,
    OPS,
    BuildContext,
    KerasLayer,
    Op,
    TimeDistributed,
)
from jaxlstm._src.modules.nnx import DropoutStreams
from jaxlstm._src.readers import KerasFile, read_keras_file
from jaxlstm._src.readers.records import LayerNode, model_tree
from jaxlstm._src.vocabulary import (
    MODEL_CLASSES,
    Node,
    Ref,
    carried_state_wins,
    io_refs,
    is_ref,
    keras_major,
    layer_calls,
)

_WHY = {
    "Lambda": "a Lambda layer holds Python code (bytecode) and jaxlstm never executes code "
    "from a file",
    "StackedRNNCells": "stacked recurrent cells of which jaxlstm loads LSTMCell, GRUCell and "
    "SimpleRNNCell only",
}


_STATE_TYPES = {
    "LSTM": LSTMState,
    "GRU": GRUState,
    "SimpleRNN": SimpleRNNState,
    **{f"ConvLSTM{r}D": ConvLSTMState for r in (1, 2, 3)},
}


class RNNLayer(KerasLayer):
    """An imported LSTM / GRU / SimpleRNN / StackedRNN / Bidirectional inside a model: Keras's
    outputs (with ``return_state``, every state array flat after the output, as Keras numbers
    a call's tensors: ``h, c`` for an LSTM, ``h0, c0, h1`` for stacked LSTM and GRU cells),
    masks and, for ``stateful=True`` layers, the carried state (an ``LSTMState``, ``GRUState``
    or ``SimpleRNNState``, a tuple of them per cell for stacked cells, a pair for
    Bidirectional; chosen against a fed ``initial_state`` as the writing Keras did:
    :func:`carried_state_wins`)."""

    def __init__(self, module, stateful: bool, carried_wins: bool = False):
        self.module, self.stateful, self.carried_wins = module, stateful, carried_wins
        self.return_sequences = module.return_sequences
        self.return_state = module.return_state
        self.merge_none = getattr(module, "merge_mode", "x") is None
        self.n_out = 2 if self.merge_none else 1
        layer = _lstms(module)[0]
        self.n_fields = len(layer.state_fields)  # states per direction: [h, c], [h], [h0, ...]
        self.cell_types = tuple(
            _STATE_TYPES[type(c).__name__] for c in getattr(layer, "cells", [layer])
        )

    def _direction_state(self, flat):
        """One direction's flat state arrays as its state: a NamedTuple, or one per cell."""
        states, i = [], 0
        for state_type in self.cell_types:
            n = len(state_type._fields)
            states.append(state_type(*flat[i : i + n]))
            i += n
        return tuple(states) if hasattr(_lstms(self.module)[0], "cells") else states[0]

    def __call__(self, x, mask=None, initial_state=None):
        # Always take the final state (it is free), asked per call: the module keeps its options.
        outs = self.module(x, mask=mask, initial_state=initial_state, return_state=True)
        states = jax.tree.leaves(outs[self.n_out :])
        keras_outs = (*outs[: self.n_out], *states) if self.return_state else outs[: self.n_out]
        keras_outs = keras_outs[0] if len(keras_outs) == 1 else tuple(keras_outs)
        n = self.n_fields
        return keras_outs, tuple(
            self._direction_state(states[i : i + n]) for i in range(0, len(states), n)
        )

    def start_state(self, fed, carried):
        """The initial state of one call: ``fed`` (arrays wired from the graph, or None) or
        ``carried`` (this stateful layer's state from the previous chunk, or None). Where the
        carried state wins, it does per direction, once any of its values is non-zero (exactly
        tf.keras's test, which is also true for a state that trained to all zeros)."""
        if fed is None or carried is None:
            return carried if fed is None else fed
        if not self.carried_wins:
            return fed
        out, n = [], self.n_fields
        for i in range(0, len(fed), n):  # [h, c] (or [h]) per direction
            part = range(i, i + n)
            nonzero = functools.reduce(
                jnp.logical_or, [jnp.any(jnp.asarray(carried[j]) != 0) for j in part]
            )
            out += [jnp.where(nonzero, carried[j], fed[j]) for j in part]
        return out

    def keras_weights(self):
        return [(p, True) for cell in _cells(self.module) for p in cell.params if p is not None]

    def output_mask(self, inputs, mask):
        seq_mask = mask if self.return_sequences else None
        masks = (seq_mask,) * self.n_out
        if self.return_state:
            masks += (None,) * (len(_lstms(self.module)) * self.n_fields)
        return masks[0] if len(masks) == 1 else masks


def _lstms(module):
    return [module.forward, module.backward] if hasattr(module, "forward") else [module]


def _cells(module):
    """The single-cell modules (LSTM, GRU, SimpleRNN) of a layer, in Keras's weight order:
    per direction, and per stacked cell."""
    return [c for layer in _lstms(module) for c in getattr(layer, "cells", [layer])]


class CustomLayer(KerasLayer):
    """A user-supplied implementation of a layer class (``custom_layers=``)."""

    def __init__(self, fn, n_arrays: int):
        self.fn = fn
        self.passes_mask = False
        self.n_arrays = n_arrays

    def keras_weights(self):
        if self.n_arrays:
            raise UnsupportedLayerError(
                "a layer supplied through custom_layers holds weights that jaxlstm cannot "
                "write back to a Keras file; give it a keras_weights() method returning "
                "[(array, trainable), ...] in Keras's order."
            )
        return []

    def __call__(self, *args, mask=None):
        return self.fn(*args)

    def output_mask(self, inputs, mask):
        own = getattr(self.fn, "output_mask", None)
        return own(inputs, mask) if own is not None else None


class KerasModel(nnx.Module):
    """A Keras model imported by :func:`load_keras`: call it as Keras would be called.

    ``model(x)`` or ``model(x1, x2)`` returns the output, or a tuple of outputs in Keras's order.
    It starts in eval mode (dropout and noise off, BatchNormalization on moving statistics);
    ``model.train()`` switches to training behaviour for fine-tuning, ``model.eval()`` back.
    ``model.layers`` holds the layer modules by Keras name; their weights are ``nnx.Param`` s.
    ``model.summary()`` prints Keras's layer table. Loading built every module from the file's
    arrays: nothing was compiled; the first call compiles.

    Stateful LSTMs (``stateful=True``): ``model(x)`` starts them from zeros; to stream a long
    sequence chunk by chunk, carry the state explicitly::

        states = None
        for chunk in chunks:                      # each (batch, steps, features)
            y, states = model.call_with_state(chunk, states=states)

    which, for forward-running LSTMs, gives the same outputs as one call on the whole sequence
    (as in Keras, a Bidirectional layer's backward half runs each chunk backwards). ``states``
    maps each stateful layer's name to its ``LSTMState`` (a tuple of two for a Bidirectional
    layer). A stateful layer whose ``initial_state`` is wired from the model's inputs follows the
    Keras that wrote the file (:func:`carried_state_wins`): tf.keras carries its own state once
    it is non-zero, Keras 3 restarts from the fed state on every call.
    """

    def __init__(
        self,
        kf: KerasFile,
        config: dict,
        custom_layers=None,
        rngs=None,
        nonfinite="warn",
    ):
        rngs = rngs if isinstance(rngs, DropoutStreams) else DropoutStreams(rngs)
        custom_layers = dict(custom_layers or {})
        node = config if isinstance(config, LayerNode) else model_tree(config, kf.path)
        self.name = str(node.config.get("name", "model"))
        self.class_name = node.class_name
        where = f"{kf.path}: model {self.name!r}"
        layers, nodes, input_layers = {}, [], []
        for child in node.children:
            name = child.name
            if child.class_name == "InputLayer":
                input_layers.append(name)
                continue
            layers[name] = _build_layer(kf, child, custom_layers, rngs, nonfinite)
            if self.class_name == "Sequential":
                prev = Ref(nodes[-1].layer, 0, 0) if nodes else Ref("__input__", 0, 0)
                nodes.append(Node(name, 0, (prev,), ()))
            else:
                nodes.extend(entry_nodes(child, kf.keras_version, kf.path))
        model_cfg = node.config
        if self.class_name == "Sequential":
            if not nodes:
                raise KerasFileError(f"{where}: a Sequential model with no layers to run.")
            self.inputs, self.outputs = (Ref("__input__", 0, 0),), (Ref(nodes[-1].layer, 0, 0),)
            first_layer = f"the input of layer {nodes[0].layer!r}"
            self.input_names = tuple(input_layers[:1]) or (first_layer,)
        else:
            self.inputs = io_refs(model_cfg.get("input_layers", []), f"{where}: input_layers")
            self.outputs = io_refs(model_cfg.get("output_layers", []), f"{where}: output_layers")
            self.input_names = tuple(r.layer for r in self.inputs)
        self.layers = nnx.Dict(layers)
        self.layer_names = tuple(layers)  # the config's order (nnx.jit may reorder the Dict)
        self.order = _topological(nodes, self.inputs, kf.path)
        produced = {(n.layer, n.node) for n in self.order} | {
            (r.layer, r.node) for r in self.inputs
        }
        missing = [r.layer for r in self.outputs if (r.layer, r.node) not in produced]
        if missing:
            raise KerasFileError(
                f"{where}: output_layers name {missing}, which no layer call of the model "
                "produces; the config is damaged."
            )
        self.where = where
        self.stateful = tuple(
            n for n, m in layers.items() if isinstance(m, RNNLayer) and m.stateful
        )
        self.keras_version = kf.keras_version
        self.config_json = json.dumps(node.entry)  # the Keras config it came from (a str: static)
        self.compile_config_json = json.dumps(None if node.names else kf.compile_config)
        self.eval()

    @property
    def config(self) -> dict:
        """The Keras model config this model was built from (plain JSON data)."""
        return json.loads(self.config_json)

    @property
    def compile_config(self) -> dict | None:
        """What the file says ``model.compile`` was given, as plain JSON data: ``loss``,
        ``metrics``, ``loss_weights``, ``weighted_metrics`` (never the optimizer or its state);
        ``None`` for an uncompiled model. :func:`jaxlstm.train.fit` and ``evaluate`` use it when
        given no ``loss=``. A fresh copy on each access: editing it changes nothing."""
        return json.loads(self.compile_config_json)

    def summary(self, print_fn: Callable[[str], Any] = print) -> None:
        """Print the model as Keras's ``model.summary()`` does: each layer's name, class, output
        shape (``None`` where the model leaves a size open), parameter count and mask flow, then
        the total parameters (trainable and not), with the current weights."""
        from jaxlstm._src.inspect import model_summary

        print_fn(model_summary(self))

    def __repr__(self) -> str:
        n = sum(int(w.size) for w, _ in self.keras_weights())
        return (
            f"KerasModel({self.name!r}, {self.class_name}, {len(self.layers)} layers, "
            f"{n:,} params, Keras {self.keras_version})"
        )

    def layer(self, name: str):
        """A layer module by Keras name; ``"outer/inner"`` reaches into nested models."""
        module = self
        for part in name.split("/"):
            module = module.layers[part]
        return module

    def keras_weights(self):
        """All weights in Keras's order for a model used as a layer: trainable ones first."""
        pairs = [w for name in self.layer_names for w in self.layers[name].keras_weights()]
        return [w for w in pairs if w[1]] + [w for w in pairs if not w[1]]

    def __call__(self, *inputs: Any) -> Any:
        outputs, _, _ = self.run(inputs)
        return outputs[0] if len(outputs) == 1 else outputs

    def call_with_masks(self, *inputs: Any) -> tuple[tuple, tuple]:
        """``(outputs, masks)``, both tuples in Keras's output order: each output with the
        Keras mask it carries (``None`` where Keras propagates none), as Keras's losses and
        metrics read it."""
        outputs, masks, _ = self.run(inputs)
        return outputs, masks

    def call_with_state(self, *inputs: Any, states: dict | None = None) -> tuple[Any, dict]:
        """``(outputs, states)``: run with the stateful layers starting from ``states``
        (zeros when ``None`` or missing) and return their final states for the next chunk."""
        outputs, _, new_states = self.run(inputs, states=states or {})
        return (outputs[0] if len(outputs) == 1 else outputs), new_states

    def run(self, inputs, masks=None, states=None, trace=None):
        """Evaluate the graph: ``(outputs, output_masks, final states of stateful layers)``.

        ``trace``, a list, receives ``(layer name, outputs, mask in, output masks)`` per call."""
        if len(inputs) != len(self.inputs):
            raise ShapeError(
                f"model {self.name!r} takes {len(self.inputs)} input(s) "
                f"{list(self.input_names)}; received {len(inputs)}. Pass one array per input, "
                "in that order: model(x1, x2, ...)."
            )
        masks = masks if masks is not None else (None,) * len(inputs)
        values = {ref: (x, m) for ref, x, m in zip(self.inputs, inputs, masks, strict=True)}

        def get(ref: Ref):  # (value, mask) of a tensor the config names
            if ref not in values:
                raise KerasFileError(
                    f"{self.where}: layer {ref.layer!r} call #{ref.node} has no output #"
                    f"{ref.index}, which the config reads; the config is damaged."
                )
            return values[ref]

        new_states = {}
        for node in self.order:
            layer = self.layers[node.layer]
            args = jax.tree.map(lambda r: get(r)[0] if is_ref(r) else r, node.args, is_leaf=is_ref)
            arg_masks = jax.tree.map(
                lambda r: get(r)[1] if is_ref(r) else None, node.args, is_leaf=is_ref
            )
            kwargs = dict(node.kwargs)
            mask = arg_masks[0] if arg_masks else None
            if isinstance(kwargs.get("mask"), Ref):
                mask = get(kwargs["mask"])[0]
            if isinstance(layer, RNNLayer):
                fed = kwargs.get("initial_state")
                fed = None if fed is None else [get(r)[0] for r in fed]
                carried = None
                if states is not None and layer.stateful:
                    carried = _flat_state(states.get(node.layer))
                init = layer.start_state(fed, carried)
                # Keras 3 fills in a layer's propagated mask only when it is called on one
                # tensor (layer.py, "Populate mask argument(s)"): an RNN given initial_state
                # tensors and no explicit mask= runs unmasked, though its output carries the mask.
                implicit = not isinstance(kwargs.get("mask"), Ref)
                keras3 = keras_major(self.keras_version) >= 3
                run_mask = None if fed is not None and keras3 and implicit else mask
                out, final = layer(args[0], mask=run_mask, initial_state=init)
                if layer.stateful:
                    new_states[node.layer] = final[0] if len(final) == 1 else final
                out_mask = layer.output_mask(args, mask)
            elif hasattr(layer, "call_graph"):  # reads every input's mask and call options
                kw = {k: _resolve(v, values, 0) for k, v in kwargs.items()}
                kw_masks = {k: _resolve(v, values, 1) for k, v in kwargs.items() if is_ref(v)}
                out, out_mask = layer.call_graph(args, arg_masks, kw, kw_masks)
            elif isinstance(layer, KerasModel):
                out, out_mask, inner = layer.run(args, arg_masks, states, trace)
                new_states.update(inner)
                out, out_mask = (out[0], out_mask[0]) if len(out) == 1 else (out, out_mask)
            else:
                out = layer(*args, mask=mask)
                out_mask = layer.output_mask(args, mask)
            outs = out if isinstance(out, tuple) else (out,)
            out_masks = out_mask if isinstance(out_mask, tuple) else (out_mask,) * len(outs)
            if trace is not None:
                trace.append((node.layer, outs, mask, out_masks))
            for i, (o, m) in enumerate(zip(outs, out_masks, strict=True)):
                values[Ref(node.layer, node.node, i)] = (o, m)
        outputs = tuple(get(r)[0] for r in self.outputs)
        return outputs, tuple(get(r)[1] for r in self.outputs), new_states


def entry_nodes(node: LayerNode, keras_version: str, path: str) -> list[Node]:
    """The calls of one layer of a Functional config, numbered as Keras numbers them."""
    first = int(node.is_model and keras_major(keras_version) < 3 and _starts_with_input(node))
    return layer_calls(
        node.name, node.class_name, node.entry.get("inbound_nodes"), path, first, node.config
    )


def _starts_with_input(node: LayerNode) -> bool:
    return bool(node.children) and node.children[0].class_name == "InputLayer"


def _resolve(tree, values, i: int):
    """``tree`` with each :class:`Ref` replaced by its value (``i=0``) or mask (``i=1``)."""
    return jax.tree.map(lambda r: values[r][i] if is_ref(r) else r, tree, is_leaf=is_ref)


def _flat_state(state):
    """A stateful layer's carried state (a state NamedTuple, a tuple of them per stacked cell,
    a pair per Bidirectional) as its arrays, flat, in Keras's order."""
    return None if state is None else jax.tree.leaves(state)


def _topological(nodes: list[Node], inputs, path: str) -> tuple[Node, ...]:
    """Order the calls so each runs after what it reads (config order is not always enough).

    The order is that of sweeping the calls in config order again and again, each sweep taking
    every call whose inputs are produced by then. It is computed in O(n log n) rather than by
    sweeping (O(n^2)), so that a crafted config listing thousands of calls in reverse order
    cannot stall loading: a call is taken in the sweep of its last-produced input, or the next
    one if that input's producer comes after it in config order."""
    ready = set(inputs)
    waiting: dict[tuple, list[int]] = defaultdict(list)  # (layer, node) -> readers' indices
    missing, sweep, heap = [0] * len(nodes), [0] * len(nodes), []
    for i, node in enumerate(nodes):
        leaves = jax.tree.leaves((node.args, node.kwargs), is_leaf=is_ref)
        keys = {(r.layer, r.node) for r in leaves if is_ref(r) and r not in ready}
        missing[i] = len(keys)
        for key in keys:
            waiting[key].append(i)
        if not keys:
            heapq.heappush(heap, (0, i))
    order, produced = [], set()
    while heap:
        s, i = heapq.heappop(heap)
        order.append(i)
        key = (nodes[i].layer, nodes[i].node)
        if key in produced:
            continue
        produced.add(key)
        for j in waiting.pop(key, ()):
            sweep[j] = max(sweep[j], s if i < j else s + 1)
            missing[j] -= 1
            if not missing[j]:
                heapq.heappush(heap, (sweep[j], j))
    if len(order) < len(nodes):
        taken = set(order)
        stuck = sorted({n.layer for i, n in enumerate(nodes) if i not in taken})
        raise KerasFileError(
            f"{path}: the model graph cannot be evaluated: layers {stuck} read tensors "
            "that no layer produces; the config is damaged."
        )
    return tuple(nodes[i] for i in order)


def _described(node: LayerNode) -> str:
    """How messages name a layer (:meth:`LayerNode.described`), stacked cells spelled out."""
    cells = _stacked_cells(node)
    if cells is not None:
        return f"{node.class_name}(StackedRNNCells([{', '.join(cells)}]))"
    return f"{node.class_name}({_described(node.inner)})" if node.inner else node.class_name


def _stacked_cells(node: LayerNode) -> list[str] | None:
    """The cell classes of an ``RNN`` over stacked cells (Keras turns ``RNN([cell, cell])`` into
    ``RNN(StackedRNNCells([...]))`` in its config), else ``None``."""
    cell = node.nested.get("cell") if node.class_name == "RNN" else None
    if cell is None or cell.class_name != "StackedRNNCells":
        return None
    cells = cell.config.get("cells")
    cells = cells if isinstance(cells, list) else []
    return [str(c.get("class_name")) if isinstance(c, dict) else "?" for c in cells]


def layer_support(kf: KerasFile, cl, name: str) -> tuple[bool, str]:
    """Whether :func:`load_keras` can build this config layer, and if not, why."""
    if cl.class_name in MODEL_CLASSES or cl.class_name == "InputLayer" or name in kf.layers:
        return True, ""
    if cl.class_name == "TimeDistributed":
        cls = cl.inner.class_name if cl.inner is not None else ""
        return (cls in LAYERS or ALIASES.get(cls) in LAYERS), f"wraps {cls}"
    if cl.class_name in LAYERS or ALIASES.get(cl.class_name) in LAYERS or cl.class_name in OPS:
        return True, ""
    inner = cl.leaf().class_name if cl.inner else None
    if inner is not None:
        return False, f"wraps {inner}, " + _WHY.get(inner, "not implemented; use custom_layers=")
    return False, _WHY.get(cl.class_name, "not implemented; use custom_layers=")


def _build_layer(
    kf: KerasFile,
    node: LayerNode,
    custom: dict,
    rngs,
    nonfinite: str = "warn",
    wrapper: str | None = None,
) -> nnx.Module:
    """``wrapper``: the class of the wrapper this layer is built for (for messages)."""
    class_name, config, key = node.class_name, node.config, node.key
    arrays = [a for _, a in kf.arrays.get(key, [])]
    ctx = BuildContext(node.names[-1], class_name, kf.keras_version, kf.path, rngs)
    if not node.is_model and class_name != "TimeDistributed" and key not in kf.layers:
        # Built-in layers take float weights only; custom ones get what the file has.
        where = f"{kf.path}: layer {key!r} ({class_name})"
        check_weights(kf.arrays.get(key, []), where, nonfinite, floats=class_name not in custom)
    if class_name in custom:
        fn = custom[class_name](config, arrays)
        return fn if isinstance(fn, KerasLayer) else CustomLayer(fn, len(arrays))
    if node.custom:
        raise UnsupportedLayerError(
            f"{kf.path}: layer {key!r} is {_described(node)} from {node.custom}: a "
            "custom class, not "
            "Keras's own, and jaxlstm runs no code from files. Nothing from the file was run. "
            f"To proceed, supply a JAX implementation: load_keras(path, custom_layers="
            f"{{{class_name!r}: factory}})."
        )
    if node.is_model:
        return KerasModel(kf, node, custom, rngs, nonfinite)
    if key in kf.layers:  # LSTM / Bidirectional (also inside TimeDistributed)
        record = kf.layers[key]
        module = module_from_record(record, {}, rngs, nonfinite=nonfinite)
        stateful = bool((record.forward or record).config.get("stateful", False))
        return RNNLayer(module, stateful, carried_state_wins(kf.keras_version))
    if class_name == "TimeDistributed":
        if node.inner is None:
            raise KerasFileError(
                f"{kf.path}: layer {key!r} is TimeDistributed with "
                f"layer={config.get('layer')!r:.80}; expected the wrapped layer's JSON object "
                "(class_name and config)."
            )
        # The wrapped layer runs under the wrapper's name, with the wrapper's arrays.
        inner = replace(
            node.inner, names=node.names, config={**node.inner.config, "name": node.name}
        )
        inner_kf = KerasFile(
            kf.path, kf.format, kf.keras_version, arrays={key: kf.arrays.get(key, [])}
        )
        return TimeDistributed(
            _build_layer(inner_kf, inner, custom, rngs, nonfinite, "TimeDistributed")
        )
    builder = LAYERS.get(ALIASES.get(class_name, class_name))
    module = str(node.entry.get("module", ""))
    if module.startswith(OP_MODULE_PREFIX) or (not module and builder is None):
        builder = Op if class_name in OPS else None
    if builder is None:
        shown = _described(node)
        inner = (node.leaf().class_name if node.inner else None) or (
            class_name if wrapper else None
        )
        stacked = _stacked_cells(node.leaf()) is not None
        why = _WHY.get(
            "StackedRNNCells" if stacked else inner or class_name,
            "a layer class jaxlstm does not implement",
        )
        if inner is not None:  # name the unsupported class itself, not its wrapper
            shown = f"{wrapper}({shown})" if wrapper else shown
            why = (
                why if inner in _WHY else f"{inner} is {why}"
            ) + f" (inside {wrapper or class_name})"
        raise UnsupportedLayerError(
            f"{kf.path}: layer {key!r} is {shown}: {why}. Nothing from the file was run. "
            f"To proceed, supply a JAX implementation: load_keras(path, custom_layers="
            f"{{{class_name!r}: factory}}), where factory(config, weights) returns a callable "
            "taking the layer's inputs (weights: the layer's arrays in Keras's order)."
        )
    return builder(config, arrays, ctx)  # which checks what it reads (BuildContext)


def load_keras(
    path: str | os.PathLike,
    *,
    custom_layers: dict[str, Callable] | None = None,
    rngs: nnx.Rngs | None = None,
    sha256: str | None = None,
    nonfinite: str = "warn",
    outputs: list | None = None,
    inputs: list | None = None,
    weights: str | os.PathLike | None = None,
) -> KerasModel:
    """Load a whole Keras model (legacy ``.h5`` full model, ``.keras``, or a TensorFlow
    SavedModel directory written by tf.keras 2.x) as a :class:`KerasModel`.

    Sequential and Functional models, nested models, several inputs and outputs. Layers are
    built from their configs as plain data; unsupported ones (Lambda, custom classes) are refused
    with an :class:`~jaxlstm.UnsupportedLayerError` naming the layer, unless ``custom_layers``
    maps the class name to ``factory(config, weights) -> callable``. Nothing in the file is
    executed. The model starts in eval mode.

    ``outputs`` and ``inputs`` load part of the graph: the model computes the tensors named in
    ``outputs`` (default: the model's outputs) from those named in ``inputs`` (fed instead of
    computed; default: the model's own inputs that the outputs need, in the model's order).
    Name a tensor by its layer (``"softmax"``: the output of a layer called once, with one
    output), or as ``"layer:node:index"`` / Keras's ``[layer, node, index]`` (output ``index``
    of the layer's call ``node``, e.g. ``"encoder_lstm:0:1"`` for an LSTM's state h). Layers
    outside the cut are never built, so a training graph's loss ``Lambda``, CTC head or metric
    layer does not block loading it for inference. The cut model's config (``model.config``,
    what ``save_keras`` writes) holds the kept layers only, with an ``InputLayer`` per fed
    tensor. A fed tensor carries no Keras mask (as a new ``keras.Input``). A cut point inside a
    nested model, an unknown name (``LayerNotFoundError``, listing the layers) or an output
    needing a model input that ``inputs`` leaves out is an error.

    ``weights`` loads a TF-format checkpoint (``model.save_weights("ckpt")``: its
    ``ckpt.index``, its prefix or its directory) into the architecture ``path`` gives, a
    ``model.to_json()`` file or a ``.keras`` / ``.h5`` model, as Keras's ``model_from_json`` +
    ``load_weights`` do: ``load_keras("model.json", weights="ckpt")``.

    ``sha256`` pins the file: a different SHA-256 raises ``ChecksumError`` before anything is
    parsed. ``nonfinite`` says what to do with NaN or Inf weights: ``"warn"`` (default),
    ``"error"`` (``NonFiniteWeightsError``) or ``"ignore"``. Weights must be floating point
    (float16 and float64 become float32).

    Example:
      >>> model = jaxlstm.load_keras("forecaster.h5")            # doctest: +SKIP
      >>> y = model(x)                                            # doctest: +SKIP
    """
    from jaxlstm._src.models.cut import cut_config

    check_nonfinite_policy(nonfinite)
    cut: dict = {}

    def select(tree: LayerNode, keras_version: str) -> set[str]:
        """The cut, from the config alone: only the kept layers' arrays are read."""
        config, cut["bare"] = cut_config(tree, keras_version, os.fspath(path), outputs, inputs)
        cut["tree"] = model_tree(config, os.fspath(path))
        return {c.name for c in cut["tree"].children if c.class_name != "InputLayer"}

    cutting = outputs is not None or inputs is not None
    kf = read_keras_file(path, sha256=sha256, select=select if cutting else None, weights=weights)
    if kf.config is None:
        raise KerasFileError(
            f"{kf.path}: {kf.format} has no model config, only weights; load_keras needs a full "
            "model (model.save). Use load_keras_layer(path, name, ...) for its recurrent layers."
        )
    # What the config holds is checked where it is read (KerasFileError); any other exception
    # is a bug (ours, a dependency's or a custom_layers factory's) and surfaces as itself.
    try:
        tree, bare = cut.get("tree", kf.tree), cut.get("bare", [])
        model = build_model(kf, tree, custom_layers, rngs, nonfinite)
        _check_single_outputs(model, bare)
        return model
    except RecursionError:
        raise KerasFileError(
            f"{kf.path}: the model graph is nested too deeply; the file is damaged or hostile."
        ) from None


def build_model(kf: KerasFile, tree: LayerNode, custom_layers=None, rngs=None, nonfinite="warn"):
    """``KerasModel(kf, tree, ...)``; a refusal for an unsupported layer at the end of the
    graph suggests loading the graph up to the layers before it (:func:`_cut_suggestion`)."""
    try:
        return KerasModel(kf, tree, custom_layers, rngs, nonfinite=nonfinite)
    except UnsupportedLayerError as err:
        hint = _cut_suggestion(kf, tree, custom_layers)
        if hint:
            raise UnsupportedLayerError(f"{err} {hint}") from None
        raise


def _cut_suggestion(kf: KerasFile, tree: LayerNode, custom_layers) -> str:
    """For a refused model: "load it up to the layers before the unsupported ones", when
    nothing is computed from them (a loss, CTC or metric head at the end of the graph)."""
    from jaxlstm._src.models.cut import refusal_hint

    unsupported = set()
    for cl in tree.children:
        if cl.class_name in (custom_layers or {}):
            continue
        ok, _ = layer_support(kf, cl, cl.names[0])
        if not ok or cl.custom:
            unsupported.add(cl.names[0])
    return refusal_hint(tree, kf.keras_version, kf.path, unsupported)


def _check_single_outputs(model: KerasModel, bare: list[str]) -> None:
    """A cut output named by its bare layer name must be that layer's only output: an LSTM
    with ``return_state`` or a Bidirectional with ``merge_mode=None`` has several."""
    for name in bare:
        layer = model.layers[name] if name in model.layers else None
        several = isinstance(layer, KerasModel) and len(layer.outputs) > 1
        if several or (isinstance(layer, RNNLayer) and (layer.return_state or layer.merge_none)):
            raise KerasFileError(
                f"{model.where}: outputs= names {name!r}, whose call has several outputs "
                "(return_state, merge_mode=None or a nested model's outputs); name each tensor "
                f"you want as '{name}:0:index' (index 0 is the sequence or first output)."
            )
