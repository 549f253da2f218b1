"""Small h5py helpers shared by the HDF5 readers, each of them safe on hostile input: a damaged
or crafted file ends in a :class:`KerasFileError` naming the file and the object, never in an
h5py, numpy or Unicode exception, and no array is read before its declared size is checked."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np

from jaxlstm._src.errors import KerasFileError, UnsafeFileError
from jaxlstm._src.readers import limits
from jaxlstm._src.readers.limits import Budget
from jaxlstm._src.readers.records import LayerRecord
from jaxlstm._src.readers.translate import parse_errors
from jaxlstm._src.vocabulary import RECURRENT_CLASSES

# HDF5 filters built into the library (and h5py's lzf). Any other filter id makes HDF5 look for a
# plugin (a shared library) to load when the dataset is read: refused before reading.
SAFE_FILTERS = {
    1: "deflate",
    2: "shuffle",
    3: "fletcher32",
    4: "szip",
    5: "nbit",
    6: "scaleoffset",
    32000: "lzf",
}
LARGE_ARRAY_BYTES = 1 << 20  # check_lstm_shapes checks arrays above this before reading them
# What h5py raises on damaged files and values it cannot represent (where a helper only needs
# to know that h5py could not read something; reports go through readers.translate).
H5_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, AttributeError)


def text(value) -> str:
    """An HDF5 string attribute as ``str`` (h5py gives ``bytes``, ``str`` or a 0-d array).
    Bytes that are not UTF-8 become U+FFFD, so a damaged name can still be reported."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf8", "replace")
    value = str(value)
    try:
        value.encode("utf8")
    except UnicodeEncodeError:  # lone surrogates from h5py's decoding of invalid UTF-8
        value = value.encode("utf8", "replace").decode("utf8")
    return value


# HDF5 type classes Keras writes attributes in (names and configs are strings; an empty
# ``weight_names`` is a float array). Others are refused before reading: libhdf5 crashes on some
# damaged ones (a string type bit-flipped into a variable-length sequence segfaults it).
_ATTR_CLASSES = (h5py.h5t.STRING, h5py.h5t.INTEGER, h5py.h5t.FLOAT)


def attr(obj, name: str, path: str, default=None):
    """``obj.attrs[name]`` (``default`` if absent), or a KerasFileError if it cannot be read."""
    with parse_errors(
        lambda err: (
            f"{path}: attribute {name!r} of {_obj_name(obj)} is unreadable ({err}); the "
            "file is damaged."
        )
    ):
        if name not in obj.attrs:
            return default
        kind = h5py.h5a.open(obj.id, name.encode()).get_type().get_class()
        if kind not in _ATTR_CLASSES:
            raise KerasFileError(
                f"{path}: attribute {name!r} of {_obj_name(obj)} has an HDF5 type (class "
                f"{kind}) that Keras never writes; the file is damaged or crafted."
            )
        return obj.attrs[name]


def _obj_name(obj) -> str:
    try:
        return repr(text(obj.name))
    except H5_ERRORS:
        return "an HDF5 object"


def attr_list(group, name: str, path: str = "") -> list[str] | None:
    """A list-of-strings attribute, joining Keras's chunks (``name0``, ``name1``, ...) which
    it writes when the list exceeds HDF5's 64 KB attribute limit. ``None`` if absent."""
    if attr(group, name, path) is not None:
        chunks = [attr(group, name, path)]
    elif attr(group, f"{name}0", path) is not None:
        chunks, i = [], 0
        while attr(group, f"{name}{i}", path) is not None:
            chunks.append(attr(group, f"{name}{i}", path))
            i += 1
    else:
        return None
    out = []
    for chunk in chunks:
        values = np.atleast_1d(chunk)
        if values.ndim != 1:
            raise KerasFileError(
                f"{path}: attribute {name!r} of {_obj_name(group)} should be a list of names; "
                f"found an array of shape {values.shape}."
            )
        out.extend(text(v) for v in values)
    return out


def json_attr(group, name: str, path: str):
    """A JSON attribute (``model_config``), parsed as plain data."""
    return parse_json(text(attr(group, name, path)), f"attribute {name!r}", path)


