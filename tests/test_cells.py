"""The GRU and SimpleRNN cores against float64 NumPy references written from Keras's
definitions (tests/helpers.py), the scans against step loops, the fast backward pass against
plain autodiff of a step-by-step reference, gradients against finite differences."""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    assert_close_at_scale,
    np_gru,
    np_simple_rnn,
    random_cell_params,
    random_mask,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jax import lax
from jax.test_util import check_grads

import jaxlstm
from jaxlstm import (
    GRUParams,
    GRUState,
    SimpleRNNParams,
    SimpleRNNState,
    gru_scan,
    gru_step,
    simple_rnn_scan,
    simple_rnn_step,
)

ATOL = 1e-5


def _gru(rng, f, u, use_bias=True, reset_after=True):
    return GRUParams(*map(_jnp, random_cell_params(rng, "gru", f, u, use_bias, reset_after)))


def _srnn(rng, f, u, use_bias=True):
    return SimpleRNNParams(*map(_jnp, random_cell_params(rng, "simple_rnn", f, u, use_bias)))


def _jnp(a):
    return None if a is None else jnp.asarray(a)


def _np(p):
    return [None if a is None else np.asarray(a) for a in p]


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize(
    "act,rec", [("tanh", "sigmoid"), ("relu", "hard_sigmoid_keras2"), ("elu", "hard_sigmoid")]
)
def test_gru_step_matches_numpy(reset_after, act, rec):
    rng = np.random.default_rng(0)
    p = _gru(rng, 3, 4, reset_after=reset_after)
    x = rng.normal(size=(2, 3)).astype(np.float32)
    h0 = rng.normal(size=(2, 4)).astype(np.float32)
    opts = dict(activation=act, recurrent_activation=rec, reset_after=reset_after)
    new = gru_step(p, GRUState(h0), x, **opts)
    _, _, h = np_gru(*_np(p), x[:, None], h0=h0, **opts)
    np.testing.assert_allclose(new.h, h, atol=ATOL)


@pytest.mark.parametrize("act", ["tanh", "relu", "linear", "softmax"])
def test_simple_rnn_step_matches_numpy(act):
    rng = np.random.default_rng(1)
    p = _srnn(rng, 3, 4)
    x = rng.normal(size=(2, 3)).astype(np.float32)
    h0 = rng.normal(size=(2, 4)).astype(np.float32)
    new = simple_rnn_step(p, SimpleRNNState(h0), x, activation=act)
    _, _, h = np_simple_rnn(*_np(p), x[:, None], h0=h0, activation=act)
    np.testing.assert_allclose(new.h, h, atol=ATOL)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_scan_equals_step_loop(reset_after):
    rng = np.random.default_rng(2)
    p = _gru(rng, 3, 5, reset_after=reset_after)
    x = jnp.asarray(rng.normal(size=(2, 7, 3)), jnp.float32)
    ys, final = gru_scan(p, x, reset_after=reset_after)
    state = GRUState(jnp.zeros((2, 5)))
    for t in range(7):
        state = gru_step(p, state, x[:, t], reset_after=reset_after)
        np.testing.assert_allclose(ys[:, t], state.h, atol=1e-6)
    np.testing.assert_allclose(final.h, state.h, atol=1e-6)


def test_simple_rnn_scan_equals_step_loop():
    rng = np.random.default_rng(3)
    p = _srnn(rng, 3, 5)
    x = jnp.asarray(rng.normal(size=(2, 7, 3)), jnp.float32)
    ys, final = simple_rnn_scan(p, x)
    state = SimpleRNNState(jnp.zeros((2, 5)))
    for t in range(7):
        state = simple_rnn_step(p, state, x[:, t])
        np.testing.assert_allclose(ys[:, t], state.h, atol=1e-6)
    np.testing.assert_allclose(final.h, state.h, atol=1e-6)


CELL_OPTIONS = dict(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 4),
    steps=st.integers(1, 7),
    features=st.integers(1, 4),
    units=st.integers(1, 5),
    use_bias=st.booleans(),
    mask_kind=st.sampled_from([None, "right", "left", "gaps", "full_row"]),
    go_backwards=st.booleans(),
    zero_output=st.booleans(),
    with_state=st.booleans(),
    dropout=st.booleans(),
)


