"""ONNX recurrent nodes in, and jaxlstm modules back out as ONNX models.

``load_onnx`` builds a jaxlstm module from one ``LSTM``/``GRU``/``RNN`` node of a ``.onnx`` file
(its weights must be constants: initializers or ``Constant`` nodes); ``onnx_model`` /
``save_onnx`` write a jaxlstm recurrent module as a small ONNX graph (one node per layer) that
onnxruntime runs with the same numbers. The gate permutation is ``converters/onnx.py``'s table.

What is exact is implemented, the rest refused with :class:`UnsupportedOptionError`: all three
``direction`` values, ``layout`` 0 and 1, ``sequence_lens`` (a mask at call time), initial
states (at call time), ``activations`` that are jaxlstm activations with ONNX's default
parameters (Sigmoid, Tanh, Relu, Softsign, Softplus, Elu, HardSigmoid = Keras 2's
``hard_sigmoid``; an LSTM's g and h the same), a GRU's ``linear_before_reset`` 0 or 1, an
LSTM's peepholes, ``clip`` and ``input_forget`` (:class:`jaxlstm.PeepholeLSTM`). Refused:
``clip`` on a GRU or RNN, explicit ``activation_alpha`` / ``activation_beta``, an LSTM whose g
and h activations differ, initial states stored as non-zero constants (modules take them per
call).
"""

from __future__ import annotations

import os

import numpy as np

from jaxlstm._src.converters.gates import JAXLSTM_GATES, gate_slices
from jaxlstm._src.converters.onnx import (
    FAMILY_OF_OP,
    ONNX_GATES,
    ONNX_OPS,
    from_onnx,
    peephole_from_onnx,
    peephole_to_onnx,
    to_onnx,
)
from jaxlstm._src.core.lstm_peephole import PeepholeLSTMParams
from jaxlstm._src.errors import KerasFileError, LayerNotFoundError, UnsupportedOptionError
from jaxlstm._src.readers.onnx_files import OnnxNode, import_onnx, read_onnx_nodes

# ONNX activation name -> jaxlstm's, for those equal at ONNX's default parameters.
ONNX_ACTIVATIONS = {
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Relu": "relu",
    "Softsign": "softsign",
    "Softplus": "softplus",
    "Elu": "elu",  # alpha 1.0
    "HardSigmoid": "hard_sigmoid_keras2",  # alpha 0.2, beta 0.5: clip(0.2x + 0.5, 0, 1)
}
JAXLSTM_TO_ONNX = {v: k for k, v in ONNX_ACTIVATIONS.items()}
_DEFAULT_ACTIVATIONS = {
    "LSTM": ["Sigmoid", "Tanh", "Tanh"],
    "GRU": ["Sigmoid", "Tanh"],
    "SimpleRNN": ["Tanh"],
}
DIRECTIONS = ("forward", "reverse", "bidirectional")


def _pick(nodes: list[OnnxNode], name: str | None, where: str) -> OnnxNode:
    names = [n.name for n in nodes]
    if name is None and len(nodes) == 1:
        return nodes[0]
    if name is not None:
        for n in nodes:
            if n.name == name:
                return n
    listed = ", ".join(f"{n.name!r} ({n.op})" for n in nodes) or "none"
    what = f"has no recurrent node {name!r}" if name else f"has {len(names)} recurrent nodes"
    raise LayerNotFoundError(f"{where} {what}; its LSTM/GRU/RNN nodes are: {listed}.")


def _activations(node: OnnxNode, family: str, dirs: int, where: str) -> list[list[str]]:
    """Per direction, the node's activations as jaxlstm names."""
    for key in ("activation_alpha", "activation_beta"):
        if key in node.attributes:
            raise UnsupportedOptionError(
                f"{where}: {key}={node.attributes[key]}; activations with explicit parameters "
                "are not implemented (only ONNX's defaults map exactly onto jaxlstm's)."
            )
    per = len(_DEFAULT_ACTIVATIONS[family])
    names = node.attributes.get("activations") or _DEFAULT_ACTIVATIONS[family] * dirs
    if len(names) != per * dirs:
        raise UnsupportedOptionError(
            f"{where}: activations={names}; expected {per * dirs} ({per} per direction)."
        )
    out = []
    for d in range(dirs):
        own = []
        for a in names[d * per : (d + 1) * per]:
            key = next((k for k in ONNX_ACTIVATIONS if k.lower() == str(a).lower()), None)
            if key is None:
                raise UnsupportedOptionError(
                    f"{where}: activation {a!r}; implemented: {sorted(ONNX_ACTIVATIONS)} (at "
                    "ONNX's default parameters)."
                )
            own.append(ONNX_ACTIVATIONS[key])
        if family == "LSTM" and own[1] != own[2]:
            raise UnsupportedOptionError(
                f"{where}: LSTM activations g={own[1]}, h={own[2]} differ; jaxlstm's LSTM uses "
                "one activation for the candidate and the output (Keras's activation)."
            )
        out.append(own)
    return out


