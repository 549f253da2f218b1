"""The NNX and Linen GRU / SimpleRNN modules: the core's numbers, Keras's layer outputs,
Bidirectional over any cell, extra batch axes (TimeDistributed), dropout modes, predictor.
Keras parity itself is in test_rnn_parity.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxlstm
import jaxlstm.linen as jl

CELLS = {
    "GRU": (jaxlstm.GRU, jaxlstm.gru_scan),
    "GRU reset_after=False": (
        lambda *a, **k: jaxlstm.GRU(*a, reset_after=False, **k),
        lambda *a, **k: jaxlstm.gru_scan(*a, reset_after=False, **k),
    ),
    "SimpleRNN": (jaxlstm.SimpleRNN, jaxlstm.simple_rnn_scan),
}


def _x(shape, seed=0):
    return jax.random.normal(jax.random.key(seed), shape)


@pytest.mark.parametrize("name", list(CELLS))
def test_module_is_the_core_with_its_weights(name):
    make, scan = CELLS[name]
    m = make(3, 4, return_sequences=True, return_state=True, rngs=nnx.Rngs(0))
    x = _x((2, 5, 3))
    mask = jnp.array([[1, 1, 0, 1, 1], [0, 1, 1, 1, 0]], bool)
    y, h = m(x, mask=mask)
    want_y, want = scan(m.params, x, mask=mask)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(h, want.h)
    assert y.shape == (2, 5, 4) and h.shape == (2, 4)


def test_defaults_are_keras3s():
    gru = jaxlstm.GRU(3, 4, rngs=nnx.Rngs(0))
    assert gru.reset_after is True and gru.bias.shape == (2, 12)
    assert gru.kernel.shape == (3, 12) and gru.recurrent_kernel.shape == (4, 12)
    assert float(jnp.abs(gru.bias[...]).max()) == 0.0  # Keras's zeros bias_initializer
    assert jaxlstm.GRU(3, 4, reset_after=False, rngs=nnx.Rngs(0)).bias.shape == (12,)
    assert jaxlstm.GRU(3, 4, use_bias=False, rngs=nnx.Rngs(0)).bias is None
    rnn = jaxlstm.SimpleRNN(3, 4, rngs=nnx.Rngs(0))
    assert rnn.kernel.shape == (3, 4) and rnn.bias.shape == (4,)
    assert rnn(_x((2, 5, 3))).shape == (2, 4)  # return_sequences=False, as Keras


def test_linen_twins_have_the_same_numbers():
    x = _x((2, 5, 3))
    for nnx_cls, lin_cls, opts in (
        (jaxlstm.GRU, jl.GRU, dict(reset_after=False, activation="relu")),
        (jaxlstm.SimpleRNN, jl.SimpleRNN, dict(activation="softsign")),
    ):
        m = nnx_cls(3, 4, return_sequences=True, rngs=nnx.Rngs(0), **opts)
        lin = lin_cls(4, return_sequences=True, **opts)
        variables = lin.init(jax.random.key(1), x, deterministic=True)
        assert jax.tree.map(jnp.shape, variables["params"]) == {
            k: getattr(m, k).shape for k in ("kernel", "recurrent_kernel", "bias")
        }
        params = {k: getattr(m, k)[...] for k in ("kernel", "recurrent_kernel", "bias")}
        got = lin.apply({"params": params}, x, deterministic=True)
        np.testing.assert_array_equal(got, m(x))


@pytest.mark.parametrize("cls", [jaxlstm.GRU, jaxlstm.SimpleRNN])
def test_extra_batch_axes_act_as_time_distributed(cls):
    m = cls(3, 4, return_sequences=True, rngs=nnx.Rngs(0))
    x = _x((2, 3, 5, 3))
    y = m(x)
    assert y.shape == (2, 3, 5, 4)
    np.testing.assert_allclose(y[1, 2], m(x[1, 2]), atol=1e-6)
    np.testing.assert_allclose(y.reshape(6, 5, 4), m(x.reshape(6, 5, 3)), atol=1e-6)


@pytest.mark.parametrize("cls", [jaxlstm.GRU, jaxlstm.SimpleRNN])
def test_bidirectional_over_any_cell(cls):
    fw = cls(3, 4, return_sequences=True, return_state=True, rngs=nnx.Rngs(0))
    bw = cls(3, 4, return_sequences=True, return_state=True, go_backwards=True, rngs=nnx.Rngs(1))
    bi = jaxlstm.Bidirectional(fw, bw, merge_mode="concat")
    x = _x((2, 5, 3))
    mask = jnp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    h0 = [_x((2, 4), 1), _x((2, 4), 2)]  # Keras's [h_forward, h_backward]
    y, h_fw, h_bw = bi(x, mask=mask, initial_state=h0)
    # as Keras inside Bidirectional with return_sequences: masked outputs are zeros
    y_fw, want_fw = fw(x, mask=mask, initial_state=h0[0], zero_output_for_mask=True)
    y_bw, want_bw = bw(x, mask=mask, initial_state=[h0[1]], zero_output_for_mask=True)
    np.testing.assert_array_equal(y, jnp.concatenate([y_fw, jnp.flip(y_bw, axis=1)], axis=-1))
    np.testing.assert_array_equal(h_fw, want_fw)
    np.testing.assert_array_equal(h_bw, want_bw)
    assert not fw.zero_output_for_mask and not bw.zero_output_for_mask  # passed per call
    assert float(jnp.abs(y[0, 3:]).max()) == 0.0
    with pytest.raises(
        jaxlstm.UnsupportedOptionError,
        match=r"initial_state has 4 arrays; expected 2, \[h_forward, h_backward\]",
    ):
        bi(x, initial_state=h0 * 2)


def test_bidirectional_refuses_two_kinds_of_cell():
    fw = jaxlstm.LSTM(3, 4, rngs=nnx.Rngs(0))
    bw = jaxlstm.GRU(3, 4, go_backwards=True, rngs=nnx.Rngs(1))
    with pytest.raises(
        jaxlstm.UnsupportedOptionError, match=r"forward is a LSTM with states \('h', 'c'\) but "
    ):
        jaxlstm.Bidirectional(fw, bw)


def test_linen_bidirectional_over_gru_matches_nnx():
    x = _x((2, 5, 3))
    lin = jl.Bidirectional(
        jl.GRU(4, return_state=True), jl.GRU(4, return_state=True, go_backwards=True), "sum"
    )
    variables = lin.init(jax.random.key(0), x, deterministic=True)
    p = variables["params"]
    fw = jaxlstm.GRU(3, 4, return_state=True, rngs=nnx.Rngs(0))
    bw = jaxlstm.GRU(3, 4, return_state=True, go_backwards=True, rngs=nnx.Rngs(0))
    for module, side in ((fw, "forward_layer"), (bw, "backward_layer")):
        for k in ("kernel", "recurrent_kernel", "bias"):
            getattr(module, k)[...] = p[side][k]
    h0 = [_x((2, 4), 1), _x((2, 4), 2)]
    got = lin.apply(variables, x, initial_state=h0, deterministic=True)
    want = jaxlstm.Bidirectional(fw, bw, "sum")(x, initial_state=h0)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("cls", [jaxlstm.GRU, jaxlstm.SimpleRNN])
def test_dropout_only_in_training_mode(cls):
    m = cls(3, 4, dropout=0.5, recurrent_dropout=0.3, rngs=nnx.Rngs(0))
    x = _x((4, 6, 3))
    train_a, train_b = m(x), m(x)
    assert not np.allclose(train_a, train_b)  # a fresh mask per call
    m.eval()
    np.testing.assert_array_equal(m(x), cls(3, 4, rngs=nnx.Rngs(0))(x))


def test_predictor_serves_every_cell():
    x = _x((2, 5, 3))
    gru = jaxlstm.GRU(3, 4, return_sequences=True, rngs=nnx.Rngs(0))
    bi = jaxlstm.Bidirectional(
        jaxlstm.SimpleRNN(3, 4, rngs=nnx.Rngs(1)),
        jaxlstm.SimpleRNN(3, 4, go_backwards=True, rngs=nnx.Rngs(2)),
    )
    for module in (gru, bi):
        predict = jaxlstm.predictor(module)
        np.testing.assert_allclose(predict(x), module(x), atol=1e-6)
    predict = jaxlstm.predictor(gru)
    gru.kernel[...] = gru.kernel[...] * 0.5  # the predictor follows the module's weights
    np.testing.assert_allclose(predict(x), gru(x), atol=1e-6)


def test_cudnn_refused_at_module_level():
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"cuDNN kernel for LSTM only"):
        jaxlstm.GRU(3, 4, impl="cudnn", rngs=nnx.Rngs(0))(_x((2, 5, 3)))


LOW_PRECISION = [jnp.bfloat16, jnp.float16]


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("name", list(CELLS))
def test_low_precision_params_build_on_cpu_and_return_that_dtype(name, dtype):
    """Built as the LSTM is (one construction): drawn in float32 and cast (the orthogonal
    init's QR has no 16-bit CPU kernel), outputs and states in the param dtype, numbers those
    of the rounded weights; the same for the Linen twin."""
    make, scan = CELLS[name]
    m = make(3, 4, return_state=True, param_dtype=dtype, rngs=nnx.Rngs(0))
    ref = make(3, 4, return_state=True, rngs=nnx.Rngs(0))
    assert {m.kernel.dtype, m.recurrent_kernel.dtype, m.bias.dtype} == {jnp.dtype(dtype)}
    np.testing.assert_array_equal(m.recurrent_kernel[...], ref.recurrent_kernel[...].astype(dtype))
    x = _x((2, 5, 3))
    y, h = m(x)
    assert {y.dtype, h.dtype} == {jnp.dtype(dtype)}
    p = jax.tree.map(lambda a: np.asarray(a, np.float32), m.params)
    np.testing.assert_allclose(np.asarray(y, np.float32), scan(p, x)[0][:, -1], atol=1e-2)
    linen = {"GRU": jl.GRU, "SimpleRNN": jl.SimpleRNN}[name.split()[0]]
    extra = {"reset_after": False} if "False" in name else {}
    lm = linen(4, param_dtype=dtype, **extra)
    v = lm.init(jax.random.key(0), x, deterministic=True)
    assert {a.dtype for a in jax.tree.leaves(v)} == {jnp.dtype(dtype)}
    assert lm.apply(v, x, deterministic=True).dtype == jnp.dtype(dtype)


@pytest.mark.parametrize("name", list(CELLS))
def test_built_from_weights_checks_shapes_and_compiles_nothing(name):
    from test_first_answer import count_compiles

    from jaxlstm._src.modules.nnx import DropoutStreams

    make, scan = CELLS[name]
    ref = make(3, 4, rngs=nnx.Rngs(0))
    w = jax.tree.map(np.asarray, ref.params)
    with count_compiles() as compiles:
        m = make(3, 4, weights=w)
        make(3, 4, dropout=0.3, weights=w, rngs=DropoutStreams()())
    assert compiles == []
    np.testing.assert_array_equal(m.kernel[...], w.kernel)
    x = _x((2, 5, 3))
    np.testing.assert_allclose(m(x), scan(w, x)[0][:, -1], atol=1e-6)
    with pytest.raises(jaxlstm.ShapeError, match=r"weights.kernel has shape \(3, \d+\); expected"):
        make(2, 4, weights=w)
    with pytest.raises(jaxlstm.ShapeError, match=r"has a bias .* but use_bias=False"):
        make(3, 4, use_bias=False, weights=w)
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="received rngs=None; expected"):
        make(3, 4)