def parse_json(raw, what: str, path: str):
    """JSON text or bytes as plain data (never objects): a dict or, for Keras 1, a list."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise KerasFileError(
            f"{path}: {what} is not valid JSON ({err.msg} at character {err.pos}); "
            "the file is damaged or was not written by Keras."
        ) from None
    except RecursionError:
        raise KerasFileError(
            f"{path}: {what} is JSON nested too deeply to be a Keras config; the file is "
            "damaged or hostile."
        ) from None
    except (UnicodeDecodeError, ValueError) as err:  # bad bytes, 5000-digit integers, ...
        raise KerasFileError(f"{path}: {what} is not valid JSON ({err}).") from None
    if not isinstance(data, dict | list):
        raise KerasFileError(
            f"{path}: {what} should hold a JSON object; found {type(data).__name__} {data!r:.80}."
        )
    return data


def child(group, key: str, path: str, what: str):
    """``group[key]`` or ``None`` when there is no such link (also a dangling soft link)."""
    with parse_errors(lambda err: f"{path}: {what} is unreadable ({err}); the file is damaged."):
        if key not in group:
            return None
        return group[key]


_GCOL = b"GCOL\x01\x00\x00\x00"  # a global heap collection: signature, version 1, reserved


def check_global_heaps(data, path: str) -> None:
    """Refuse, before HDF5 parses them, global heap collections (where variable-length strings
    such as Keras's names and configs live) that would send libhdf5 into an endless loop: a
    free-space object of size zero, which its parser steps over by zero bytes, forever.

    ``data`` is the file's bytes (``bytes`` or an ``mmap``). Collections are found by signature;
    walking their objects costs one step per 16 bytes at most, and overlapping collections (which
    could make that quadratic) are refused as crafted."""
    steps, budget = 0, len(data) // 16 + 1024
    at = data.find(_GCOL)
    while at >= 0:
        size = int.from_bytes(data[at + 8 : at + 16], "little")
        end = at + size
        if size >= 32 and end <= len(data):
            p = at + 16
            while p + 16 <= end:
                steps += 1
                if steps > budget:
                    raise UnsafeFileError(
                        f"{path}: HDF5 global heap collections overlap; the file is crafted."
                    )
                index = int.from_bytes(data[p : p + 2], "little")
                length = int.from_bytes(data[p + 8 : p + 16], "little")
                if index == 0 and length == 0:
                    raise UnsafeFileError(
                        f"{path}: the HDF5 global heap at byte {at} holds a zero-size free-space "
                        f"object at byte {p}, on which libhdf5 would loop forever; the file is "
                        "damaged or crafted."
                    )
                p += length if index == 0 else 16 + ((length + 7) & ~7)
        at = data.find(_GCOL, at + 1)


def scan_hdf5(f: h5py.File, path: str) -> None:
    """Refuse, before reading any array, what could reach outside the file: external links,
    user-defined links, datasets stored in external files, virtual datasets, and filters that
    HDF5 would load as plugins. (Low-level visits: names stay bytes, whatever their encoding.)"""

    def check_link(name, info):
        if info.type not in (h5py.h5l.TYPE_HARD, h5py.h5l.TYPE_SOFT):
            return name, info.type
        return None

    def check_object(name, info):
        if info.type == h5py.h5o.TYPE_DATASET:
            problem = _storage_problem(h5py.h5d.open(f.id, name).get_create_plist())
            if problem:
                return name, problem
        return None

    with parse_errors(lambda err: f"{path}: the HDF5 structure is unreadable ({err})."):
        bad_link = f.id.links.visit(check_link, info=True)
        bad_data = None if bad_link else h5py.h5o.visit(f.id, check_object, info=True)
        if bad_link and bad_link[1] == h5py.h5l.TYPE_EXTERNAL:
            filename, target = f.id.links.get_val(bad_link[0])
            what = f"an external link to {text(target)!r} in file {text(filename)!r}"
        elif bad_link:
            what = f"a user-defined link (type {bad_link[1]})"
    if bad_link:
        raise UnsafeFileError(
            f"{path}: {text(bad_link[0])!r} is {what}; a Keras file is self-contained and "
            "jaxlstm follows no link out of it."
        )
    if bad_data:
        raise UnsafeFileError(f"{path}: dataset {text(bad_data[0])!r} {bad_data[1]}.")


def _storage_problem(dcpl) -> str | None:
    """Why a dataset's storage cannot be read safely (data outside the file, plugin filters)."""
    external = dcpl.get_external_count()
    if external:
        files = [text(dcpl.get_external(i)[0]) for i in range(external)]
        return (
            f"keeps its data in external file(s) {files}; a Keras file is self-contained and "
            "jaxlstm reads no other file"
        )
    if dcpl.get_layout() == h5py.h5d.VIRTUAL:
        return (
            "is a virtual dataset mapping other files; a Keras file is self-contained and "
            "jaxlstm reads no other file"
        )
    unknown = [
        code
        for code in (dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters()))
        if code not in SAFE_FILTERS
    ]
    if unknown:
        return (
            f"uses HDF5 filter(s) {unknown}, which HDF5 would load as plugins; jaxlstm reads "
            f"only the built-in ones {sorted(SAFE_FILTERS.values())}"
        )
    return None


