"""``save_keras``: a loaded, possibly fine-tuned model back to a file Keras 3 opens."""

from __future__ import annotations

import os
import tempfile

from jaxlstm._src.errors import JaxLSTMError
from jaxlstm._src.models.graph import KerasModel
from jaxlstm._src.writers.config import keras3_config
from jaxlstm._src.writers.keras_v3 import archive_bytes
from jaxlstm._src.writers.legacy_h5 import legacy_h5_bytes


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either untouched or complete: a temporary
    file in the same folder, flushed to disk, then renamed over the target."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".jaxlstm-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_keras(model: KerasModel, path: str | os.PathLike) -> None:
    """Write ``model`` with its current weights as a Keras 3 ``.keras`` archive, or as a legacy
    HDF5 model when ``path`` ends in ``.h5``; ``keras.saving.load_model`` opens either.

    Keras 1/2 configs are rewritten for Keras 3 (``CuDNNLSTM`` becomes ``LSTM`` with its weights
    converted, options Keras 3 dropped are removed); what Keras 3 cannot express with the same
    numbers (Keras 2's ``hard_sigmoid``, ``time_major=True``) is refused. The write is atomic.

    Example:
      >>> model = jaxlstm.load_keras("old_keras2_model.h5")      # doctest: +SKIP
      >>> jaxlstm.save_keras(model, "model.keras")               # doctest: +SKIP
    """
    if not isinstance(model, KerasModel):
        raise JaxLSTMError(
            f"save_keras writes whole models; received {type(model).__name__}. Load the file "
            "with jaxlstm.load_keras(path) to get one."
        )
    path = os.fspath(path)
    config = keras3_config(model.config, model.keras_version, path)
    if path.endswith(".h5"):
        data = legacy_h5_bytes(model, config, model.keras_version)
    else:
        data = archive_bytes(model, config, model.keras_version)
    atomic_write(path, data)
