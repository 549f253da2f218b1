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
from jaxlstm._src.readers.h5attrs import (
    attr,
    attr_list,
    check_lstm_shapes,
    child,
    json_attr,
    read_dataset,
    text,
)
from jaxlstm._src.readers.limits import Budget
from jaxlstm._src.readers.records import (
    KerasFile,
    LayerRecord,
    Select,
    attach_weights,
    compile_settings,
    model_tree,
    record_from_config,
)
from jaxlstm._src.vocabulary import (
    MODEL_CLASSES,
    RECURRENT_CLASSES,
    clean_version,
    has_component,
    keras_major,
    split_directions,
    strip_suffix,
)


def is_legacy_h5(f: h5py.File) -> bool:
    return "model_weights" in f or attr_list(f, "layer_names", f.filename) is not None


def read_legacy_h5(
    f: h5py.File, path: str, budget: Budget | None = None, select: Select | None = None
) -> KerasFile:
    """Read the LSTM layers of an open legacy Keras HDF5 file (with a model config and
    ``select``, only the arrays of the layers it names: see ``read_keras_file``)."""
    budget = budget if budget is not None else Budget(path)
    full = "model_weights" in f
    group = child(f, "model_weights", path, "'model_weights'") if full else f
    if not isinstance(group, h5py.Group):
        raise KerasFileError(f"{path}: 'model_weights' is not a group; the file is damaged.")
    version = text(attr(f, "keras_version", path, attr(group, "keras_version", path, "1")))
    version = clean_version(version, path)
    layer_names = attr_list(group, "layer_names", path)
    if layer_names is None:
        raise KerasFileError(
            f"{path}: the weights group has no 'layer_names' attribute; expected a Keras HDF5 "
            "file written by model.save() or model.save_weights()."
        )
    duplicates = sorted({n for n in layer_names if layer_names.count(n) > 1})
    if duplicates:
        raise KerasFileError(
            f"{path}: 'layer_names' lists layer(s) {duplicates} more than once; Keras requires "
            "unique layer names, so the file is damaged or crafted."
        )
    kind = "model (model.save)" if full else "weights (save_weights)"
    kf = KerasFile(path, f"Keras {keras_major(version)} HDF5 {kind}", version)

    def datasets(layer_name: str) -> list[tuple[str, object]]:
        """A layer's arrays, as (name, h5py object) not yet read."""
        g = child(group, layer_name, path, f"layer {layer_name!r}")
        if not isinstance(g, h5py.Group):
            raise KerasFileError(
                f"{path}: layer {layer_name!r} is listed in 'layer_names' but has no group in "
                "the file; the file is truncated or damaged."
            )
        out = []
        for wname in attr_list(g, "weight_names", path) or []:
            ds = child(g, wname, path, f"layer {layer_name!r}: array {wname!r}") if wname else None
            if ds is None:
                raise KerasFileError(
                    f"{path}: layer {layer_name!r} lists array {wname!r} in 'weight_names' but "
                    "the file has no such dataset; the file is truncated or damaged."
                )
            out.append((wname, ds))
        return out

    def read(layer_name: str, items) -> list[tuple[str, np.ndarray]]:
        return [
            (n, read_dataset(ds, f"layer {layer_name!r}: array {n!r}", budget)) for n, ds in items
        ]

    has_config = attr(f, "model_config", path) is not None
    config = json_attr(f, "model_config", path) if has_config else None
    if config is not None:
        kf.config, kf.tree = config, model_tree(config, path)
        keep = select(kf.tree, version) if select is not None else None
        if attr(f, "training_config", path) is not None:
            raw = json_attr(f, "training_config", path)
            kf.compile_config = compile_settings(raw, "attribute 'training_config'", path)
        _from_config(kf, layer_names, datasets, read, version, path, keep)
    else:
        _from_weights_only(kf, layer_names, lambda n: read(n, datasets(n)), version, path)
    return kf


def _from_config(kf, layer_names, datasets, read, version, path, keep=None):
    listed = set(layer_names)
    for cl in kf.tree.descendants():
        if keep is not None and cl.names[0] not in keep:
            continue
        top = cl.names[0]
        name = "/".join(cl.names)
        found = record_from_config(cl, name, version, path)
        if found is not None:
            found.custom = cl.custom
        if cl.class_name not in MODEL_CLASSES and top in listed:
            items = datasets(top)
            if len(cl.names) > 1:
                items = [w for w in items if cl.names[-1] in strip_suffix(w[0]).split("/")]
            if found is not None:  # check shapes against the config before reading
                for part in (found.forward, found.backward) if found.forward else (found,):
                    check_lstm_shapes(_direction(items, part, found), part, path)
            kf.arrays[name] = read(name, items)
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


def _direction(items, part: LayerRecord, record: LayerRecord):
    """The arrays of one direction of a Bidirectional record (all of them otherwise)."""
    if part is record:
        return items
    fw, bw = split_directions(items, record.name)
    return fw if part is record.forward else bw


