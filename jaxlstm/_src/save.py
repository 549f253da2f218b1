"""``save_keras``: a loaded, possibly fine-tuned model back to a file Keras 3 opens."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

from jaxlstm._src.errors import JaxLSTMError
from jaxlstm._src.models.graph import KerasModel
from jaxlstm._src.writers.config import keras3_config
from jaxlstm._src.writers.keras_v3 import write_archive, write_weights_h5
from jaxlstm._src.writers.legacy_h5 import write_legacy_h5

# What each file name means, as Keras 3 reads names (``saving_api``, case-sensitive); the first
# match wins, so ``.weights.h5`` comes before ``.h5``.
FORMATS = (
    (".weights.h5", "weights"),  # model.save_weights / model.load_weights
    (".keras", "archive"),  # model.save / keras.saving.load_model
    (".h5", "legacy"),  # the legacy HDF5 model
    (".hdf5", "legacy"),
)


def _file_format(path: str) -> str:
    for ending, kind in FORMATS:
        if path.endswith(ending):
            return kind
    raise JaxLSTMError(
        f"save_keras: cannot tell which Keras format to write from the name {path!r}; expected "
        "a name ending in .keras (Keras 3 archive), .weights.h5 (Keras 3 weights only, what "
        "model.load_weights reads) or .h5 / .hdf5 (legacy HDF5 model)."
    )


def _folder(path: str) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise JaxLSTMError(
            f"save_keras: cannot write {path!r}: the folder {folder!r} does not exist. Create it "
            "first (os.makedirs(folder, exist_ok=True)) or choose another path."
        )
    if os.path.isdir(path):
        raise JaxLSTMError(
            f"save_keras: cannot write {path!r}: it is a folder; give the path of a file in it."
        )
    return folder


def _new_file(folder: str, suffix: str) -> str:
    """Create an empty, uniquely named file in ``folder``. Its mode is what ``open`` would give
    (0o666 less the umask, applied by the system), not ``mkstemp``'s 0o600."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        name = os.path.join(folder, f".jaxlstm-{secrets.token_hex(6)}{suffix}")
        try:
            os.close(os.open(name, flags, 0o666))
            return name
        except FileExistsError:
            continue
        except OSError as err:
            raise JaxLSTMError(
                f"save_keras: cannot create a file in the folder {folder!r} "
                f"({type(err).__name__}: {err.strerror}); check that it is writable."
            ) from err
    raise FileExistsError(f"save_keras: no free temporary name in {folder!r}")


def _remove(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name)


@contextlib.contextmanager
def atomic_output(path: str, folder: str) -> Iterator[str]:
    """Yield a temporary path in ``folder`` to write ``path``'s content to; on success it is
    flushed to disk and renamed over ``path``, so that ``path`` is either untouched or complete.
    On failure the temporary file is removed."""
    tmp = _new_file(folder, ".tmp")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDWR | getattr(os, "O_BINARY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _check_input_shapes(model: KerasModel) -> None:
    """Keras rebuilds a model from its InputLayers' shapes; a tensor that
    ``load_keras(inputs=...)`` fed has one only where the file recorded it (Keras 3's
    ``build_config`` of the layer reading it)."""
    from jaxlstm._src.vocabulary import layer_list

    for entry in layer_list(model.config):
        cfg = entry.get("config", {}) if isinstance(entry, dict) else {}
        if entry.get("class_name") == "InputLayer" and not (
            cfg.get("batch_shape") or cfg.get("batch_input_shape")
        ):
            raise JaxLSTMError(
                f"save_keras: the model's input {cfg.get('name')!r} (a tensor fed by "
                "load_keras(..., inputs=[...])) has no known shape: the file records none for "
                "the layer reading it (Keras 3 .keras files do, in its build_config), and Keras "
                "needs one to rebuild the model. Save the model without that cut (load it with "
                "outputs= only), or from a .keras file written by Keras 3."
            )


def save_keras(model: KerasModel, path: str | os.PathLike) -> None:
    """Write ``model`` with its current weights in the Keras 3 format its file name asks for:

    - ``"m.keras"``: a Keras 3 archive; ``keras.saving.load_model`` opens it;
    - ``"m.h5"`` (or ``.hdf5``): a legacy HDF5 model; ``keras.saving.load_model`` opens it too;
    - ``"m.weights.h5"``: Keras 3's weights-only file; ``keras_model.load_weights`` reads it into
      the Keras model built from ``model``'s config.

    Keras 1/2 configs are rewritten for Keras 3 (``CuDNNLSTM`` becomes ``LSTM`` with its weights
    converted, options Keras 3 dropped are removed); what Keras 3 cannot express with the same
    numbers is refused (Keras 2's ``hard_sigmoid``, ``time_major=True``, a tf.keras stateful RNN
    fed its initial state from the graph, an RNN called with ``initial_state`` in a Keras 2 model
    with masks: see ``writers/config.py``). Layers are written in
    the model's own (config) order. Arrays are written one at a time, straight to disk (memory
    stays near the largest array), archive members uncompressed as Keras stores them. The write
    is atomic (a temporary file in the same folder, renamed over ``path``) and the file gets the
    mode ``open`` would give it (0o666 less the umask). Over several processes (after
    ``jax.distributed.initialize``, e.g. at the end of a distributed ``fit``, which leaves every
    process with the same weights) process 0 writes the one file and every process returns
    once it is written (a barrier): call it on every process.

    Raises:
      JaxLSTMError: ``model`` is not a :class:`KerasModel`, the name has none of the endings
        above, or its folder does not exist; ``UnsupportedOptionError`` for what Keras 3 cannot
        express.

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
    kind = _file_format(path)
    folder = _folder(path)
    _check_input_shapes(model)
    config = keras3_config(model.config, model.keras_version, path)
    import jax

    if jax.process_count() > 1:  # after jax.distributed.initialize: one writer, all wait
        from jax.experimental import multihost_utils

        if jax.process_index() == 0:
            _write(model, config, kind, path, folder)
        multihost_utils.sync_global_devices(f"jaxlstm.save_keras:{path}")
        return
    _write(model, config, kind, path, folder)


def _write(model, config, kind, path, folder) -> None:
    with atomic_output(path, folder) as tmp:
        if kind == "legacy":
            write_legacy_h5(model, config, model.keras_version, tmp)
        elif kind == "weights":
            write_weights_h5(model, config, tmp)
        else:
            scratch = _new_file(folder, ".weights.tmp")
            try:
                write_archive(model, config, model.keras_version, tmp, scratch)
            finally:
                _remove(scratch)
