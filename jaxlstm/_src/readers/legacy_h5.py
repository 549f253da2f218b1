"""Keras's HDF5 format, as written by Keras 1, Keras 2, tf.keras and Keras 3's legacy saver.

Two flavours share it:

* full model (``model.save("m.h5")``): root attributes ``keras_version``, ``backend`` and
  ``model_config`` (JSON); weights under ``model_weights``;
* weights only (``model.save_weights("w.h5")``): no config; weights at the root.

Either way the weights group lists its layers in the attribute ``layer_names`` and each layer
group its arrays in ``weight_names`` (both split into ``name0``, ``name1``, ... when large).
Keras 1 files carry no ``keras_version`` (1.0, 1.1) or one starting with ``1.``.
"""

from __future__ import annotations

import re

import h5py
import numpy as np

from jaxlstm._src.errors import KerasFileError
from jaxlstm._src.readers.h5attrs import attr_list, json_attr, text
from jaxlstm._src.readers.records import (
    MODEL_CLASSES,
    KerasFile,
    LayerRecord,
    attach_weights,
    record_from_config,
    split_directions,
    strip_suffix,
    walk_model_config,
)


def is_legacy_h5(f: h5py.File) -> bool:
    return "model_weights" in f or attr_list(f, "layer_names") is not None


def read_legacy_h5(f: h5py.File, path: str) -> KerasFile:
    """Read the LSTM layers of an open legacy Keras HDF5 file."""
    full = "model_weights" in f
    group = f["model_weights"] if full else f
    version = text(f.attrs.get("keras_version", group.attrs.get("keras_version", "1")))
    layer_names = attr_list(group, "layer_names")
    if layer_names is None:
        raise KerasFileError(
            f"{path}: the weights group has no 'layer_names' attribute; expected a Keras HDF5 "
            "file written by model.save() or model.save_weights()."
        )
    major = version.split(".")[0] or "1"
    kind = "model (model.save)" if full else "weights (save_weights)"
    kf = KerasFile(path, f"Keras {major} HDF5 {kind}", version)

    def arrays(layer_name: str) -> list[tuple[str, np.ndarray]]:
        if layer_name not in group:
            raise KerasFileError(
                f"{path}: layer {layer_name!r} is listed in 'layer_names' but has no group in "
                "the file; the file is truncated or damaged."
            )
        g = group[layer_name]
        out = []
        for wname in attr_list(g, "weight_names") or []:
            if wname not in g:
                raise KerasFileError(
                    f"{path}: layer {layer_name!r} lists array {wname!r} in 'weight_names' but "
                    "the file has no such dataset; the file is truncated or damaged."
                )
            out.append((wname, np.asarray(g[wname][()])))
        return out

    config = json_attr(f, "model_config", path) if "model_config" in f.attrs else None
    if config is not None:
        kf.config = config
        _from_config(kf, config, layer_names, arrays, version, path)
    else:
        _from_weights_only(kf, layer_names, arrays, version, path)
    return kf


def _from_config(kf, config, layer_names, arrays, version, path):
    listed = set(layer_names)
    for cl in walk_model_config(config):
        top = cl.names[0]
        name = "/".join(cl.names)
        if cl.class_name not in MODEL_CLASSES and top in listed:
            weights = arrays(top)
            if len(cl.names) > 1:
                weights = [w for w in weights if cl.names[-1] in strip_suffix(w[0]).split("/")]
            kf.arrays[name] = weights
        found = record_from_config(cl.class_name, cl.config, name, version, path)
        if found is None:
            if cl.class_name not in MODEL_CLASSES:
                kf.other_layers.append((name, cl.class_name))
            continue
        if top not in listed:
            raise KerasFileError(
                f"{path}: the model config has layer {top!r} but the weights have no such "
                f"layer (found {sorted(listed)}); the file is damaged."
            )
        kf.layers[name] = attach_weights(found, kf.arrays[name])


_KERAS1_NAME = re.compile(r"_[WUb]_[icfo]$")


def looks_like_lstm(weights) -> bool:
    """Whether a layer's arrays, with no config to say so, are one LSTM's: Keras 1's twelve
    per-gate arrays, or kernel/recurrent_kernel(/bias) with a recurrent kernel ``(u, 4u)``."""
    if len(weights) == 12:
        return all(_KERAS1_NAME.search(strip_suffix(n)) for n, _ in weights)
    if len(weights) not in (2, 3):
        return False
    shapes = [np.shape(a) for _, a in weights]
    if len(shapes[1]) != 2 or len(shapes[0]) != 2:
        return False
    u = shapes[1][0]
    bias_ok = len(weights) == 2 or shapes[2] in ((4 * u,), (8 * u,))
    return shapes[1] == (u, 4 * u) and shapes[0][1] == 4 * u and bias_ok


def _from_weights_only(kf, layer_names, arrays, version, path):
    for name in layer_names:
        weights = arrays(name)
        half = len(weights) // 2
        if looks_like_lstm(weights):
            kf.layers[name] = LayerRecord(name, "LSTM", {}, weights, version, path)
        elif len(weights) in (4, 6, 24) and looks_like_lstm(weights[:half]):
            fw, bw = split_directions(weights, name)
            if looks_like_lstm(fw) and looks_like_lstm(bw):
                kf.layers[name] = LayerRecord(
                    name,
                    "Bidirectional",
                    {},
                    weights,
                    version,
                    path,
                    forward=LayerRecord(f"{name}/forward", "LSTM", {}, fw, version, path),
                    backward=LayerRecord(
                        f"{name}/backward", "LSTM", {"go_backwards": True}, bw, version, path
                    ),
                )
        elif weights:
            kf.other_layers.append((name, "?"))
