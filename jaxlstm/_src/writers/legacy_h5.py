"""Write a :class:`KerasModel` as a legacy HDF5 model (``model.save("m.h5")`` layout):
``model_config`` and, under ``model_weights``, one group per layer with its arrays listed in
``weight_names``. Keras loads these by position, trainable weights first within a layer."""

from __future__ import annotations

import io
import json

import h5py
import numpy as np

from jaxlstm._src.readers.records import layer_list
from jaxlstm._src.writers.keras_v3 import KERAS3_VERSION


def legacy_h5_bytes(model, config: dict, keras_version: str) -> bytes:
    version = keras_version if keras_version.startswith("3") else KERAS3_VERSION
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.attrs["keras_version"] = version
        f.attrs["backend"] = "jax"
        f.attrs["model_config"] = json.dumps(config)
        group = f.create_group("model_weights")
        names = []
        for entry in layer_list(config):
            name = str(entry.get("config", {}).get("name", entry.get("name", "")))
            names.append(name)
            g = group.create_group(name)
            pairs = (
                [] if entry.get("class_name") == "InputLayer" else model.layer(name).keras_weights()
            )
            pairs = [p for p in pairs if p[1]] + [p for p in pairs if not p[1]]
            weight_names = [f"{name}/w{i}" for i in range(len(pairs))]
            for wname, (array, _) in zip(weight_names, pairs, strict=True):
                g.create_dataset(wname, data=np.asarray(array, np.float32))
            g.attrs["weight_names"] = np.array([n.encode() for n in weight_names], dtype="S")
        group.attrs["layer_names"] = np.array([n.encode() for n in names], dtype="S")
        group.attrs["keras_version"] = version
        group.attrs["backend"] = "jax"
    return buffer.getvalue()
