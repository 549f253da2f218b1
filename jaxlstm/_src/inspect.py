"""``jaxlstm inspect``: what a Keras file's recurrent layers (LSTM, GRU, SimpleRNN) are, and which
columns are which gate."""

from __future__ import annotations

import os

import numpy as np

from jaxlstm._src.converters import params_from_arrays
from jaxlstm._src.load import options_and_sources, stacked_options
from jaxlstm._src.readers import LayerRecord, read_keras_file

_GATE_NAMES = {
    "LSTM": ("i (input)", "f (forget)", "c (cell candidate)", "o (output)"),
    "GRU": ("z (update)", "r (reset)", "h (candidate)"),
    "SimpleRNN": ("h (state)",),
    "ConvLSTM": ("i (input)", "f (forget)", "c (cell candidate)", "o (output)"),
}
_KERAS1_ORDERS = {
    "LSTM": ("i, c, f, o", "kernel = [W_i | W_f | W_c | W_o]"),
    "GRU": ("z, r, h", "kernel = [W_z | W_r | W_h]"),
}


def _gate_lines(record: LayerRecord) -> list[str]:
    kind = record.kind
    where = f"{record.path}: layer {record.name!r}"
    params, layout = params_from_arrays(record.weights, where, kind)
    family = kind.family
    conv = family == "ConvLSTM"
    u = params.filters if conv else params.units
    gates = _GATE_NAMES[family]
    order = ", ".join(g[0] for g in gates)
    lines = ["    arrays in the file:"]
    lines += [f"      {n}  {tuple(np.shape(a))}  {np.asarray(a).dtype}" for n, a in record.weights]
    if layout == "keras1":
        saved, packed = _KERAS1_ORDERS[family]
        lines.append(f"    layout: Keras 1, one W/U/b per gate, saved in order {saved};")
        lines.append(f"            repacked as {packed} (and U, b likewise)")
        return lines
    two_rows = params.bias is not None and np.ndim(params.bias) == 2
    if layout == "cudnn":
        lines.append(
            f"    layout: {record.class_name}: gates {order}; each kernel block stored transposed"
        )
        lines.append(
            f"            (cuDNN order); bias of {2 * kind.gates}u = {2 * kind.gates * u}: input "
            "half + recurrent half" + (" (kept apart: reset_after=True)" if family == "GRU" else "")
        )
    else:
        lines.append(f"    layout: Keras, gates packed {order} along the last axis:")
    if two_rows:
        lines.append("      bias row 0: input bias (added to x @ kernel); row 1: recurrent bias")
        lines.append("      (added to h @ recurrent_kernel, before the reset gate multiplies it)")
    for g, gate in enumerate(gates):
        cols = f"[{'..., ' if conv else ':, '}{g * u}:{(g + 1) * u}]"
        if params.bias is None:
            bias = "(no bias)"
        elif layout == "cudnn" and family == "LSTM":
            bias = f"bias[{g * u}:{(g + 1) * u}] + bias[{(g + 4) * u}:{(g + 5) * u}]"
        elif layout == "cudnn":
            bias = f"bias[{g * u}:{(g + 1) * u}] (input), bias[{(g + 3) * u}:{(g + 4) * u}] (rec.)"
        elif two_rows:
            bias = f"bias[0, {g * u}:{(g + 1) * u}]  bias[1, {g * u}:{(g + 1) * u}]"
        else:
            bias = f"bias[{g * u}:{(g + 1) * u}]"
        lines.append(f"      {gate:<20} kernel{cols}  recurrent_kernel{cols}  {bias}")
    return lines