def _check_against_numpy(cell, seed, batch, steps, features, units, use_bias, mask_kind,
                         go_backwards, zero_output, with_state, dropout, **cell_opts):  # fmt: skip
    rng = np.random.default_rng(seed)
    k, r, b = random_cell_params(
        rng, cell, features, units, use_bias, cell_opts.get("reset_after", True)
    )
    x = rng.normal(size=(batch, steps, features)).astype(np.float32)
    mask = None if mask_kind is None else random_mask(rng, batch, steps, mask_kind)
    h0 = rng.normal(size=(batch, units)).astype(np.float32) if with_state else None
    dm = rdm = None
    if dropout:
        dm = ((rng.random((batch, features)) > 0.3) / 0.7).astype(np.float32)
        rdm = ((rng.random((batch, units)) > 0.4) / 0.6).astype(np.float32)
    common = dict(mask=mask, go_backwards=go_backwards, zero_output_for_mask=zero_output,
                  dropout_mask=dm, recurrent_dropout_mask=rdm, **cell_opts)  # fmt: skip
    np_fn, scan, params, state = {
        "gru": (np_gru, gru_scan, GRUParams, GRUState),
        "simple_rnn": (np_simple_rnn, simple_rnn_scan, SimpleRNNParams, SimpleRNNState),
    }[cell]
    ref_seq, ref_last, ref_h = np_fn(k, r, b, x, h0=h0, **common)
    p = params(k, r, b)
    init = None if h0 is None else state(h0)
    seq, final = scan(p, x, initial_state=init, **common)
    last, _ = scan(p, x, initial_state=init, return_sequences=False, **common)
    # float32 against a float64 reference: within ATOL at the output's scale
    assert_close_at_scale(seq, ref_seq, ATOL)
    assert_close_at_scale(last, ref_last, ATOL)
    assert_close_at_scale(final.h, ref_h, ATOL)


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    reset_after=st.booleans(),
    acts=st.sampled_from(
        [("tanh", "sigmoid"), ("softsign", "hard_sigmoid_keras2"), ("relu", "hard_sigmoid")]
    ),
    **CELL_OPTIONS,
)
def test_gru_scan_matches_numpy_reference(reset_after, acts, **options):
    _check_against_numpy(
        "gru", reset_after=reset_after, activation=acts[0], recurrent_activation=acts[1],
        **options,
    )  # fmt: skip


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(act=st.sampled_from(["tanh", "relu", "linear", "softsign", "softmax"]), **CELL_OPTIONS)
def test_simple_rnn_scan_matches_numpy_reference(act, **options):
    _check_against_numpy("simple_rnn", activation=act, **options)


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    cell=st.sampled_from(["gru", "simple_rnn"]),
    reset_after=st.booleans(),
    acts=st.sampled_from([("tanh", "sigmoid"), ("elu", "hard_sigmoid_keras2"), ("selu", "silu")]),
    **CELL_OPTIONS,
)
def test_cells_match_numpy_reference_many(cell, reset_after, acts, **options):
    cell_opts = dict(activation=acts[0])
    if cell == "gru":
        cell_opts.update(reset_after=reset_after, recurrent_activation=acts[1])
    _check_against_numpy(cell, **cell_opts, **options)


def _reference_scan(step_fn, params, x, *, mask=None, initial_state=None, go_backwards=False,
                    zero_output_for_mask=False, return_sequences=True, **step_options):  # fmt: skip
    """Keras's RNN loop as a plain ``lax.scan`` of a public step function (autodiff only)."""
    b, t, _ = x.shape
    m = jnp.ones((b, t), bool) if mask is None else jnp.asarray(mask, bool)
    xs, ms = jnp.swapaxes(x, 0, 1), jnp.swapaxes(m, 0, 1)[..., None]
    if go_backwards:
        xs, ms = xs[::-1], ms[::-1]
    state_type = type(initial_state)

    def step(carry, inputs):
        h, out = carry
        x_t, m_t = inputs
        new = step_fn(params, state_type(h), x_t, **step_options).h
        out = jnp.where(m_t, new, 0.0 if zero_output_for_mask else out)
        return (jnp.where(m_t, new, h), out), out

    (h, out), ys = lax.scan(step, (initial_state.h, jnp.zeros_like(initial_state.h)), (xs, ms))
    return (jnp.swapaxes(ys, 0, 1) if return_sequences else out), state_type(h)


