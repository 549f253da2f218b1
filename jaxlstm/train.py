"""Fine-tuning imported models as Keras's ``model.fit`` would (needs the ``train`` extra:
``pip install "jaxlstm[train]"`` for optax, orbax-checkpoint, PyYAML, pydantic, rich).

Example::

    import jaxlstm
    from jaxlstm.train import fit

    model = jaxlstm.load_keras("classifier.keras")
    history = fit(model, x_train, y_train, validation_split=0.1, epochs=20, batch_size=32,
                  loss="binary_crossentropy", metrics=["accuracy"], freeze=["embedding"],
                  patience=3, restore_best_weights=True, checkpoint_dir="ckpt")
    jaxlstm.save_keras(model, "classifier_tuned.keras")

Over several processes or hosts, call ``initialize()`` first in every process (then the same
code): see ``jaxlstm/_src/train/distributed.py`` and the README.
"""

from jaxlstm._src.train.checkpoint import CheckpointError
from jaxlstm._src.train.data import Batches, Data
from jaxlstm._src.train.distributed import (
    DistributedError,
    global_mesh,
    initialize,
    is_primary,
    process_rows,
)
from jaxlstm._src.train.fit import (
    CompileClock,
    History,
    default_optimizer,
    evaluate,
    fit,
    layer_paths,
    predict,
    trainable_filter,
)
from jaxlstm._src.train.losses import (
    LOSSES,
    METRICS,
    Loss,
    Metric,
    binary_crossentropy,
    categorical_crossentropy,
    mae,
    mse,
    sparse_categorical_crossentropy,
)

__all__ = [
    "LOSSES",
    "METRICS",
    "Batches",
    "CheckpointError",
    "CompileClock",
    "Data",
    "DistributedError",
    "History",
    "Loss",
    "Metric",
    "binary_crossentropy",
    "categorical_crossentropy",
    "default_optimizer",
    "evaluate",
    "fit",
    "global_mesh",
    "initialize",
    "is_primary",
    "layer_paths",
    "mae",
    "mse",
    "predict",
    "process_rows",
    "sparse_categorical_crossentropy",
    "trainable_filter",
]
