"""Keras 3's native formats.

* ``.keras``: a zip archive of ``metadata.json`` (``keras_version``), ``config.json`` (the model)
  and ``model.weights.h5``;
* ``.weights.h5`` (``model.save_weights``): that HDF5 file alone, with no config.

In the HDF5 file each object's variables are datasets ``0, 1, ...`` under ``<path>/vars``; an
LSTM keeps them on its cell (``layers/lstm/cell/vars``: kernel, recurrent_kernel, bias),
Bidirectional under ``forward_layer`` and ``backward_layer``, TimeDistributed under ``layer``.
Paths are built from class names in snake case, numbered per container (``lstm``, ``lstm_1``),
not from layer names; recent Keras also records the layer name in ``vars``' ``name`` attribute.
"""

from __future__ import annotations

import io
import json
import zipfile

import h5py
import numpy as np

from jaxlstm._src.errors import KerasFileError
from jaxlstm._src.readers.h5attrs import text
from jaxlstm._src.readers.legacy_h5 import looks_like_lstm
from jaxlstm._src.readers.records import (
    MODEL_CLASSES,
    KerasFile,
    LayerRecord,
    record_from_config,
    walk_model_config,
)


def is_v3_weights(f: h5py.File) -> bool:
    return "layers" in f or "vars" in f


def read_keras_archive(path: str) -> KerasFile:
    """Read the LSTM layers of a Keras 3 ``.keras`` zip archive."""
    try:
        with zipfile.ZipFile(path) as z:
            members = set(z.namelist())
            for needed in ("config.json", "model.weights.h5"):
                if needed not in members:
                    raise KerasFileError(
                        f"{path}: the .keras archive has no {needed!r} (it has "
                        f"{sorted(members)}); expected a file written by Keras 3 model.save()."
                    )
            metadata = _json(z, "metadata.json", path) if "metadata.json" in members else {}
            config = _json(z, "config.json", path)
            weights = z.read("model.weights.h5")
    except zipfile.BadZipFile as err:
        raise KerasFileError(f"{path}: not a readable .keras zip archive ({err}).") from None
    version = str(metadata.get("keras_version", "3")) if isinstance(metadata, dict) else "3"
    try:
        with h5py.File(io.BytesIO(weights), "r") as f:
            return read_v3_weights(f, path, config, version, "Keras 3 archive (.keras)")
    except OSError as err:  # h5py's report of a damaged HDF5 member
        raise KerasFileError(
            f"{path}: model.weights.h5 in the archive is unreadable ({err})."
        ) from None


def _json(z: zipfile.ZipFile, member: str, path: str):
    try:
        return json.loads(z.read(member))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise KerasFileError(
            f"{path}: {member} in the archive is not valid JSON ({err})."
        ) from None


def read_v3_weights(
    f: h5py.File, path: str, config=None, version: str = "3", fmt="Keras 3 weights (.weights.h5)"
) -> KerasFile:
    """Read the LSTM layers of an open Keras 3 weights HDF5 file, with the model config if known."""
    kf = KerasFile(path, fmt, version, config=config)
    if config is None:
        _walk_groups(kf, f, "", version, path)
        return kf
    for cl in walk_model_config(config):
        name = "/".join(cl.names)
        if cl.class_name not in MODEL_CLASSES and cl.v3_path in f:
            kf.arrays[name] = _all_vars(f[cl.v3_path])
        record = record_from_config(cl.class_name, cl.config, name, version, path)
        if record is None:
            if cl.class_name not in MODEL_CLASSES:
                kf.other_layers.append((name, cl.class_name))
            continue
        group = _group(f, cl.v3_path, path, name)
        if record.wrapper == "TimeDistributed":
            group = _group(f, f"{cl.v3_path}/layer", path, name)
        if record.class_name == "Bidirectional":
            fw = _cell_vars(f, f"{group.name}/forward_layer", path, name)
            bw = _cell_vars(f, f"{group.name}/backward_layer", path, name)
            record.weights, record.forward.weights, record.backward.weights = fw + bw, fw, bw
        else:
            record.weights = _cell_vars(f, group.name, path, name)
        kf.layers[name] = record
    return kf


