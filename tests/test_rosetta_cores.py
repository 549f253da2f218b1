"""The two LSTM variants other frameworks bring, in the pure core, against NumPy references
written from their definitions: PyTorch's projected LSTM (``proj_size``) and ONNX's peepholes,
cell clip and coupled input/forget gates; and the TorchConfig a written state dict names."""

from __future__ import annotations

import numpy as np
import pytest
from flax import nnx

import jaxlstm
from jaxlstm import (
    PeepholeLSTMParams,
    ProjLSTMParams,
    TorchConfig,
    peephole_lstm_scan,
    proj_lstm_scan,
)

SIG = lambda v: 1.0 / (1.0 + np.exp(-v))
RNG = np.random.default_rng(0)


def _np_lstm(x, k, r, b, step_out, peephole=None, clip=None, input_forget=False):
    """Keras's i, f, c, o LSTM in float64; ``step_out(o, c) -> h`` (the projection or not)."""
    x, k, r = (np.asarray(a, np.float64) for a in (x, k, r))
    batch, steps, _ = x.shape
    u = k.shape[1] // 4
    h = np.zeros((batch, r.shape[0]))
    c = np.zeros((batch, u))
    kap = (lambda v: v) if clip is None else (lambda v: np.clip(v, -clip, clip))
    p = np.zeros((3, u)) if peephole is None else np.asarray(peephole, np.float64)
    ys = []
    for t in range(steps):
        z = x[:, t] @ k + h @ r + (0.0 if b is None else np.asarray(b, np.float64))
        zi, zf, zc, zo = np.split(z, 4, axis=-1)
        i = SIG(kap(zi + p[0] * c))
        f = 1.0 - i if input_forget else SIG(kap(zf + p[1] * c))
        c = f * c + i * np.tanh(kap(zc))
        o = SIG(kap(zo + p[2] * c))
        h = step_out(o, c)
        ys.append(h)
    return np.stack(ys, 1), h, c


@pytest.mark.parametrize("use_bias", [True, False])
def test_projected_lstm_matches_pytorchs_definition(use_bias):
    """h_t = W_hr (o_t * tanh(c_t)) with W_hr^T as ``projection``; h (p,), c (u,)."""
    u, p, n = 5, 3, 4
    k = RNG.uniform(-0.5, 0.5, (n, 4 * u)).astype(np.float32)
    r = RNG.uniform(-0.5, 0.5, (p, 4 * u)).astype(np.float32)
    b = RNG.uniform(-0.5, 0.5, (4 * u,)).astype(np.float32) if use_bias else None
    proj = RNG.uniform(-0.5, 0.5, (u, p)).astype(np.float32)
    x = RNG.normal(size=(2, 6, n)).astype(np.float32)
    want, h, c = _np_lstm(x, k, r, b, lambda o, c: (o * np.tanh(c)) @ proj)
    got, state = proj_lstm_scan(ProjLSTMParams(k, r, b, proj), x)
    assert got.shape == (2, 6, p) and state.c.shape == (2, u)
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(state.h, h, atol=1e-6)
    np.testing.assert_allclose(state.c, c, atol=1e-6)


@pytest.mark.parametrize(
    "clip,input_forget", [(None, False), (0.5, False), (None, True), (0.8, True)]
)
def test_peephole_lstm_matches_onnxs_definition(clip, input_forget):
    u, n = 4, 3
    k = RNG.uniform(-1, 1, (n, 4 * u)).astype(np.float32)
    r = RNG.uniform(-1, 1, (u, 4 * u)).astype(np.float32)
    b = RNG.uniform(-1, 1, (4 * u,)).astype(np.float32)
    peep = RNG.uniform(-1, 1, (3, u)).astype(np.float32)
    x = RNG.normal(size=(3, 5, n)).astype(np.float32) * 2
    want, _, c = _np_lstm(
        x, k, r, b, lambda o, c: o * np.tanh(c), peep, clip=clip, input_forget=input_forget
    )
    got, state = peephole_lstm_scan(
        PeepholeLSTMParams(k, r, b, peep), x, clip=clip, input_forget=input_forget
    )
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(state.c, c, atol=1e-6)
    if clip is not None:  # the clip bounds the activations' inputs, not c itself
        assert not np.allclose(got, peephole_lstm_scan(PeepholeLSTMParams(k, r, b, peep), x)[0])