GRAD_CASES = {
    "gru hard_sigmoid+relu+mask": (
        "gru", dict(activation="relu", recurrent_activation="hard_sigmoid_keras2", mask=True)
    ),
    "gru mask+backwards+zero_output": (
        "gru", dict(mask=True, go_backwards=True, zero_output_for_mask=True)
    ),
    "gru last_output+mask+no_bias": (
        "gru", dict(mask=True, return_sequences=False, use_bias=False)
    ),
    "gru softmax (generic jvp)": ("gru", dict(activation="softmax", mask=True)),
    "gru reset_after=False (autodiff)": ("gru", dict(reset_after=False, mask=True)),
    "simple_rnn relu+mask+no_bias+last": (
        "simple_rnn",
        dict(activation="relu", mask=True, use_bias=False, return_sequences=False),
    ),
    "simple_rnn softmax (generic jvp)": ("simple_rnn", dict(activation="softmax", mask=True)),
}  # fmt: skip


def _setup(cell, seed=0, b=3, t=9, f=4, u=5, use_bias=True, reset_after=True):
    rng = np.random.default_rng(seed)
    if cell == "gru":
        params, state = _gru(rng, f, u, use_bias, reset_after), GRUState
    else:
        params, state = _srnn(rng, f, u, use_bias), SimpleRNNState
    x = jnp.asarray(rng.normal(size=(b, t, f)), jnp.float32)
    h0 = state(jnp.asarray(0.5 * rng.normal(size=(b, u)), jnp.float32))
    mask = jnp.asarray(rng.random((b, t)) > 0.3).at[-1].set(False)  # one fully masked row
    return params, x, h0, mask


def _loss(fn, **kwargs):
    def loss(params, x, state):
        ys, final = fn(params, x, initial_state=state, **kwargs)
        return jnp.sum(jnp.sin(ys)) + jnp.sum(final.h**2)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))


def _assert_trees_close(got, want, rtol):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        scale = float(jnp.max(jnp.abs(w))) or 1.0
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_scan_value_and_gradients_equal_autodiff_of_reference(case):
    cell, opts = GRAD_CASES[case][0], dict(GRAD_CASES[case][1])
    reset_after = opts.get("reset_after", True)
    params, x, h0, mask = _setup(cell, use_bias=opts.pop("use_bias", True), reset_after=reset_after)
    if opts.pop("mask", False):
        opts["mask"] = mask
    scan, step = (gru_scan, gru_step) if cell == "gru" else (simple_rnn_scan, simple_rnn_step)
    got = _loss(scan, **opts)(params, x, h0)
    want = _loss(functools.partial(_reference_scan, step), **opts)(params, x, h0)
    _assert_trees_close(got, want, rtol=2e-6)


@pytest.mark.parametrize("cell,reset_after", [("gru", True), ("gru", False), ("simple_rnn", True)])
def test_checkpointed_gradients_equal_plain(cell, reset_after):
    params, x, h0, _ = _setup(cell, seed=3, b=2, t=23, f=3, u=6, reset_after=reset_after)
    mask = jax.random.bernoulli(jax.random.key(9), 0.8, (2, 23))
    scan = gru_scan if cell == "gru" else simple_rnn_scan
    opts = dict(mask=mask, **({"reset_after": reset_after} if cell == "gru" else {}))
    got = _loss(scan, remat_chunk=7, **opts)(params, x, h0)
    want = _loss(scan, **opts)(params, x, h0)
    _assert_trees_close(got, want, rtol=1e-6)


