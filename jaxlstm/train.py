"""Fine-tuning imported models: ``fit`` and its building blocks (needs the ``train`` extra:
``pip install "jaxlstm[train]"`` for optax, orbax-checkpoint and PyYAML).

Example::

    import jaxlstm
    from jaxlstm.train import Data, fit

    model = jaxlstm.load_keras("forecaster.h5")
    history = fit(model, Data(x_train, y_train), Data(x_val, y_val), epochs=20, batch_size=32,
                  freeze=["lstm"], log_path="metrics.jsonl", checkpoint_dir="ckpt")
    jaxlstm.save_keras(model, "forecaster_tuned.keras")
"""

from jaxlstm._src.train.fit import Data, History, evaluate, fit, make_steps, trainable_filter
from jaxlstm._src.train.losses import (
    LOSSES,
    METRICS,
    accuracy,
    binary_crossentropy,
    categorical_crossentropy,
    mae,
    masked_mean,
    mse,
    rmse,
    sparse_categorical_crossentropy,
)

__all__ = [
    "LOSSES",
    "METRICS",
    "Data",
    "History",
    "accuracy",
    "binary_crossentropy",
    "categorical_crossentropy",
    "evaluate",
    "fit",
    "mae",
    "make_steps",
    "masked_mean",
    "mse",
    "rmse",
    "sparse_categorical_crossentropy",
    "trainable_filter",
]
