"""Small h5py helpers shared by the HDF5 readers."""

from __future__ import annotations

import json

import numpy as np

from jaxlstm._src.errors import KerasFileError


def text(value) -> str:
    """An HDF5 string attribute as ``str`` (h5py gives ``bytes``, ``str`` or a 0-d array)."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf8")
    return str(value)


def attr_list(group, name: str) -> list[str] | None:
    """A list-of-strings attribute, joining Keras's chunks (``name0``, ``name1``, ...) which
    it writes when the list exceeds HDF5's 64 KB attribute limit. ``None`` if absent."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    elif f"{name}0" in group.attrs:
        chunks, i = [], 0
        while f"{name}{i}" in group.attrs:
            chunks.append(group.attrs[f"{name}{i}"])
            i += 1
    else:
        return None
    return [text(v) for chunk in chunks for v in np.atleast_1d(chunk)]


def json_attr(group, name: str, path: str):
    """A JSON attribute (``model_config``), parsed as plain data."""
    raw = text(group.attrs[name])
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise KerasFileError(
            f"{path}: attribute {name!r} is not valid JSON ({err.msg} at character {err.pos}); "
            "the file is damaged or was not written by Keras."
        ) from None