@pytest.mark.parametrize("cell,reset_after", [("gru", True), ("gru", False), ("simple_rnn", True)])
def test_gradients_match_finite_differences(cell, reset_after):
    rng = np.random.default_rng(7)
    p = random_cell_params(rng, cell, 2, 3, reset_after=reset_after)
    x = rng.normal(size=(2, 4, 2))
    mask = np.array([[True, True, False, True], [False, True, True, True]])
    if cell == "gru":
        params, scan = GRUParams, functools.partial(gru_scan, reset_after=reset_after)
    else:
        params, scan = SimpleRNNParams, simple_rnn_scan

    def loss(params, x):
        ys, state = scan(params, x, mask=mask)
        return jnp.sum(ys**2) + jnp.sum(jnp.sin(state.h))

    with jax.enable_x64(True):
        p = params(*(jnp.asarray(a, jnp.float64) for a in p))
        check_grads(loss, (p, jnp.asarray(x)), order=1, modes=["rev", "fwd"], atol=1e-5, rtol=1e-5)


def test_bfloat16_compute_keeps_a_float32_carry():
    rng = np.random.default_rng(5)
    p = _gru(rng, 8, 16)
    x = jnp.asarray(rng.normal(size=(4, 20, 8)), jnp.float32)
    ref, _ = gru_scan(p, x)
    got, state = gru_scan(p, x, compute_dtype=jnp.bfloat16)
    assert got.dtype == jnp.float32 and state.h.dtype == jnp.float32
    np.testing.assert_allclose(got, ref, atol=5e-2)
    assert float(jnp.max(jnp.abs(got - ref))) > 0  # it really ran in bfloat16


def test_many_batch_axes_time_major_and_bare_initial_state():
    rng = np.random.default_rng(6)
    p = _gru(rng, 3, 4)
    x = jnp.asarray(rng.normal(size=(2, 3, 6, 3)), jnp.float32)
    mask = jnp.asarray(rng.random((2, 3, 6)) > 0.3)
    h0 = jnp.asarray(rng.normal(size=(2, 3, 4)), jnp.float32)
    flat, flat_state = gru_scan(p, x.reshape(6, 6, 3), mask=mask.reshape(6, 6),
                                initial_state=[h0.reshape(6, 4)])  # fmt: skip
    nested, nested_state = gru_scan(p, x, mask=mask, initial_state=h0)  # a bare array: [h]
    np.testing.assert_allclose(nested.reshape(6, 6, 4), flat, atol=1e-6)
    np.testing.assert_allclose(nested_state.h.reshape(6, 4), flat_state.h, atol=1e-6)
    tm, _ = gru_scan(p, jnp.moveaxis(x, 2, 0), mask=jnp.moveaxis(mask, 2, 0), time_major=True,
                     initial_state=h0)  # fmt: skip
    np.testing.assert_allclose(jnp.moveaxis(tm, 0, 2), nested, atol=1e-6)
    for unroll in (3, True):
        np.testing.assert_allclose(gru_scan(p, x, unroll=unroll)[0], gru_scan(p, x)[0], atol=1e-6)


def test_shape_errors_name_the_cell_layout():
    rng = np.random.default_rng(0)
    k, r, b = random_cell_params(rng, "gru", 3, 4, reset_after=True)
    x = jnp.ones((2, 5, 3))
    with pytest.raises(
        jaxlstm.ShapeError,
        match=r"bias has shape \(2, 12\); expected \(3\*units,\) = \(12,\) for "
        r"reset_after=False \(a \(2, 3\*units\) bias is reset_after=True's\)",
    ):
        gru_scan(GRUParams(k, r, b), x, reset_after=False)
    with pytest.raises(jaxlstm.ShapeError, match=r"expected kernel \(in_features, 3\*units\)"
                       r".*\[z\|r\|h\]"):  # fmt: skip
        gru_scan(GRUParams(k[:, :8], r, b), x)
    with pytest.raises(jaxlstm.ShapeError, match=r"initial_state has 2 arrays; expected 1, \(h\)"):
        gru_scan(GRUParams(k, r, b), x, initial_state=[jnp.zeros((2, 4))] * 2)
    with pytest.raises(jaxlstm.ShapeError, match=r"initial_state.h has shape \(2, 3\)"):
        simple_rnn_scan(_srnn(rng, 3, 4), x, initial_state=SimpleRNNState(jnp.zeros((2, 3))))


