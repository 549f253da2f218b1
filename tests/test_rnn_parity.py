"""Live parity with Keras 3 for GRU and SimpleRNN (alone and inside Bidirectional): hypothesis
draws configurations, Keras builds the layer with random weights and computes; jaxlstm's NNX
and Linen modules take the same weights (``get_weights()``) and must match within 1e-5."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import assert_matches_keras, random_mask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxlstm
import jaxlstm.linen as jl

keras = pytest.importorskip("keras")

ACTS = ["tanh", "sigmoid", "relu", "linear", "elu", "softsign", "gelu", "silu", "hard_sigmoid"]
REC_ACTS = ["sigmoid", "hard_sigmoid", "tanh", "softsign", "linear"]

configs = st.fixed_dictionaries(
    {
        "cell": st.sampled_from(["GRU", "SimpleRNN"]),
        "reset_after": st.booleans(),
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


def cell_options(cfg):
    """The Keras (and jaxlstm) constructor options of the drawn cell."""
    options = {k: cfg[k] for k in ("activation", "use_bias", "return_sequences", "return_state")}
    if cfg["cell"] == "GRU":
        options.update(
            recurrent_activation=cfg["recurrent_activation"], reset_after=cfg["reset_after"]
        )
    options["go_backwards"] = cfg["go_backwards"] and not cfg["bidirectional"]
    return options


def build_keras(cfg):
    """A Keras model around one (Bidirectional) GRU or SimpleRNN with random weights."""
    rng = np.random.default_rng(cfg["seed"])
    options = cell_options(cfg)
    x_in = keras.Input((cfg["steps"], cfg["features"]), name="x")
    inputs, call = [x_in], {}
    if cfg["mask"]:
        m_in = keras.Input((cfg["steps"],), dtype="bool", name="m")
        inputs.append(m_in)
        call["mask"] = m_in
    n_states = (2 if cfg["bidirectional"] else 1) if cfg["initial_state"] else 0
    if n_states:
        states = [keras.Input((cfg["units"],), name=f"s{i}") for i in range(n_states)]
        inputs += states
        call["initial_state"] = states
    if cfg["mask"] and n_states and not (cfg["bidirectional"] and cfg["return_sequences"]):
        # Keras-on-JAX's lax.scan path outputs h0 (not zeros) at masked steps before the first
        # unmasked one; its other backends and its unrolled path output zeros, as jaxlstm does
        # (see test_keras3_parity.py).
        options["unroll"] = True
    layer = getattr(keras.layers, cfg["cell"])(cfg["units"], name="rnn", **options)
    if cfg["bidirectional"]:
        merge = None if cfg["bidirectional"] == "none" else cfg["bidirectional"]
        layer = keras.layers.Bidirectional(layer, merge_mode=merge, name="bi")
    out = layer(x_in, **call)
    model = keras.Model(inputs, out if isinstance(out, list | tuple) else [out])
    for w in model.weights:
        w.assign(rng.uniform(-0.6, 0.6, w.shape).astype("float32"))
    x = rng.normal(size=(cfg["batch"], cfg["steps"], cfg["features"])).astype("float32")
    mask = random_mask(rng, cfg["batch"], cfg["steps"], cfg["mask"]) if cfg["mask"] else None
    states = [
        rng.normal(size=(cfg["batch"], cfg["units"])).astype("float32") for _ in range(n_states)
    ]
    outs = model([x, *([] if mask is None else [mask]), *states])
    outs = [np.asarray(o) for o in (outs if isinstance(outs, list | tuple) else [outs])]
    return layer, x, mask, states, outs


def _nnx_layer(cfg, weights, go_backwards, seed):
    module = getattr(jaxlstm, cfg["cell"])(
        cfg["features"], cfg["units"], **{**cell_options(cfg), "go_backwards": go_backwards},
        rngs=nnx.Rngs(seed),
    )  # fmt: skip
    names = ["kernel", "recurrent_kernel", "bias"][: len(weights)]
    for name, w in zip(names, weights, strict=True):
        getattr(module, name)[...] = jnp.asarray(w)
    return module


def jaxlstm_modules(cfg, layer):
    """The NNX module and a Linen ``(module, variables)`` pair holding Keras's weights."""
    lin_cls = getattr(jl, cfg["cell"])
    lin_opts = cell_options(cfg)
    if not cfg["bidirectional"]:
        w = layer.get_weights()
        names = ["kernel", "recurrent_kernel", "bias"][: len(w)]
        variables = {"params": {n: jnp.asarray(a) for n, a in zip(names, w, strict=True)}}
        return _nnx_layer(cfg, w, cfg["go_backwards"], 0), (
            lin_cls(cfg["units"], **lin_opts), variables,
        )  # fmt: skip
    merge = None if cfg["bidirectional"] == "none" else cfg["bidirectional"]
    fw_w, bw_w = layer.forward_layer.get_weights(), layer.backward_layer.get_weights()
    nnx_bi = jaxlstm.Bidirectional(
        _nnx_layer(cfg, fw_w, False, 0), _nnx_layer(cfg, bw_w, True, 1), merge_mode=merge
    )
    names = ["kernel", "recurrent_kernel", "bias"][: len(fw_w)]
    variables = {
        "params": {
            side: {n: jnp.asarray(a) for n, a in zip(names, w, strict=True)}
            for side, w in (("forward_layer", fw_w), ("backward_layer", bw_w))
        }
    }
    lin_bi = jl.Bidirectional(
        lin_cls(cfg["units"], **lin_opts),
        lin_cls(cfg["units"], **{**lin_opts, "go_backwards": True}),
        merge_mode=merge,
    )
    return nnx_bi, (lin_bi, variables)


def check(cfg):
    layer, x, mask, states, want = build_keras(cfg)
    nnx_module, (lin_module, variables) = jaxlstm_modules(cfg, layer)
    kwargs = dict(mask=mask, initial_state=states or None)
    assert_matches_keras(nnx_module(x, **kwargs), want)
    got = lin_module.apply(variables, x, deterministic=True, **kwargs)
    assert_matches_keras(got, want)
    return max(
        float(np.max(np.abs(np.asarray(g) - w), initial=0.0))
        for g, w in zip(jax.tree.leaves(got), want, strict=True)
    )


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(cfg=configs)
def test_gru_and_simple_rnn_match_keras3(cfg):
    check(cfg)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(cfg=configs)
def test_gru_and_simple_rnn_match_keras3_many(cfg):
    check(cfg)


BASE = dict(seed=3, batch=3, steps=6, features=3, units=4, activation="tanh",
            recurrent_activation="sigmoid", use_bias=True, go_backwards=False,
            return_sequences=True, return_state=True, mask=None, initial_state=False,
            bidirectional=None)  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [
        dict(cell="GRU", reset_after=True),
        dict(cell="GRU", reset_after=False, mask="gaps", go_backwards=True),
        dict(cell="GRU", reset_after=True, bidirectional="concat", mask="left", initial_state=True),
        dict(cell="GRU", reset_after=False, use_bias=False, activation="relu"),
        dict(cell="SimpleRNN", reset_after=True, activation="relu", mask="full_row"),
        dict(cell="SimpleRNN", reset_after=True, bidirectional="sum", initial_state=True),
    ],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()),
)
def test_named_configurations_match_keras3(change):
    """Fixed cases that every run covers, whatever hypothesis draws."""
    check({**BASE, **change})