def _describe_lstm(record: LayerRecord, indent: str = "  ") -> list[str]:
    where = f"{record.path}: layer {record.name!r}"
    params, _ = params_from_arrays(record.weights, where, record.kind)
    opts, sources = options_and_sources(record)
    if record.weights_only:  # the file says none of these: Keras's defaults, unless overridden
        for key in ("return_sequences", "return_state", "go_backwards"):
            if key not in opts:
                opts[key], sources[key] = False, "Keras default"
    text = ", ".join(
        [
            f"{k}={v}" + (f" (inferred: {sources[k]})" if k in sources else "")
            for k, v in opts.items()
        ]
        + [f"{k}=? ({why}; pass {k}=)" for k, why in sources.items() if k not in opts]
    )
    cls = record.class_name
    if "class_name" in record.inferred:
        cls += f" (inferred: {record.inferred['class_name']})"
    if record.kind.family == "ConvLSTM":
        size = tuple(params.kernel.shape[: params.rank])
        sizes = f"in_channels={params.in_channels}, filters={params.filters}, kernel_size={size}"
    else:
        sizes = f"in_features={params.in_features}, units={params.units}"
    lines = [
        f"{indent}class {cls}, {sizes}, use_bias={params.bias is not None}",
        f"{indent}options: {text}",
    ]
    if record.weights_only and record.kind.family == "ConvLSTM":
        lines.append(
            f"{indent}(the file does not say padding, strides, dilation_rate or data_format: "
            "load_keras_layer needs them passed)"
        )
    if record.weights_only:
        lines.append(
            f"{indent}(weights only: no config in the file; override what was inferred with "
            "load_keras_layer(path, name, option=value))"
        )
    return [*lines, *(indent + line[2:] for line in _gate_lines(record))]


def _describe(record: LayerRecord, indent: str = "  ") -> list[str]:
    """One recurrent layer (or one direction): its options and arrays; for stacked cells the
    RNN's own options, then each cell's, with its gate slices."""
    if record.cells is None:
        return _describe_lstm(record, indent)
    opts = {"return_sequences": False, "return_state": False, "go_backwards": False}
    opts.update(stacked_options(record))
    text = ", ".join(f"{k}={v}" for k, v in opts.items())
    cls = " -> ".join(c.class_name for c in record.cells)
    lines = [f"{indent}stacked cells ({len(record.cells)}: {cls}), cell k's h is cell k+1's input"]
    if "class_name" in record.inferred:
        lines[-1] += f" (inferred: {record.inferred['class_name']})"
    lines.append(f"{indent}RNN options: {text}")
    for k, cell in enumerate(record.cells):
        lines.append(f"{indent}cell {k} ({cell.name.rsplit('/', 1)[-1]}):")
        lines.extend(_describe_lstm(cell, indent + "  "))
    return lines


def describe_keras_file(path: str | os.PathLike) -> str:
    """A readable report on every recurrent layer (LSTM, GRU, SimpleRNN) of a Keras file:
    format, Keras version, options as they will be used (each one the file does not state
    marked ``(inferred: ...)`` with its evidence, e.g. ``recurrent_activation=sigmoid
    (inferred: CuDNN layout, bias 8u)``), array shapes and the column ranges of each gate
    (which bias row is which for a GRU); for stacked cells (``RNN([cell, ...])``) each cell in
    turn, cell 0 first."""
    kf = read_keras_file(path)
    out = [f"{kf.path}", f"  format: {kf.format}, keras_version: {kf.keras_version}"]
    if not kf.layers:
        out.append("  no recurrent layers (LSTM, GRU, SimpleRNN)")
    for name, record in kf.layers.items():
        wrapped = f" (inside {record.wrapper})" if record.wrapper else ""
        cls = "RNN(StackedRNNCells)" if record.cells is not None else record.class_name
        out.append(f"\nlayer {name!r}: {cls}{wrapped}")
        if record.class_name == "Bidirectional":
            note = record.inferred.get("merge_mode")
            out.append(
                f"  merge_mode={record.merge_mode}" + (f" (inferred: {note})" if note else "")
            )
            for direction in (record.forward, record.backward):
                out.append(f"  {direction.name.rsplit('/', 1)[-1]}:")
                out.extend(_describe(direction, "    "))
        else:
            out.extend(_describe(record))
    if kf.other_layers:
        out.append(f"\nother layers: {', '.join(f'{n} ({c})' for n, c in kf.other_layers)}")
    return "\n".join(out)