def load_onnx(path: str | os.PathLike, name: str | None = None):
    """One ``LSTM``, ``GRU`` or ``RNN`` node of an ONNX model as a jaxlstm (Flax NNX) module
    with onnxruntime's numbers.

    Args:
      path: the ``.onnx`` file (external data beside it, inside its folder, is read; extra
        ``jaxlstm[onnx]``).
      name: the node's name (left out when the model has one recurrent node).

    Returns:
      A :class:`jaxlstm.LSTM`, :class:`jaxlstm.GRU` or :class:`jaxlstm.SimpleRNN`
      (``direction="forward"``, or ``"reverse"`` as ``go_backwards=True``), or a
      :class:`jaxlstm.Bidirectional` (``merge_mode="concat"``), returning sequences with zeros
      at masked steps, ``time_major=True`` for ``layout=0``. ONNX's outputs from the module's:
      ``Y[:, 0] = y`` (forward), ``Y[:, 0] = y[::-1]`` (reverse: jaxlstm returns processing
      order), ``Y[:, d] = y[..., d*H:(d+1)*H]`` (bidirectional), time axis first (layout 0);
      ``sequence_lens`` is ``mask = arange(T)[:, None] < sequence_lens``; ``initial_h[d]`` (and
      ``initial_c[d]``) go in ``initial_state`` as Keras lists them (``[h, c]``, or
      ``[h_fw, c_fw, h_bw, c_bw]``); ``module(x, return_state=True)`` gives ``Y_h``/``Y_c``.

    Raises:
      UnsupportedOptionError: what is not exact (see the module docstring), or weights that are
        not constants of the file.
      LayerNotFoundError: no such node (the message lists them).
      KerasFileError / UnsafeFileError / MissingDependencyError: a damaged or hostile file, or
        no ``onnx`` package.
    """
    nodes, where = read_onnx_nodes(path)
    node = _pick(nodes, name, where)
    return build_from_node(node, f"{where}: node {node.name!r} ({node.op})")


