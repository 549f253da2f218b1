"""The smaller public names of ``jaxlstm.train``, each on what a user does with it: the layer
paths ``freeze=`` takes, the filter it builds, Keras's default optimizer, an iterable of
batches, and the History ``fit`` returns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optax
import pytest
from flax import nnx

import jaxlstm
from jaxlstm.train import (
    METRICS,
    Batches,
    History,
    default_optimizer,
    evaluate,
    fit,
    layer_paths,
    trainable_filter,
)

FIX = Path(__file__).parent / "fixtures" / "keras2_models"


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5, 2)).astype("float32")
    return x, x[:, -2:, 0].mean(axis=1, keepdims=True).repeat(2, axis=1).astype("float32")


def test_layer_paths_name_nested_layers_outer_inner():
    model = jaxlstm.load_keras(FIX / "nested.h5")
    assert layer_paths(model) == ["encoder", "encoder/lstm", "encoder/lstm_1", "dense"]


def test_trainable_filter_leaves_out_exactly_the_frozen_layers():
    model = jaxlstm.load_keras(FIX / "nested.h5")
    everything = nnx.state(model, nnx.Param)
    kept = nnx.state(model, trainable_filter(model, ["encoder/lstm"]))
    paths = {"/".join(map(str, p)) for p, _ in nnx.to_flat_state(everything)}
    left = {"/".join(map(str, p)) for p, _ in nnx.to_flat_state(kept)}
    frozen = paths - left
    assert frozen and all(p.startswith("layers/encoder/layers/lstm/") for p in frozen)
    assert trainable_filter(model) is nnx.Param
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"freeze names \['lstm'\], which"):
        trainable_filter(model, ["lstm"])


def test_default_optimizer_is_adam_with_its_rate_logged():
    tx = default_optimizer(1e-2)
    params = {"w": np.ones(3, np.float32)}
    state = tx.init(params)
    grads = {"w": np.array([1.0, -2.0, 0.5], np.float32)}
    updates, _ = tx.update(grads, state, params)
    reference, _ = optax.adam(1e-2).update(grads, optax.adam(1e-2).init(params), params)
    np.testing.assert_allclose(updates["w"], reference["w"], rtol=1e-5)  # (f32 hyperparams)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(1e-2)


def test_batches_of_a_one_shot_iterator_and_the_history_fit_returns():
    x, y = _data()
    model = jaxlstm.load_keras(FIX / "nested.h5")
    arrays = fit(model, x, y, epochs=2, batch_size=8, shuffle=False, loss="mse", progress=False)
    model = jaxlstm.load_keras(FIX / "nested.h5")
    chunks = ((x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8))  # one pass only
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="gave no batch in epoch 2"):
        fit(model, Batches(chunks), epochs=2, loss="mse", progress=False)
    model = jaxlstm.load_keras(FIX / "nested.h5")
    listed = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8)]  # iterated once per epoch
    history = fit(model, Batches(listed), epochs=2, loss="mse", progress=False)
    assert isinstance(history, History) and [r["epoch"] for r in history.epochs] == [1, 2]
    for a, b in zip(arrays.epochs, history.epochs, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)  # the same batches, in order
    assert history.stopped_early is False and history.best_epoch is None
    assert "mean_absolute_error" in METRICS  # "mae" is its alias
    assert evaluate(model, x, y, loss="mse", metrics=["mae"])["mae"] > 0