def _class_text(node) -> str:
    """A layer's class for the layer table: stacked cells named with their cells
    (``RNN([LSTMCell, GRUCell])``), also inside a wrapper (``Bidirectional(RNN([...]))``)."""
    from jaxlstm._src.vocabulary import stacked_cells

    cells = stacked_cells(node.class_name, node.config)
    if cells is not None:
        return f"RNN([{', '.join(f'{family}Cell' for family, _ in cells)}])"
    if node.class_name in ("Bidirectional", "TimeDistributed") and node.inner is not None:
        text = _class_text(node.inner)
        return f"{node.class_name}({text})" if text.startswith("RNN([") else node.class_name
    return node.class_name


def _input_specs(tree, batch: int, length: int) -> list:
    """Example inputs (as ShapeDtypeStructs) from a model's input shapes (``tree``: its
    config's ``model_tree``), in the order the model takes them (a Functional model's
    ``input_layers``, not its layer list), with ``batch`` for an unknown batch size and
    ``length`` for any other unknown dimension."""
    sequential = tree.class_name == "Sequential"
    specs, by_name = [], {}
    for child in tree.children:
        shape = child.config.get("batch_shape") or child.config.get("batch_input_shape")
        if child.class_name != "InputLayer" and specs == [] and shape and sequential:
            specs.append(_spec(shape, "float32", batch, length))  # Keras 2: on the first layer
            break
        if child.class_name == "InputLayer" and shape:
            dtype = child.config.get("dtype", "float32")
            dtype = dtype if isinstance(dtype, str) else "float32"
            specs.append(_spec(shape, dtype, batch, length))
            by_name[child.name] = specs[-1]
    refs = tree.config.get("input_layers") if not sequential else None
    if isinstance(refs, list) and refs:
        refs = [refs] if isinstance(refs[0], str) else refs  # Keras 2: one [name, node, index]
        names = [str(r[0]) for r in refs if isinstance(r, list) and r]
        if names and all(n in by_name for n in names):
            return [by_name[n] for n in names]
    return specs


def _spec(shape, dtype, batch, length):
    import jax

    dims = [(batch if i == 0 else length) if d is None else int(d) for i, d in enumerate(shape)]
    return jax.ShapeDtypeStruct(tuple(dims), "int32" if "int" in dtype else "float32")


def _carries_mask(mask) -> bool:
    """Whether a layer's mask argument holds a mask (for several inputs: any of them)."""
    if isinstance(mask, list | tuple | dict):
        return any(_carries_mask(m) for m in (mask.values() if isinstance(mask, dict) else mask))
    return mask is not None


def _shape_text(a, b) -> str:
    """A shape as Keras prints it: ``None`` where two probes of different input sizes differ
    (the dimension follows an unknown batch size or length)."""
    dims = [str(x) if x == y else "None" for x, y in zip(a.shape, b.shape, strict=True)]
    return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"


