"""The Flax modules: NNX and Linen give the core's numbers, Keras's output structure, Keras 3's
dropout semantics, and gradients."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxlstm
import jaxlstm.linen as jl
from jaxlstm import LSTMParams, lstm_scan
from jaxlstm._src.core.layer import LAYER_OPTIONS


def nnx_lstm(**kw):
    return jaxlstm.LSTM(3, 4, rngs=nnx.Rngs(0), **kw)


def linen_params(module: jaxlstm.LSTM):
    p = {"kernel": module.kernel[...], "recurrent_kernel": module.recurrent_kernel[...]}
    if module.bias is not None:
        p["bias"] = module.bias[...]
    return p


X = np.random.default_rng(0).normal(size=(2, 6, 3)).astype(np.float32)
MASK = np.array([[True, True, False, True, True, False], [False, False, True, True, True, True]])


def test_keras_defaults_and_initialisers():
    m = nnx_lstm()
    assert (
        m.kernel.shape == (3, 16) and m.recurrent_kernel.shape == (4, 16) and m.bias.shape == (16,)
    )
    np.testing.assert_array_equal(m.bias[...], np.r_[np.zeros(4), np.ones(4), np.zeros(8)])
    r = np.asarray(m.recurrent_kernel[...])
    np.testing.assert_allclose(r @ r.T, np.eye(4), atol=1e-5)  # orthogonal, as Keras
    assert m(X).shape == (2, 4)
    assert jaxlstm.LSTM(3, 4, use_bias=False, rngs=nnx.Rngs(0)).bias is None


@pytest.mark.parametrize(
    "return_sequences,return_state,go_backwards",
    list(itertools.product([False, True], [False, True], [False, True])),
)
def test_nnx_and_linen_equal_the_core(return_sequences, return_state, go_backwards):
    opts = dict(
        return_sequences=return_sequences, return_state=return_state, go_backwards=go_backwards
    )
    m = nnx_lstm(**opts)
    got = m(X, mask=MASK)
    seq, state = lstm_scan(
        m.params, X, mask=MASK, go_backwards=go_backwards, return_sequences=return_sequences
    )
    want = (seq, state.h, state.c) if return_state else seq
    lin = jl.LSTM(4, **opts).apply({"params": linen_params(m)}, X, mask=MASK, deterministic=True)
    for g, w, li in zip(*(jax.tree.leaves(t) for t in (got, want, lin)), strict=True):
        np.testing.assert_allclose(g, w, atol=1e-6)
        np.testing.assert_allclose(li, w, atol=1e-6)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_nnx_and_linen_agree(merge_mode, return_sequences):
    rngs = nnx.Rngs(1)
    fw = jaxlstm.LSTM(3, 4, return_sequences=return_sequences, return_state=True, rngs=rngs)
    bw = jaxlstm.LSTM(
        3, 4, return_sequences=return_sequences, return_state=True, go_backwards=True, rngs=rngs
    )
    bi = jaxlstm.Bidirectional(fw, bw, merge_mode=merge_mode)
    out = bi(X, mask=MASK)
    n_out = 2 if merge_mode is None else 1
    assert len(out) == n_out + 4  # outputs, then h_fw, c_fw, h_bw, c_bw as Keras orders them
    y_bw, state_bw = lstm_scan(
        bw.params,
        X,
        mask=MASK,
        go_backwards=True,
        return_sequences=return_sequences,
        zero_output_for_mask=return_sequences,
    )
    np.testing.assert_allclose(out[-2], state_bw.h, atol=1e-6)
    if merge_mode is None:
        expected_bw = y_bw[:, ::-1] if return_sequences else y_bw  # flipped back to input order
        np.testing.assert_allclose(out[1], expected_bw, atol=1e-6)
    lbi = jl.Bidirectional(
        jl.LSTM(4, return_sequences=return_sequences, return_state=True),
        jl.LSTM(4, return_sequences=return_sequences, return_state=True, go_backwards=True),
        merge_mode=merge_mode,
    )
    variables = {"params": {"forward_layer": linen_params(fw), "backward_layer": linen_params(bw)}}
    lout = lbi.apply(variables, X, mask=MASK, deterministic=True)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(lout), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_bidirectional_initial_state_is_split_like_keras():
    rngs = nnx.Rngs(2)
    fw, bw = jaxlstm.LSTM(3, 4, rngs=rngs), jaxlstm.LSTM(3, 4, go_backwards=True, rngs=rngs)
    bi = jaxlstm.Bidirectional(fw, bw, merge_mode=None)
    s = [np.full((2, 4), v, np.float32) for v in (0.1, 0.2, 0.3, 0.4)]
    y_fw, y_bw = bi(X, initial_state=s)
    np.testing.assert_allclose(y_fw, fw(X, initial_state=s[:2]), atol=1e-6)
    np.testing.assert_allclose(y_bw, bw(X, initial_state=s[2:]), atol=1e-6)


def test_bidirectional_refuses_what_keras_refuses():
    rngs = nnx.Rngs(0)
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="both have go_backwards=False"):
        jaxlstm.Bidirectional(jaxlstm.LSTM(3, 4, rngs=rngs), jaxlstm.LSTM(3, 4, rngs=rngs))
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"merge_mode='max'; expected one of"):
        jaxlstm.Bidirectional(
            jaxlstm.LSTM(3, 4, rngs=rngs), jaxlstm.LSTM(3, 4, go_backwards=True, rngs=rngs), "max"
        )
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="return_sequences=True but backward"):
        jaxlstm.Bidirectional(
            jaxlstm.LSTM(3, 4, return_sequences=True, rngs=rngs),
            jaxlstm.LSTM(3, 4, go_backwards=True, rngs=rngs),
        )
    bi = jaxlstm.Bidirectional(
        jaxlstm.LSTM(3, 4, rngs=rngs), jaxlstm.LSTM(3, 4, go_backwards=True, rngs=rngs)
    )
    with pytest.raises(
        jaxlstm.UnsupportedOptionError, match="initial_state has 2 arrays; expected 4"
    ):
        bi(X, initial_state=[np.zeros((2, 4))] * 2)


def _options(lstm) -> dict:
    return {k: getattr(lstm, k) for k in ("return_state", "zero_output_for_mask", *LAYER_OPTIONS)}


def test_bidirectional_leaves_the_layers_it_was_given_unchanged():
    rngs = nnx.Rngs(4)
    fw = jaxlstm.LSTM(3, 4, return_sequences=True, rngs=rngs)
    bw = jaxlstm.LSTM(3, 4, return_sequences=True, go_backwards=True, rngs=rngs)
    before = [_options(fw), _options(bw)]
    bi = jaxlstm.Bidirectional(fw, bw)
    out, *states = bi(X, mask=MASK, return_state=True)  # per-call return_state
    assert [_options(fw), _options(bw)] == before
    assert not fw.zero_output_for_mask and not fw.return_state
    assert bi(X, mask=MASK).shape == (2, 6, 8) and len(states) == 4
    # ... and still computes Keras's Bidirectional: zeros at masked steps inside it
    y_fw, _ = lstm_scan(fw.params, X, mask=MASK, return_sequences=True, zero_output_for_mask=True)
    np.testing.assert_allclose(out[..., :4], y_fw, atol=1e-6)
    assert np.all(np.asarray(out)[~MASK] == 0.0)
    # the caller's LSTM alone keeps its own behaviour (repeat the last output when masked)
    alone = np.asarray(fw(X, mask=MASK))
    assert not np.all(alone[~MASK] == 0.0)


def test_lstm_call_options_do_not_stick():
    m = nnx_lstm(return_sequences=True)
    y, h, c = m(X, mask=MASK, return_state=True, zero_output_for_mask=True)
    assert not m.return_state and not m.zero_output_for_mask
    assert np.all(np.asarray(y)[~MASK] == 0.0)
    assert not isinstance(m(X), tuple)  # the next plain call: outputs only, as built
    lin = jl.LSTM(4, return_sequences=True)
    v = {"params": linen_params(m)}
    got = lin.apply(
        v, X, mask=MASK, deterministic=True, return_state=True, zero_output_for_mask=True
    )
    for a, b in zip(got, (y, h, c), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert not lin.return_state and not lin.zero_output_for_mask


@pytest.mark.parametrize(
    "kw_fw,kw_bw,match",
    [
        ({}, {}, "both have go_backwards=False"),
        ({"return_sequences": True}, {"go_backwards": True}, "return_sequences=True but backward"),
        ({"return_state": True}, {"go_backwards": True}, "return_state=True but backward"),
        ({"time_major": True}, {"go_backwards": True}, "time_major=True but backward"),
    ],
)
def test_bidirectional_checks_are_shared_by_nnx_and_linen(kw_fw, kw_bw, match):
    rngs = nnx.Rngs(0)
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=match):
        jaxlstm.Bidirectional(
            jaxlstm.LSTM(3, 4, **kw_fw, rngs=rngs), jaxlstm.LSTM(3, 4, **kw_bw, rngs=rngs)
        )
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=match):
        jl.Bidirectional(jl.LSTM(4, **kw_fw), jl.LSTM(4, **kw_bw)).init(
            jax.random.key(0), X, deterministic=True
        )
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"merge_mode='max'"):
        jl.Bidirectional(jl.LSTM(4), jl.LSTM(4, go_backwards=True), merge_mode="max")


def test_bidirectional_refuses_a_pair_from_the_other_family():
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="not a jaxlstm recurrent layer"):
        jl.Bidirectional(jl.LSTM(4), nnx.Linear(3, 4, rngs=nnx.Rngs(0)))


def test_dropout_is_off_in_eval_and_keras3_style_in_training():
    m = jaxlstm.LSTM(2, 3, dropout=0.5, return_sequences=True, rngs=nnx.Rngs(params=0, dropout=1))
    x = np.random.default_rng(1).normal(size=(1, 5, 2)).astype(np.float32)
    clean = lstm_scan(m.params, x)[0]
    m.eval()
    np.testing.assert_array_equal(m(x), clean)
    m.train()
    noisy = m(x)
    assert not np.allclose(noisy, clean)
    # Keras 3 draws one input mask per sequence, shared by all steps, scaled by 1/(1-rate):
    candidates = [
        lstm_scan(m.params, x, dropout_mask=np.array([k], np.float32))[0]
        for k in itertools.product([0.0, 2.0], repeat=2)
    ]
    assert any(np.allclose(noisy, c, atol=1e-6) for c in candidates)
    assert not np.allclose(m(x), noisy)  # a fresh mask per call


def test_recurrent_dropout_masks_the_state_once_per_sequence():
    m = jaxlstm.LSTM(
        2, 2, recurrent_dropout=0.5, return_sequences=True, rngs=nnx.Rngs(params=0, dropout=3)
    )
    x = np.random.default_rng(2).normal(size=(1, 4, 2)).astype(np.float32)
    noisy = m(x)
    candidates = [
        lstm_scan(m.params, x, recurrent_dropout_mask=np.array([k], np.float32))[0]
        for k in itertools.product([0.0, 2.0], repeat=2)
    ]
    assert any(np.allclose(noisy, c, atol=1e-6) for c in candidates)


def test_linen_dropout_uses_the_dropout_stream():
    lstm = jl.LSTM(3, dropout=0.5, return_sequences=True)
    x = jnp.ones((4, 4, 8))
    v = lstm.init(jax.random.key(0), x, deterministic=True)
    a = lstm.apply(v, x, deterministic=False, rngs={"dropout": jax.random.key(1)})
    b = lstm.apply(v, x, deterministic=False, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(
        lstm.apply(v, x, deterministic=True), lstm_scan(LSTMParams(**v["params"]), x)[0]
    )


def test_grad_and_jit_through_the_module():
    m = nnx_lstm(return_sequences=True)

    @nnx.jit
    def loss_fn(m, x):
        return jnp.mean(m(x, mask=MASK) ** 2)

    grads = nnx.grad(loss_fn)(m, X)
    assert set(nnx.to_pure_dict(nnx.state(grads))) == {"kernel", "recurrent_kernel", "bias"}
    g_core = jax.grad(lambda p: jnp.mean(lstm_scan(p, X, mask=MASK)[0] ** 2))(m.params)
    np.testing.assert_allclose(grads.kernel[...], g_core.kernel, atol=1e-6)
    assert float(jnp.abs(grads.recurrent_kernel[...]).sum()) > 0


def test_params_are_a_plain_pytree_for_jax_transforms():
    m = nnx_lstm()
    graphdef, state = nnx.split(m)
    f = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
    np.testing.assert_allclose(f(state, X), m(X), atol=1e-6)
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(m.params))


LOW_PRECISION = [jnp.bfloat16, jnp.float16]


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=lambda d: jnp.dtype(d).name)
def test_nnx_low_precision_params_build_on_cpu_and_return_that_dtype(dtype):
    """Drawn in float32 and cast (the orthogonal init's QR has no 16-bit CPU kernel); outputs
    and states in the param dtype; numbers those of the rounded weights."""
    m = jaxlstm.LSTM(3, 4, return_state=True, param_dtype=dtype, rngs=nnx.Rngs(0))
    ref = jaxlstm.LSTM(3, 4, return_state=True, rngs=nnx.Rngs(0))
    assert {m.kernel.dtype, m.recurrent_kernel.dtype, m.bias.dtype} == {jnp.dtype(dtype)}
    np.testing.assert_array_equal(m.kernel[...], ref.kernel[...].astype(dtype))
    y, h, c = m(X, mask=MASK)
    assert {y.dtype, h.dtype, c.dtype} == {jnp.dtype(dtype)}
    p = jax.tree.map(lambda a: np.asarray(a, np.float32), m.params)
    (want, state) = lstm_scan(p, X, mask=MASK, return_sequences=False)
    np.testing.assert_allclose(np.asarray(y, np.float32), want, atol=1e-2)
    np.testing.assert_allclose(np.asarray(c, np.float32), state.c, atol=1e-2)
    bi = jaxlstm.Bidirectional(
        jaxlstm.LSTM(3, 4, param_dtype=dtype, rngs=nnx.Rngs(1)),
        jaxlstm.LSTM(3, 4, param_dtype=dtype, go_backwards=True, rngs=nnx.Rngs(2)),
    )
    assert bi(X).dtype == jnp.dtype(dtype)


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=lambda d: jnp.dtype(d).name)
def test_linen_low_precision_params_build_on_cpu_and_return_that_dtype(dtype):
    lstm = jl.LSTM(4, return_sequences=True, param_dtype=dtype)
    v = lstm.init(jax.random.key(0), X, deterministic=True)
    v32 = jl.LSTM(4, return_sequences=True).init(jax.random.key(0), X, deterministic=True)
    assert {a.dtype for a in jax.tree.leaves(v)} == {jnp.dtype(dtype)}
    np.testing.assert_array_equal(
        v["params"]["recurrent_kernel"], v32["params"]["recurrent_kernel"].astype(dtype)
    )
    y = lstm.apply(v, X, mask=MASK, deterministic=True)
    assert y.dtype == jnp.dtype(dtype)
    p = LSTMParams(**jax.tree.map(lambda a: np.asarray(a, np.float32), v["params"]))
    np.testing.assert_allclose(np.asarray(y, np.float32), lstm_scan(p, X, mask=MASK)[0], atol=1e-2)
    bi = jl.Bidirectional(
        jl.LSTM(4, param_dtype=dtype), jl.LSTM(4, param_dtype=dtype, go_backwards=True)
    )
    vb = bi.init(jax.random.key(1), X, deterministic=True)
    assert bi.apply(vb, X, deterministic=True).dtype == jnp.dtype(dtype)


def test_nnx_lstm_from_given_weights_checks_shapes_and_needs_no_rngs():
    rng = np.random.default_rng(0)
    w = LSTMParams(
        rng.normal(size=(3, 16)).astype(np.float32),
        rng.normal(size=(4, 16)).astype(np.float32),
        rng.normal(size=(16,)).astype(np.float32),
    )
    m = jaxlstm.LSTM(3, 4, weights=w)
    np.testing.assert_array_equal(m.kernel[...], w.kernel)
    np.testing.assert_allclose(m(X), lstm_scan(w, X, return_sequences=False)[0], atol=1e-6)
    with pytest.raises(jaxlstm.ShapeError, match=r"weights.kernel has shape \(3, 16\); expected"):
        jaxlstm.LSTM(2, 4, weights=w)
    with pytest.raises(jaxlstm.ShapeError, match=r"has a bias .* but use_bias=False"):
        jaxlstm.LSTM(3, 4, use_bias=False, weights=w)
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="received rngs=None; expected"):
        jaxlstm.LSTM(3, 4)
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"dropout=0.5.* received no rngs"):
        jaxlstm.LSTM(3, 4, dropout=0.5, weights=w)
