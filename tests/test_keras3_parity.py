"""Live parity with Keras 3: hypothesis draws LSTM configurations, Keras computes and saves them
in each Keras 3 format, jaxlstm loads each file and must give the same outputs and states."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_matches_keras, random_mask
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import jaxlstm

keras = pytest.importorskip("keras")

ACTS = [
    "tanh",
    "sigmoid",
    "relu",
    "linear",
    "elu",
    "selu",
    "softsign",
    "softplus",
    "gelu",
    "silu",
    "relu6",
    "leaky_relu",
    "hard_silu",
    "mish",
    "hard_sigmoid",
    "exponential",
]
REC_ACTS = ["sigmoid", "hard_sigmoid", "tanh", "softsign", "hard_silu", "linear"]

configs = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**31 - 1),
        "batch": st.integers(1, 3),
        "steps": st.integers(1, 6),
        "features": st.integers(1, 3),
        "units": st.integers(1, 4),
        "activation": st.sampled_from(ACTS),
        "recurrent_activation": st.sampled_from(REC_ACTS),
        "use_bias": st.booleans(),
        "go_backwards": st.booleans(),
        "return_sequences": st.booleans(),
        "return_state": st.booleans(),
        "mask": st.sampled_from([None, "right", "left", "gaps", "full_row"]),
        "initial_state": st.booleans(),
        "bidirectional": st.sampled_from([None, "concat", "sum", "mul", "ave", "none"]),
    }
)


def build_keras(cfg):
    """A Keras model around one (Bidirectional) LSTM, with random non-zero weights everywhere."""
    rng = np.random.default_rng(cfg["seed"])
    options = {
        k: cfg[k]
        for k in (
            "activation",
            "recurrent_activation",
            "use_bias",
            "go_backwards",
            "return_sequences",
            "return_state",
        )
    }
    x_in = keras.Input((cfg["steps"], cfg["features"]), name="x")
    inputs, call = [x_in], {}
    if cfg["mask"]:
        m_in = keras.Input((cfg["steps"],), dtype="bool", name="m")
        inputs.append(m_in)
        call["mask"] = m_in
    n_states = 0
    if cfg["initial_state"]:
        n_states = 4 if cfg["bidirectional"] else 2
        states = [keras.Input((cfg["units"],), name=f"s{i}") for i in range(n_states)]
        inputs += states
        call["initial_state"] = states
    if cfg["bidirectional"]:  # Keras 3 refuses a go_backwards layer in Bidirectional
        options["go_backwards"] = False
    if (
        cfg["mask"]
        and cfg["initial_state"]
        and not (cfg["bidirectional"] and cfg["return_sequences"])
    ):
        # Keras's backends disagree at masked steps before the first unmasked one when the
        # initial state is not zero: TensorFlow, PyTorch, NumPy and the unrolled JAX path output
        # zeros there (as we do), the JAX lax.scan path outputs h0. Ask Keras-on-JAX for the
        # former; test_jax_backend_scan_divergence pins the latter. (Inside Bidirectional with
        # return_sequences, masked outputs are zeros anyway, and the unrolled JAX path would
        # ignore zero_output_for_mask, so the scan path is the reference there.)
        options["unroll"] = True
    layer = keras.layers.LSTM(cfg["units"], name="rnn", **options)
    if cfg["bidirectional"]:
        merge = None if cfg["bidirectional"] == "none" else cfg["bidirectional"]
        layer = keras.layers.Bidirectional(layer, merge_mode=merge, name="bi")
    out = layer(x_in, **call)
    model = keras.Model(inputs, out if isinstance(out, list | tuple) else [out])
    for w in model.weights:
        w.assign(rng.uniform(-0.6, 0.6, w.shape).astype("float32"))
    x = rng.normal(size=(cfg["batch"], cfg["steps"], cfg["features"])).astype("float32")
    feed = [x]
    mask = random_mask(rng, cfg["batch"], cfg["steps"], cfg["mask"]) if cfg["mask"] else None
    if mask is not None:
        feed.append(mask)
    feed += [
        rng.normal(size=(cfg["batch"], cfg["units"])).astype("float32") for _ in range(n_states)
    ]
    outs = model(feed)
    outs = [np.asarray(o) for o in (outs if isinstance(outs, list | tuple) else [outs])]
    return model, layer.name, feed, mask, outs


def call_jax(module, cfg, feed, mask):
    kwargs = {}
    if mask is not None:
        kwargs["mask"] = mask
    if cfg["initial_state"]:
        kwargs["initial_state"] = feed[-(4 if cfg["bidirectional"] else 2) :]
    return module(feed[0], **kwargs)


# Past this, outputs are float32-ill-conditioned: an exponential (or linear) activation that
# explodes multiplies a 1-ulp difference in a pre-activation by its own size (exp at 1.7e15 is
# 3e-5 off from Keras's relative to the output, i.e. ~15 ulps of its 35-ish input). Parity
# there says nothing about the layout or the math that moderate outputs don't already pin.
ILL_CONDITIONED = 1e6


def check_every_format(cfg, tmp_path_factory):
    model, name, feed, mask, want = build_keras(cfg)
    assume(max(float(np.max(np.abs(w))) for w in want) < ILL_CONDITIONED)
    tmp = tmp_path_factory.mktemp("k3")
    model.save(tmp / "m.keras")
    model.save_weights(tmp / "m.weights.h5")
    model.save(tmp / "m.h5")
    options = {
        k: cfg[k]
        for k in ("activation", "recurrent_activation", "return_sequences", "return_state")
    }
    for fname in ("m.keras", "m.h5", "m.weights.h5"):
        overrides = {}
        if fname.endswith(".weights.h5"):  # no config in the file: tell the loader
            overrides = dict(options)
            if cfg["bidirectional"]:
                overrides["merge_mode"] = (
                    None if cfg["bidirectional"] == "none" else cfg["bidirectional"]
                )
            else:
                overrides["go_backwards"] = cfg["go_backwards"]
        module = jaxlstm.load_keras_layer(
            tmp / fname, name if not fname.endswith("weights.h5") else None, **overrides
        )
        assert_matches_keras(call_jax(module, cfg, feed, mask), want)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(cfg=configs)
def test_every_keras3_format_matches_keras(cfg, tmp_path_factory):
    check_every_format(cfg, tmp_path_factory)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(cfg=configs)
def test_every_keras3_format_matches_keras_many(cfg, tmp_path_factory):
    check_every_format(cfg, tmp_path_factory)


def test_jax_backend_scan_divergence():
    """Pin the one place Keras disagrees with itself, and which side we take: with a non-zero
    initial state, masked steps before the first unmasked one output zeros on TensorFlow,
    PyTorch, NumPy and unrolled JAX, but h0 on the JAX backend's lax.scan path."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    mask = np.array([[False, False, True, True, True], [True, True, True, False, True]])
    h0, c0 = (rng.normal(size=(2, 4)).astype("float32") for _ in range(2))
    weights = [rng.uniform(-0.6, 0.6, s).astype("float32") for s in [(3, 16), (4, 16), (16,)]]
    outs = {}
    for unroll in (False, True):
        layer = keras.layers.LSTM(4, return_sequences=True, unroll=unroll)
        layer.build((None, 5, 3))
        layer.set_weights(weights)
        outs[unroll] = np.asarray(layer(x, mask=mask, initial_state=[h0, c0]))
    got, _ = jaxlstm.lstm_scan(
        jaxlstm.LSTMParams(*weights), x, mask=mask, initial_state=jaxlstm.LSTMState(h0, c0)
    )
    np.testing.assert_allclose(got, outs[True], atol=1e-5)  # unrolled Keras-on-JAX: zeros
    np.testing.assert_array_equal(np.asarray(got)[0, :2], 0.0)
    np.testing.assert_allclose(outs[False][0, :2], np.broadcast_to(h0[0], (2, 4)), atol=1e-6)
    np.testing.assert_allclose(outs[False][:, 2:], outs[True][:, 2:], atol=1e-5)