def test_a_peephole_of_the_wrong_shape_is_refused():
    k, r = np.zeros((3, 8), np.float32), np.zeros((2, 8), np.float32)
    with pytest.raises(jaxlstm.ShapeError, match=r"peephole has shape \(2, 2\); expected \(3, 2\)"):
        peephole_lstm_scan(PeepholeLSTMParams(k, r, None, np.zeros((2, 2))), np.zeros((1, 4, 3)))


def test_torch_config_names_the_module_that_loads_the_state_dict():
    """A Bidirectional LSTM's state dict: PyTorch's key names and shapes for the nn.LSTM that
    TorchConfig describes (weight_ih_l0 (4H, in), the _reverse direction, two biases)."""
    fw = jaxlstm.LSTM(3, 4, return_sequences=True, rngs=nnx.Rngs(0))
    bw = jaxlstm.LSTM(3, 4, return_sequences=True, go_backwards=True, rngs=nnx.Rngs(1))
    state, config = jaxlstm.torch_state_dict(jaxlstm.Bidirectional(fw, bw), prefix="rnn.")
    assert isinstance(config, TorchConfig) and config.mode == "LSTM"
    assert config.kwargs() == dict(
        input_size=3, hidden_size=4, num_layers=1, bias=True, bidirectional=True, batch_first=True
    )  # batch_first: the (batch, time, features) inputs jaxlstm takes
    shapes = {key: v.shape for key, v in state.items()}
    for suffix in ("", "_reverse"):
        assert shapes[f"rnn.weight_ih_l0{suffix}"] == (16, 3)
        assert shapes[f"rnn.weight_hh_l0{suffix}"] == (16, 4)
        assert shapes[f"rnn.bias_ih_l0{suffix}"] == shapes[f"rnn.bias_hh_l0{suffix}"] == (16,)
    assert len(state) == 8


def _linen_twin_matches(linen_module, nnx_module, x, **call):
    import jax

    import jaxlstm.linen as jl  # noqa: F401  (the twins under test)

    params = nnx_module.params._asdict()
    variables = {"params": {k: v for k, v in params.items() if v is not None}}
    got = linen_module.apply(variables, x, deterministic=True, **call)
    want = nnx_module(x, **call)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=1e-6)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_linen_twins_of_the_variants_match_nnx(go_backwards):
    """jaxlstm.linen.ProjLSTM / PeepholeLSTM with the NNX module's params give its numbers:
    masks, initial states, return_state, go_backwards, clip and input_forget."""
    import jaxlstm.linen as jl

    x = RNG.normal(size=(3, 5, 2)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 1, 1, 0]], bool)
    opts = dict(return_sequences=True, return_state=True, go_backwards=go_backwards)
    proj = jaxlstm.ProjLSTM(2, 6, 3, **opts, rngs=nnx.Rngs(0))
    h0, c0 = RNG.normal(size=(3, 3)).astype(np.float32), RNG.normal(size=(3, 6)).astype(np.float32)
    _linen_twin_matches(
        jl.ProjLSTM(units=6, proj_size=3, **opts), proj, x, mask=mask, initial_state=[h0, c0]
    )
    peep = jaxlstm.PeepholeLSTM(2, 4, clip=0.7, input_forget=True, **opts, rngs=nnx.Rngs(1))
    _linen_twin_matches(
        jl.PeepholeLSTM(units=4, clip=0.7, input_forget=True, **opts), peep, x, mask=mask
    )


def test_a_linen_projlstm_without_its_size_is_refused():
    import jax
    import jax.numpy as jnp

    import jaxlstm.linen as jl

    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"ProjLSTM\(proj_size=None\)"):
        jl.ProjLSTM(units=4).init(jax.random.key(0), jnp.ones((1, 2, 3)), deterministic=True)
