"""GRU and SimpleRNN loaded from files Keras 3 writes (``.keras``, ``.weights.h5``, legacy
``.h5``), alone, in ``Bidirectional``, in ``TimeDistributed``, as ``RNN(cell)`` and inside whole
models (masks, ``return_state`` wiring, stateful streaming), against the numbers live Keras 3
computes; and ``inspect`` naming their gates."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from helpers import assert_matches_keras

import jaxlstm

keras = pytest.importorskip("keras")
L = keras.layers


def _randomize(model, seed):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.uniform(-0.6, 0.6, w.shape).astype("float32"))


def _outs(outs):
    return [np.asarray(o) for o in (outs if isinstance(outs, list | tuple) else [outs])]


# name -> (layer factory, options a weights-only file cannot know, how to call the module)
LAYERS = {
    "gru_reset_after": (lambda: L.GRU(4, return_sequences=True, name="rnn"), {}),
    "gru_reset_before": (
        lambda: L.GRU(4, reset_after=False, activation="softsign", name="rnn"),
        {"activation": "softsign"},
    ),
    "gru_no_bias_backwards": (
        lambda: L.GRU(3, use_bias=False, go_backwards=True, return_sequences=True, name="rnn"),
        {"go_backwards": True},
    ),
    "simple_rnn_relu": (
        lambda: L.SimpleRNN(5, activation="relu", return_sequences=True, name="rnn"),
        {"activation": "relu"},
    ),
    "simple_rnn_linear": (
        lambda: L.SimpleRNN(2, activation=None, name="rnn"),
        {"activation": "linear"},
    ),
    "rnn_gru_cell": (lambda: L.RNN(L.GRUCell(3, reset_after=False), name="rnn"), {}),
    "rnn_simple_rnn_cell": (
        lambda: L.RNN(L.SimpleRNNCell(3), return_sequences=True, name="rnn"),
        {},
    ),
    "bidirectional_gru": (
        lambda: L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode="ave", name="rnn"),
        {"merge_mode": "ave"},
    ),
    "bidirectional_simple_rnn": (
        lambda: L.Bidirectional(L.SimpleRNN(2), merge_mode="concat", name="rnn"),
        {},
    ),
}


def _layer_file_case(name, tmp_path, masked):
    make, unknowable = LAYERS[name]
    layer = make()
    x_in = keras.Input((6, 3))
    m_in = keras.Input((6,), dtype="bool")
    out = layer(x_in, mask=m_in) if masked else layer(x_in)
    model = keras.Model([x_in, m_in] if masked else x_in, out)
    _randomize(model, zlib.crc32(name.encode()))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 1, 1], [0, 1, 1, 1, 1, 0]], bool)
    want = _outs(model([x, mask] if masked else x))
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    model.save_weights(tmp_path / "m.weights.h5")
    seq = getattr(getattr(layer, "forward_layer", layer), "return_sequences", False)
    return x, (mask if masked else None), want, {**unknowable, "return_sequences": seq}


@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_from_every_keras3_format_matches_keras(name, masked, tmp_path):
    x, mask, want, weights_only_options = _layer_file_case(name, tmp_path, masked)
    family = "SimpleRNN" if "simple" in name else "GRU"
    for fmt in ("m.keras", "m.h5", "m.weights.h5"):
        options = weights_only_options if fmt == "m.weights.h5" else {}
        module = jaxlstm.load_keras_layer(tmp_path / fmt, **options)
        inner = module.forward if isinstance(module, jaxlstm.Bidirectional) else module
        assert type(inner).__name__ == family, fmt
        assert_matches_keras(module(x, mask=mask), want)
        if fmt != "m.weights.h5":
            assert_matches_keras(jaxlstm.load_keras(tmp_path / fmt)(x, *([mask] * masked)), want)


def test_weights_only_gru_convention_follows_its_bias(tmp_path):
    """No config: a bias (2, 3u) proves reset_after=True, (3u,) False; inspect says so."""
    for reset_after in (True, False):
        model = keras.Sequential([keras.Input((5, 2)), L.GRU(3, reset_after=reset_after)])
        _randomize(model, 3)
        model.save_weights(tmp_path / f"{reset_after}.weights.h5")
        gru = jaxlstm.load_keras_layer(tmp_path / f"{reset_after}.weights.h5")
        assert gru.reset_after is reset_after
        x = np.random.default_rng(0).normal(size=(2, 5, 2)).astype("float32")
        assert_matches_keras(gru(x), _outs(model(x)))
        text = jaxlstm.describe_keras_file(tmp_path / f"{reset_after}.weights.h5")
        bias = "(2, 3u)" if reset_after else "(3u,)"
        assert f"class GRU (inferred: Keras layout, bias {bias})" in text
        assert f"reset_after={reset_after} (inferred: bias {bias})" in text


def test_config_and_bias_that_disagree_on_reset_after_are_refused(tmp_path):
    import json

    import h5py

    model = keras.Sequential([keras.Input((5, 2)), L.GRU(3)])
    model.save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        cfg["config"]["layers"][-1]["config"]["reset_after"] = False
        f.attrs["model_config"] = json.dumps(cfg)
    with pytest.raises(
        jaxlstm.KerasFileError,
        match=r"config says reset_after=False but the bias has shape \(2, 9\), which only a GRU "
        r"with reset_after=True has",
    ):
        jaxlstm.load_keras_layer(tmp_path / "m.h5")


def test_simple_rnn_refuses_a_recurrent_activation_override(tmp_path):
    model = keras.Sequential([keras.Input((5, 2)), L.SimpleRNN(3)])
    model.save(tmp_path / "m.keras")
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"for a SimpleRNN"):
        jaxlstm.load_keras_layer(tmp_path / "m.keras", recurrent_activation="sigmoid")


def test_time_distributed_gru(tmp_path):
    model = keras.Sequential(
        [keras.Input((2, 5, 3)), L.TimeDistributed(L.GRU(4), name="td"), L.Flatten()]
    )
    _randomize(model, 5)
    x = np.random.default_rng(2).normal(size=(2, 2, 5, 3)).astype("float32")
    want = _outs(model(x))
    for fmt in ("m.keras", "m.h5"):
        (model.save(tmp_path / fmt))
        assert_matches_keras(jaxlstm.load_keras(tmp_path / fmt)(x), want)
        gru = jaxlstm.load_keras_layer(tmp_path / fmt, "td")
        assert isinstance(gru, jaxlstm.GRU)
        assert_matches_keras(gru(x).reshape(2, -1), want)


def test_whole_model_with_gru_encoder_decoder_and_masks(tmp_path):
    """Embedding(mask_zero) -> GRU(return_state) whose state starts a decoder GRU, a
    Bidirectional SimpleRNN beside it, Dense heads: masks and return_state/initial_state wiring."""
    tokens = keras.Input((7,), dtype="int32")
    dec_in = keras.Input((4, 2))
    emb = L.Embedding(10, 3, mask_zero=True)(tokens)
    enc_seq, enc_h = L.GRU(5, return_sequences=True, return_state=True, name="enc")(emb)
    dec = L.GRU(5, reset_after=False, return_sequences=True, name="dec")(
        dec_in, initial_state=enc_h
    )
    side = L.Bidirectional(L.SimpleRNN(3), name="side")(enc_seq)
    model = keras.Model([tokens, dec_in], [L.Dense(2)(dec), L.Dense(1, activation="sigmoid")(side)])
    _randomize(model, 11)
    rng = np.random.default_rng(4)
    ids = rng.integers(1, 10, size=(3, 7)).astype("int32")
    ids[0, 5:] = 0
    ids[2, :3] = 0
    feed = [ids, rng.normal(size=(3, 4, 2)).astype("float32")]
    want = _outs(model(feed))
    for fmt in ("m.keras", "m.h5"):
        model.save(tmp_path / fmt)
        assert_matches_keras(jaxlstm.load_keras(tmp_path / fmt)(*feed), want)


def test_stateful_gru_streams_as_keras(tmp_path):
    """A stateful GRU and SimpleRNN fed chunk by chunk: call_with_state carries GRUState /
    SimpleRNNState as Keras carries its states between calls."""
    x_in = keras.Input(batch_shape=(2, 3, 2))
    h = L.GRU(4, stateful=True, return_sequences=True, name="g")(x_in)
    y = L.SimpleRNN(3, stateful=True, return_sequences=True, name="s")(h)
    model = keras.Model(x_in, y)
    _randomize(model, 7)
    x = np.random.default_rng(5).normal(size=(2, 9, 2)).astype("float32")
    want = np.concatenate([np.asarray(model(x[:, i : i + 3])) for i in range(0, 9, 3)], axis=1)
    model.save(tmp_path / "m.keras")
    for layer in model.layers:
        if hasattr(layer, "reset_state"):
            layer.reset_state()
    model.save(tmp_path / "m.h5")
    for fmt in ("m.keras", "m.h5"):
        jm, states, got = jaxlstm.load_keras(tmp_path / fmt), None, []
        for i in range(0, 9, 3):
            out, states = jm.call_with_state(x[:, i : i + 3], states=states)
            got.append(np.asarray(out))
        assert type(states["g"]).__name__ == "GRUState"
        assert type(states["s"]).__name__ == "SimpleRNNState"
        assert_matches_keras(np.concatenate(got, axis=1), want)


def test_inspect_shows_gru_gate_slices_and_bias_rows(tmp_path):
    model = keras.Sequential([keras.Input((5, 2)), L.GRU(3, name="g"), L.Reshape((3, 1))])
    model.add(L.SimpleRNN(2, name="s"))
    model.save(tmp_path / "m.keras")
    text = jaxlstm.describe_keras_file(tmp_path / "m.keras")
    assert "layer 'g': GRU" in text and "layer 's': SimpleRNN" in text
    assert "gates packed z, r, h along the last axis" in text
    assert "z (update)           kernel[:, 0:3]  recurrent_kernel[:, 0:3]  bias[0, 0:3]" in text
    assert "h (candidate)        kernel[:, 6:9]" in text
    assert "bias row 0: input bias" in text and "row 1: recurrent bias" in text
    assert "reset_after=True" in text
    assert "h (state)            kernel[:, 0:2]  recurrent_kernel[:, 0:2]  bias[0:2]" in text
    assert "recurrent_activation" not in text.split("layer 's'")[1]


def test_save_keras_writes_gru_and_simple_rnn_back_for_keras3(tmp_path):
    """Loaded from Keras 3, written by save_keras (.keras, legacy .h5, .weights.h5), read back
    by Keras 3 with its numbers: GRU (both conventions), Bidirectional(GRU), SimpleRNN."""
    x_in = keras.Input((5, 3))
    h = L.GRU(4, return_sequences=True, reset_after=False)(x_in)
    h = L.Bidirectional(L.GRU(2, return_sequences=True))(h)
    model = keras.Model(x_in, L.SimpleRNN(3)(h))
    _randomize(model, 9)
    x = np.random.default_rng(3).normal(size=(2, 5, 3)).astype("float32")
    want = _outs(model(x))
    model.save(tmp_path / "m.keras")
    jm = jaxlstm.load_keras(tmp_path / "m.keras")
    for ext in (".keras", ".h5"):
        jaxlstm.save_keras(jm, tmp_path / f"out{ext}")
        back = keras.saving.load_model(tmp_path / f"out{ext}", compile=False)
        assert_matches_keras(_outs(back(x)), want)
    jaxlstm.save_keras(jm, tmp_path / "out.weights.h5")
    _randomize(model, 99)  # other weights, replaced by the file's
    model.load_weights(tmp_path / "out.weights.h5")
    assert_matches_keras(_outs(model(x)), want)
