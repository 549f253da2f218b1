"""An ONNX model's recurrent nodes (``LSTM``, ``GRU``, ``RNN``) and the constant arrays they read,
parsed with the ``onnx`` package (extra ``jaxlstm[onnx]``) as data: nothing is run.

External data (tensors stored beside the model) is read only from plain relative paths that
resolve inside the model's folder (no ``..``, no absolute paths, no symbolic links out of it),
at offsets inside the file, and within the byte budget of :mod:`.limits` (``max(64 MiB, 50x``
the model and its data files``)``); anything else is an :class:`UnsafeFileError`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from jaxlstm._src.errors import KerasFileError, MissingDependencyError, UnsafeFileError
from jaxlstm._src.readers.limits import Budget

RECURRENT_OPS = ("LSTM", "GRU", "RNN")


def import_onnx():
    try:
        import onnx
    except ModuleNotFoundError:
        raise MissingDependencyError(
            'reading or writing .onnx files needs the "onnx" package, which is not installed; '
            'install it with: pip install "jaxlstm[onnx]" (or pip install onnx).'
        ) from None
    return onnx


@dataclass
class OnnxNode:
    """One recurrent node: its op, name, attributes (plain Python values) and inputs, with the
    constant arrays among them (initializers and ``Constant`` outputs) by input name."""

    op: str
    name: str
    attributes: dict
    inputs: list[str]
    constants: dict = field(repr=False)

    def array(self, index: int) -> np.ndarray | None:
        """Input ``index`` as a constant array, ``None`` when the input is left out."""
        if index >= len(self.inputs) or not self.inputs[index]:
            return None
        return self.constants.get(self.inputs[index])

    def given(self, index: int) -> bool:
        return index < len(self.inputs) and bool(self.inputs[index])


def read_onnx_nodes(path: str | os.PathLike) -> tuple[list[OnnxNode], str]:
    """Every ``LSTM``/``GRU``/``RNN`` node of an ONNX model (in graph order, named; an unnamed
    node gets ``"{op}_{k}"``), and the path to quote in messages."""
    onnx = import_onnx()
    from google.protobuf.message import DecodeError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise KerasFileError(f"{path}: no such file.")
    try:
        model = onnx.load(path, load_external_data=False)
    except DecodeError as err:  # what protobuf raises for bytes that are not a ModelProto
        raise KerasFileError(f"{path}: not an ONNX model ({str(err)[:200]}).") from None
    graph = model.graph
    budget = Budget(path, _total_size(path, graph))
    tensors = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for a in node.attribute:
                if a.name == "value" and a.HasField("t"):
                    tensors[node.output[0]] = a.t
    nodes, counts = [], {}
    for node in graph.node:
        if node.op_type not in RECURRENT_OPS or node.domain not in ("", "ai.onnx"):
            continue
        k = counts[node.op_type] = counts.get(node.op_type, -1) + 1
        name = node.name or f"{node.op_type}_{k}"
        constants = {}
        for i, inp in enumerate(node.input):
            if inp and inp in tensors and i != 4:  # sequence_lens is a run-time input
                constants[inp] = _to_array(onnx, tensors[inp], path, budget)
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        attributes = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attributes.items()}
        if "activations" in attributes:
            attributes["activations"] = [
                a.decode() if isinstance(a, bytes) else a for a in attributes["activations"]
            ]
        nodes.append(OnnxNode(node.op_type, name, attributes, list(node.input), constants))
    return nodes, path


def _total_size(path: str, graph) -> int:
    size = os.path.getsize(path)
    folder = os.path.dirname(os.path.abspath(path))
    seen = set()
    for t in graph.initializer:
        location = _external(t).get("location")
        if location and location not in seen:
            seen.add(location)
            full = os.path.join(folder, location)
            if os.path.isfile(full) and _inside(folder, full):
                size += os.path.getsize(full)
    return size


def _external(tensor) -> dict:
    return {e.key: e.value for e in tensor.external_data}


def _inside(folder: str, full: str) -> bool:
    real_folder, real = os.path.realpath(folder), os.path.realpath(full)
    return os.path.commonpath([real_folder, real]) == real_folder


def _to_array(onnx, tensor, path: str, budget: Budget) -> np.ndarray:
    floats = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64}
    floats[onnx.TensorProto.FLOAT16] = np.float16
    if tensor.data_type not in floats:
        raise KerasFileError(
            f"{path}: tensor {tensor.name!r} has ONNX data type {tensor.data_type}; a recurrent "
            "node's weights and states are float, double or float16."
        )
    if any(d < 0 for d in tensor.dims):
        raise KerasFileError(f"{path}: tensor {tensor.name!r} has dims {list(tensor.dims)}.")
    nbytes = math.prod(tensor.dims) * np.dtype(floats[tensor.data_type]).itemsize
    budget.take(nbytes, f"tensor {tensor.name!r}")
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        tensor = _load_external(onnx, tensor, path, nbytes)
    try:
        return np.asarray(onnx.numpy_helper.to_array(tensor))
    except (ValueError, TypeError) as err:
        raise KerasFileError(f"{path}: tensor {tensor.name!r} is damaged ({err}).") from None


def _load_external(onnx, tensor, path: str, nbytes: int):
    info = _external(tensor)
    location = info.get("location", "")
    folder = os.path.dirname(os.path.abspath(path))
    full = os.path.join(folder, location)
    if (
        not location
        or os.path.isabs(location)
        or ".." in location.replace("\\", "/").split("/")
        or not _inside(folder, full)
    ):
        raise UnsafeFileError(
            f"{path}: tensor {tensor.name!r} points at external data {location!r}, outside the "
            "model's folder; jaxlstm reads external data only from plain relative paths inside "
            "it (the file is damaged or hostile)."
        )
    if not os.path.isfile(full):
        raise KerasFileError(
            f"{path}: tensor {tensor.name!r}'s external data {location!r} is missing; keep the "
            "data file beside the model."
        )
    try:
        offset = int(info.get("offset") or 0)
        length = int(info.get("length") or nbytes)
    except ValueError:
        raise KerasFileError(
            f"{path}: tensor {tensor.name!r} has external data offset/length "
            f"{info.get('offset')!r}/{info.get('length')!r}; expected integers."
        ) from None
    size = os.path.getsize(full)
    if length != nbytes or offset < 0 or offset + length > size:
        raise UnsafeFileError(
            f"{path}: tensor {tensor.name!r} declares bytes {offset}:{offset + length} of "
            f"{location!r} ({size} bytes; {nbytes} needed for its shape); refusing to read it "
            "(the file is damaged or hostile)."
        )
    with open(full, "rb") as fh:
        fh.seek(offset)
        raw = fh.read(length)
    loaded = onnx.TensorProto()
    loaded.CopyFrom(tensor)
    del loaded.external_data[:]
    loaded.data_location = onnx.TensorProto.DEFAULT
    loaded.raw_data = raw
    return loaded
