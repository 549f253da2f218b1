"""Whole Keras 3 models through load_keras: typical architectures and every supported layer,
saved by live Keras 3 as .keras and legacy .h5, against Keras's own outputs."""

from __future__ import annotations

import numpy as np
import pytest

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
    return keras.Sequential([
        keras.Input((8, 3)), L.LSTM(6, return_sequences=True), L.Dropout(0.2), L.LSTM(4),
        L.Dropout(0.2), L.Dense(3, activation="relu"), L.Dense(1),
    ])


def classifier(merges=("concat", "sum")):
    ids = keras.Input((7,), dtype="int32")
    x = L.Embedding(20, 5, mask_zero=True)(ids)
    x = L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode=merges[0])(x)
    x = L.Bidirectional(L.LSTM(3), merge_mode=merges[1])(x)
    return keras.Model(ids, L.Dense(3, activation="softmax")(x))


def autoencoder():
    return keras.Sequential([
        keras.Input((6, 2)), L.LSTM(4), L.RepeatVector(6), L.LSTM(4, return_sequences=True),
        L.TimeDistributed(L.Dense(2)),
    ])


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
    return keras.Sequential([
        keras.Input((16, 2)), L.Conv1D(4, 3, padding="same", activation="relu"), L.MaxPooling1D(2),
        L.Conv1D(4, 3, padding="valid", dilation_rate=1), L.AveragePooling1D(2, padding="same"),
        L.Conv1D(3, 2, padding="causal", dilation_rate=2), L.LSTM(3), L.Dense(1),
    ])


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
    parts = [op()([la, lb]) for op in (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum)]
    x = L.Concatenate(axis=-1)(parts)
    x = L.Cropping1D((2, 1))(L.ZeroPadding1D((1, 2))(x))
    x = L.Flatten()(L.Permute((2, 1))(x))
    y = L.Flatten()(L.Dot(axes=(2, 2))([la, lb]))
    z = L.Reshape((5, -1))(L.Dot(axes=2, normalize=True)([la, lb]))
    return keras.Model([a, b], [L.Dense(3)(x), y, L.GlobalMaxPooling1D()(z)])


def nested():
    encoder = keras.Sequential([keras.Input((5, 2)), L.LSTM(4, return_sequences=True), L.LSTM(3)], name="encoder")
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
    got = jmodel(*feeds)
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        np.testing.assert_allclose(np.asarray(g), w, atol=1e-5, rtol=0)
