"""Readers: one per Keras file format, each producing a :class:`KerasFile` of layer records.

:func:`read_keras_file` tells the formats apart by content, not by file extension.

Files are untrusted input. They are read as data (JSON, HDF5 datasets, zip members), nothing in
them is imported or executed, and sizes are checked against :mod:`.limits` before anything is
inflated or allocated. Whatever a damaged or crafted file holds, reading it either succeeds or
raises a :class:`~jaxlstm.KerasFileError` (subclasses: :class:`ChecksumError`,
:class:`UnsafeFileError`) that names the file and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import re

import h5py

from jaxlstm._src.errors import ChecksumError, KerasFileError
from jaxlstm._src.readers.h5attrs import check_global_heaps, scan_hdf5
from jaxlstm._src.readers.keras_v3 import is_v3_weights, read_keras_archive, read_v3_weights
from jaxlstm._src.readers.legacy_h5 import is_legacy_h5, read_legacy_h5
from jaxlstm._src.readers.limits import Budget
from jaxlstm._src.readers.records import KerasFile, LayerRecord, Select
from jaxlstm._src.readers.savedmodel import is_tf_directory, read_model_json, read_tf_directory
from jaxlstm._src.readers.translate import parse_errors

__all__ = ["KerasFile", "LayerRecord", "check_sha256", "read_keras_file"]

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"


def check_sha256(path: str, expected: str) -> None:
    """Raise :class:`ChecksumError` unless the file's SHA-256 is ``expected`` (hex digits)."""
    want = str(expected).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", want):
        raise ChecksumError(
            f"{path}: sha256={expected!r} is not a SHA-256 digest (64 hexadecimal digits)."
        )
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    found = digest.hexdigest()
    if found != want:
        raise ChecksumError(
            f"{path}: SHA-256 mismatch: expected {want}, found {found}. The file is not the one "
            "that was pinned (changed, damaged or replaced); nothing was parsed."
        )


def read_keras_file(
    path: str | os.PathLike,
    *,
    sha256: str | None = None,
    select: Select | None = None,
    weights: str | os.PathLike | None = None,
) -> KerasFile:
    """Read every recurrent layer (LSTM, GRU, SimpleRNN) of a Keras file: ``.keras``,
    ``.weights.h5`` or legacy ``.h5`` (full model or weights only; Keras 1, 2, tf.keras or 3),
    a TensorFlow SavedModel directory written by tf.keras 2.x, or a TF-format checkpoint
    (``model.save_weights("ckpt")``: its ``ckpt.index``, its prefix or its directory).
    Data only: nothing in the file is imported or executed.

    Args:
      path: the file (or SavedModel / checkpoint directory); with ``weights``, the model's
        architecture: a ``model.to_json()`` file, or a ``.keras`` / ``.h5`` model file.
      sha256: if given, the file's expected SHA-256 (hex); a mismatch raises
        :class:`ChecksumError` before anything is parsed (files only, not directories).
      select: for a file with a model config, ``select(tree, keras_version)`` returns the
        names of the model's own layers whose arrays to read (``None``: all); the others' are
        not read (``load_keras(outputs=...)``: what a cut leaves out).
      weights: a TF checkpoint (``model.save_weights("ckpt")``) to read the arrays from,
        into the architecture ``path`` gives (Keras's ``model_from_json`` + ``load_weights``).

    Raises:
      KerasFileError: the file is unreadable, malformed or inconsistent; its subclasses
        ``ChecksumError`` (``sha256`` mismatch) and ``UnsafeFileError`` (refused for safety
        before reading: zip bomb, path-traversal member names, HDF5 datasets declaring more than
        the size limits, links or storage outside the file).
    """
    path = os.fspath(path)
    if weights is not None:
        return _with_weights(path, os.fspath(weights), select)
    if is_tf_directory(path):
        if sha256 is not None:
            raise KerasFileError(
                f"{path}: sha256= pins one file; a SavedModel or checkpoint is several. Pin its "
                "files yourself, or convert it once to .keras (jaxlstm convert) and pin that."
            )
        return _guarded(path, lambda: read_tf_directory(path, select))
    if not os.path.isfile(path):
        raise KerasFileError(f"{path}: no such file.")
    if sha256 is not None:
        check_sha256(path, sha256)
    return _guarded(path, lambda: _read(path, select))


def _with_weights(path: str, weights: str, select: Select | None) -> KerasFile:
    """A TF checkpoint's arrays in the architecture of a to_json file or a Keras model file."""
    if not is_tf_directory(weights):
        raise KerasFileError(
            f"{weights}: weights= takes a TF-format checkpoint (model.save_weights('ckpt'): its "
            "ckpt.index, its prefix or its directory); for a .h5 or .keras file, load that."
        )
    if path.endswith(".json"):
        config = read_model_json(path)
    else:
        kf = read_keras_file(path, select=lambda tree, version: set())
        if kf.config is None:
            raise KerasFileError(f"{path}: {kf.format} has no model config to load weights into.")
        config = {"keras_version": kf.keras_version, **kf.config}
    return _guarded(weights, lambda: read_tf_directory(weights, select, config=config))


def _guarded(path: str, read) -> KerasFile:
    # Last resort for what a parsing library may still raise on input nobody anticipated
    # (only that: a bug of ours or of a dependency surfaces as itself, see readers.translate).
    malformed = parse_errors(
        lambda err: (
            f"{path}: malformed Keras file ({type(err).__name__}: {err}); the file is "
            "damaged or was not written by Keras."
        )
    )
    try:
        with malformed:
            return read()
    except RecursionError:
        raise KerasFileError(
            f"{path}: structures nested too deeply to be a Keras file; the file is damaged or "
            "hostile."
        ) from None


def _read(path: str, select: Select | None) -> KerasFile:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(_ZIP_MAGIC):
        return read_keras_archive(path, select)
    if head != _HDF5_MAGIC:
        raise KerasFileError(
            f"{path}: neither an HDF5 file nor a zip archive (starts with {head!r}); expected a "
            "Keras .keras, .weights.h5 or .h5 file."
        )
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        check_global_heaps(data, path)
    # h5py's report of a truncated or corrupted file
    with parse_errors(lambda err: f"{path}: unreadable HDF5 file ({err})."):
        with h5py.File(path, "r") as f:
            scan_hdf5(f, path)
            if is_legacy_h5(f):
                return read_legacy_h5(f, path, Budget(path), select)
            if is_v3_weights(f):
                return read_v3_weights(f, path, budget=Budget(path))
    raise KerasFileError(
        f"{path}: an HDF5 file, but not one Keras wrote: no 'model_weights' group, no "
        "'layer_names' attribute and no 'layers' group."
    )
