"""``fit`` / ``evaluate``: Keras's data forms and semantics, compiled once, deterministic,
explicit resume, early stopping that keeps the best epoch, whole-path freezing, and 4-device
data parallel training equal to 1 device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optax
import pytest

import jaxlstm
from jaxlstm.train import CheckpointError, CompileClock, Data, evaluate, fit

FIX = Path(__file__).parent / "fixtures" / "keras2_models"
QUIET = {"progress": False}


def forecaster_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 3)).astype("float32")
    return x, x[:, -3:, 0].mean(axis=1).astype("float32")  # (n,) targets, as Keras users pass


def masking_data(n=64):
    x, y = forecaster_data(n)
    return x[:, :7], np.repeat(y[:, None], 2, axis=1)


def weights(model) -> list[np.ndarray]:
    from flax import nnx

    return [np.asarray(v) for v in __import__("jax").tree.leaves(nnx.state(model, nnx.Param))]


def test_fit_learns_logs_and_targets_n_match_outputs_n_1(tmp_path):
    x, y = forecaster_data()
    model = jaxlstm.load_keras(FIX / "forecaster.h5")
    before = evaluate(model, x, y, loss="mse")["loss"]
    expected = float(np.mean((np.asarray(model(x))[:, 0] - y) ** 2))
    assert before == pytest.approx(expected, rel=1e-5)  # (n,) vs (n, 1): no (n, n) broadcast
    tx = optax.adam(1e-2)
    history = fit(
        model,
        x,
        y,
        validation_data=(x[:16], y[:16]),
        optimizer=tx,
        epochs=6,
        batch_size=16,
        loss="mse",
        metrics=["mae"],
        log_path=tmp_path / "m.jsonl",
        **QUIET,
    )
    assert history.epochs[-1]["loss"] < history.epochs[0]["loss"]
    assert evaluate(model, x, y, loss="mse")["loss"] < before
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 7)) and "val_mae" in rows[0]
    fit(model, (x, y), epochs=1, batch_size=16, loss="mse", log_path=tmp_path / "m.csv", **QUIET)
    assert (tmp_path / "m.csv").read_text().startswith("epoch,loss,learning_rate,seconds")


def test_a_second_fit_and_evaluate_compile_nothing():
    x, y = forecaster_data(40)  # 40 = 2 batches of 16 + a last batch of 8: two train shapes
    model = jaxlstm.load_keras(FIX / "forecaster.h5")
    kw = dict(batch_size=16, loss="mse", metrics=["mae"], validation_split=0.2, **QUIET)
    fit(model, x, y, epochs=2, **kw)
    evaluate(model, x, y, loss="mse", metrics=["mae"], batch_size=16)
    count = CompileClock.compiles
    fit(model, x, y, epochs=3, **kw)
    evaluate(model, x, y, loss="mse", metrics=["mae"], batch_size=16)
    assert CompileClock.compiles == count
    fit(model, x, y, epochs=1, freeze=["dense"], **kw)  # another trainable set: compiles
    assert CompileClock.compiles > count


def test_same_seed_same_run_and_freezing():
    x, y = masking_data()
    runs = []
    for _ in range(2):
        model = jaxlstm.load_keras(FIX / "masking_layers.h5")  # dropout, noise, BatchNorm
        frozen = np.asarray(model.layer("lstm").module.kernel[...])
        h = fit(model, x, y, epochs=2, batch_size=16, seed=7, loss="mse", freeze=["lstm"], **QUIET)
        np.testing.assert_array_equal(model.layer("lstm").module.kernel[...], frozen)
        runs.append([r["loss"] for r in h.epochs])
    assert runs[0] == runs[1]


def test_freeze_matches_whole_layer_paths_and_refuses_unknown_names():
    model = jaxlstm.load_keras(FIX / "nested.h5")
    features = model.layer("encoder/lstm").module.kernel.shape[0]
    layers = {
        n: np.asarray(model.layer(n).module.kernel[...]) for n in ("encoder/lstm", "encoder/lstm_1")
    }
    x = np.random.default_rng(0).normal(size=(16, 5, features)).astype("float32")
    y = np.zeros((16, *np.shape(model(x))[1:]), "float32")
    fit(
        model,
        x,
        y,
        epochs=1,
        batch_size=8,
        loss="mse",
        freeze=["encoder/lstm"],
        optimizer=optax.sgd(0.1),
        **QUIET,
    )
    np.testing.assert_array_equal(
        model.layer("encoder/lstm").module.kernel[...], layers["encoder/lstm"]
    )
    assert not np.array_equal(
        model.layer("encoder/lstm_1").module.kernel[...], layers["encoder/lstm_1"]
    )
    with pytest.raises(
        jaxlstm.UnsupportedOptionError,
        match=r"freeze names \['lstm'\], which are not layers of the model; its "
        r"layers: \['encoder', 'encoder/lstm', 'encoder/lstm_1', 'dense'\]",
    ):
        fit(model, x, y, loss="mse", freeze=["lstm"], **QUIET)


def test_resume_is_explicit_and_equals_the_uninterrupted_run(tmp_path):
    x, y = masking_data()

    def run(epochs, ckpt, **kw):
        model = jaxlstm.load_keras(FIX / "masking_layers.h5")
        h = fit(
            model,
            x,
            y,
            epochs=epochs,
            batch_size=16,
            seed=3,
            loss="mse",
            checkpoint_dir=ckpt,
            log_path=tmp_path / "log.csv",
            **QUIET,
            **kw,
        )
        return h, model

    full, m_full = run(4, None)
    run(2, tmp_path / "ckpt")  # "interrupted" after 2 epochs
    with pytest.raises(
        CheckpointError, match=r"already holds a checkpoint \(epoch 2\).*pass resume=True"
    ):
        run(4, tmp_path / "ckpt")
    with pytest.raises(
        CheckpointError, match=r"already trained for 2 epochs; epochs=2 asks for no more"
    ):
        run(2, tmp_path / "ckpt", resume=True)
    resumed, m_resumed = run(4, tmp_path / "ckpt", resume=True)
    assert [r["loss"] for r in resumed.epochs] == [r["loss"] for r in full.epochs]
    np.testing.assert_array_equal(m_resumed(x), m_full(x))
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["epoch", "1", "2", "3", "4"]


def test_a_checkpoint_of_another_model_or_run_is_a_clear_error(tmp_path):
    x, y = masking_data()
    model = jaxlstm.load_keras(FIX / "masking_layers.h5")
    fit(model, x, y, epochs=1, batch_size=16, loss="mse", checkpoint_dir=tmp_path, **QUIET)
    other = jaxlstm.load_keras(FIX / "forecaster.h5")
    xf, yf = forecaster_data()
    with pytest.raises(CheckpointError, match="written for another model"):
        fit(other, xf, yf, epochs=2, loss="mse", checkpoint_dir=tmp_path, resume=True, **QUIET)
    with pytest.raises(CheckpointError, match=r"written for batch_size=16 \(this run: 8\)"):
        fit(
            model,
            x,
            y,
            epochs=2,
            batch_size=8,
            loss="mse",
            checkpoint_dir=tmp_path,
            resume=True,
            **QUIET,
        )
    assert model.layer("spatial_dropout1d").deterministic  # refused: left in eval mode
    with pytest.raises(CheckpointError, match=r"other trainable weights \(freeze= differs\)"):
        fit(
            model,
            x,
            y,
            epochs=2,
            batch_size=16,
            loss="mse",
            freeze=["lstm"],
            checkpoint_dir=tmp_path,
            resume=True,
            **QUIET,
        )


def _noisy_run(**kw):
    """A run whose validation loss rises after the first epochs (validation targets unlike
    the training ones), so the best epoch is not the last."""
    x, y = forecaster_data()
    model = jaxlstm.load_keras(FIX / "forecaster.h5")
    h = fit(
        model,
        x,
        y,
        validation_data=(x[:16], -y[:16] * 3),
        optimizer=optax.sgd(0.05),
        epochs=8,
        batch_size=16,
        loss="mse",
        **QUIET,
        **kw,
    )
    return h, model, (x[:16], -y[:16] * 3)


def test_early_stopping_restores_and_checkpoints_the_best_epoch(tmp_path):
    h, model, val = _noisy_run(patience=2, restore_best_weights=True, checkpoint_dir=tmp_path)
    val_losses = h.column("val_loss")
    assert h.stopped_early and len(h.epochs) < 8 and h.restored_best
    best = int(np.argmin(val_losses)) + 1
    assert h.best_epoch == best and h.best == min(val_losses)
    assert evaluate(model, *val, loss="mse")["loss"] == pytest.approx(min(val_losses), rel=1e-6)
    assert sorted(p.name for p in (tmp_path / "best").iterdir() if p.name.isdigit()) == [str(best)]
    h2, model2, _ = _noisy_run(patience=2)  # Keras's default: the last epoch's weights stay
    assert evaluate(model2, *val, loss="mse")["loss"] == pytest.approx(
        h2.column("val_loss")[-1], rel=1e-6
    )


def test_patience_without_validation_data_is_an_error():
    x, y = forecaster_data(16)
    model = jaxlstm.load_keras(FIX / "forecaster.h5")
    with pytest.raises(
        jaxlstm.UnsupportedOptionError, match="monitors 'val_loss', which needs validation data"
    ):
        fit(model, x, y, loss="mse", patience=2, **QUIET)


def test_iterables_of_batches_and_bad_arguments():
    x, y = forecaster_data(32)
    model = jaxlstm.load_keras(FIX / "forecaster.h5")
    batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8)]
    h_iter = fit(
        model, batches, epochs=1, loss="mse", shuffle=False, optimizer=optax.sgd(0.01), **QUIET
    )
    model2 = jaxlstm.load_keras(FIX / "forecaster.h5")
    h_arr = fit(
        model2,
        x,
        y,
        epochs=1,
        batch_size=8,
        loss="mse",
        shuffle=False,
        optimizer=optax.sgd(0.01),
        **QUIET,
    )
    assert h_iter.epochs[0]["loss"] == pytest.approx(h_arr.epochs[0]["loss"], rel=1e-6)
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="unknown loss 'hinge'"):
        fit(model, x, y, loss="hinge", **QUIET)
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="fit needs a loss"):
        fit(model, x, y, **QUIET)
    with pytest.raises(jaxlstm.ShapeError, match="disagree on the number of examples"):
        Data(x, y[:3])
    with pytest.raises(
        jaxlstm.ShapeError, match=r"returns 1 output\(s\) \['dense_1'\]; received 2"
    ):
        fit(model, x, [y, y], loss="mse", **QUIET)


SHARDED = """
import json, sys
import jax, numpy as np
sys.path.insert(0, {tests!r})
import jaxlstm
from jaxlstm.train import fit
from test_train import forecaster_data, FIX
x, y = forecaster_data()
out = {{}}
for n in (1, 4):
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:n]), ("data",))
    model = jaxlstm.load_keras(FIX / "forecaster.h5")
    h = fit(model, x, y, epochs=3, batch_size=16, seed=1, loss="mse", mesh=mesh, progress=False)
    out[n] = {{"loss": [r["loss"] for r in h.epochs], "pred": np.asarray(model(x)).tolist()}}
print(json.dumps({{"devices": len(jax.devices()), **out}}))
"""


@pytest.mark.slow  # a 4-device subprocess: ~35 s of the default run
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


def test_progress_off_a_terminal_is_one_line_per_epoch_with_compile_time_apart():
    import io

    x, y = forecaster_data(48)
    model = jaxlstm.load_keras(FIX / "forecaster.h5")
    stream = io.StringIO()
    history = fit(
        model,
        x,
        y,
        epochs=3,
        batch_size=16,
        loss="mse",
        metrics=["mae"],
        optimizer=optax.sgd(0.01),
        stream=stream,
    )
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in stream.getvalue()
    assert lines[0].startswith("epoch 1/3  3 steps") and "mae" in lines[0]
    # the compile is counted in the first epoch, apart from its training time; later epochs
    # compile nothing (structure, not a race between two timings on a busy machine)
    assert history.compile_seconds > 0
    assert "compiling)" in lines[0] and not any("compiling" in line for line in lines[1:])
