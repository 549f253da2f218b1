"""Each supported layer with its options, alone in a live Keras 3 model, against Keras."""

from __future__ import annotations

import numpy as np
import pytest

import jaxlstm

keras = pytest.importorskip("keras")
L = keras.layers

# id -> (layer factory, input shape without batch, input kind)
CASES = {
    "dense_relu": (lambda: L.Dense(4, activation="relu"), (5, 3), "x"),
    "dense_no_bias_hard_sigmoid": (
        lambda: L.Dense(3, use_bias=False, activation="hard_sigmoid"),
        (3,),
        "x",
    ),
    "activation_gelu": (lambda: L.Activation("gelu"), (5, 3), "x"),
    "embedding": (lambda: L.Embedding(11, 4), (6,), "ids"),
    "masking_value": (lambda: L.Masking(0.5), (5, 3), "x"),
    "conv1d_strided_same": (lambda: L.Conv1D(4, 3, strides=2, padding="same"), (9, 3), "x"),
    "conv1d_dilated_causal": (
        lambda: L.Conv1D(3, 2, dilation_rate=2, padding="causal"),
        (9, 2),
        "x",
    ),
    "conv1d_groups_no_bias": (lambda: L.Conv1D(4, 3, groups=2, use_bias=False), (9, 4), "x"),
    "maxpool_same": (lambda: L.MaxPooling1D(3, strides=2, padding="same"), (9, 2), "x"),
    "avgpool_same": (lambda: L.AveragePooling1D(3, strides=2, padding="same"), (9, 2), "x"),
    "avgpool_valid": (lambda: L.AveragePooling1D(2), (9, 2), "x"),
    "global_avg_keepdims": (lambda: L.GlobalAveragePooling1D(keepdims=True), (6, 3), "x"),
    "global_max": (lambda: L.GlobalMaxPooling1D(), (6, 3), "x"),
    "layernorm_no_center": (lambda: L.LayerNormalization(center=False, epsilon=1e-5), (5, 3), "x"),
    "layernorm_two_axes": (lambda: L.LayerNormalization(axis=[1, 2]), (5, 3), "x"),
    "batchnorm_no_scale": (lambda: L.BatchNormalization(scale=False, epsilon=1e-2), (5, 3), "x"),
    "repeat_vector": (lambda: L.RepeatVector(4), (3,), "x"),
    "reshape": (lambda: L.Reshape((3, -1)), (6, 2), "x"),
    "permute": (lambda: L.Permute((2, 1)), (6, 2), "x"),
    "flatten": (lambda: L.Flatten(), (6, 2), "x"),
    "zero_padding": (lambda: L.ZeroPadding1D(2), (4, 2), "x"),
    "cropping": (lambda: L.Cropping1D((1, 2)), (6, 2), "x"),
    "time_distributed_dense": (
        lambda: L.TimeDistributed(L.Dense(2, activation="tanh")),
        (4, 3),
        "x",
    ),
    "time_distributed_lstm": (lambda: L.TimeDistributed(L.LSTM(2)), (3, 4, 2), "x"),
    "lstm_no_bias_relu": (
        lambda: L.LSTM(3, use_bias=False, activation="relu", return_sequences=True),
        (5, 2),
        "x",
    ),
    "rnn_lstmcell": (
        lambda: L.RNN(L.LSTMCell(3), return_sequences=True, go_backwards=True),
        (5, 2),
        "x",
    ),
}


def randomize(model, rng):
    for w in model.weights:
        lo = 0.5 if "variance" in w.path else -0.5
        w.assign(rng.uniform(lo, lo + 1.0, w.shape).astype("float32"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_matches_keras3(case, tmp_path):
    factory, shape, kind = CASES[case]
    rng = np.random.default_rng(len(case))
    model = keras.Sequential(
        [keras.Input(shape, dtype="int32" if kind == "ids" else "float32"), factory()]
    )
    randomize(model, rng)
    if kind == "ids":
        x = rng.integers(0, 11, (3, *shape)).astype("int32")
    else:
        x = rng.normal(size=(3, *shape)).astype("float32")
        if case == "masking_value":
            x[0, 1] = 0.5
    want = np.asarray(model(x, training=False))
    model.save(tmp_path / "m.keras")
    got = np.asarray(jaxlstm.load_keras(tmp_path / "m.keras")(x))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
