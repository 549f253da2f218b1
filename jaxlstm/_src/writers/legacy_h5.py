"""Write a :class:`KerasModel` as a legacy HDF5 model (``model.save("m.h5")`` layout):
``model_config`` and, under ``model_weights``, one group per layer with its arrays listed in
``weight_names``.

Keras loads these by position (``legacy_h5_format.load_weights_from_hdf5_group``): the groups in
``layer_names`` order, and in each group ``layer.trainable_weights + layer.non_trainable_weights``
(``_legacy_weights``). For a nested model that is every weight of its layers, depth first in the
config's order, trainable ones first; a layer whose config (or an enclosing model's) says
``trainable: false`` has only non-trainable weights. Array names follow Keras's ``variable.path``
(the layer path below the group, then the array), which is how readers tell a nested model's
arrays apart."""

from __future__ import annotations

import json

import h5py
import numpy as np

from jaxlstm._src.errors import UnsupportedOptionError
from jaxlstm._src.readers.records import LayerNode, model_tree
from jaxlstm._src.vocabulary import keras_major
from jaxlstm._src.writers.keras_v3 import KERAS3_VERSION

# legacy_h5_format.HDF5_OBJECT_HEADER_LIMIT: an attribute longer than this is split, as Keras
# splits it, into ``name0``, ``name1``, ... (what readers join back).
HDF5_OBJECT_HEADER_LIMIT = 64512


def _names_attr(group: h5py.Group, key: str, names: list[str]) -> None:
    """``legacy_h5_format.save_attributes_to_hdf5_group``: ``names`` as a bytes array
    attribute, split into as few equal chunks as keep each under the header limit."""
    data = np.array([n.encode() for n in names], dtype="S")
    if any(len(n) > HDF5_OBJECT_HEADER_LIMIT for n in data):
        raise UnsupportedOptionError(
            f"a layer or array name longer than {HDF5_OBJECT_HEADER_LIMIT} bytes cannot be "
            "written to a legacy HDF5 file (Keras refuses it too); save as .keras instead."
        )
    chunks = 1
    while any(c.nbytes > HDF5_OBJECT_HEADER_LIMIT for c in np.array_split(data, chunks)):
        chunks += 1
    if chunks == 1:
        group.attrs[key] = data
    else:
        for i, chunk in enumerate(np.array_split(data, chunks)):
            group.attrs[f"{key}{i}"] = chunk


def _weights(model, node: LayerNode, trainable: bool) -> list[tuple[str, object, bool]]:
    """``(array name, array, trainable)`` for one layer of the config (every layer of a nested
    model), in Keras's ``layer.weights`` order."""
    trainable = trainable and node.config.get("trainable", True) is not False
    if node.class_name == "InputLayer":
        return []
    if node.is_model:
        return [w for sub in node.children for w in _weights(model, sub, trainable)]
    names = node.names
    prefix = "/".join(names[1:] if len(names) > 1 else names)
    return [
        (f"{prefix}/w{i}", array, trainable and bool(flag))
        for i, (array, flag) in enumerate(model.layer(node.key).keras_weights())
    ]


def write_legacy_h5(model, config: dict, keras_version: str, target: str) -> None:
    """Write the legacy HDF5 model for ``config`` (a Keras 3 config) to the path ``target``,
    from the model's current weights, one array at a time."""
    version = keras_version if keras_major(keras_version) >= 3 else KERAS3_VERSION
    with h5py.File(target, "w") as f:
        f.attrs["keras_version"] = version
        f.attrs["backend"] = "jax"
        f.attrs["model_config"] = json.dumps(config)
        group = f.create_group("model_weights")
        names = []
        for node in model_tree(config, target).children:
            names.append(node.name)
            g = group.create_group(node.name)
            found = _weights(model, node, True)
            found = [w for w in found if w[2]] + [w for w in found if not w[2]]
            for wname, array, _ in found:
                g.create_dataset(wname, data=np.asarray(array, np.float32))
            _names_attr(g, "weight_names", [w[0] for w in found])
        _names_attr(group, "layer_names", names)
        group.attrs["keras_version"] = version
        group.attrs["backend"] = "jax"
