"""Readers: one per Keras file format, each producing a :class:`KerasFile` of layer records.

:func:`read_keras_file` tells the formats apart by content, not by file extension.
"""

from __future__ import annotations

import os

import h5py

from jaxlstm._src.errors import KerasFileError
from jaxlstm._src.readers.keras_v3 import is_v3_weights, read_keras_archive, read_v3_weights
from jaxlstm._src.readers.legacy_h5 import is_legacy_h5, read_legacy_h5
from jaxlstm._src.readers.records import KerasFile, LayerRecord

__all__ = ["KerasFile", "LayerRecord", "read_keras_file"]

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"


def read_keras_file(path: str | os.PathLike) -> KerasFile:
    """Read every LSTM layer of a Keras file: ``.keras``, ``.weights.h5`` or legacy ``.h5``
    (full model or weights only; Keras 1, 2, tf.keras or 3). Data only: nothing in the file is
    imported or executed."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise KerasFileError(f"{path}: no such file.")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(_ZIP_MAGIC):
        return read_keras_archive(path)
    if head != _HDF5_MAGIC:
        raise KerasFileError(
            f"{path}: neither an HDF5 file nor a zip archive (starts with {head!r}); expected a "
            "Keras .keras, .weights.h5 or .h5 file."
        )
    try:
        with h5py.File(path, "r") as f:
            if is_legacy_h5(f):
                return read_legacy_h5(f, path)
            if is_v3_weights(f):
                return read_v3_weights(f, path)
    except OSError as err:  # h5py's report of a truncated or corrupted file
        raise KerasFileError(f"{path}: unreadable HDF5 file ({err}).") from None
    raise KerasFileError(
        f"{path}: an HDF5 file, but not one Keras wrote: no 'model_weights' group, no "
        "'layer_names' attribute and no 'layers' group."
    )