def build_from_node(node: OnnxNode, where: str):
    from jaxlstm._src.modules.nnx import Bidirectional
    from jaxlstm._src.modules.nnx_layers import cell_module

    family = FAMILY_OF_OP[node.op]
    attrs = node.attributes
    direction = attrs.get("direction", "forward")
    if direction not in DIRECTIONS:
        raise UnsupportedOptionError(f"{where}: direction={direction!r}; expected {DIRECTIONS}.")
    dirs = 2 if direction == "bidirectional" else 1
    clip = attrs.get("clip")
    if clip is not None and family != "LSTM":
        raise UnsupportedOptionError(
            f"{where}: clip={clip}; a cell clip is implemented for the LSTM only "
            "(jaxlstm.PeepholeLSTM), not in jaxlstm's GRU or SimpleRNN cells, so the node is "
            "refused rather than run unclipped."
        )
    input_forget = bool(attrs.get("input_forget", 0)) and family == "LSTM"
    layout = attrs.get("layout", 0)
    if layout not in (0, 1):
        raise UnsupportedOptionError(f"{where}: layout={layout}; expected 0 or 1.")
    w, r, b = node.array(1), node.array(2), node.array(3)
    for index, label in ((1, "W"), (2, "R"), (3, "B")):
        if node.given(index) and node.array(index) is None:
            raise UnsupportedOptionError(
                f"{where}: input {label} ({node.inputs[index]!r}) is computed in the graph, not "
                "a constant; jaxlstm reads weights stored in the file (initializers or Constant "
                "nodes) only."
            )
    g = len(JAXLSTM_GATES[family])
    hidden = attrs.get("hidden_size", r.shape[-1] if r is not None else -1)
    want = {
        "W": (dirs, g * hidden, None),
        "R": (dirs, g * hidden, hidden),
        "B": (dirs, 2 * g * hidden),
    }
    for label, array in (("W", w), ("R", r), ("B", b)):
        if array is None:
            if label == "B":
                continue
            raise KerasFileError(f"{where}: input {label} is missing; the node is damaged.")
        shape = want[label]
        if array.ndim != len(shape) or any(
            s is not None and s != a for s, a in zip(shape, array.shape, strict=True)
        ):
            raise KerasFileError(
                f"{where}: {label} has shape {tuple(array.shape)}; expected "
                f"{tuple('in' if s is None else s for s in shape)} for direction={direction}, "
                f"hidden_size={hidden}."
            )
    peephole = None
    if family == "LSTM" and node.given(7):
        peephole = node.array(7)
        if peephole is None:
            raise UnsupportedOptionError(
                f"{where}: input P ({node.inputs[7]!r}) is computed in the graph, not a "
                "constant; jaxlstm reads weights stored in the file only."
            )
        if tuple(peephole.shape) != (dirs, 3 * hidden):
            raise KerasFileError(
                f"{where}: P has shape {tuple(peephole.shape)}; expected ({dirs}, {3 * hidden})."
            )
        if not np.any(peephole):
            peephole = None  # all zeros: the plain LSTM, exactly
    extras = peephole is not None or clip is not None or input_forget
    for index, label in ((5, "initial_h"), (6, "initial_c")):
        state = node.array(index) if index < 6 or family == "LSTM" else None
        if state is not None and np.any(state != 0):
            raise UnsupportedOptionError(
                f"{where}: {label} is a non-zero constant of the file; jaxlstm modules take "
                "initial states per call (initial_state=), not from the file, so the node is "
                "refused rather than run from zeros."
            )
    activations = _activations(node, family, dirs, where)
    reset_after = bool(attrs.get("linear_before_reset", 0)) if family == "GRU" else True
    modules = []
    for d in range(dirs):
        params = from_onnx(family, w[d], r[d], None if b is None else b[d], reset_after=reset_after)
        acts = activations[d]
        kind = family
        options = {}
        if extras:  # peepholes, clip or input_forget: the ONNX LSTM's own cell
            kind = "PeepholeLSTM"
            p = np.zeros((3, hidden), np.float32)
            if peephole is not None:
                p = peephole_from_onnx(peephole[d])
            params = PeepholeLSTMParams(*params, p)
            options = dict(clip=clip, input_forget=input_forget)
        modules.append(
            cell_module(
                kind,
                params,
                activation=acts[-1],
                recurrent_activation=acts[0],
                reset_after=reset_after,
                return_sequences=True,
                go_backwards=direction == "reverse" or d == 1,
                time_major=layout == 0,
                zero_output_for_mask=True,
                **options,
            )
        )
    if dirs == 2:
        return Bidirectional(*modules, merge_mode="concat")
    return modules[0]


# ---------------------------------------------------------------------------------------------
# jaxlstm -> ONNX


def _onnx_activation(value, where: str) -> str:
    from jaxlstm._src.torch import _activation_name

    name = _activation_name(value)
    if name not in JAXLSTM_TO_ONNX:
        raise UnsupportedOptionError(
            f"{where}: activation {value!r} has no ONNX recurrent activation with default "
            f"parameters; exported: {sorted(JAXLSTM_TO_ONNX)} (Keras 3's hard_sigmoid would "
            "need HardSigmoid(alpha=1/6), not written)."
        )
    return JAXLSTM_TO_ONNX[name]


def _onnx_family(cell) -> str:
    """A cell module's ONNX family: a :class:`jaxlstm.PeepholeLSTM` is an ``LSTM`` node (with
    ``P``, ``clip``, ``input_forget``); the others as for PyTorch."""
    from jaxlstm._src.modules.nnx_peephole import PeepholeLSTM
    from jaxlstm._src.torch import _family_of

    return "LSTM" if isinstance(cell, PeepholeLSTM) else _family_of(cell)


