"""The few TensorFlow and tf.keras protobuf messages a SavedModel reader needs, built at run time.

Only the fields jaxlstm reads are declared, with TensorFlow's own field numbers; every other
field of a real file (the graph's functions, signatures, optimizer state) is skipped by the
``protobuf`` parser as an unknown field, never interpreted. The definitions follow
``tensorflow/core/protobuf/{saved_model,meta_graph,saved_object_graph,
trackable_object_graph,tensor_bundle}.proto``, ``tensorflow/core/framework/tensor_shape.proto``
and tf-keras's ``protobuf/saved_metadata.proto``. A ``DataType`` is kept as its number
(:data:`DTYPES`).
"""

from __future__ import annotations

import functools

from jaxlstm._src.errors import MissingDependencyError

_PACKAGE = "jaxlstm_tf"

# (message, [(field, number, type, repeated, message type)]); types as descriptor_pb2 names.
_MESSAGES = [
    # tf-keras saved_metadata.proto (keras_metadata.pb)
    ("KerasSavedObject", [
        ("node_id", 2, "int32", False, None),
        ("node_path", 3, "string", False, None),
        ("identifier", 4, "string", False, None),
        ("metadata", 5, "string", False, None),
    ]),
    ("SavedMetadata", [("nodes", 1, "message", True, "KerasSavedObject")]),
    # trackable_object_graph.proto
    ("ObjectReference", [
        ("node_id", 1, "int32", False, None),
        ("local_name", 2, "string", False, None),
    ]),
    ("SerializedTensor", [
        ("name", 1, "string", False, None),
        ("full_name", 2, "string", False, None),
        ("checkpoint_key", 3, "string", False, None),
    ]),
    ("TrackableObject", [
        ("children", 1, "message", True, "ObjectReference"),
        ("attributes", 2, "message", True, "SerializedTensor"),
    ]),
    ("TrackableObjectGraph", [("nodes", 1, "message", True, "TrackableObject")]),
    # saved_object_graph.proto, saved_model.proto, meta_graph.proto
    ("SavedUserObject", [
        ("identifier", 1, "string", False, None),
        ("metadata", 3, "string", False, None),
    ]),
    ("SavedVariable", [
        ("trainable", 3, "bool", False, None),
        ("name", 6, "string", False, None),
    ]),
    ("SavedObject", [
        ("children", 1, "message", True, "ObjectReference"),
        ("user_object", 4, "message", False, "SavedUserObject"),
        ("variable", 7, "message", False, "SavedVariable"),
    ]),
    ("SavedObjectGraph", [("nodes", 1, "message", True, "SavedObject")]),
    ("MetaGraphDef", [("object_graph_def", 7, "message", False, "SavedObjectGraph")]),
    ("SavedModel", [
        ("saved_model_schema_version", 1, "int64", False, None),
        ("meta_graphs", 2, "message", True, "MetaGraphDef"),
    ]),
    # tensor_shape.proto, tensor_bundle.proto
    ("Dim", [("size", 1, "int64", False, None)]),
    ("TensorShapeProto", [
        ("dim", 2, "message", True, "Dim"),
        ("unknown_rank", 3, "bool", False, None),
    ]),
    ("TensorSliceProto", [("extent", 1, "bytes", True, None)]),
    ("BundleHeaderProto", [
        ("num_shards", 1, "int32", False, None),
        ("endianness", 2, "int32", False, None),
    ]),
    ("BundleEntryProto", [
        ("dtype", 1, "int32", False, None),
        ("shape", 2, "message", False, "TensorShapeProto"),
        ("shard_id", 3, "int32", False, None),
        ("offset", 4, "int64", False, None),
        ("size", 5, "int64", False, None),
        ("crc32c", 6, "fixed32", False, None),
        ("slices", 7, "message", True, "TensorSliceProto"),
    ]),
]  # fmt: skip

# TensorFlow's DataType numbers (types.proto) for the dtypes jaxlstm reads, as numpy names;
# DT_STRING (7) is read only for the checkpoint's own object graph.
DTYPES = {1: "float32", 2: "float64", 19: "float16", 3: "int32", 9: "int64", 10: "bool"}
DT_STRING = 7
DTYPE_NAMES = {
    4: "uint8", 5: "int16", 6: "int8", 7: "string", 8: "complex64", 11: "qint8", 12: "quint8",
    13: "qint32", 14: "bfloat16", 17: "uint16", 18: "complex128", 20: "resource", 21: "variant",
    22: "uint32", 23: "uint64",
}  # fmt: skip


@functools.cache
def messages() -> dict:
    """The message classes by name (``messages()["BundleEntryProto"]``), built once."""
    try:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    except ImportError:
        raise MissingDependencyError(
            "reading a TensorFlow SavedModel or checkpoint needs the 'protobuf' package, which "
            "is not installed; install it with `pip install protobuf` (a dependency of jaxlstm)."
        ) from None
    fdp = descriptor_pb2.FileDescriptorProto(
        name="jaxlstm_tf.proto", package=_PACKAGE, syntax="proto3"
    )
    types = descriptor_pb2.FieldDescriptorProto
    for name, fields in _MESSAGES:
        msg = fdp.message_type.add(name=name)
        for fname, number, ftype, repeated, type_name in fields:
            field = msg.field.add(
                name=fname,
                number=number,
                type=getattr(types, f"TYPE_{ftype.upper()}"),
                label=types.LABEL_REPEATED if repeated else types.LABEL_OPTIONAL,
            )
            if type_name is not None:
                field.type_name = f".{_PACKAGE}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name, _ in _MESSAGES
    }
