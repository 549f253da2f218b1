"""Part of a model graph: a model config cut at named layers, as plain JSON data.

``load_keras(path, outputs=[...], inputs=[...])`` rewrites the file's model config into the
config of the cut model before any layer is built, so what the cut leaves out is never parsed
into a module (a loss ``Lambda``, a CTC head, a custom metric layer after the cut loads fine).
The rewritten config is what the cut model carries and what ``save_keras`` writes: only the
kept layers (calls no kept output needs are dropped, the remaining ones renumbered), an
``InputLayer`` for each tensor ``inputs=`` feeds, and the new input and output lists.

Cut points are named as ``"layer"`` (the output of a layer called once, with one output),
``"layer:node:index"`` or ``[layer, node, index]`` (Keras's own tensor reference: output
``index`` of the layer's call ``node``).
"""

from __future__ import annotations

import copy
from collections import defaultdict

import jax

from jaxlstm._src.errors import JaxLSTMError, KerasFileError, LayerNotFoundError
from jaxlstm._src.models.graph import entry_nodes
from jaxlstm._src.readers.records import LayerNode
from jaxlstm._src.vocabulary import Node, Ref, io_refs, is_int, is_ref, is_tensor_ref, keras_major

__all__ = ["cut_config", "output_feeds", "refusal_hint"]


class _Graph:
    """The calls of a model config's own layers (nested models are single layers here)."""

    def __init__(self, tree: LayerNode, keras_version: str, path: str):
        config = tree.entry
        if isinstance(config.get("config"), list):  # Keras 1 Sequential: a bare list of layers
            config = {**config, "config": {"layers": config["config"]}}
        self.config, self.path = config, path
        self.sequential = tree.class_name == "Sequential"
        self.entries = [c.entry for c in tree.children]
        self.names = [c.name for c in tree.children]
        self.input_names = [
            n
            for n, e in zip(self.names, self.entries, strict=True)
            if e.get("class_name") == "InputLayer"
        ]
        self.calls: dict[tuple[str, int], Node] = {}
        self.by_layer: dict[str, list[int]] = defaultdict(list)
        self.read: dict[tuple[str, int], set[int]] = defaultdict(set)  # indices read per call
        cfg = tree.config
        self.model_cfg = cfg
        where = f"{path}: model {str(cfg.get('name', 'model'))!r}"
        if self.sequential:
            stack = [n for n in self.names if n not in self.input_names]
            prev = Ref("__input__", 0, 0)
            for name in stack:
                self.calls[(name, 0)] = Node(name, 0, (prev,), ())
                self.by_layer[name].append(0)
                prev = Ref(name, 0, 0)
            self.inputs = (Ref("__input__", 0, 0),)
            self.outputs = (prev,) if stack else ()
            return
        for child in tree.children:
            if child.class_name == "InputLayer":
                continue
            for node in entry_nodes(child, keras_version, path):
                self.calls[(node.layer, node.node)] = node
                self.by_layer[child.name].append(node.node)
        self.inputs = io_refs(cfg.get("input_layers", []), f"{where}: input_layers")
        self.outputs = io_refs(cfg.get("output_layers", []), f"{where}: output_layers")
        for node in self.calls.values():
            for r in _leaves(node):
                self.read[(r.layer, r.node)].add(r.index)
        for r in self.outputs:
            self.read[(r.layer, r.node)].add(r.index)

    def spec(self, ref: Ref) -> str:
        """How to name ``ref`` in ``outputs=`` / ``inputs=``: the bare layer name if it says it."""
        calls = self.by_layer.get(ref.layer, [0])
        single = calls == [ref.node] and not (self.read.get((ref.layer, ref.node), set()) - {0})
        return ref.layer if single and ref.index == 0 else f"{ref.layer}:{ref.node}:{ref.index}"

    def resolve(self, spec, arg: str) -> tuple[Ref, bool]:
        """``(ref, bare)`` for a cut point given to ``arg`` (``"outputs"`` / ``"inputs"``)."""
        name, node, index = _parse_spec(spec, arg)
        if name not in self.names:
            nested = name.split("/")[0]
            if "/" in name and nested in self.names:
                raise JaxLSTMError(
                    f"load_keras: {arg}={spec!r} names a layer inside the nested model "
                    f"{nested!r}; a cut goes between the layers of the outer model. Name "
                    f"{nested!r} itself (all of its outputs), or cut at another of its layers: "
                    f"{self._layer_list()}."
                )
            raise LayerNotFoundError(
                f"{self.path}: {arg}={spec!r}: the model has no layer named {name!r}; its "
                f"layers are {self._layer_list()}."
            )
        if self.sequential:
            if (node or 0, index or 0) != (0, 0):
                raise JaxLSTMError(
                    f"load_keras: {arg}={spec!r}: in a Sequential model each layer has one "
                    f"call with one output; name it as {name!r}."
                )
            ref = Ref("__input__", 0, 0) if name in self.input_names else Ref(name, 0, 0)
            return ref, True
        calls = [0] if name in self.input_names else self.by_layer.get(name, [])
        if node is None:
            if len(calls) != 1:
                raise JaxLSTMError(
                    f"load_keras: {arg}={spec!r}: layer {name!r} is called {len(calls)} times in "
                    f"the graph (calls {calls}); name the tensor of one call as "
                    f"'{name}:{calls[0] if calls else 0}:0' (layer:node:index)."
                )
            node = calls[0]
            more = sorted(self.read.get((name, node), set()) - {0})
            call = self.calls.get((name, node))
            if call is not None and dict(call.kwargs).get("return_attention_scores") is True:
                more = sorted({*more, 1})
            if more:
                raise JaxLSTMError(
                    f"load_keras: {arg}={spec!r}: layer {name!r} has several outputs (the graph "
                    f"reads its tensors {[0, *more]}); name each one you want as "
                    f"'{name}:{node}:index', e.g. {[f'{name}:{node}:{i}' for i in [0, *more]]}."
                )
            return Ref(name, node, 0), True
        if node not in calls:
            raise JaxLSTMError(
                f"load_keras: {arg}={spec!r}: layer {name!r} has no call #{node}; its calls in "
                f"the graph are {calls}."
            )
        return Ref(name, node, index), False

    def _layer_list(self) -> list[str]:
        return list(self.names)

    def needs(self, outputs, fed=frozenset()):
        """Walk back from ``outputs`` (stopping at ``fed`` tensors): ``(kept calls, original
        inputs reached {layer: output that needs it}, fed tensors used)``."""
        kept: set[tuple[str, int]] = set()
        reached: dict[str, Ref] = {}
        used: set[Ref] = set()
        stack = [(r, r) for r in outputs]
        while stack:
            ref, out = stack.pop()
            if ref in fed:
                used.add(ref)
                continue
            if ref.layer == "__input__" or ref.layer in self.input_names:
                reached.setdefault(ref.layer, out)
                continue
            key = (ref.layer, ref.node)
            if key in kept:
                continue
            node = self.calls.get(key)
            if node is None:
                raise KerasFileError(
                    f"{self.path}: the graph reads output #{ref.index} of call #{ref.node} of "
                    f"layer {ref.layer!r}, which no layer call produces; the config is damaged."
                )
            kept.add(key)
            stack.extend((r, out) for r in _leaves(node))
        return kept, reached, used


