"""Write a :class:`KerasModel` in Keras 3's formats: a ``.weights.h5`` (what
``model.save_weights`` writes and ``model.load_weights`` reads) and a ``.keras`` archive
(``metadata.json``, ``config.json`` and that same ``model.weights.h5``), laid out as Keras 3's own
saver (``keras/src/saving/saving_lib.py``) lays them out.

Nothing is built in memory: h5py writes the weights straight to a file, one array at a time, and
the archive stores its members uncompressed (``ZIP_STORED``, as Keras does), the weights copied
into it in 1 MiB pieces. Peak memory is the largest array, not the file."""

from __future__ import annotations

import datetime
import json
import shutil
import zipfile

import h5py
import numpy as np

from jaxlstm._src.readers.records import LayerNode, model_tree
from jaxlstm._src.vocabulary import (
    MODEL_CLASSES,
    RECURRENT_CLASSES,
    keras_major,
    snake_case,
    stacked_cells,
)

KERAS3_VERSION = "3.0.0"  # the oldest Keras 3 that reads the archives written here
WEIGHTS_MEMBER = "model.weights.h5"  # saving_lib._VARS_FNAME_H5
_COPY_CHUNK = 1 << 20


def _write_vars(h5: h5py.File, path: str, arrays) -> None:
    group = h5.require_group(f"{path}/vars")
    for i, array in enumerate(arrays):
        group.create_dataset(str(i), data=np.asarray(array, np.float32))


def _write_rnn(h5: h5py.File, path: str, node: LayerNode, arrays) -> None:
    """An RNN layer's variables at ``path`` (the layer's group): on its cell, or for stacked
    cells on each cell of ``cell/cells`` (``<snake_case class>[_n]``, numbered per class in the
    cells' order, as Keras 3's saver names a list's objects), cell 0's arrays first."""
    cells = stacked_cells(node.class_name, node.config)
    if cells is None:
        _write_vars(h5, f"{path}/cell", arrays)
        return
    h5.require_group(f"{path}/cell/vars")
    used, i = {}, 0
    for family, cell_cfg in cells:
        snake = snake_case(f"{family}Cell")
        used[snake] = used.get(snake, -1) + 1
        n = 2 if cell_cfg.get("use_bias", True) is False else 3
        key = snake + (f"_{used[snake]}" if used[snake] else "")
        _write_vars(h5, f"{path}/cell/cells/{key}", arrays[i : i + n])
        i += n


def write_weights_h5(model, config: dict, target: str) -> None:
    """Write Keras 3's weights file for ``config`` (a Keras 3 config) to the path ``target``,
    from the model's current weights: under ``layers/<snake_case class>[_n]/.../vars`` each
    variable as dataset ``"0"``, ``"1"``, ... in the layer's own order (``saving_lib``'s
    ``H5IOStore``). Layers are visited in the config's order, whatever order the module's own
    containers have come to hold them in."""
    with h5py.File(target, "w") as h5:
        h5.require_group("vars")
        h5.require_group("layers")
        for cl in model_tree(config, target).descendants():
            h5.require_group(f"{cl.v3_path}/vars")
            if cl.class_name in MODEL_CLASSES or cl.class_name == "InputLayer":
                continue
            arrays = [w for w, _ in model.layer("/".join(cl.names)).keras_weights()]
            if not arrays:
                continue
            inner = cl.inner
            if cl.class_name == "TimeDistributed":
                base = f"{cl.v3_path}/layer"
                h5.require_group(f"{base}/vars")
                if inner is not None and inner.class_name in (
                    *RECURRENT_CLASSES,
                    "RNN",
                    "Bidirectional",
                ):
                    _write_rnn(h5, base, inner, arrays)
                else:
                    _write_vars(h5, base, arrays)
            elif cl.class_name == "Bidirectional":
                half = len(arrays) // 2
                backward = cl.nested.get("backward_layer", inner)
                for side, part, node in (
                    ("forward_layer", arrays[:half], inner),
                    ("backward_layer", arrays[half:], backward),
                ):
                    h5.require_group(f"{cl.v3_path}/{side}/vars")
                    _write_rnn(h5, f"{cl.v3_path}/{side}", node, part)
            elif cl.class_name in (*RECURRENT_CLASSES, "RNN"):  # variables on the cell
                _write_rnn(h5, cl.v3_path, cl, arrays)
            elif hasattr(layer := model.layer("/".join(cl.names)), "keras_v3_groups"):
                for sub, part in layer.keras_v3_groups():  # e.g. MultiHeadAttention's
                    h5.require_group(f"{cl.v3_path}/{sub}/vars")
                    _write_vars(h5, f"{cl.v3_path}/{sub}", part)
            else:
                _write_vars(h5, cl.v3_path, arrays)


def write_archive(model, config: dict, keras_version: str, target: str, scratch: str) -> None:
    """Write the ``.keras`` archive to the path ``target``. ``scratch`` is a path the weights file
    is first written to (h5py needs a seekable file; a zip member being written is not one), then
    streamed into the archive; the caller removes it."""
    metadata = {
        "keras_version": keras_version if keras_major(keras_version) >= 3 else KERAS3_VERSION,
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "saved_by": "jaxlstm",
    }
    write_weights_h5(model, config, scratch)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("metadata.json", json.dumps(metadata))
        z.writestr("config.json", json.dumps(config))
        member = zipfile.ZipInfo.from_file(scratch, WEIGHTS_MEMBER)  # its size decides zip64
        with open(scratch, "rb") as src, z.open(member, "w") as dst:
            shutil.copyfileobj(src, dst, _COPY_CHUNK)
