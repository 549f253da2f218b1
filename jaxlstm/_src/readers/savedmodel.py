"""TensorFlow SavedModel directories and TF-format checkpoints written by tf.keras 2.x, as data.

* SavedModel (``model.save("dir")``, TF 2.0 to 2.15, tf-keras 2.16+): ``keras_metadata.pb``
  (TF >= 2.5: a ``SavedMetadata`` whose nodes carry each Keras object's JSON metadata, the
  root's with ``model_config``, ``keras_version`` and ``training_config``), or, from TF 2.0-2.4,
  the same JSON in ``saved_model.pb``'s object graph (``user_object.metadata``); the weights in
  ``variables/variables.index`` and ``variables/variables.data-NNNNN-of-NNNNN``.
* TF checkpoint (``model.save_weights("ckpt")``): ``ckpt.index`` and ``ckpt.data-*``, with a
  ``checkpoint`` file naming the latest prefix; no config.

The ``.index`` file is a LevelDB-format table (blocks of prefix-compressed keys with restart
points, each block followed by a type byte and a masked CRC-32C; a 48-byte footer pointing at
the index block): a ``BundleHeaderProto`` under the empty key, then one ``BundleEntryProto``
per tensor (dtype, shape, shard, offset, size, masked CRC-32C of the bytes). Which tensor is
which layer's weight comes from the checkpoint's own object graph, the
``_CHECKPOINTABLE_OBJECT_GRAPH`` tensor (a ``TrackableObjectGraph``), as tf-keras's
``tf.train.Checkpoint`` restore finds them: from the root, a Functional or Sequential model
tracks ``model.layers[i]`` as child ``layer-<i>`` (``engine/functional.py``,
``_layer_checkpoint_dependencies``; a Sequential's ``layers`` leave out its input layer), and a
layer's variables are its descendants holding a ``VARIABLE_VALUE`` attribute, whose
``checkpoint_key`` names the tensor. In a SavedModel each layer also tracks its ``variables``
list (``layer.weights``, in Keras's order), which is used when present; a TF checkpoint's
layers are walked in tracking order (cell, forward_layer, ..., then each one's variables, as
they were created). Optimizer slots, the save counter and everything in ``saved_model.pb``
but the Keras metadata (graph functions, signatures) are never read. A subclassed model has no
model config (its architecture is Python code): only its own layers are read, each from its
metadata's config, for ``load_keras_layer``.

Untrusted input: only ``saved_model.pb``, ``keras_metadata.pb``, ``variables/`` and the
checkpoint's own files are opened, never through a link leading out of the directory; every
table block and message is size-checked against its file before it is parsed, every offset is
inside its file, and the bytes read count against the :mod:`.limits` budget of the
directory's size.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct

import numpy as np

from jaxlstm._src.errors import (
    ChecksumError,
    KerasFileError,
    MissingDependencyError,
    UnsafeFileError,
)
from jaxlstm._src.readers import limits
from jaxlstm._src.readers.legacy_h5 import _from_weights_only
from jaxlstm._src.readers.limits import Budget, human
from jaxlstm._src.readers.records import (
    KerasFile,
    LayerNode,
    Select,
    attach_weights,
    compile_settings,
    model_tree,
    record_from_config,
)
from jaxlstm._src.readers.tfproto import DT_STRING, DTYPE_NAMES, DTYPES, messages
from jaxlstm._src.vocabulary import MODEL_CLASSES, clean_version

OBJECT_GRAPH_KEY = b"_CHECKPOINTABLE_OBJECT_GRAPH"
_VARIABLE = "VARIABLE_VALUE"
_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48
_TRAILER = 5  # block type byte + masked CRC-32C
_MAX_SHARDS = 10_000
_SHARD = re.compile(r"\.data-(\d{5})-of-(\d{5})$")
# Keras metadata identifiers of a model / layer (tf-keras saving/legacy/saved_model).
_MODEL_IDS = ("_tf_keras_model", "_tf_keras_sequential", "_tf_keras_network")
_CKPT_VERSION_NOTE = (
    "a TF checkpoint does not record it; tf.keras 2.x under TensorFlow 2 (sigmoid, "
    "reset_after=True defaults) assumed"
)
_TF_CKPT_VERSION = "2.3.0"  # the first tf.keras whose defaults those are; see _CKPT_VERSION_NOTE
_CKPT_FORMAT = "TF checkpoint (save_weights; records no Keras version: tf.keras >= 2.3 defaults)"


def _crc_module():
    try:
        import google_crc32c
    except ImportError:
        raise MissingDependencyError(
            "reading a TensorFlow SavedModel or checkpoint needs the 'google-crc32c' package "
            "(to check its CRC-32C checksums), which is not installed; install it with "
            "`pip install google-crc32c` (a dependency of jaxlstm)."
        ) from None
    return google_crc32c


def masked_crc32c(data) -> int:
    """TensorFlow's (and LevelDB's) masked CRC-32C of ``data``."""
    crc = _crc_module().value(bytes(data))
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def is_tf_directory(path: str) -> bool:
    """Whether ``path`` is a SavedModel or TF checkpoint: a directory, a ``.index`` file or a
    checkpoint prefix with a ``.index`` beside it."""
    return (
        os.path.isdir(path)
        or (path.endswith(".index") and os.path.isfile(path))
        or (not os.path.exists(path) and os.path.isfile(path + ".index"))
    )


class _Source:
    """One SavedModel or checkpoint being read: its name for messages, the files it may open
    (only known names, only inside its directory), their open handles, and the byte budget
    shared by everything read from it."""

    def __init__(self, root: str, name: str, files: list[str]):
        self.root = os.path.realpath(root)
        self.name = name
        self.sizes: dict[str, int] = {}
        for rel in files:
            self._check(rel)
        self.budget = Budget(name, sum(self.sizes.values()))
        self._handles: dict[str, object] = {}

    def error(self, message: str, cls=KerasFileError) -> KerasFileError:
        return cls(f"{self.name}: {message}")

    def _check(self, rel: str) -> str:
        """The real path of ``rel`` (a name jaxlstm knows), refused if it is not a regular
        file inside the directory."""
        full = os.path.join(self.root, rel)
        real = os.path.realpath(full)
        if os.path.commonpath([real, self.root]) != self.root:
            raise self.error(
                f"{rel!r} is a link leading out of the directory (to {real!r}); refusing to "
                "follow it.",
                UnsafeFileError,
            )
        if not os.path.isfile(real):
            raise self.error(f"{rel!r} is not a regular file; the directory is damaged.")
        self.sizes[rel] = os.path.getsize(real)
        return real

    def has(self, rel: str) -> bool:
        return os.path.lexists(os.path.join(self.root, rel))

    def read(self, rel: str, offset: int = 0, size: int | None = None, what: str = "") -> bytes:
        """``size`` bytes of ``rel`` from ``offset`` (all of it by default), inside the file
        and the budget."""
        if rel not in self.sizes:
            self._check(rel)
        total = self.sizes[rel]
        size = total - offset if size is None else size
        what = what or rel
        if offset < 0 or size < 0 or offset + size > total:
            raise self.error(
                f"{what} lies at bytes {offset}..{offset + size} of {rel!r}, outside its "
                f"{total} bytes; the file is truncated or damaged."
            )
        self.budget.take(size, what)
        fh = self._handles.get(rel)
        if fh is None:
            fh = self._handles[rel] = open(self._check(rel), "rb")  # closed by close()
        fh.seek(offset)
        data = fh.read(size)
        if len(data) != size:
            raise self.error(f"{rel!r} ended early while reading {what}; it is truncated.")
        return data

    def parse(self, message: str, data: bytes, what: str):
        """``data`` parsed as the protobuf ``message``, or a KerasFileError naming ``what``."""
        from google.protobuf.message import DecodeError

        msg = messages()[message]()
        try:
            msg.ParseFromString(data)
        except (DecodeError, RecursionError, ValueError) as err:
            raise self.error(
                f"{what} is not a valid {message} ({err}); the file is damaged."
            ) from None
        return msg

    def close(self) -> None:
        for fh in self._handles.values():
            fh.close()
        self._handles.clear()


# --- the tensor bundle (.index table + .data shards) -------------------------------------------


def _varint(data: bytes, pos: int, end: int, what: str, src: _Source) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= end or shift > 63:
            raise src.error(f"{what}: a varint runs past its block; the index is damaged.")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _block(data: bytes, offset: int, size: int, what: str, src: _Source) -> list:
    """The (key, value) entries of one table block, after checking its place, trailer and
    CRC."""
    body_end = len(data) - _FOOTER
    if offset < 0 or size < 4 or offset + size + _TRAILER > body_end:
        raise src.error(
            f"{what} declares {size} bytes at offset {offset}, outside the index's "
            f"{body_end} bytes of blocks; the index is truncated or damaged.",
            UnsafeFileError if offset + size > len(data) else KerasFileError,
        )
    kind = data[offset + size]
    (stored,) = struct.unpack_from("<I", data, offset + size + 1)
    if masked_crc32c(data[offset : offset + size + 1]) != stored:
        raise src.error(f"{what} fails its CRC-32C check; the index is damaged.", ChecksumError)
    if kind == 1:
        raise src.error(
            f"{what} is snappy-compressed; jaxlstm reads uncompressed tensor-bundle indexes "
            "(what TensorFlow writes). Re-save the checkpoint with TensorFlow."
        )
    if kind != 0:
        raise src.error(f"{what} has block type {kind}, not 0 (raw); the index is damaged.")
    (restarts,) = struct.unpack_from("<I", data, offset + size - 4)
    end = offset + size - 4 - 4 * restarts
    if restarts < 1 or end < offset:
        raise src.error(f"{what} lists {restarts} restart points; the index is damaged.")
    entries, pos, key = [], offset, b""
    while pos < end:
        shared, pos = _varint(data, pos, end, what, src)
        own, pos = _varint(data, pos, end, what, src)
        vlen, pos = _varint(data, pos, end, what, src)
        if shared > len(key) or pos + own + vlen > end:
            raise src.error(f"{what}: an entry runs past its block; the index is damaged.")
        key = key[:shared] + data[pos : pos + own]
        pos += own
        entries.append((key, data[pos : pos + vlen]))
        pos += vlen
    return entries


def _table(data: bytes, what: str, src: _Source) -> dict[bytes, bytes]:
    """Every entry of a LevelDB-format table (a tensor bundle's ``.index``)."""
    if len(data) < _FOOTER:
        raise src.error(f"{what} is {len(data)} bytes, shorter than a table footer; truncated.")
    (magic,) = struct.unpack_from("<Q", data, len(data) - 8)
    if magic != _TABLE_MAGIC:
        raise src.error(f"{what} does not end with a table's magic number; it is not an index.")
    end = len(data) - 8
    _, pos = _varint(data, len(data) - _FOOTER, end, what, src)
    _, pos = _varint(data, pos, end, what, src)  # metaindex handle (TensorFlow's is empty)
    index_offset, pos = _varint(data, pos, end, what, src)
    index_size, pos = _varint(data, pos, end, what, src)
    out: dict[bytes, bytes] = {}
    for _, handle in _block(data, index_offset, index_size, f"{what}: index block", src):
        offset, p = _varint(handle, 0, len(handle), what, src)
        size, _ = _varint(handle, p, len(handle), what, src)
        for key, value in _block(data, offset, size, f"{what}: data block at {offset}", src):
            out[key] = value
    return out


class _Bundle:
    """A tensor bundle: ``PREFIX.index`` and its ``PREFIX.data-*`` shards."""

    def __init__(self, src: _Source, prefix: str):
        self.src, self.prefix = src, prefix
        index = f"{prefix}.index"
        self.entries = _table(src.read(index), index, src)
        if b"" not in self.entries:
            raise src.error(f"{index} has no bundle header; it is not a tensor-bundle index.")
        header = src.parse("BundleHeaderProto", self.entries.pop(b""), f"{index}'s header")
        if header.endianness != 0:
            raise src.error(f"{index} was written big-endian; jaxlstm reads little-endian ones.")
        if not 1 <= header.num_shards <= _MAX_SHARDS:
            raise src.error(f"{index} declares {header.num_shards} data shards; damaged.")
        self.num_shards = header.num_shards

    def entry(self, key: str):
        raw = self.entries.get(key.encode())
        if raw is None:
            raise self.src.error(
                f"the checkpoint's object graph names tensor {key!r}, which {self.prefix}.index "
                "does not hold; the checkpoint is incomplete or damaged."
            )
        return self.src.parse("BundleEntryProto", raw, f"{self.prefix}.index entry {key!r}")

    def _bytes(self, key: str, entry, nbytes: int | None, string: bool = False) -> bytes:
        if entry.slices:
            raise self.src.error(
                f"tensor {key!r} is saved in slices (a partitioned variable); jaxlstm reads "
                "whole tensors only."
            )
        if nbytes is not None and entry.size != nbytes:
            raise self.src.error(
                f"tensor {key!r} declares {entry.size} bytes, but its dtype and shape take "
                f"{nbytes}; the index is damaged."
            )
        if not 0 <= entry.shard_id < self.num_shards:
            raise self.src.error(f"tensor {key!r} is in shard {entry.shard_id} of "
                                 f"{self.num_shards}; the index is damaged.")  # fmt: skip
        shard = f"{self.prefix}.data-{entry.shard_id:05d}-of-{self.num_shards:05d}"
        if not self.src.has(shard):
            raise self.src.error(f"{shard!r} is missing; the checkpoint is incomplete.")
        data = self.src.read(shard, entry.offset, entry.size, f"tensor {key!r}")
        if (_string_crc(data, key, self.src) if string else masked_crc32c(data)) != entry.crc32c:
            raise self.src.error(
                f"tensor {key!r} fails its CRC-32C check; {shard!r} is damaged.", ChecksumError
            )
        return data

    def array(self, key: str) -> np.ndarray:
        entry = self.entry(key)
        if entry.dtype not in DTYPES:
            found = DTYPE_NAMES.get(entry.dtype, f"DataType {entry.dtype}")
            raise self.src.error(
                f"tensor {key!r} holds {found} values; jaxlstm reads weights of "
                f"{sorted(set(DTYPES.values()))}."
            )
        dims = [d.size for d in entry.shape.dim]
        if entry.shape.unknown_rank or any(d < 0 for d in dims):
            raise self.src.error(f"tensor {key!r} has shape {dims}; expected a known shape.")
        if len(dims) > limits.MAX_ARRAY_RANK:
            raise self.src.error(f"tensor {key!r} has {len(dims)} axes; too many for weights.")
        dtype = np.dtype(DTYPES[entry.dtype]).newbyteorder("<")
        nbytes = math.prod(dims) * dtype.itemsize
        if nbytes > limits.MAX_ARRAY_BYTES:
            self.src.budget.take(nbytes, f"tensor {key!r} {tuple(dims)}")  # raises
        data = self._bytes(key, entry, nbytes)
        return np.frombuffer(bytearray(data), dtype=dtype).reshape(dims)

    def scalar_string(self, key: str) -> bytes:
        """A scalar string tensor: ``varint64 length, masked CRC of the length, bytes``."""
        entry = self.entry(key)
        if entry.dtype != DT_STRING or entry.shape.dim:
            raise self.src.error(f"tensor {key!r} is not a scalar string; the index is damaged.")
        data = self._bytes(key, entry, None, string=True)
        length, pos = _varint(data, 0, len(data), f"tensor {key!r}", self.src)
        if pos + 4 + length != len(data):
            raise self.src.error(f"tensor {key!r}'s string length {length} does not fit its "
                                 f"{len(data)} bytes; damaged.")  # fmt: skip
        return data[pos + 4 :]


def _string_crc(data: bytes, key: str, src: _Source) -> int:
    """The checksum TensorFlow records for a scalar string tensor (``WriteStringTensor``): a
    CRC-32C over the length as a little-endian uint32, the 4-byte masked CRC of the lengths,
    then the string, masked."""
    length, pos = _varint(data, 0, len(data), f"tensor {key!r}", src)
    return masked_crc32c(struct.pack("<I", length & 0xFFFFFFFF) + data[pos:])


# --- the object graph --------------------------------------------------------------------------


class _Graph:
    """A checkpoint's TrackableObjectGraph, walked by local names from its root."""

    def __init__(self, src: _Source, bundle: _Bundle):
        self.src, self.bundle = src, bundle
        raw = bundle.scalar_string(OBJECT_GRAPH_KEY.decode())
        self.nodes = src.parse("TrackableObjectGraph", raw, "the checkpoint's object graph").nodes
        if not self.nodes:
            raise src.error("the checkpoint's object graph is empty; damaged.")

    def _node(self, node_id: int, where: str):
        if not 0 <= node_id < len(self.nodes):
            raise self.src.error(f"{where} points at object {node_id}, outside the checkpoint's "
                                 f"{len(self.nodes)}; the object graph is damaged.")  # fmt: skip
        return self.nodes[node_id]

    def child(self, node_id: int, name: str, where: str) -> int | None:
        for ref in self._node(node_id, where).children:
            if ref.local_name == name:
                self._node(ref.node_id, f"{where}/{name}")
                return ref.node_id
        return None

    def variables(self, node_id: int, where: str) -> list[tuple[str, str]]:
        """A layer's variables as ``(weight name, checkpoint key)``, in ``layer.weights``
        order: its ``variables`` list when the graph has one (a SavedModel), else its
        descendants in tracking order."""
        listed = self.child(node_id, "variables", where)
        start = [listed] if listed is not None else [node_id]
        out, seen, stack = [], set(), list(start)
        while stack:  # depth first, each object once (a graph may share or loop)
            nid = stack.pop()
            if nid in seen:
                continue
            seen.add(nid)
            node = self._node(nid, where)
            for attr in node.attributes:
                if attr.name == _VARIABLE:
                    out.append((f"{attr.full_name}:0", attr.checkpoint_key))
            if not any(a.name == _VARIABLE for a in node.attributes):
                # (keras_api: a SavedModel's second view of the same objects)
                kids = [r.node_id for r in node.children if r.local_name != "keras_api"]
                stack.extend(reversed(kids))
        return out

    def arrays(self, node_id: int, where: str) -> list[tuple[str, np.ndarray]]:
        return [(n, self.bundle.array(key)) for n, key in self.variables(node_id, where)]


def _model_layers(node: LayerNode) -> list[LayerNode]:
    """``model.layers`` of a config's model, in order: a Sequential's leave out its input
    layer (tf-keras ``Sequential.layers``); a Functional's are its config's layers."""
    layers = list(node.children)
    if node.class_name == "Sequential" and layers and layers[0].class_name == "InputLayer":
        layers = layers[1:]
    return layers


def _layer_objects(graph: _Graph, model: LayerNode, node_id: int, where: str, out: dict):
    """Map every layer of the config below ``model`` to its checkpoint object id."""
    for i, layer in enumerate(_model_layers(model)):
        child = graph.child(node_id, f"layer-{i}", where)
        if child is None:
            continue  # a layer with nothing tracked (only weightless layers are missing)
        out[layer.key] = child
        if layer.is_model:
            _layer_objects(graph, layer, child, f"{where}/layer-{i}", out)


# --- reading ------------------------------------------------------------------------------------


def read_tf_directory(path: str, select: Select | None = None, config=None) -> KerasFile:
    """Read a SavedModel directory, or a TF checkpoint (a directory with a ``checkpoint``
    file, a ``.index`` file or its prefix). ``config``: a model config to read a checkpoint's
    weights into (``model.to_json()``), else the checkpoint is read as weights only."""
    if os.path.isdir(path) and os.path.lexists(os.path.join(path, "saved_model.pb")):
        return _read_savedmodel(path, select)
    if os.path.isdir(path):
        root, prefix = path, _latest_prefix(path)
    else:
        base = path[: -len(".index")] if path.endswith(".index") else path
        root, prefix = os.path.dirname(base) or ".", os.path.basename(base)
    return _read_checkpoint(path, root, prefix, select, config)


def _latest_prefix(path: str) -> str:
    """The prefix a checkpoint directory's ``checkpoint`` file names (a plain file name)."""
    if not os.path.lexists(os.path.join(path, "checkpoint")):
        raise KerasFileError(
            f"{path}: a directory with neither saved_model.pb (a SavedModel) nor a 'checkpoint' "
            "file (a TF checkpoint); expected a directory written by tf.keras model.save() or "
            "model.save_weights()."
        )
    src = _Source(path, path, ["checkpoint"])
    try:
        text = src.read("checkpoint").decode("utf-8", "replace")
    finally:
        src.close()
    m = re.search(r'^model_checkpoint_path:\s*"([^"\n]*)"', text, re.M)
    name = m.group(1) if m else ""
    if not m or not re.fullmatch(r"[\w.\-]+", name) or name in (".", ".."):
        raise KerasFileError(
            f"{path}: the 'checkpoint' file names prefix {name!r}; expected a plain file name in "
            "this directory (as tf.keras writes it). Pass the checkpoint's .index file instead."
        )
    return name


def _shards(src_root: str, prefix: str) -> list[str]:
    names = []
    for f in os.listdir(src_root):
        if f.startswith(prefix + ".data-") and _SHARD.search(f):
            names.append(f)
    return sorted(names)


def _read_checkpoint(path, root, prefix, select, config) -> KerasFile:
    src = _Source(root, path, [f"{prefix}.index", *_shards(root, prefix)])
    try:
        graph = _Graph(src, _Bundle(src, prefix))
        if config is None:
            kf = KerasFile(path, _CKPT_FORMAT, _TF_CKPT_VERSION)
            names, arrays = _weights_only_layers(graph)
            _from_weights_only(kf, names, arrays.__getitem__, kf.keras_version, path)
            for record in kf.layers.values():
                for part in (record, record.forward, record.backward, *(record.cells or [])):
                    if part is not None:
                        part.inferred.setdefault("keras_version", _CKPT_VERSION_NOTE)
            return kf
        version = clean_version(str(config.get("keras_version", _TF_CKPT_VERSION)), path)
        model_config = {k: config[k] for k in ("class_name", "config") if k in config}
        kf = KerasFile(path, "TF checkpoint (save_weights) with a model config", version)
        _from_config(kf, graph, model_config, version, select, src)
        return kf
    finally:
        src.close()


def _weights_only_layers(graph: _Graph):
    """The root's layers with weights (``layer_with_weights-<i>``), named as their variables
    are (the layer's name scope), else by that path."""
    names, arrays = [], {}
    for ref in graph.nodes[0].children:
        if not ref.local_name.startswith("layer_with_weights-"):
            continue
        weights = graph.arrays(ref.node_id, ref.local_name)
        heads = {n.split("/")[0] for n, _ in weights}
        name = heads.pop() if len(heads) == 1 else ref.local_name
        if name in arrays:
            name = ref.local_name
        names.append(name)
        arrays[name] = weights
    return names, arrays


def _from_config(kf: KerasFile, graph: _Graph, config, version, select, src: _Source, meta=None):
    kf.config, kf.tree = config, model_tree(config, kf.path)
    keep = select(kf.tree, version) if select is not None else None
    objects: dict[str, int] = {}
    _layer_objects(graph, kf.tree, 0, "root", objects)
    if meta is not None:
        _check_names(kf.tree, objects, meta, graph, src)
    for node in kf.tree.descendants():
        if keep is not None and node.names[0] not in keep:
            continue
        name = node.key
        record = record_from_config(node, name, version, kf.path)
        if record is not None:
            record.custom = node.custom
        if node.class_name not in MODEL_CLASSES and name in objects:
            kf.arrays[name] = graph.arrays(objects[name], name)
        if record is None:
            if node.class_name not in MODEL_CLASSES:
                kf.other_layers.append((name, node.class_name))
            continue
        if name not in objects:
            raise src.error(
                f"the model config has layer {name!r}, but the checkpoint's object graph has no "
                "object for it; the weights do not belong to this model."
            )
        kf.layers[name] = attach_weights(record, kf.arrays[name])


def _check_names(tree: LayerNode, objects: dict[str, int], meta, graph: _Graph, src) -> None:
    """Check each layer's checkpoint object against that object's own Keras metadata (its
    ``name``; the metadata's node paths, ``root.layer_with_weights-0``, resolved in the object
    graph), so that a config and an object graph that disagree are refused."""
    names: dict[int, str] = {}
    for path, own in meta.items():
        node, parts = 0, path.split(".")[1:]
        for part in parts:
            node = graph.child(node, part, path) if node is not None else None
        if node is not None and parts:
            names[node] = str(own.get("name"))
    for layer in tree.descendants():
        found = names.get(objects.get(layer.key, -1))
        if found is not None and found != layer.name:
            raise src.error(
                f"the checkpoint object of layer {layer.key!r} is layer {found!r} in its own "
                "Keras metadata; the config and the object graph disagree, so the SavedModel is "
                "damaged."
            )


def _read_savedmodel(path: str, select: Select | None) -> KerasFile:
    files = [f for f in ("saved_model.pb", "keras_metadata.pb") if os.path.lexists(
        os.path.join(path, f))]  # fmt: skip
    variables = os.path.join(path, "variables")
    if os.path.isdir(variables) and os.path.lexists(os.path.join(variables, "variables.index")):
        files += [f"variables/{f}" for f in ["variables.index", *_shards(variables, "variables")]]
    src = _Source(path, path, files)
    try:
        meta, kind = _keras_metadata(src)
        root = meta.get("root")
        if root is None:
            raise src.error(
                "not a Keras model: the SavedModel's metadata has no root Keras object "
                "(written by tf.saved_model.save of a tf.Module, or an estimator). jaxlstm "
                "reads SavedModels written by tf.keras model.save()."
            )
        version = clean_version(str(root.get("keras_version", "2")), path)
        config = root.get("model_config")
        subclassed = not isinstance(config, dict) or config.get("class_name") not in MODEL_CLASSES
        if "variables/variables.index" not in src.sizes:
            raise src.error("has no variables/variables.index; the SavedModel is incomplete.")
        graph = _Graph(src, _Bundle(src, "variables/variables"))
        if subclassed:
            return _subclassed(path, graph, meta, root, version, src)
        kf = KerasFile(path, f"TensorFlow SavedModel ({kind})", version)
        _from_config(kf, graph, config, version, select, src, meta)
        kf.compile_config = compile_settings(
            root.get("training_config"), "the root's training_config", path
        )
        return kf
    finally:
        src.close()


def _subclassed(path, graph: _Graph, meta, root, version, src) -> KerasFile:
    """A subclassed model: no model config (its architecture is Python code, which jaxlstm
    does not run), so no ``load_keras``; its own layers (the root's children) are read from
    their own metadata configs and variables, for ``load_keras_layer``."""
    cls = str(root.get("class_name", "?"))[:80]
    kf = KerasFile(
        path,
        f"TensorFlow SavedModel of a subclassed model ({cls}: its architecture is Python code, "
        "which jaxlstm does not run; its layers load one by one)",
        version,
    )
    entries, objects = [], {}
    for node_path, own in meta.items():
        parts = node_path.split(".")
        if len(parts) != 2 or not isinstance(own.get("config"), dict):
            continue
        child = graph.child(0, parts[1], node_path)
        if child is not None and isinstance(own.get("class_name"), str):
            entries.append({"class_name": own["class_name"], "config": own["config"]})
            objects[str(own["config"].get("name", ""))] = child
    tree = model_tree({"class_name": "Sequential", "config": {"layers": entries}}, path)
    for node in tree.children:
        record = record_from_config(node, node.key, version, path)
        arrays = graph.arrays(objects[node.name], node.key)
        kf.arrays[node.key] = arrays
        if record is None:
            kf.other_layers.append((node.key, node.class_name))
        else:
            record.custom = node.custom
            kf.layers[node.key] = attach_weights(record, arrays)
    return kf


def _keras_metadata(src: _Source) -> tuple[dict[str, dict], str]:
    """Each Keras object's JSON metadata by node path (``root``, ``root.layer-0``, ...), from
    ``keras_metadata.pb`` or (TF 2.0-2.4) ``saved_model.pb``'s object graph."""
    out: dict[str, dict] = {}
    if "keras_metadata.pb" in src.sizes:
        saved = src.parse("SavedMetadata", src.read("keras_metadata.pb"), "keras_metadata.pb")
        for node in saved.nodes:
            if node.identifier.startswith("_tf_keras") and node.metadata:
                out[node.node_path] = _json(node.metadata, f"metadata of {node.node_path}", src)
        return out, "keras_metadata.pb"
    if "saved_model.pb" not in src.sizes:
        raise src.error("has no saved_model.pb; it is not a SavedModel directory.")
    sm = src.parse("SavedModel", src.read("saved_model.pb"), "saved_model.pb")
    if not sm.meta_graphs:
        raise src.error("saved_model.pb holds no meta graph; damaged.")
    nodes = sm.meta_graphs[0].object_graph_def.nodes
    paths, todo = ({0: "root"}, [0]) if nodes else ({}, [])  # TF 1.x exports have no objects
    while todo:  # breadth first, so each object gets its shortest path
        nid = todo.pop(0)
        if not 0 <= nid < len(nodes):
            raise src.error(f"saved_model.pb's object graph points at object {nid}; damaged.")
        for ref in nodes[nid].children:
            if ref.node_id not in paths:
                paths[ref.node_id] = f"{paths[nid]}.{ref.local_name}"
                todo.append(ref.node_id)
    for nid, p in paths.items():
        user = nodes[nid].user_object if 0 <= nid < len(nodes) else None
        if user is not None and user.identifier.startswith("_tf_keras") and user.metadata:
            out[p] = _json(user.metadata, f"metadata of {p}", src)
    return out, "saved_model.pb object graph, TF 2.0-2.4"


def _plain(obj: dict):
    """A JSON object of tf-keras's SavedModel encoding (``saving/legacy/saved_model/
    json_utils.py``) as the plain JSON of an ``.h5`` config: ``{"class_name": "__tuple__",
    "items": [...]}`` and ``{"class_name": "TensorShape", "items": [...]}`` become their items."""
    if obj.get("class_name") in ("__tuple__", "TensorShape") and set(obj) == {
        "class_name",
        "items",
    }:
        return obj["items"]
    return obj


def _json(text: str, what: str, src: _Source) -> dict:
    try:
        value = json.loads(text, object_hook=_plain)
    except ValueError as err:
        raise src.error(f"{what} is not JSON ({err}); the file is damaged.") from None
    if not isinstance(value, dict):
        raise src.error(f"{what} is not a JSON object; the file is damaged.")
    return value


def read_model_json(path: str) -> dict:
    """A ``model.to_json()`` file's config (a model config with ``keras_version``)."""
    if not os.path.isfile(path):
        raise KerasFileError(f"{path}: no such file.")
    size = os.path.getsize(path)
    if size > limits.MIN_BUDGET_BYTES:
        raise UnsafeFileError(f"{path}: {human(size)} is too large for a model's JSON config.")
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        config = json.loads(raw)
    except ValueError as err:
        raise KerasFileError(f"{path}: not a JSON model config ({err}).") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise KerasFileError(
            f"{path}: expected a model config as model.to_json() writes it (a JSON object with "
            "class_name and config)."
        )
    return config
