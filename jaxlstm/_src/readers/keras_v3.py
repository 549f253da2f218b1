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
import lzma
import posixpath
import zipfile
import zlib

import h5py
import numpy as np

from jaxlstm._src.errors import KerasFileError, UnsafeFileError
from jaxlstm._src.readers import limits
from jaxlstm._src.readers.h5attrs import (
    attr,
    check_global_heaps,
    check_lstm_shapes,
    child,
    parse_json,
    read_dataset,
    scan_hdf5,
    text,
)
from jaxlstm._src.readers.legacy_h5 import (
    bidirectional_of_stacks,
    looks_like_rnn,
    stacked_weights_only_record,
    weights_only_record,
)
from jaxlstm._src.readers.limits import Budget, human
from jaxlstm._src.readers.records import (
    KerasFile,
    LayerNode,
    LayerRecord,
    Select,
    compile_settings,
    model_tree,
    record_from_config,
)
from jaxlstm._src.readers.translate import parse_errors
from jaxlstm._src.vocabulary import MODEL_CLASSES, clean_version, snake_case

# What zipfile raises on damaged archives and members.
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    KeyError,
    IndexError,
    OverflowError,
)
_CHUNK = 1 << 20


def is_v3_weights(f: h5py.File) -> bool:
    return "layers" in f or "vars" in f


def read_keras_archive(path: str, select: Select | None = None) -> KerasFile:
    """Read the LSTM layers of a Keras 3 ``.keras`` zip archive.

    Members are read by name into memory, never extracted (no path is built from a member
    name); each is refused before inflating if it declares more than the archive may hold, and
    inflated chunk by chunk against the same limit in case its header lies."""
    budget = Budget(path)
    with parse_errors(lambda err: f"{path}: not a readable .keras zip archive ({err})."):
        _check_member_count(path)
        with zipfile.ZipFile(path) as z:
            members = _members(z, path)
            for needed in ("config.json", "model.weights.h5"):
                if needed not in members:
                    raise KerasFileError(
                        f"{path}: the .keras archive has no {needed!r} (it has "
                        f"{sorted(members)[:20]}); expected a file written by Keras 3 "
                        "model.save()."
                    )
            metadata = {}
            if "metadata.json" in members:
                raw = _read_member(z, members["metadata.json"], budget)
                metadata = parse_json(raw, "metadata.json in the archive", path)
            raw = _read_member(z, members["config.json"], budget)
            config = parse_json(raw, "config.json in the archive", path)
            weights = _read_member(z, members["model.weights.h5"], budget)
    version = str(metadata.get("keras_version", "3")) if isinstance(metadata, dict) else "3"
    version = clean_version(version, path)
    if not isinstance(config, dict):
        raise KerasFileError(f"{path}: config.json should hold a JSON object (the model config).")
    tree = model_tree(config, path)
    keep = select(tree, version) if select is not None else None
    weights_budget = Budget(path, budget.file_size)  # arrays count against the archive's size
    check_global_heaps(weights, f"{path}: model.weights.h5")
    # h5py's report of a damaged HDF5 member
    with parse_errors(
        lambda err: f"{path}: model.weights.h5 in the archive is unreadable ({err})."
    ):
        with h5py.File(io.BytesIO(weights), "r") as f:
            scan_hdf5(f, f"{path}: model.weights.h5")
            kf = read_v3_weights(
                f,
                path,
                tree,
                version,
                "Keras 3 archive (.keras)",
                budget=weights_budget,
                keep=keep,
            )
    kf.compile_config = compile_settings(
        config.get("compile_config"), "config.json's compile_config", path
    )
    return kf


def _check_member_count(path: str) -> None:
    """Refuse an archive listing more members than a Keras file has, before ``zipfile`` builds
    an object per member (memory proportional to a count the file declares)."""
    with open(path, "rb") as fh:
        try:
            end = zipfile._EndRecData(fh)  # (the stdlib's own end-of-archive reader)
        except (AttributeError, *ZIP_ERRORS):
            return  # ZipFile itself will report the damage
    if end and end[zipfile._ECD_ENTRIES_TOTAL] > limits.MAX_ARCHIVE_MEMBERS:
        raise UnsafeFileError(
            f"{path}: the archive lists {end[zipfile._ECD_ENTRIES_TOTAL]} members; a Keras "
            f"archive has a handful (limit {limits.MAX_ARCHIVE_MEMBERS})."
        )