def test_cudnn_is_refused_for_gru_and_simple_rnn():
    rng = np.random.default_rng(0)
    x = jnp.ones((2, 5, 3))
    for fn, p in ((gru_scan, _gru(rng, 3, 4)), (simple_rnn_scan, _srnn(rng, 3, 4))):
        with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"impl='cudnn'.*LSTM only"):
            fn(p, x, impl="cudnn")
        np.testing.assert_array_equal(fn(p, x, impl="auto")[0], fn(p, x, impl="scan")[0])


@pytest.mark.parametrize("cell", ["gru", "simple_rnn"])
def test_recurrent_dropout_gradients_equal_autodiff(cell):
    """The fast JVP with a recurrent dropout mask against autodiff of a loop over the cell's
    own step (whose dropout semantics test_*_matches_numpy_reference pins to Keras's)."""
    from jaxlstm._src.core.gru import GRUCell
    from jaxlstm._src.core.simple_rnn import SimpleRNNCell

    params, x, h0, mask = _setup(cell)
    rdm = jax.random.bernoulli(jax.random.key(3), 0.7, h0.h.shape) / 0.7
    tanh, sigmoid = jaxlstm.get_activation("tanh"), jaxlstm.get_activation("sigmoid")
    step = (GRUCell(tanh, sigmoid, True) if cell == "gru" else SimpleRNNCell(tanh)).step
    scan = gru_scan if cell == "gru" else simple_rnn_scan

    def reference(params, x, initial_state, mask, recurrent_dropout_mask):
        def body(h, inputs):
            x_t, m = inputs
            (new,) = step(params, (h,), x_t, recurrent_dropout_mask)
            new = jnp.where(m[:, None], new, h)
            return new, new

        h, ys = lax.scan(body, initial_state.h, (jnp.swapaxes(x, 0, 1), mask.T))
        return jnp.swapaxes(ys, 0, 1), type(initial_state)(h)

    full = jnp.ones_like(mask)  # masked outputs repeat h: the same as carrying it
    got = _loss(scan, mask=full, recurrent_dropout_mask=rdm)(params, x, h0)
    want = _loss(reference, mask=full, recurrent_dropout_mask=rdm)(params, x, h0)
    _assert_trees_close(got, want, rtol=2e-6)


@pytest.mark.parametrize("options", [{}, {"mask": True, "recurrent_dropout_mask": True}])
def test_gru_fast_path_is_compact(options):
    """The reset_after=True GRU's jitted forward and value-and-gradient hold no 4u-wide array
    (the zero quarter of the old fused ``[a_z | a_r | x_h | r_h]`` layout) and every matmul in
    them has a 3u-wide operand: ``x @ kernel``, ``h @ recurrent_kernel`` and their transposes.
    Sizes are chosen so that no other axis can be 4u = 20 or 3u = 15."""
    b, t, f, u = 2, 3, 7, 5
    params, x, _, mask = _setup("gru", b=b, t=t, f=f, u=u)
    opts = {}
    if options.get("mask"):
        opts["mask"] = mask
    if options.get("recurrent_dropout_mask"):
        opts["recurrent_dropout_mask"] = jnp.full((b, u), 1.25)

    def forward(p, x):
        return gru_scan(p, x, **opts)[0]

    def value_and_grad(p, x):
        return jax.value_and_grad(lambda p, x: jnp.sum(forward(p, x) ** 2), argnums=(0, 1))(p, x)

    for fn in (forward, value_and_grad):
        text = jax.jit(fn).lower(params, x).as_text()
        shapes = [
            [int(d) for d in dims.split("x") if d]
            for dims in re.findall(r"tensor<((?:\d+x)*)(?:f32|bf16|i1|i32)>", text)
        ]
        assert shapes and not [s for s in shapes if 4 * u in s], fn.__name__
        dots = [line for line in text.splitlines() if "dot_general" in line]
        assert dots and all(re.search(rf"\b{3 * u}x|x{3 * u}x", d) for d in dots), fn.__name__