_KERAS1_NAME = {12: re.compile(r"_[WUb]_[icfo]$"), 9: re.compile(r"_[WUb]_[zrh]$")}
_KERAS1_FAMILY = {12: "LSTM", 9: "GRU"}


def rnn_family(weights) -> str | None:
    """Which recurrent layer's arrays these are when no config says so, or ``None``: Keras 1's
    per-gate arrays (twelve ``W/U/b_{i,c,f,o}`` for an LSTM, nine ``W/U/b_{z,r,h}`` for a GRU),
    else kernel/recurrent_kernel(/bias) whose recurrent kernel ``(u, g*u)`` gives the gates:
    4 an LSTM (bias ``4u``, or ``8u`` CuDNN), 3 a GRU (bias ``(3u,)``, ``(2, 3u)``, or ``6u``
    CuDNN), 1 a SimpleRNN (bias ``u``); a recurrent kernel ``(*k, f, 4f)`` with 1 to 3 kernel
    axes is a ``ConvLSTM{1,2,3}D``'s."""
    if len(weights) in _KERAS1_NAME:
        pattern = _KERAS1_NAME[len(weights)]
        ok = all(pattern.search(strip_suffix(n)) for n, _ in weights)
        return _KERAS1_FAMILY[len(weights)] if ok else None
    if len(weights) not in (2, 3):
        return None
    shapes = [np.shape(a) for _, a in weights]
    conv = _conv_lstm_rank(shapes)
    if conv:
        return f"ConvLSTM{conv}D"
    if len(shapes[1]) != 2 or len(shapes[0]) != 2 or shapes[1][0] < 1:
        return None
    u = shapes[1][0]
    g, rem = divmod(shapes[1][1], u)
    biases = {4: ((4 * u,), (8 * u,)), 3: ((3 * u,), (2, 3 * u), (6 * u,)), 1: ((u,),)}
    if rem or g not in biases or shapes[0][1] != g * u:
        return None
    if len(weights) == 3 and shapes[2] not in biases[g]:
        return None
    return {4: "LSTM", 3: "GRU", 1: "SimpleRNN"}[g]


def _conv_lstm_rank(shapes) -> int:
    """The rank (1, 2, 3) of a ConvLSTM whose arrays have these shapes, else 0: kernel
    ``(*k, in, 4f)``, recurrent kernel ``(*k, f, 4f)``, bias ``(4f,)``."""
    kernel, recurrent = shapes[0], shapes[1]
    rank = len(recurrent) - 2
    if rank not in (1, 2, 3) or len(kernel) != rank + 2 or recurrent[-2] < 1:
        return 0
    f = recurrent[-2]
    if recurrent[-1] != 4 * f or kernel[-1] != 4 * f or kernel[:rank] != recurrent[:rank]:
        return 0
    return rank if len(shapes) == 2 or shapes[2] == (4 * f,) else 0


def looks_like_rnn(weights) -> bool:
    """Whether a layer's arrays, with no config to say so, are one recurrent layer's
    (:func:`rnn_family`)."""
    return rnn_family(weights) is not None


def weights_only_class(weights) -> tuple[str, str]:
    """The Keras class that wrote one recurrent layer's arrays when no config says it, and the
    evidence: a bias of ``8u`` / ``6u`` is only ever written by ``CuDNNLSTM`` / ``CuDNNGRU``
    (whose activations are fixed to tanh and sigmoid), per-gate arrays by Keras 1, the rest by
    ``LSTM``, ``GRU`` or ``SimpleRNN`` (by the recurrent kernel's ``g*u`` columns)."""
    family = rnn_family(weights)
    if len(weights) in _KERAS1_NAME:
        return family, f"Keras 1 layout, {len(weights)} per-gate arrays"
    if family.startswith("ConvLSTM"):
        rank = int(family[8])
        return family, f"Keras layout, recurrent_kernel ({'k, ' * rank}f, 4f)"
    u = np.shape(weights[1][1])[0]
    cols = {"LSTM": "4u", "GRU": "3u", "SimpleRNN": "u"}[family]
    if family != "SimpleRNN" and len(weights) == 3:
        g = 4 if family == "LSTM" else 3
        if np.shape(weights[2][1]) == (2 * g * u,):
            return f"CuDNN{family}", f"CuDNN layout, bias {2 * g}u"
    if len(weights) == 2:
        return family, f"Keras layout, recurrent_kernel (u, {cols}), no bias"
    if family == "GRU":
        two_rows = len(np.shape(weights[2][1])) == 2
        return family, f"Keras layout, bias {'(2, 3u)' if two_rows else '(3u,)'}"
    return family, f"Keras layout, bias {cols}"