def _lstm_extras(cells, where: str) -> tuple[list[np.ndarray], dict] | None:
    """``P`` per direction and the ``clip`` / ``input_forget`` attributes of an LSTM node whose
    cells are :class:`jaxlstm.PeepholeLSTM` s (``None`` when none is): both directions must
    agree on clip and input_forget; a plain LSTM direction gets zero peepholes."""
    extras = [(c.clip, c.input_forget) for c in cells if hasattr(c, "peephole")]
    if not extras:
        return None
    if len(set(extras)) > 1 or (len(extras) != len(cells) and extras[0] != (None, False)):
        raise UnsupportedOptionError(
            f"{where}: the directions differ in clip or input_forget ({extras}); one ONNX node "
            "has one of each."
        )
    ps = [
        peephole_to_onnx(c.peephole[...])
        if hasattr(c, "peephole")
        else np.zeros(3 * c.units, np.float32)
        for c in cells
    ]
    attrs = {}
    if extras[0][0] is not None:
        attrs["clip"] = float(extras[0][0])
    if extras[0][1]:
        attrs["input_forget"] = 1
    return ps, attrs


def _onnx_layers(module) -> list[list]:
    """The module's cells as ONNX nodes: a list of layers, each ``[cell]`` or ``[fw, bw]``."""
    from jaxlstm._src.modules.nnx import Bidirectional
    from jaxlstm._src.modules.nnx_layers import RNNLayers
    from jaxlstm._src.modules.nnx_rnn import StackedRNN

    if isinstance(module, RNNLayers):
        return [d for layer in module.layers for d in _onnx_layers(layer)]
    if isinstance(module, StackedRNN):
        if module.go_backwards:
            raise UnsupportedOptionError(
                "a StackedRNN with go_backwards=True runs its cells in turn on the reversed "
                "sequence; as ONNX nodes each layer would reverse again. Not written."
            )
        return [[cell] for cell in module.cells]
    if isinstance(module, Bidirectional):
        if module.merge_mode != "concat":
            raise UnsupportedOptionError(
                f'a Bidirectional with merge_mode={module.merge_mode!r}; only "concat" is '
                "written (ONNX's bidirectional output, reshaped)."
            )
        if isinstance(module.forward, StackedRNN):
            raise UnsupportedOptionError(
                "a Bidirectional of stacked cells has no ONNX node equivalent (its directions "
                "run cells in turn at every step)."
            )
        _onnx_family(module.forward), _onnx_family(module.backward)
        return [[module.forward, module.backward]]
    _onnx_family(module)
    return [[module]]