def check_storage(ds: h5py.Dataset, path: str, what: str) -> None:
    """Refuse a dataset whose data lives outside the file or needs a plugin filter."""
    with parse_errors(lambda err: f"{path}: {what} is unreadable ({err})."):
        problem = _storage_problem(ds.id.get_create_plist())
    if problem:
        raise UnsafeFileError(f"{path}: {what} {problem}.")


def read_dataset(obj, what: str, budget: Budget) -> np.ndarray:
    """Read one array after checking, from its header only, that it is a numeric dataset whose
    declared size fits the file's budget."""
    path = budget.path
    if not isinstance(obj, h5py.Dataset):
        kind = "group" if isinstance(obj, h5py.Group) else type(obj).__name__
        raise KerasFileError(f"{path}: {what} is an HDF5 {kind}, not an array (dataset).")
    with parse_errors(lambda err: f"{path}: {what} has an unreadable type or shape ({err})."):
        dtype, shape = obj.dtype, obj.shape
    if dtype.kind not in "fiub" or dtype.fields is not None or dtype.subdtype is not None:
        found = "strings" if dtype.kind in "OSUa" else f"{dtype} values"
        raise KerasFileError(
            f"{path}: {what} holds {found}; expected an array of real numbers (weights)."
        )
    if shape is None:
        raise KerasFileError(f"{path}: {what} is an empty (null) dataset; expected an array.")
    if len(shape) > limits.MAX_ARRAY_RANK:
        raise KerasFileError(
            f"{path}: {what} has {len(shape)} axes {shape}; Keras weights have at most "
            f"{limits.MAX_ARRAY_RANK}."
        )
    budget.take(math.prod(shape) * dtype.itemsize, f"{what} {shape} {dtype}")
    check_storage(obj, path, what)
    with parse_errors(lambda err: f"{path}: {what} is unreadable ({err}); the file is damaged."):
        data = obj[()]
    return np.asarray(data)


def check_lstm_shapes(items, record: LayerRecord, path: str) -> None:
    """Before reading a recurrent layer's large arrays (over 1 MiB declared), check their shapes
    against the ``units`` its config gives: rank 1 or 2, last axis ``units``, ``g*units`` or
    ``2*g*units`` (CuDNN's bias) for a cell of ``g`` gates (4 LSTM, 3 GRU, 1 SimpleRNN). Small
    arrays are read and checked by the converters, with their messages."""
    units = record.config.get("units", record.config.get("output_dim"))
    if not isinstance(units, int) or isinstance(units, bool) or units < 1:
        return  # build_recurrent reports a bad units value against the weights' own
    kind = RECURRENT_CLASSES.get(record.class_name, RECURRENT_CLASSES["LSTM"])
    g, family = kind.gates, kind.family
    allowed = (units, g * units, 2 * g * units)
    for name, ds in items:
        if not isinstance(ds, h5py.Dataset):
            continue  # read_dataset reports it
        try:
            shape, itemsize = ds.shape, ds.dtype.itemsize
        except H5_ERRORS:
            continue  # read_dataset reports it
        if shape is None or math.prod(shape) * itemsize <= LARGE_ARRAY_BYTES:
            continue
        if len(shape) not in (1, 2) or shape[-1] not in allowed:
            raise KerasFileError(
                f"{path}: layer {record.name!r}: array {name!r} declares shape {shape}, which no "
                f"{family} with units={units} has (kernel (in_features, {g * units}), "
                f"recurrent_kernel ({units}, {g * units}), bias ({g * units},)); the file is "
                "inconsistent. Nothing was read."
            )