def weights_only_record(name, weights, version, path, wrapper=None, directions=None):
    """The record of a recurrent layer (or, with ``directions=(fw, bw)``, a Bidirectional one)
    found in a file without a model config: its class and options are inferred from the arrays, and
    ``inferred`` says from what."""
    if directions is None:
        cls, why = weights_only_class(weights)
        return LayerRecord(
            name, cls, {}, weights, version, path, wrapper, inferred={"class_name": why}
        )
    fw, bw = directions
    fw_cls, fw_why = weights_only_class(fw)
    bw_cls, bw_why = weights_only_class(bw)
    backward_note = "the backward half of a Bidirectional"
    return LayerRecord(
        name,
        "Bidirectional",
        {},
        weights,
        version,
        path,
        wrapper,
        forward=LayerRecord(
            f"{name}/forward", fw_cls, {}, fw, version, path, inferred={"class_name": fw_why}
        ),
        backward=LayerRecord(
            f"{name}/backward",
            bw_cls,
            {"go_backwards": True},
            bw,
            version,
            path,
            inferred={"class_name": bw_why, "go_backwards": backward_note},
        ),
        inferred={
            "class_name": f"two {RECURRENT_CLASSES[fw_cls].family}s' arrays in one layer",
            "merge_mode": "Keras default",
        },
    )


def _stacked_groups(weights) -> list[list] | None:
    """A weights-only layer's arrays per stacked cell, cell 0 first, when their names say they
    are stacked cells (a ``stacked_rnn_cells`` path component, then one component per cell:
    ``stk/stacked_rnn_cells/lstm_cell/kernel:0``, in Keras's order) and each cell's arrays are
    one recurrent cell's; else ``None``."""
    groups: dict[str, list] = {}
    for wname, array in weights:
        parts = strip_suffix(wname).split("/")
        if len(parts) < 3 or not parts[-3].startswith("stacked_rnn_cells"):
            return None
        groups.setdefault("/".join(parts[:-1]), []).append((wname, array))
    cells = list(groups.values())
    return cells if cells and all(looks_like_rnn(c) for c in cells) else None


def stacked_weights_only_record(
    name, cells, version, path, why="array names under stacked_rnn_cells, in Keras's order"
) -> LayerRecord:
    """The record of stacked cells found in a file without a model config (``cells``: each
    cell's arrays, cell 0 first): each cell's class and options inferred from its arrays
    (:func:`weights_only_record`); ``why`` says how the cells and their order were found."""
    return LayerRecord(
        name,
        "StackedRNNCells",
        {},
        [w for c in cells for w in c],
        version,
        path,
        cells=[
            weights_only_record(f"{name}/{strip_suffix(c[0][0]).split('/')[-2]}", c, version, path)
            for c in cells
        ],
        inferred={"class_name": why},
    )


def _stacked_weights_only(name, weights, stacked, version, path) -> LayerRecord:
    """Stacked cells, or a Bidirectional of two stacks when the array names say which half is
    which (``forward_*`` / ``backward_*`` components, as Keras names them)."""
    fw = [w for w in weights if has_component(w[0], "forward")]
    bw = [w for w in weights if has_component(w[0], "backward")]
    halves = [_stacked_groups(part) for part in (fw, bw)]
    if not (fw and bw and len(fw) + len(bw) == len(weights) and all(halves)):
        return stacked_weights_only_record(name, stacked, version, path)
    forward, backward = (
        stacked_weights_only_record(f"{name}/{side}", cells, version, path)
        for side, cells in zip(("forward", "backward"), halves, strict=True)
    )
    return bidirectional_of_stacks(name, forward, backward, weights, version, path)


def bidirectional_of_stacks(name, forward, backward, weights, version, path) -> LayerRecord:
    """The weights-only record of a Bidirectional over two stacks of cells."""
    backward.config["go_backwards"] = True
    backward.inferred["go_backwards"] = "the backward half of a Bidirectional"
    return LayerRecord(
        name,
        "Bidirectional",
        {},
        weights,
        version,
        path,
        forward=forward,
        backward=backward,
        inferred={
            "class_name": "two stacks of cells' arrays in one layer",
            "merge_mode": "Keras default",
        },
    )


def _from_weights_only(kf, layer_names, arrays, version, path):
    for name in layer_names:
        weights = arrays(name)
        half = len(weights) // 2
        stacked = _stacked_groups(weights)
        if stacked is not None:
            kf.layers[name] = _stacked_weights_only(name, weights, stacked, version, path)
        elif looks_like_rnn(weights):
            kf.layers[name] = weights_only_record(name, weights, version, path)
        elif len(weights) in (4, 6, 18, 24) and looks_like_rnn(weights[:half]):
            fw, bw = split_directions(weights, name)
            if looks_like_rnn(fw) and looks_like_rnn(bw):
                kf.layers[name] = weights_only_record(
                    name, weights, version, path, directions=(fw, bw)
                )
        elif weights:
            kf.other_layers.append((name, "?"))