def layer_table(
    tree, build, params_of, support_of=None, feeds=None
) -> tuple[list[str], str | None, int]:
    """The rows of the layer table of a model (``tree``: its config's ``model_tree``), as
    Keras's ``model.summary()`` draws it: layer, class, output shape (``None`` where the model
    leaves a size open), parameters, mask flow, with ``support_of(node, name) -> (ok, why)``
    whether jaxlstm supports the layer, and with
    ``feeds`` (``{layer: [outputs]}``, a nested model's layers taking their model's) which of
    the model's outputs each layer feeds.

    ``build()`` returns the :class:`~jaxlstm.KerasModel` whose shapes are traced (abstractly:
    nothing runs); ``params_of(name)`` counts a layer's parameters. Returns ``(lines, problem,
    total params)``, ``problem`` saying why shapes could not be traced (or ``None``)."""
    import jax

    from jaxlstm._src.errors import JaxLSTMError

    rows, problem, total = {}, None, 0
    for cl in tree.descendants():
        name = cl.key
        params = params_of(name)
        total += params
        shape = cl.config.get("batch_shape") or cl.config.get("batch_input_shape")
        shape_text = ""
        if cl.class_name == "InputLayer" and isinstance(shape, list | tuple):
            shape_text = "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"
        rows[name] = [name, _class_text(cl), shape_text, f"{params:,}", ""]
        if support_of is not None:
            ok, why = support_of(cl, name)
            rows[name].append("yes" if ok else f"NO: {why}")
        if feeds is not None:
            rows[name].append(", ".join(feeds.get(cl.names[0], [])) or "-")
    try:
        model = build()
        traces = []
        for batch, length in ((2, 8), (3, 9)):  # dims that differ between the two are None
            trace = []
            specs = _input_specs(tree, batch, length)
            jax.eval_shape(lambda *xs, t=trace: model.run(xs, trace=t)[0], *specs)
            traces.append(trace)
        for (layer, outs, mask_in, out_masks), (_, outs_b, _, _) in zip(*traces, strict=True):
            key = next((k for k in rows if k == layer or k.endswith("/" + layer)), None)
            if key is None:
                continue
            rows[key][2] = " ".join(_shape_text(o, p) for o, p in zip(outs, outs_b, strict=True))
            flow = (
                ("in" if _carries_mask(mask_in) else "-")
                + "→"
                + ("out" if any(m is not None for m in out_masks) else "-")
            )
            rows[key][4] = flow
    except JaxLSTMError as err:
        problem = str(err)
    header = ["layer", "class", "output shape", "params", "mask"]
    if support_of is not None:
        header.append("supported")
    if feeds is not None:
        header.append("feeds")
    table = [header, *rows.values()]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = []
    for i, r in enumerate(table):
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    lines.append("  mask: in→out says whether a Keras mask reaches the layer and leaves it.")
    if feeds is not None:
        lines.append(
            "  feeds: the model outputs computed from the layer; load_keras(path, outputs=[...]) "
            "loads only what feeds the outputs named."
        )
    return lines, problem, total


def describe_model(path: str | os.PathLike) -> str:
    """The whole model as a table: layer, class, output shape, parameters, mask flow,
    whether jaxlstm supports the layer (and why not), and which model outputs it feeds."""
    from jaxlstm._src.errors import JaxLSTMError
    from jaxlstm._src.models.cut import output_feeds
    from jaxlstm._src.models.graph import build_model, layer_support

    kf = read_keras_file(path)
    if kf.config is None:
        return f"{kf.path}: {kf.format}: weights only, no model config."
    try:
        feeds = output_feeds(kf.tree, kf.keras_version, kf.path)
    except JaxLSTMError:  # a damaged graph: the shape tracing below says what is wrong
        feeds = None
    lines, problem, _ = layer_table(
        kf.tree,
        lambda: build_model(kf, kf.tree),
        lambda name: sum(int(np.size(a)) for _, a in kf.arrays.get(name, [])),
        lambda cl, name: layer_support(kf, cl, name),
        feeds,
    )
    head = [
        f"{kf.path}",
        f"  format: {kf.format}, keras_version: {kf.keras_version}; output shapes as Keras "
        "gives them (None: any size)",
        "",
    ]
    if problem:
        lines.append(f"\n  the model cannot be loaded as it is: {problem}")
    return "\n".join(head + lines)


def model_summary(model) -> str:
    """:meth:`KerasModel.summary`'s text: the layer table of a loaded (maybe fine-tuned) model,
    its current parameter counts, trainable and not."""
    from jaxlstm._src.readers.records import model_tree

    def params_of(name: str) -> int:
        try:
            layer = model.layer(name)
        except KeyError:  # InputLayer: not a module
            return 0
        return sum(int(np.size(w)) for w, _ in layer.keras_weights())

    tree = model_tree(model.config, model.where)
    lines, problem, _ = layer_table(tree, lambda: model, params_of)
    weights = model.keras_weights()
    trainable = sum(int(np.size(w)) for w, t in weights if t)
    frozen = sum(int(np.size(w)) for w, t in weights if not t)
    head = [f"Model: {model.name!r} ({model.class_name}, written by Keras {model.keras_version})"]
    tail = [
        f"Total params: {trainable + frozen:,} (trainable {trainable:,}, non-trainable {frozen:,})"
    ]
    if problem:
        tail.append(f"(shapes could not be traced: {problem})")
    return "\n".join(head + lines + tail)