def _members(z: zipfile.ZipFile, path: str) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by name, refusing unsafe or ambiguous names: none is ever used
    as a file system path, but an archive carrying them was crafted."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in z.infolist():
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if (
            "\x00" in name
            or name.startswith(("/", "\\"))
            or (len(name) > 1 and name[1] == ":")
            or ".." in parts
            or posixpath.isabs(name)
        ):
            raise UnsafeFileError(
                f"{path}: the archive has a member named {name!r}, which is not a plain relative "
                "path (path traversal); Keras never writes one. Nothing was extracted."
            )
        if name in members:
            raise UnsafeFileError(
                f"{path}: the archive has two members named {name!r}; tools disagree on which "
                "one counts, so the archive is ambiguous and refused."
            )
        members[name] = info
    return members


def _read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget) -> bytearray:
    """One member's bytes, refused before inflating when it declares more than the archive may
    hold, and inflated chunk by chunk against that limit in case the header lies."""
    path, name = budget.path, info.filename
    if info.flag_bits & 0x1:
        raise KerasFileError(
            f"{path}: archive member {name!r} is encrypted; Keras never does that."
        )
    limit = budget.limit - budget.used
    if info.file_size > limit:
        raise UnsafeFileError(
            f"{path}: archive member {name!r} declares {human(info.file_size)} uncompressed "
            f"({info.file_size} bytes; {human(info.compress_size)} compressed), over the "
            f"{human(budget.limit)} a {human(budget.file_size)} archive may inflate to "
            "(max(64 MiB, 50x its size)); refusing to inflate it (zip bomb?)."
        )
    data = bytearray()
    with z.open(info) as fh:
        while chunk := fh.read(_CHUNK):
            if len(data) + len(chunk) > min(info.file_size, limit):
                raise UnsafeFileError(
                    f"{path}: archive member {name!r} inflates past its declared "
                    f"{info.file_size} bytes (the header lies); refusing to inflate it further."
                )
            data += chunk
    budget.used += len(data)
    return data


def read_v3_weights(
    f: h5py.File,
    path: str,
    tree: LayerNode | None = None,
    version: str = "3",
    fmt="Keras 3 weights (.weights.h5)",
    budget: Budget | None = None,
    keep: set[str] | None = None,
) -> KerasFile:
    """Read the recurrent layers of an open Keras 3 weights HDF5 file, with the model config's
    tree if known (then only the arrays of the model's own layers named in ``keep``, when
    given)."""
    budget = budget if budget is not None else Budget(path)
    kf = KerasFile(path, fmt, version, config=tree and tree.entry, tree=tree)
    if tree is None:
        _walk_groups(kf, f, "", version, path, budget, set(), 0)
        return kf
    for cl in tree.descendants():
        if keep is not None and cl.names[0] not in keep:
            continue
        name = "/".join(cl.names)
        record = record_from_config(cl, name, version, path)
        if record is not None:
            record.custom = cl.custom
            group = _group(f, cl.v3_path, path, name)
            if record.wrapper == "TimeDistributed":
                group = _group(f, f"{cl.v3_path}/layer", path, name)
            if record.class_name == "Bidirectional":
                fw = _cell_vars(group, "forward_layer", path, name, budget, record.forward)
                bw = _cell_vars(group, "backward_layer", path, name, budget, record.backward)
                record.weights, record.forward.weights, record.backward.weights = fw + bw, fw, bw
            else:
                record.weights = _cell_vars(group, None, path, name, budget, record)
            kf.layers[name] = record
        elif cl.class_name not in MODEL_CLASSES:
            kf.other_layers.append((name, cl.class_name))
        if cl.class_name not in MODEL_CLASSES:
            group = child(f, cl.v3_path, path, f"group {cl.v3_path!r}")
            if record is not None:  # already read (and checked against the config)
                kf.arrays[name] = list(record.weights)
            elif isinstance(group, h5py.Group):
                kf.arrays[name] = _all_vars(group, path, name, budget, 0)
    return kf


def _group(f, v3_path: str, path: str, layer: str) -> h5py.Group:
    group = child(f, v3_path, path, f"layer {layer!r} at {v3_path!r}")
    if not isinstance(group, h5py.Group):
        raise KerasFileError(
            f"{path}: layer {layer!r} should keep its weights at {v3_path!r} in "
            "model.weights.h5 but there is no such group; the archive is damaged or was "
            "written by an unsupported Keras version."
        )
    return group


def _var_keys(group: h5py.Group, path: str, what: str) -> list[str]:
    with parse_errors(lambda err: f"{path}: {what} is unreadable ({err})."):
        keys = list(group.keys())
    return sorted(keys, key=lambda k: (0, int(k), k) if k.isdigit() else (1, 0, k))


