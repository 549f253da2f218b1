"""Fine-tuning: losses respect masks, training learns, runs are deterministic and resume exactly,
frozen layers stay put, and 4-device data parallel training equals 1 device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import jaxlstm
from jaxlstm.train import Data, fit, masked_mean, mse, sparse_categorical_crossentropy

FIX = Path(__file__).parent / "fixtures" / "keras2_models"


def forecaster_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 3)).astype("float32")
    return x, (x[:, -3:, 0].mean(axis=1, keepdims=True)).astype("float32")


def test_masked_losses_ignore_masked_entries():
    pred = jnp.array([[1.0, 5.0], [2.0, 7.0]])
    target = jnp.zeros((2, 2))
    mask = jnp.array([[True, False], [True, False]])
    assert float(mse(pred, target, mask)) == pytest.approx((1 + 4) / 2)
    assert float(masked_mean(jnp.ones((2, 3, 4)), jnp.zeros((2, 3)))) == 0.0  # no NaN
    probs = jnp.array([[[0.9, 0.1], [0.5, 0.5]]])
    loss = sparse_categorical_crossentropy(probs, jnp.array([[0, 1]]), jnp.array([[True, False]]))
    assert float(loss) == pytest.approx(-np.log(0.9), rel=1e-5)


def test_fit_learns_and_logs(tmp_path):
    x, y = forecaster_data()
    model = jaxlstm.load_keras(FIX / "forecaster.h5")
    before = jaxlstm.train.evaluate(model, Data(x, y))["loss"]
    import optax

    history = fit(
        model,
        Data(x, y),
        Data(x[:16], y[:16]),
        optimizer=optax.adam(1e-2),
        epochs=6,
        batch_size=16,
        metrics=["mae"],
        log_path=tmp_path / "m.jsonl",
        progress=False,
    )
    assert history.epochs[-1]["loss"] < history.epochs[0]["loss"]
    assert jaxlstm.train.evaluate(model, Data(x, y))["loss"] < before
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 7)) and "val_mae" in rows[0]
    fit(model, Data(x, y), epochs=1, batch_size=16, log_path=tmp_path / "m.csv", progress=False)
    assert (tmp_path / "m.csv").read_text().startswith("epoch,step,loss")


def test_same_seed_same_run_and_freezing():
    x, y = forecaster_data()
    runs = []
    for _ in range(2):
        model = jaxlstm.load_keras(FIX / "masking_layers.h5")
        frozen = np.asarray(model.layer("lstm").module.kernel[...])
        data = Data(x[:, :7], np.repeat(y, 2, axis=1))
        h = fit(model, data, epochs=2, batch_size=16, seed=7, freeze=["lstm"], progress=False)
        np.testing.assert_array_equal(model.layer("lstm").module.kernel[...], frozen)
        runs.append([r["loss"] for r in h.epochs])
    assert runs[0] == runs[1]


def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    x, y = forecaster_data()
    data = Data(x[:, :7], np.repeat(y, 2, axis=1))

    def run(epochs, ckpt):
        model = jaxlstm.load_keras(FIX / "masking_layers.h5")  # dropout, noise, BatchNorm
        h = fit(
            model, data, epochs=epochs, batch_size=16, seed=3, checkpoint_dir=ckpt, progress=False
        )
        return h, model

    full, m_full = run(4, None)
    run(2, tmp_path / "ckpt")  # "interrupted" after 2 epochs
    resumed, m_resumed = run(4, tmp_path / "ckpt")
    assert [r["loss"] for r in resumed.epochs] == [r["loss"] for r in full.epochs]
    np.testing.assert_array_equal(m_resumed(x[:, :7]), m_full(x[:, :7]))


def test_early_stopping():
    x, y = forecaster_data()
    model = jaxlstm.load_keras(FIX / "forecaster.h5")
    import optax

    h = fit(
        model,
        Data(x, y),
        Data(x[:8], -y[:8] * 100),
        optimizer=optax.sgd(1e-3),
        epochs=50,
        batch_size=16,
        patience=2,
        progress=False,
    )
    assert h.stopped_early and len(h.epochs) < 50


def test_bad_arguments_are_clear():
    x, y = forecaster_data(8)
    model = jaxlstm.load_keras(FIX / "forecaster.h5")
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="unknown loss 'hinge'"):
        fit(model, Data(x, y), loss="hinge", batch_size=4, progress=False)
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="batch_size=32 is larger than the 8"):
        fit(model, Data(x, y), batch_size=32, progress=False)
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="disagree on the number of examples"):
        Data(x, y[:3])


SHARDED = """
import json, sys
import jax, numpy as np
sys.path.insert(0, {tests!r})
import jaxlstm
from jaxlstm.train import Data, fit
from test_train import forecaster_data, FIX
x, y = forecaster_data()
out = {{}}
for n in (1, 4):
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:n]), ("data",))
    model = jaxlstm.load_keras(FIX / "forecaster.h5")
    h = fit(model, Data(x, y), epochs=3, batch_size=16, seed=1, mesh=mesh, progress=False)
    out[n] = {{"loss": [r["loss"] for r in h.epochs], "pred": np.asarray(model(x)).tolist()}}
print(json.dumps({{"devices": len(jax.devices()), **out}}))
"""


def test_four_device_data_parallel_equals_one_device():
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
    }
    code = SHARDED.format(tests=str(Path(__file__).parent))
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["devices"] == 4
    np.testing.assert_allclose(result["4"]["loss"], result["1"]["loss"], rtol=1e-5)
    np.testing.assert_allclose(result["4"]["pred"], result["1"]["pred"], atol=1e-5)
