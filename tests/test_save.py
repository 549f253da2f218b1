"""save_keras and `jaxlstm convert`: files Keras 3 opens, with the same numbers; atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxlstm
from jaxlstm._src import save as save_module
from jaxlstm._src.cli import main

keras = pytest.importorskip("keras")
optax = pytest.importorskip("optax")
FIX = Path(__file__).parent / "fixtures" / "keras2_models"
CONVERTIBLE = sorted(
    p.stem
    for p in FIX.glob("*.h5")
    if p.stem not in ("gru_refused", "lambda_refused", "time_major", "attention_seq2seq")
)


def npz(name):
    data = np.load(FIX / f"{name}.npz")
    ins = [data[f"in{i}"] for i in range(sum(k.startswith("in") for k in data.files))]
    outs = [data[f"out{i}"] for i in range(sum(k.startswith("out") for k in data.files))]
    return data, ins, outs


def keras_call(model, ins):
    """Inference outputs through one jitted program (Keras's eager calls compile every op)."""
    out = model.predict(ins if len(ins) > 1 else ins[0], verbose=0)
    return [np.asarray(o) for o in (out if isinstance(out, list | tuple) else [out])]


def test_keras3_refuses_the_keras2_files():
    with pytest.raises(Exception, match="time_major"):
        keras.saving.load_model(FIX / "forecaster.h5", compile=False)


@pytest.mark.parametrize("ext", [".keras", ".h5"])
@pytest.mark.parametrize("name", CONVERTIBLE)
def test_convert_gives_files_keras3_loads_with_keras2_numbers(name, ext, tmp_path):
    out = tmp_path / f"{name}{ext}"
    assert main(["convert", str(FIX / f"{name}.h5"), str(out)]) == 0
    data, ins, want = npz(name)
    model = keras.saving.load_model(out, compile=False)
    if name == "stateful":  # Keras streamed it; compare the first chunk from a fresh state
        chunk = int(data["chunk"])
        got = keras_call(model, [ins[0][:, :chunk]])
        want = [want[0][:, :chunk]]
    else:
        got = keras_call(model, ins)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=0)


def test_finetune_in_jax_then_back_to_keras(tmp_path):
    L = keras.layers
    src = keras.Sequential(
        [
            keras.Input((6, 2)),
            L.LSTM(5, return_sequences=True),
            L.Dropout(0.1),
            L.LSTM(3),
            L.Dense(1),
        ]
    )
    src.save(tmp_path / "src.keras")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 6, 2)).astype("float32")
    y = x.sum(axis=(1, 2))[:, None].astype("float32")

    model = jaxlstm.load_keras(tmp_path / "src.keras")
    before = np.asarray(model(x))
    model.train()
    opt = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt, x, y):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        opt.update(model, grads)
        return loss

    losses = [float(step(model, opt, x, y)) for _ in range(5)]
    assert losses[-1] < losses[0]
    model.eval()
    tuned = np.asarray(model(x))
    assert not np.allclose(tuned, before)
    for ext in (".keras", ".h5"):
        jaxlstm.save_keras(model, tmp_path / f"tuned{ext}")
        back = keras.saving.load_model(tmp_path / f"tuned{ext}", compile=False)
        np.testing.assert_allclose(np.asarray(back(x, training=False)), tuned, atol=1e-5)
        # and the file reads back into jaxlstm with the same weights
        again = jaxlstm.load_keras(tmp_path / f"tuned{ext}")
        np.testing.assert_allclose(np.asarray(again(x)), tuned, atol=1e-6)


def test_cudnn_model_becomes_a_keras3_lstm(tmp_path):
    src = Path(__file__).parent / "fixtures" / "keras2" / "cudnn.h5"
    jaxlstm.save_keras(jaxlstm.load_keras(src), tmp_path / "c.keras")
    expected = np.load(src.with_suffix(".npz"))
    model = keras.saving.load_model(tmp_path / "c.keras", compile=False)
    classes = json.dumps(json.loads(model.to_json()))
    assert "CuDNNLSTM" not in classes
    np.testing.assert_allclose(np.asarray(model(expected["x"])), expected["out0"], atol=1e-5)


def test_what_keras3_cannot_express_is_refused(tmp_path):
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="time_major=True, which Keras 3"):
        jaxlstm.save_keras(jaxlstm.load_keras(FIX / "time_major.h5"), tmp_path / "t.keras")
    hs = Path(__file__).parent / "fixtures" / "keras2" / "lstm_hard_sigmoid.h5"
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"hard_sigmoid.*clip\(0\.2x \+ 0\.5"):
        jaxlstm.save_keras(jaxlstm.load_keras(hs), tmp_path / "h.keras")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_masked_decoder_with_initial_state_is_not_written_for_keras3(tmp_path):
    """tf.keras masks a decoder LSTM called with initial_state; Keras 3 does not (it fills in
    masks only for one-tensor calls), so converting would change the numbers."""
    model = jaxlstm.load_keras(FIX / "attention_seq2seq.h5")
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="initial_state in a model with masks"):
        jaxlstm.save_keras(model, tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()


def test_save_keras_wants_a_whole_model(tmp_path):
    layer = jaxlstm.load_keras_layer(FIX / "forecaster.h5", "lstm")
    with pytest.raises(jaxlstm.JaxLSTMError, match="save_keras writes whole models; received LSTM"):
        jaxlstm.save_keras(layer, tmp_path / "x.keras")


def test_a_failed_write_leaves_the_old_file_and_no_debris(tmp_path, monkeypatch):
    target = tmp_path / "model.keras"
    target.write_bytes(b"the previous model")
    model = jaxlstm.load_keras(FIX / "forecaster.h5")

    def crash(fd):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(save_module.os, "fsync", crash)
    with pytest.raises(OSError, match="simulated"):
        jaxlstm.save_keras(model, target)
    assert target.read_bytes() == b"the previous model"
    assert os.listdir(tmp_path) == ["model.keras"]


def test_convert_will_not_overwrite_unless_asked(tmp_path, capsys):
    out = tmp_path / "m.keras"
    out.write_text("keep me")
    assert main(["convert", str(FIX / "forecaster.h5"), str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_text() == "keep me"
    assert main(["convert", str(FIX / "forecaster.h5"), str(out), "--overwrite"]) == 0
    assert jax.tree.leaves(nnx.state(jaxlstm.load_keras(out), nnx.Param))