def _group(f, v3_path: str, path: str, layer: str) -> h5py.Group:
    if v3_path not in f:
        raise KerasFileError(
            f"{path}: layer {layer!r} should keep its weights at {v3_path!r} in "
            "model.weights.h5 but there is no such group; the archive is damaged or was "
            "written by an unsupported Keras version."
        )
    return f[v3_path]


def _cell_vars(f, layer_path: str, path: str, layer: str) -> list[tuple[str, np.ndarray]]:
    """An LSTM layer's variables (on its cell), named kernel/recurrent_kernel/bias by position."""
    vars_path = f"{layer_path}/cell/vars"
    if vars_path not in f:
        raise KerasFileError(
            f"{path}: layer {layer!r} has no variables at {vars_path!r}; expected an LSTM's "
            "kernel, recurrent_kernel and bias there."
        )
    group = f[vars_path]
    keys = sorted(group.keys(), key=lambda k: int(k) if k.isdigit() else 1 << 30)
    return [(f"{vars_path}/{k}", np.asarray(group[k][()])) for k in keys]


# Sub-objects whose variables belong to a layer, in the order Keras 2 lists a layer's weights.
_OWN_CHILDREN = ("vars", "cell", "layer", "forward_layer", "backward_layer")


def _all_vars(group: h5py.Group) -> list[tuple[str, np.ndarray]]:
    """Every variable of one layer (not of nested models' layers), in Keras's weight order."""
    out = []
    if "vars" in group:
        keys = sorted(group["vars"], key=lambda k: int(k) if k.isdigit() else 1 << 30)
        out += [(f"{group.name}/vars/{k}", np.asarray(group["vars"][k][()])) for k in keys]
    for child in _OWN_CHILDREN[1:]:
        if child in group and isinstance(group[child], h5py.Group):
            out += _all_vars(group[child])
    return out


def _walk_groups(kf: KerasFile, group: h5py.Group, prefix: str, version: str, path: str):
    """No config: find LSTM-shaped layers by structure, named by their recorded layer name."""
    for key in group:
        child = group[key]
        if not isinstance(child, h5py.Group):
            continue
        rel = f"{prefix}{key}"
        wrapper = None
        if "layer" in child and isinstance(child["layer"], h5py.Group):
            wrapper, child = "TimeDistributed", child["layer"]
        name = _recorded_name(group[key], rel)
        if "forward_layer" in child and "backward_layer" in child:
            fw = _cell_vars(group.file, f"{child.name}/forward_layer", path, name)
            bw = _cell_vars(group.file, f"{child.name}/backward_layer", path, name)
            if looks_like_lstm(fw) and looks_like_lstm(bw):
                kf.layers[name] = LayerRecord(
                    name,
                    "Bidirectional",
                    {},
                    fw + bw,
                    version,
                    path,
                    wrapper,
                    forward=LayerRecord(f"{name}/forward", "LSTM", {}, fw, version, path),
                    backward=LayerRecord(
                        f"{name}/backward", "LSTM", {"go_backwards": True}, bw, version, path
                    ),
                )
            continue
        if "cell" in child and "vars" in child["cell"]:
            weights = _cell_vars(group.file, child.name, path, name)
            if looks_like_lstm(weights):
                kf.layers[name] = LayerRecord(name, "LSTM", {}, weights, version, path, wrapper)
            continue
        _walk_groups(kf, child, f"{rel}/", version, path)


def _recorded_name(group: h5py.Group, fallback: str) -> str:
    if "vars" in group and "name" in group["vars"].attrs:
        return text(group["vars"].attrs["name"])
    return fallback.removeprefix("layers/").replace("/layers/", "/")