def _cell_vars(
    layer: h5py.Group, direction, path: str, name: str, budget: Budget, record: LayerRecord
) -> list[tuple[str, np.ndarray]]:
    """An LSTM layer's variables (on its cell), named kernel/recurrent_kernel/bias by position;
    their shapes are checked against the layer's config before any is read. Stacked cells keep
    theirs per cell (``cell/cells/<snake_case class>[_n]/vars``, numbered per class in the
    cells' order, as Keras 3's saver names a list's objects); each cell record gets its own."""
    base = f"{direction}/cell" if direction else "cell"
    if record.cells is None:
        return _vars_at(layer, f"{base}/vars", path, name, budget, record)
    out, used = [], {}
    for cell in record.cells:
        snake = snake_case(f"{cell.class_name}Cell")
        used[snake] = used.get(snake, -1) + 1
        key = snake + (f"_{used[snake]}" if used[snake] else "")
        cell.weights = _vars_at(layer, f"{base}/cells/{key}/vars", path, name, budget, cell)
        out += cell.weights
    return out


def _vars_at(
    layer: h5py.Group, rel: str, path: str, name: str, budget: Budget, record: LayerRecord
) -> list[tuple[str, np.ndarray]]:
    vars_path = f"{text(layer.name)}/{rel}"
    group = child(layer, rel, path, f"layer {name!r}: {vars_path!r}")
    if not isinstance(group, h5py.Group):
        raise KerasFileError(
            f"{path}: layer {name!r} has no variables at {vars_path!r}; expected an LSTM's "
            "kernel, recurrent_kernel and bias there."
        )
    items = [
        (f"{vars_path}/{k}", child(group, k, path, f"layer {name!r}: {vars_path}/{k}"))
        for k in _var_keys(group, path, f"layer {name!r}: {vars_path!r}")
    ]
    check_lstm_shapes(items, record, path)
    return [(n, read_dataset(ds, f"layer {name!r}: array {n!r}", budget)) for n, ds in items]


# Sub-objects whose variables belong to a layer, in the order Keras 2 lists a layer's weights
# (MultiHeadAttention's four projections last).
_OWN_CHILDREN = (
    "vars",
    "cell",
    "layer",
    "forward_layer",
    "backward_layer",
    *(f"{part}_dense" for part in ("query", "key", "value", "output")),
)


def _all_vars(
    group: h5py.Group, path: str, name: str, budget: Budget, depth: int
) -> list[tuple[str, np.ndarray]]:
    """Every variable of one layer (not of nested models' layers), in Keras's weight order."""
    if depth > limits.MAX_MODEL_DEPTH:
        raise KerasFileError(
            f"{path}: layer {name!r}: groups nested more than {limits.MAX_MODEL_DEPTH} deep at "
            f"{text(group.name)!r}; the file is damaged or hostile."
        )
    out = []
    where = f"layer {name!r}"
    variables = child(group, "vars", path, f"{where}: vars")
    if isinstance(variables, h5py.Group):
        for k in _var_keys(variables, path, f"{where}: vars"):
            array_name = f"{text(group.name)}/vars/{k}"
            ds = child(variables, k, path, f"{where}: {array_name}")
            out.append((array_name, read_dataset(ds, f"{where}: array {array_name!r}", budget)))
    for key in _OWN_CHILDREN[1:]:
        sub = child(group, key, path, f"{where}: {key}")
        if isinstance(sub, h5py.Group):
            out += _all_vars(sub, path, name, budget, depth + 1)
    return out


def _walk_groups(
    kf: KerasFile,
    group: h5py.Group,
    prefix: str,
    version: str,
    path: str,
    budget: Budget,
    seen: set,
    depth: int,
):
    """No config: find LSTM-shaped layers by structure, named by their recorded layer name.
    Each group is visited once (hard and soft links can make cycles), at most
    ``MAX_MODEL_DEPTH`` deep."""
    if depth > limits.MAX_MODEL_DEPTH:
        raise KerasFileError(
            f"{path}: groups nested more than {limits.MAX_MODEL_DEPTH} deep at "
            f"{text(group.name)!r}; the file is damaged or hostile."
        )
    for key in _var_keys(group, path, f"group {text(group.name)!r}"):
        top = child(group, key, path, f"{text(group.name)}/{key}")
        if not isinstance(top, h5py.Group) or hash(top.id) in seen:
            continue
        seen.add(hash(top.id))
        node = top
        rel = f"{prefix}{key}"
        wrapper = None
        inner = child(node, "layer", path, f"{text(node.name)}/layer")
        if isinstance(inner, h5py.Group):
            wrapper, node = "TimeDistributed", inner
        name = _recorded_name(top, rel, path)
        if isinstance(child(node, "cell/cells", path, f"{name}: cell/cells"), h5py.Group):
            stack = _weights_only_stack(node, "cell", name, version, path, budget)
            if stack is not None:
                kf.layers[name] = stack
            continue
        sides = [f"{side}_layer/cell/cells" for side in ("forward", "backward")]
        if all(isinstance(child(node, s, path, f"{name}: {s}"), h5py.Group) for s in sides):
            fw, bw = (
                _weights_only_stack(node, s.removesuffix("/cells"), f"{name}/{d}", version, path,
                                    budget)
                for s, d in zip(sides, ("forward", "backward"), strict=True)
            )  # fmt: skip
            if fw is not None and bw is not None:
                kf.layers[name] = bidirectional_of_stacks(
                    name, fw, bw, fw.weights + bw.weights, version, path
                )
            continue
        if isinstance(child(node, "forward_layer", path, name), h5py.Group) and isinstance(
            child(node, "backward_layer", path, name), h5py.Group
        ):
            record = LayerRecord(name, "Bidirectional", {}, [], version, path)
            fw = _cell_vars(node, "forward_layer", path, name, budget, record)
            bw = _cell_vars(node, "backward_layer", path, name, budget, record)
            if looks_like_rnn(fw) and looks_like_rnn(bw):
                kf.layers[name] = weights_only_record(
                    name, fw + bw, version, path, wrapper, directions=(fw, bw)
                )
            continue
        if isinstance(child(node, "cell/vars", path, f"{name}: cell/vars"), h5py.Group):
            record = LayerRecord(name, "LSTM", {}, [], version, path)
            weights = _cell_vars(node, None, path, name, budget, record)
            if looks_like_rnn(weights):
                kf.layers[name] = weights_only_record(name, weights, version, path, wrapper)
            continue
        _walk_groups(kf, node, f"{rel}/", version, path, budget, seen, depth + 1)


