"""Whole Keras 3 models through load_keras: typical architectures and every supported layer,
saved by live Keras 3 as .keras and legacy .h5, against Keras's own outputs."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_matches_keras

import jaxlstm

keras = pytest.importorskip("keras")
L = keras.layers


def randomize(model, seed):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if "variance" in w.path:
            w.assign(rng.uniform(0.5, 1.5, w.shape).astype("float32"))
        else:
            w.assign(rng.uniform(-0.5, 0.5, w.shape).astype("float32"))
    return model


def forecaster():
    return keras.Sequential(
        [
            keras.Input((8, 3)),
            L.LSTM(6, return_sequences=True),
            L.Dropout(0.2),
            L.LSTM(4),
            L.Dropout(0.2),
            L.Dense(3, activation="relu"),
            L.Dense(1),
        ]
    )


def classifier(merges=("concat", "sum")):
    ids = keras.Input((7,), dtype="int32")
    x = L.Embedding(20, 5, mask_zero=True)(ids)
    x = L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode=merges[0])(x)
    x = L.Bidirectional(L.LSTM(3), merge_mode=merges[1])(x)
    return keras.Model(ids, L.Dense(3, activation="softmax")(x))


def autoencoder():
    return keras.Sequential(
        [
            keras.Input((6, 2)),
            L.LSTM(4),
            L.RepeatVector(6),
            L.LSTM(4, return_sequences=True),
            L.TimeDistributed(L.Dense(2)),
        ]
    )


def seq2seq():
    enc_in, dec_in = keras.Input((None, 3)), keras.Input((None, 4))
    _, h, c = L.LSTM(5, return_state=True)(enc_in)
    dec, _, _ = L.LSTM(5, return_sequences=True, return_state=True)(dec_in, initial_state=[h, c])
    return keras.Model([enc_in, dec_in], L.Dense(4, activation="softmax")(dec))


def two_outputs():
    inp = keras.Input((6, 3))
    seq = L.LSTM(5, return_sequences=True)(inp)
    reg = L.Dense(2, name="reg")(L.GlobalAveragePooling1D()(seq))
    cls = L.Dense(3, activation="softmax", name="cls")(L.LSTM(3)(seq))
    return keras.Model(inp, [reg, cls])


def cnn_lstm():
    return keras.Sequential(
        [
            keras.Input((16, 2)),
            L.Conv1D(4, 3, padding="same", activation="relu"),
            L.MaxPooling1D(2),
            L.Conv1D(4, 3, padding="valid", dilation_rate=1),
            L.AveragePooling1D(2, padding="same"),
            L.Conv1D(3, 2, padding="causal", dilation_rate=2),
            L.LSTM(3),
            L.Dense(1),
        ]
    )


def masking_layers():
    inp = keras.Input((7, 3))
    x = L.Masking(0.0)(inp)
    x = L.LSTM(4, return_sequences=True)(x)
    x = L.LayerNormalization()(x)
    x = L.Activation("tanh")(x)
    x = L.SpatialDropout1D(0.1)(x)
    x = L.GaussianNoise(0.1)(x)
    x = L.GaussianDropout(0.1)(x)
    x = L.BatchNormalization()(x)
    x = L.LSTM(3)(x)
    return keras.Model(inp, L.Dense(2)(x))


def merges():
    a, b = keras.Input((5, 3)), keras.Input((5, 3))
    la = L.LSTM(4, return_sequences=True)(a)
    lb = L.LSTM(4, return_sequences=True, go_backwards=True)(b)
    parts = [
        op()([la, lb]) for op in (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum)
    ]
    x = L.Concatenate(axis=-1)(parts)
    x = L.Cropping1D((2, 1))(L.ZeroPadding1D((1, 2))(x))
    x = L.Flatten()(L.Permute((2, 1))(x))
    y = L.Flatten()(L.Dot(axes=(2, 2))([la, lb]))
    z = L.Reshape((5, -1))(L.Dot(axes=2, normalize=True)([la, lb]))
    return keras.Model([a, b], [L.Dense(3)(x), y, L.GlobalMaxPooling1D()(z)])


def nested():
    encoder = keras.Sequential(
        [keras.Input((5, 2)), L.LSTM(4, return_sequences=True), L.LSTM(3)], name="encoder"
    )
    inp = keras.Input((5, 2))
    return keras.Model(inp, L.Dense(2)(encoder(inp)))


def inputs_for(model, seed, kind):
    rng = np.random.default_rng(seed)
    feeds = []
    for spec in model.inputs:
        shape = [3 if d is None else d for d in spec.shape]
        if shape[1] == 3 and spec.shape[1] is None:
            shape[1] = 6
        if "int" in str(spec.dtype):
            ids = rng.integers(1, 20, shape).astype("int32")
            if kind == "right":
                ids[0, 4:] = 0
                ids[1, 2:] = 0
            elif kind == "left":
                ids[0, :3] = 0
                ids[1, :1] = 0
                ids[2, 4] = 0
            feeds.append(ids)
        else:
            x = rng.normal(size=shape).astype("float32")
            if kind == "masking":
                x[0, :2] = 0.0
                x[1, 3] = 0.0
                x[2, -2:] = 0.0
            feeds.append(x)
    return feeds


CASES = {
    "forecaster": (forecaster, None),
    "classifier_right_pad": (classifier, "right"),
    "classifier_left_pad": (lambda: classifier(("ave", "mul")), "left"),
    "autoencoder": (autoencoder, None),
    "seq2seq": (seq2seq, None),
    "two_outputs": (two_outputs, None),
    "cnn_lstm": (cnn_lstm, None),
    "masking_layers": (masking_layers, "masking"),
    "merges": (merges, None),
    "nested": (nested, None),
}


@pytest.mark.parametrize("fmt", [".keras", ".h5"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_model_matches_keras3(case, fmt, tmp_path):
    build, kind = CASES[case]
    model = randomize(build(), seed=len(case))
    feeds = inputs_for(model, 7, kind)
    want = model(feeds if len(feeds) > 1 else feeds[0], training=False)
    want = [np.asarray(w) for w in (want if isinstance(want, list | tuple) else [want])]
    path = tmp_path / f"m{fmt}"
    model.save(path)
    jmodel = jaxlstm.load_keras(path)
    assert_matches_keras(jmodel(*feeds), want)


def test_stateful_model_streams_chunk_by_chunk(tmp_path):
    inp = keras.Input(batch_shape=(2, 4, 3))
    model = keras.Sequential(
        [inp, L.LSTM(3, stateful=True, return_sequences=True, name="stream"), L.Dense(1)]
    )
    randomize(model, 3)
    x = np.random.default_rng(0).normal(size=(2, 12, 3)).astype("float32")
    want = np.concatenate([np.asarray(model(x[:, i : i + 4])) for i in range(0, 12, 4)], axis=1)
    model.save(tmp_path / "s.keras")
    jmodel = jaxlstm.load_keras(tmp_path / "s.keras")
    assert jmodel.stateful == ("stream",)
    states, chunks = None, []
    for i in range(0, 12, 4):
        y, states = jmodel.call_with_state(x[:, i : i + 4], states=states)
        chunks.append(np.asarray(y))
    np.testing.assert_allclose(np.concatenate(chunks, axis=1), want, atol=1e-5)
    np.testing.assert_allclose(jmodel(x), want, atol=1e-5)  # one call on the whole sequence
    assert isinstance(states["stream"], jaxlstm.LSTMState)


@pytest.mark.parametrize("fmt", [".keras", ".h5"])
def test_stateful_with_fed_initial_state_follows_keras3(fmt, tmp_path):
    """Keras 3 starts a stateful LSTM from the fed initial_state on every call (rnn.py: the
    carried state is used only when none is fed); jaxlstm streams a Keras 3 file the same way.
    (tf.keras switches to the carried state: tests/test_keras2_models.py, stateful_*.)"""
    x_in = keras.Input(batch_shape=(2, 4, 3))
    s_in = [keras.Input(batch_shape=(2, 3)) for _ in range(2)]
    lstm = L.LSTM(3, stateful=True, return_sequences=True, name="stream")
    model = keras.Model([x_in, *s_in], L.Dense(1)(lstm(x_in, initial_state=s_in)))
    randomize(model, 4)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 12, 3)).astype("float32")
    s = [rng.uniform(-0.9, 0.9, (2, 3)).astype("float32") for _ in range(2)]
    model.save(tmp_path / f"s{fmt}")  # before streaming: the saved state is zeros
    want = [np.asarray(model([x[:, i : i + 4], *s])) for i in range(0, 12, 4)]
    jmodel = jaxlstm.load_keras(tmp_path / f"s{fmt}")
    states, got = None, []
    for i in range(0, 12, 4):
        y, states = jmodel.call_with_state(x[:, i : i + 4], *s, states=states)
        got.append(np.asarray(y))
    assert_matches_keras(np.concatenate(got, 1), np.concatenate(want, 1))
    restarted = jmodel(x[:, 4:8], *s)  # every chunk restarts from the fed state
    assert_matches_keras(restarted, want[1])
    assert not np.allclose(jmodel(x, *s)[:, 4:8], want[1], atol=1e-3)  # != one whole call


@pytest.mark.parametrize(
    "version,carried",
    [
        ("1", False),
        ("2.2.4", False),
        ("2.3.1", False),
        ("2.2.4-tf", True),
        ("2.4.0", True),
        ("2.21.0", True),
        ("3.0.0", False),
        ("3.15.1", False),
    ],
)
def test_which_keras_carries_the_state_over_a_fed_one(version, carried):
    from jaxlstm._src.vocabulary import carried_state_wins

    assert carried_state_wins(version) is carried


def test_lambda_is_refused_then_supplied(tmp_path):
    model = keras.Sequential([keras.Input((4, 2)), L.Lambda(lambda t: t * 2.0), L.LSTM(2)])
    randomize(model, 1)
    x = np.random.default_rng(1).normal(size=(3, 4, 2)).astype("float32")
    want = np.asarray(model(x))
    model.save(tmp_path / "l.keras")
    with pytest.raises(
        jaxlstm.UnsupportedLayerError, match=r"layer 'lambda' is Lambda: .*never executes code"
    ):
        jaxlstm.load_keras(tmp_path / "l.keras")
    jmodel = jaxlstm.load_keras(
        tmp_path / "l.keras", custom_layers={"Lambda": lambda cfg, w: lambda t: t * 2.0}
    )
    np.testing.assert_allclose(jmodel(x), want, atol=1e-5)


def test_unknown_layer_names_layer_and_class(tmp_path):
    model = keras.Sequential([keras.Input((4, 3, 2)), L.GroupNormalization(2, name="my_norm")])
    model.save(tmp_path / "g.keras")
    with pytest.raises(
        jaxlstm.UnsupportedLayerError,
        match=r"layer 'my_norm' is GroupNormalization: .*custom_layers=\{'GroupNormalization': "
        r"factory\}",
    ):
        jaxlstm.load_keras(tmp_path / "g.keras")


def test_weights_only_file_is_not_a_model(tmp_path):
    model = forecaster()
    model.save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(jaxlstm.KerasFileError, match="has no model config, only weights"):
        jaxlstm.load_keras(tmp_path / "w.weights.h5")


def test_train_mode_jit_and_grad(tmp_path):
    import jax
    import jax.numpy as jnp
    from flax import nnx

    model = randomize(masking_layers(), 5)
    model.save(tmp_path / "m.keras")
    jmodel = jaxlstm.load_keras(tmp_path / "m.keras")
    x = inputs_for(model, 2, "masking")[0]
    eval_out = np.asarray(jmodel(x))
    np.testing.assert_array_equal(jmodel(x), eval_out)  # eval mode is deterministic
    jmodel.train()
    train_out = np.asarray(jmodel(x))
    assert not np.allclose(train_out, eval_out)  # dropout, noise and batch statistics
    jmodel.eval()

    @nnx.jit
    def loss(m, x):
        return jnp.mean(m(x) ** 2)

    grads = nnx.grad(loss)(jmodel, x)
    flat = jax.tree.leaves(nnx.state(grads, nnx.Param))
    assert flat and all(np.all(np.isfinite(g)) for g in flat)
    assert sum(float(jnp.abs(g).sum()) for g in flat) > 0