def onnx_model(
    module, *, sequence_lens: bool = False, initial_states: bool = False, opset: int = 14
):
    """A jaxlstm recurrent module as an ONNX ``ModelProto``: one ``LSTM``/``GRU``/``RNN`` node
    per layer (``layout=0``, with ``Transpose`` nodes around them for a batch-major module).

    Graph input ``X`` is in the module's layout (``(B, T, F)``, or ``(T, B, F)`` with
    ``time_major``), and ``sequence_lens`` ``(B,)`` int32 with ``sequence_lens=True`` (a
    right-padded mask: ``mask = arange(T) < sequence_lens``, the module built with
    ``zero_output_for_mask=True`` as ``load_torch``/``load_onnx`` build theirs). Output ``Y`` is
    the module's output sequence (what it returns with ``return_sequences=True``; a
    ``go_backwards`` layer's in processing order, as jaxlstm returns it), and ``Y_h{k}`` (and
    ``Y_c{k}``) each layer's final states ``(directions, B, H)``. With ``initial_states=True``
    the graph also takes ``initial_h{k}`` (and ``initial_c{k}``) ``(directions, B, H)`` per
    layer: the module's ``initial_state`` (``[h, c]``, or ``[h_fw, c_fw, h_bw, c_bw]``)
    stacked per direction.

    ``module``: as for :func:`jaxlstm.torch_state_dict`, and a lone ``go_backwards`` layer
    (``direction="reverse"``) and a GRU with ``reset_after=False`` (``linear_before_reset=0``)
    too. Refused: activations with no ONNX default-parameter equivalent, other merge modes.
    """
    onnx = import_onnx()
    from onnx import TensorProto, helper, numpy_helper

    from jaxlstm._src.torch import _time_major

    layers = _onnx_layers(module)
    time_major = _time_major(module)
    in_features = layers[0][0].in_features
    x_shape = ["time", "batch", in_features] if time_major else ["batch", "time", in_features]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)]
    nodes, inits, outputs = [], [], []
    cur = "X"
    if not time_major:
        nodes.append(helper.make_node("Transpose", ["X"], ["X_tm"], perm=[1, 0, 2]))
        cur = "X_tm"
    if sequence_lens:
        inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["batch"]))
    for k, cells in enumerate(layers):
        family = _onnx_family(cells[0])
        where = f"layer {k}"
        for cell in cells:
            if getattr(cell, "proj_size", 0):
                raise UnsupportedOptionError(
                    f"{where}: a ProjLSTM (proj_size={cell.proj_size}); the ONNX LSTM operator "
                    "has no output projection, so it has no ONNX equivalent."
                )
            if _onnx_family(cell) != family:
                raise UnsupportedOptionError(
                    f"{where}: its two directions are of different families."
                )
        extras = _lstm_extras(cells, where) if family == "LSTM" else None
        reverse_only = len(cells) == 1 and cells[0].go_backwards
        direction = (
            "bidirectional" if len(cells) == 2 else ("reverse" if reverse_only else "forward")
        )
        ws, rs, bs, acts = [], [], [], []
        reset_after = None
        for cell in cells:
            if family == "SimpleRNN":
                acts.append(_onnx_activation(cell.activation, where))
            else:
                rec = _onnx_activation(cell.recurrent_activation, where)
                act = _onnx_activation(cell.activation, where)
                acts += [rec, act, act] if family == "LSTM" else [rec, act]
            if family == "GRU":
                if reset_after not in (None, cell.reset_after):
                    raise UnsupportedOptionError(f"{where}: directions differ in reset_after.")
                reset_after = cell.reset_after
            w, r, b = to_onnx(family, cell.params)
            ws.append(w), rs.append(r), bs.append(b)
        op = ONNX_OPS[family]
        names = [f"W{k}", f"R{k}", f"B{k}"]
        for n, a in zip(names, (np.stack(ws), np.stack(rs), np.stack(bs)), strict=True):
            inits.append(numpy_helper.from_array(a, n))
        node_inputs = [cur, *names, "sequence_lens" if sequence_lens else "", "", ""]
        if initial_states:
            units = int(cells[0].units)
            for i, state in enumerate(["initial_h", "initial_c"][: 2 if family == "LSTM" else 1]):
                node_inputs[5 + i] = f"{state}{k}"
                inputs.append(
                    helper.make_tensor_value_info(
                        f"{state}{k}", TensorProto.FLOAT, [len(cells), "batch", units]
                    )
                )
        if extras is not None:
            inits.append(numpy_helper.from_array(np.stack(extras[0]), f"P{k}"))
            node_inputs.append(f"P{k}")
        while node_inputs[-1] == "":
            node_inputs.pop()
        outs = [f"Y{k}", f"Y_h{k}"] + ([f"Y_c{k}"] if family == "LSTM" else [])
        attrs = dict(hidden_size=int(cells[0].units), direction=direction, activations=acts)
        if family == "GRU":
            attrs["linear_before_reset"] = int(bool(reset_after))
        if extras is not None:
            attrs.update(extras[1])
        nodes.append(helper.make_node(op, node_inputs, outs, name=f"{op.lower()}_{k}", **attrs))
        outputs += [
            helper.make_tensor_value_info(
                o, TensorProto.FLOAT, [len(cells), "batch", int(cells[0].units)]
            )
            for o in outs[1:]
        ]
        if len(cells) == 2:
            _constant(inits, "shape_concat", [0, 0, -1])
            nodes.append(helper.make_node("Transpose", [f"Y{k}"], [f"Y{k}_t"], perm=[0, 2, 1, 3]))
            nodes.append(helper.make_node("Reshape", [f"Y{k}_t", "shape_concat"], [f"S{k}"]))
        else:
            _constant(inits, "axis1", [1])
            nodes.append(helper.make_node("Squeeze", [f"Y{k}", "axis1"], [f"S{k}"]))
        cur = f"S{k}"
        if reverse_only:  # jaxlstm returns a go_backwards layer's outputs in processing order
            nodes.append(_reverse_time(helper, inits, cur, f"S{k}_rev"))
            cur = f"S{k}_rev"
    width = layers[-1][0].units * len(layers[-1])
    if not time_major:
        nodes.append(helper.make_node("Transpose", [cur], ["Y"], perm=[1, 0, 2]))
        y_shape = ["batch", "time", width]
    else:
        nodes.append(helper.make_node("Identity", [cur], ["Y"]))
        y_shape = ["time", "batch", width]
    outputs.insert(0, helper.make_tensor_value_info("Y", TensorProto.FLOAT, y_shape))
    graph = helper.make_graph(nodes, "jaxlstm", inputs, outputs, initializer=inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="jaxlstm"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _constant(inits, name: str, values) -> None:
    """An int64 initializer ``name`` (once)."""
    from onnx import numpy_helper

    if not any(i.name == name for i in inits):
        inits.append(numpy_helper.from_array(np.asarray(values, np.int64), name))


def _reverse_time(helper, inits, src: str, dst: str):
    """A ``Slice`` reversing axis 0 (time)."""
    _constant(inits, "rev_starts", [-1])
    _constant(inits, "rev_ends", [np.iinfo(np.int64).min])
    _constant(inits, "rev_axes", [0])
    _constant(inits, "rev_steps", [-1])
    return helper.make_node(
        "Slice", [src, "rev_starts", "rev_ends", "rev_axes", "rev_steps"], [dst]
    )


def save_onnx(
    module,
    path: str | os.PathLike,
    *,
    sequence_lens: bool = False,
    initial_states: bool = False,
) -> None:
    """Write :func:`onnx_model` ``(module, sequence_lens=..., initial_states=...)`` to ``path``
    (a ``.onnx`` file)."""
    onnx = import_onnx()
    path = os.fspath(path)
    if not path.lower().endswith(".onnx"):
        raise UnsupportedOptionError(f"save_onnx writes .onnx files; received {path!r}.")
    onnx.save(onnx_model(module, sequence_lens=sequence_lens, initial_states=initial_states), path)


# ---------------------------------------------------------------------------------------------
# inspect


def describe_onnx_file(path: str | os.PathLike) -> str:
    """A readable report on an ONNX model's LSTM/GRU/RNN nodes: attributes, shapes, and each
    gate block's rows in ONNX's order next to its jaxlstm columns, and whether jaxlstm loads
    the node (or why not)."""
    nodes, where = read_onnx_nodes(path)
    out = [where, "  format: ONNX"]
    if not nodes:
        out.append("  no recurrent nodes (LSTM, GRU, RNN)")
    for node in nodes:
        family = FAMILY_OF_OP[node.op]
        out.append(f"\nnode {node.name!r}: {node.op} -> jaxlstm.{family}")
        attrs = dict(node.attributes)
        attrs.setdefault("direction", "forward (default)")
        attrs.setdefault("layout", "0 (default: (T, B, F))")
        if family == "GRU":
            attrs.setdefault("linear_before_reset", "0 (default)")
        out.append("  " + ", ".join(f"{k}={v}" for k, v in attrs.items()))
        shapes = {
            label: node.array(i)
            for i, label in ((1, "W"), (2, "R"), (3, "B"), (7, "P"))
            if node.array(i) is not None
        }
        out.append("  " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in shapes.items()))
        r = shapes.get("R")
        if r is not None:
            h = r.shape[-1]
            out.append(
                "  W/R rows in ONNX's order -> jaxlstm kernel/recurrent_kernel columns "
                "(transposed), per direction:"
            )
            for name, rows, cols in gate_slices(ONNX_GATES[family], h):
                out.append(f"    {name}: rows {rows:<12} -> {cols}")
            if family == "GRU":
                out.append(
                    "  B = [Wb | Rb] -> bias (2, 3u) for linear_before_reset=1 "
                    "(reset_after=True), Wb + Rb (3u,) for 0"
                )
            else:
                out.append("  B = [Wb | Rb] -> bias = Wb + Rb")
        try:
            build_from_node(node, f"node {node.name!r}")
            out.append("  loads: yes")
        except UnsupportedOptionError as err:
            out.append(f"  loads: no ({err})")
    return "\n".join(out)