def _leaves(node: Node) -> list[Ref]:
    return [r for r in jax.tree.leaves((node.args, node.kwargs), is_leaf=is_ref) if is_ref(r)]


def _parse_spec(spec, arg: str) -> tuple[str, int | None, int | None]:
    if isinstance(spec, list | tuple) and len(spec) == 3:
        name, node, index = spec
        if isinstance(name, str) and is_int(node) and is_int(index):
            return name, node, index
    elif isinstance(spec, str):
        parts = spec.rsplit(":", 2)
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            return parts[0], int(parts[1]), int(parts[2])
        if spec:
            return spec, None, None
    raise JaxLSTMError(
        f"load_keras: {arg}= holds {spec!r:.80}; expected a layer name ('softmax'), a tensor "
        "'layer:node:index' ('lstm:0:1') or Keras's [layer, node, index]."
    )


def _specs(value, arg: str) -> list:
    if isinstance(value, str | tuple) or not isinstance(value, list):
        if isinstance(value, str):
            return [value]
        raise JaxLSTMError(
            f"load_keras: {arg}= is {type(value).__name__} {value!r:.80}; expected a list of "
            "layer names (or 'layer:node:index' tensors), e.g. " + f"{arg}=['softmax']."
        )
    if not value:
        raise JaxLSTMError(f"load_keras: {arg}=[] names nothing; give at least one layer name.")
    return value