def _weights_only_stack(node, base: str, name: str, version, path, budget) -> LayerRecord | None:
    """Stacked cells in a ``.weights.h5`` without a config (``<base>/cells/<cell>/vars``), or
    ``None`` when a cell's arrays are not one recurrent cell's. The file does not record the
    cells' order, only names numbered per class (``lstm_cell``, ``lstm_cell_1``, ...): it is
    recovered from that numbering and the sizes (cell k+1's kernel takes cell k's units), and
    refused when more than one order fits."""
    group = child(node, f"{base}/cells", path, f"{name}: {base}/cells")
    cells = {}
    for key in _var_keys(group, path, f"layer {name!r}: {base}/cells"):
        record = LayerRecord(f"{name}/{key}", "LSTM", {}, [], version, path)
        weights = _vars_at(node, f"{base}/cells/{key}/vars", path, name, budget, record)
        if not looks_like_rnn(weights):
            return None
        cells[key] = weights
    orders = _cell_orders(cells)
    if len(orders) != 1:
        shapes = {k: [tuple(np.shape(a)) for _, a in w] for k, w in cells.items()}
        found = f"{len(orders)} orders fit their sizes" if len(cells) <= _MAX_ORDERED else (
            f"more than {_MAX_ORDERED} cells are not searched"
        )  # fmt: skip
        raise KerasFileError(
            f"{path}: layer {name!r} holds stacked cells {shapes} in a weights-only file, which "
            f"does not record their order, and {found}; jaxlstm will not guess. Load the "
            "model's .keras file (or the .weights.h5 with its model through Keras, then "
            "model.save('m.keras'))."
        )
    why = "cells under cell/cells; their order from the names' numbering and the kernel sizes"
    return stacked_weights_only_record(name, [cells[k] for k in orders[0]], version, path, why=why)


_MAX_ORDERED = 8  # stacked cells whose order a weights-only file is searched for


def _cell_orders(cells: dict, limit: int = _MAX_ORDERED) -> list[tuple[str, ...]]:
    """Every order of the cells (by key) that Keras 3 could have saved: keys of one class in
    their numbering order (``gru_cell`` before ``gru_cell_1``), and each cell's kernel taking
    the previous cell's units. More than ``limit`` cells: none is tried."""
    import itertools
    import re

    if len(cells) > limit:
        return []

    def rank(key):
        m = re.fullmatch(r"(.*?)(?:_(\d+))?", key)
        return m.group(1), int(m.group(2) or 0)

    found = []
    for order in itertools.permutations(cells):
        ranks = [rank(k) for k in order]
        numbered = all(
            a[1] < b[1] for i, a in enumerate(ranks) for b in ranks[i + 1 :] if a[0] == b[0]
        )
        chained = all(
            np.shape(cells[b][0][1])[0] == np.shape(cells[a][1][1])[0]
            for a, b in itertools.pairwise(order)
        )
        if numbered and chained:
            found.append(order)
    return found


def _recorded_name(group: h5py.Group, fallback: str, path: str) -> str:
    variables = child(group, "vars", path, f"{text(group.name)}/vars")
    if isinstance(variables, h5py.Group):
        name = attr(variables, "name", path)
        if name is not None:
            return text(name)
    return fallback.removeprefix("layers/").replace("/layers/", "/")
