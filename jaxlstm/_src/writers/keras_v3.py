"""Write a :class:`KerasModel` as a Keras 3 ``.keras`` archive: ``metadata.json``,
``config.json`` and ``model.weights.h5`` laid out as Keras 3's own saver lays it out."""

from __future__ import annotations

import datetime
import io
import json
import zipfile

import h5py
import numpy as np

from jaxlstm._src.readers.records import MODEL_CLASSES, walk_model_config

KERAS3_VERSION = "3.0.0"  # the oldest Keras 3 that reads the archives written here


def _write_vars(h5: h5py.File, path: str, arrays) -> None:
    group = h5.require_group(f"{path}/vars")
    for i, array in enumerate(arrays):
        group.create_dataset(str(i), data=np.asarray(array, np.float32))


def weights_h5(model, config: dict) -> bytes:
    """``model.weights.h5`` for ``config`` (Keras 3 layout) from the model's current weights."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        h5.require_group("vars")
        h5.require_group("layers")
        for cl in walk_model_config(config):
            h5.require_group(f"{cl.v3_path}/vars")
            if cl.class_name in MODEL_CLASSES or cl.class_name == "InputLayer":
                continue
            arrays = [w for w, _ in model.layer("/".join(cl.names)).keras_weights()]
            if not arrays:
                continue
            inner = cl.config.get("layer", {}) if isinstance(cl.config.get("layer"), dict) else {}
            if cl.class_name == "TimeDistributed":
                base = f"{cl.v3_path}/layer"
                h5.require_group(f"{base}/vars")
                rnn = inner.get("class_name") in ("LSTM", "CuDNNLSTM", "RNN", "Bidirectional")
                _write_vars(h5, f"{base}/cell" if rnn else base, arrays)
            elif cl.class_name == "Bidirectional":
                half = len(arrays) // 2
                for side, part in (
                    ("forward_layer", arrays[:half]),
                    ("backward_layer", arrays[half:]),
                ):
                    h5.require_group(f"{cl.v3_path}/{side}/vars")
                    _write_vars(h5, f"{cl.v3_path}/{side}/cell", part)
            elif cl.class_name in ("LSTM", "CuDNNLSTM", "RNN"):
                _write_vars(h5, f"{cl.v3_path}/cell", arrays)
            elif hasattr(layer := model.layer("/".join(cl.names)), "keras_v3_groups"):
                for sub, part in layer.keras_v3_groups():  # e.g. MultiHeadAttention's
                    h5.require_group(f"{cl.v3_path}/{sub}/vars")
                    _write_vars(h5, f"{cl.v3_path}/{sub}", part)
            else:
                _write_vars(h5, cl.v3_path, arrays)
    return buffer.getvalue()


def archive_bytes(model, config: dict, keras_version: str) -> bytes:
    """The whole ``.keras`` archive as bytes."""
    metadata = {
        "keras_version": keras_version if keras_version.startswith("3") else KERAS3_VERSION,
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "saved_by": "jaxlstm",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", json.dumps(metadata))
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.h5", weights_h5(model, config))
    return buffer.getvalue()