def _rewrite(value, remap):
    """A JSON value with every tensor reference ``[layer, node, index(, kwargs)]`` (Keras 1/2)
    or ``keras_history`` (Keras 3) passed through ``remap(Ref) -> Ref``."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__" and isinstance(value.get("config"), dict):
            history = value["config"].get("keras_history")
            if is_tensor_ref(history):
                return {
                    **value,
                    "config": {**value["config"], "keras_history": _rewrite(history, remap)},
                }
        return {k: _rewrite(v, remap) for k, v in value.items()}
    if isinstance(value, list):
        if is_tensor_ref(value):
            r = remap(Ref(value[0], value[1], value[2]))
            return [r.layer, r.node, r.index, *(_rewrite(v, remap) for v in value[3:])]
        return [_rewrite(v, remap) for v in value]
    return value


def _input_entry(name: str, shape, keras3: bool, dtype: str = "float32") -> dict:
    """An ``InputLayer`` for a fed tensor, in the config's own Keras generation; without
    ``shape`` when the file records none (``save_keras`` then refuses the model)."""
    cfg: dict = {"dtype": dtype, "sparse": False, "name": name}
    if shape is not None:
        cfg["batch_shape" if keras3 else "batch_input_shape"] = list(shape)
    entry = {"class_name": "InputLayer", "config": cfg, "name": name, "inbound_nodes": []}
    if keras3:
        entry = {"module": "keras.layers", **entry, "registered_name": None}
    return entry


def _fed_shape(graph: _Graph, ref: Ref, kept) -> tuple[list | None, str]:
    """The shape and dtype of a fed tensor, as Keras 3 records them in each reference to a
    tensor (``__keras_tensor__``) in a kept layer's calls; ``(None, "float32")`` for older
    configs."""
    history = [ref.layer, ref.node, ref.index]
    found = []

    def visit(value):
        if isinstance(value, dict):
            cfg = value.get("config")
            if value.get("class_name") == "__keras_tensor__" and isinstance(cfg, dict):
                if cfg.get("keras_history") == history and isinstance(cfg.get("shape"), list):
                    dtype = cfg.get("dtype")
                    found.append((cfg["shape"], dtype if isinstance(dtype, str) else "float32"))
            for v in value.values():
                visit(v)
        elif isinstance(value, list):
            for v in value:
                visit(v)

    for entry, name in zip(graph.entries, graph.names, strict=True):
        if any(layer == name for layer, _ in kept):
            visit(entry.get("inbound_nodes"))
    shapes = [(s, t) for s, t in found if all(d is None or is_int(d) for d in s)]
    return shapes[0] if shapes else (None, "float32")


def cut_config(
    tree: LayerNode, keras_version: str, path: str, outputs=None, inputs=None
) -> tuple[dict, list[str]]:
    """The config of the graph of ``tree`` (a model config's
    :func:`~jaxlstm._src.readers.records.model_tree`) from ``inputs`` (tensors fed instead of
    computed; default: the model's own inputs, those the outputs need) to ``outputs`` (default:
    the model's outputs). Returns ``(config, bare output layers)``, the layers named in ``outputs``
    by bare name (their call must have one output: checked once they are built)."""
    graph = _Graph(tree, keras_version, path)
    out_specs = _specs(outputs, "outputs") if outputs is not None else None
    in_specs = _specs(inputs, "inputs") if inputs is not None else None
    cut_out = [graph.resolve(s, "outputs") for s in out_specs] if out_specs else None
    cut_in = [graph.resolve(s, "inputs")[0] for s in in_specs] if in_specs else None
    keras3 = keras_major(keras_version) >= 3
    if graph.sequential:
        return _cut_sequential(graph, cut_out, cut_in, keras3), [
            r.layer for r, bare in cut_out or () if bare
        ]
    out_refs = [r for r, _ in cut_out] if cut_out else list(graph.outputs)
    fed = set(cut_in or ())
    kept, reached, used = graph.needs(out_refs, fed)
    if cut_in is not None:
        for layer, out in reached.items():
            raise JaxLSTMError(
                f"load_keras: output {graph.spec(out)!r} depends on the model input {layer!r}, "
                f"which inputs={in_specs!r} does not give. Add {layer!r} to inputs=, or feed "
                "the tensors it is computed into instead (a later layer's name)."
            )
        for ref, spec in zip(cut_in, in_specs, strict=True):
            if ref not in used:
                raise JaxLSTMError(
                    f"load_keras: inputs= names {spec!r}, which none of the outputs "
                    f"{[graph.spec(r) for r in out_refs]} reads (each input must be read by a "
                    "kept layer); leave it out."
                )
        new_inputs = list(dict.fromkeys(cut_in))
    else:
        new_inputs = [r for r in graph.inputs if r.layer in reached]
    # Calls kept per layer, renumbered from the layer's first index where some are dropped.
    node_map: dict[tuple[str, int], int] = {}
    for layer, calls in graph.by_layer.items():
        mine = [n for n in calls if (layer, n) in kept]
        for pos, n in enumerate(mine):
            node_map[(layer, n)] = (calls[0] if calls else 0) + pos
    taken = {layer for layer, _ in kept} | {
        r.layer for r in new_inputs if r.layer in graph.input_names
    }
    fed_map: dict[Ref, Ref] = {}
    new_entries = []
    for ref in new_inputs:
        if ref.layer in graph.input_names:
            fed_map[ref] = ref
            continue
        # Named after the tensor: the layer's name for its only output, else layer_node_index.
        name = ref.layer
        plain = (ref.layer,) if graph.spec(ref) == ref.layer else ()
        for candidate in (*plain, f"{ref.layer}_{ref.node}_{ref.index}"):
            if candidate not in taken:
                name = candidate
                break
        else:
            k = 1
            while f"{ref.layer}_input_{k}" in taken:
                k += 1
            name = f"{ref.layer}_input_{k}"
        taken.add(name)
        fed_map[ref] = Ref(name, 0, 0)
        shape, dtype = _fed_shape(graph, ref, kept)
        new_entries.append(_input_entry(name, shape, keras3, dtype))

    def remap(r: Ref) -> Ref:
        if r in fed_map:
            return fed_map[r]
        return Ref(r.layer, node_map.get((r.layer, r.node), r.node), r.index)

    layers = []
    for entry, name in zip(graph.entries, graph.names, strict=True):
        if entry.get("class_name") == "InputLayer":
            if Ref(name, 0, 0) in fed_map or name in {r.layer for r in new_inputs}:
                layers.append(copy.deepcopy(entry))
            continue
        calls = graph.by_layer.get(name, [])
        if not any((name, n) in kept for n in calls):
            continue
        first = calls[0] if calls else 0
        inbound = entry.get("inbound_nodes") or []
        keep = [node for pos, node in enumerate(inbound) if (name, first + pos) in kept]
        layers.append({**copy.deepcopy(entry), "inbound_nodes": _rewrite(keep, remap)})

    def io_list(refs, original):
        triples = [[r.layer, r.node, r.index] for r in refs]
        flat = isinstance(original, list) and original and isinstance(original[0], str)
        return triples[0] if flat and len(triples) == 1 else triples

    cfg = graph.model_cfg
    new_cfg = {
        **copy.deepcopy(cfg),
        "layers": new_entries + layers,
        "input_layers": io_list([remap(r) for r in new_inputs], cfg.get("input_layers")),
        "output_layers": io_list([remap(r) for r in out_refs], cfg.get("output_layers")),
    }
    bare = [r.layer for r, b in cut_out or () if b]
    return {**{k: v for k, v in graph.config.items() if k != "config"}, "config": new_cfg}, bare


def _cut_sequential(graph: _Graph, cut_out, cut_in, keras3: bool) -> dict:
    stack = [n for n in graph.names if n not in graph.input_names]
    if cut_out is not None and len(cut_out) != 1:
        raise JaxLSTMError(
            f"load_keras: outputs={[r.layer for r, _ in cut_out]}: a Sequential model has one "
            "output; name one layer to cut the stack after it."
        )
    if cut_in is not None and len(cut_in) != 1:
        raise JaxLSTMError(
            f"load_keras: inputs={[r.layer for r in cut_in]}: a Sequential model has one "
            "input; name one layer whose output the rest of the stack takes."
        )
    if cut_out and cut_out[0][0].layer == "__input__":
        raise JaxLSTMError(
            f"load_keras: outputs= names the input of the Sequential stack {stack}, which no "
            "layer computes; name a layer of the stack."
        )
    end = stack.index(cut_out[0][0].layer) + 1 if cut_out else len(stack)
    start = 0
    if cut_in and cut_in[0].layer != "__input__":
        start = stack.index(cut_in[0].layer) + 1
    if start >= end:
        raise JaxLSTMError(
            f"load_keras: the cut from after {stack[start - 1]!r} to {stack[end - 1]!r} keeps no "
            f"layer of the Sequential stack {stack}; the input layer must come before the output."
        )
    kept = set(stack[start:end])
    entries = []
    if start:
        entry = graph.entries[graph.names.index(stack[start])]
        build = entry.get("build_config")
        shape = build.get("input_shape") if isinstance(build, dict) else None
        if not (isinstance(shape, list) and all(d is None or is_int(d) for d in shape)):
            shape = None
        entries.append(_input_entry(stack[start - 1], shape, keras3))
    for entry, name in zip(graph.entries, graph.names, strict=True):
        if name in kept or (entry.get("class_name") == "InputLayer" and not start):
            entries.append(copy.deepcopy(entry))
    cfg = {**copy.deepcopy(graph.model_cfg), "layers": entries}
    return {**{k: v for k, v in graph.config.items() if k != "config"}, "config": cfg}


def output_feeds(tree: LayerNode, keras_version: str, path: str) -> dict[str, list[str]]:
    """Which of the model's outputs each of its own layers feeds (nested models' layers take
    their model's): ``{layer: [output names]}``, outputs named as ``outputs=`` takes them."""
    graph = _Graph(tree, keras_version, path)
    feeds: dict[str, list[str]] = defaultdict(list)
    for out in graph.outputs:
        kept, reached, _ = graph.needs([out])
        label = graph.spec(out) if out.layer != "__input__" else "output"
        for layer in {layer for layer, _ in kept} | set(reached):
            feeds["__input__" if layer == "__input__" else layer].append(label)
    if graph.sequential and graph.input_names and "__input__" in feeds:
        feeds[graph.input_names[0]] = feeds.pop("__input__")
    return dict(feeds)


def refusal_hint(tree: LayerNode, keras_version: str, path: str, unsupported: set[str]) -> str:
    """For a model refused for its ``unsupported`` layers: a suggestion to load it only up to
    the layers before them, when nothing supported is computed from them (a loss, CTC or metric
    head at the end of a training graph), else ``""``."""
    graph = _Graph(tree, keras_version, path)
    if not unsupported:
        return ""
    if graph.sequential:
        stack = [n for n in graph.names if n not in graph.input_names]
        first = min((stack.index(n) for n in unsupported if n in stack), default=0)
        if first == 0 or not set(stack[first:]) <= unsupported:
            return ""
        return _hint(unsupported, path, [stack[first - 1]])
    downstream: dict[tuple[str, int], set[str]] = defaultdict(set)  # call -> unsupported above
    for node in _topological_calls(graph):
        above = {node.layer} if node.layer in unsupported else set()
        for r in _leaves(node):
            above |= downstream.get((r.layer, r.node), set())
        downstream[(node.layer, node.node)] = above
    tainted = {key for key, above in downstream.items() if above}
    if any(layer not in unsupported for layer, _ in tainted):
        return ""  # a supported layer is computed from an unsupported one: no cut helps
    cut = [r for r in graph.outputs if (r.layer, r.node) not in tainted]
    for key in sorted(tainted, key=lambda k: graph.names.index(k[0])):
        cut += [
            r
            for r in _leaves(graph.calls[key])
            if (r.layer, r.node) not in tainted and r.layer not in graph.input_names
        ]
    specs = list(dict.fromkeys(graph.spec(r) for r in cut))
    return _hint(unsupported, path, specs) if specs else ""


def _hint(unsupported: set[str], path: str, specs: list[str]) -> str:
    return (
        f"If the model's answer does not need {sorted(unsupported)} (a training loss, CTC or "
        "metric head after the outputs of interest), load the graph only up to the layers "
        f"before it, which never parses what comes after: jaxlstm.load_keras({path!r}, "
        f"outputs={specs!r})."
    )


def _topological_calls(graph: _Graph) -> list[Node]:
    """The calls, each after those it reads (an iterative depth-first walk; a crafted cycle
    cannot loop it)."""
    order, done, seen = [], set(), set()

    def visit(key):
        stack = [(key, False)]
        while stack:
            k, expanded = stack.pop()
            if k in done or k not in graph.calls:
                continue
            if expanded:
                done.add(k)
                order.append(graph.calls[k])
                continue
            if k in seen:
                continue
            seen.add(k)
            stack.append((k, True))
            stack.extend(((r.layer, r.node), False) for r in _leaves(graph.calls[k]))

    for key in graph.calls:
        visit(key)
    return order
