"""The functional core against the NumPy reference, the scan against a step loop, gradients,
and retracing."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import NP_ACTIVATIONS, np_lstm, random_mask, random_params
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import jaxlstm
from jaxlstm import LSTMParams, LSTMState, lstm_scan, lstm_step

ATOL = 1e-5


@pytest.mark.parametrize("name", sorted(n for n, f in NP_ACTIVATIONS.items() if f is not None))
def test_activation_matches_keras_definition(name):
    x = np.linspace(-7, 7, 281).astype(np.float32).reshape(1, -1)
    got = np.asarray(jaxlstm.get_activation(name)(jnp.asarray(x)))
    np.testing.assert_allclose(
        got, NP_ACTIVATIONS[name](x.astype(np.float64)), atol=2e-6, rtol=1e-5
    )


def test_every_named_activation_is_checked():
    assert set(jaxlstm.ACTIVATIONS) == set(NP_ACTIVATIONS)


def test_sparsemax_is_keras_sparsemax():
    f = jaxlstm.get_activation("sparsemax")
    # Every Keras 3 backend computes tau from the *sum* of the supported cumulative sums, which
    # is not Martins & Astudillo's sparsemax ([0.6, 0.4, 0] here); a Keras model computed this.
    np.testing.assert_allclose(f(jnp.array([[1.0, 0.8, -1.0]])), [[0.1, 0.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(f(jnp.array([[5.0, 0.0]])), [[1.0, 0.0]], atol=1e-6)


def test_hard_sigmoid_has_two_definitions():
    f3, f2 = jaxlstm.get_activation("hard_sigmoid"), jaxlstm.get_activation("hard_sigmoid_keras2")
    assert float(f3(jnp.float32(1.0))) == pytest.approx(4 / 6)  # relu6(x + 3) / 6
    assert float(f2(jnp.float32(1.0))) == pytest.approx(0.7)  # clip(0.2x + 0.5)
    assert float(f2(jnp.float32(2.5))) == 1.0 and float(f3(jnp.float32(2.5))) < 1.0


@pytest.mark.parametrize("bad", ["nope", "glu", "threshold", 3])
def test_unknown_activation_is_a_clear_error(bad):
    with pytest.raises(jaxlstm.UnknownActivationError, match=r"activation|callable"):
        jaxlstm.get_activation(bad)


def _params(rng, f, u, use_bias=True):
    return LSTMParams(
        *(None if a is None else jnp.asarray(a) for a in random_params(rng, f, u, use_bias))
    )


@pytest.mark.parametrize(
    "act,rec", [("tanh", "sigmoid"), ("relu", "hard_sigmoid_keras2"), ("elu", "hard_sigmoid")]
)
def test_step_matches_numpy(act, rec):
    rng = np.random.default_rng(0)
    p = _params(rng, 3, 4)
    x = rng.normal(size=(2, 3)).astype(np.float32)
    h0, c0 = (rng.normal(size=(2, 4)).astype(np.float32) for _ in range(2))
    new = lstm_step(p, LSTMState(h0, c0), x, activation=act, recurrent_activation=rec)
    _, _, h, c = np_lstm(
        *map(np.asarray, p), x[:, None], h0=h0, c0=c0, activation=act, recurrent_activation=rec
    )
    np.testing.assert_allclose(new.h, h, atol=ATOL)
    np.testing.assert_allclose(new.c, c, atol=ATOL)


def test_scan_equals_step_loop():
    rng = np.random.default_rng(1)
    p = _params(rng, 3, 5)
    x = jnp.asarray(rng.normal(size=(2, 7, 3)), jnp.float32)
    ys, final = lstm_scan(p, x)
    state = jaxlstm.zeros_state((2,), 5)
    for t in range(7):
        state = lstm_step(p, state, x[:, t])
        np.testing.assert_allclose(ys[:, t], state.h, atol=1e-6)
    np.testing.assert_allclose(final.c, state.c, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
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
    acts=st.sampled_from(
        [("tanh", "sigmoid"), ("softsign", "hard_sigmoid_keras2"), ("relu", "hard_sigmoid")]
    ),
)
def test_scan_matches_numpy_reference(
    seed,
    batch,
    steps,
    features,
    units,
    use_bias,
    mask_kind,
    go_backwards,
    zero_output,
    with_state,
    acts,
):
    rng = np.random.default_rng(seed)
    k, r, b = random_params(rng, features, units, use_bias)
    x = rng.normal(size=(batch, steps, features)).astype(np.float32)
    mask = None if mask_kind is None else random_mask(rng, batch, steps, mask_kind)
    h0 = c0 = None
    if with_state:
        h0, c0 = (rng.normal(size=(batch, units)).astype(np.float32) for _ in range(2))
    ref_seq, ref_last, ref_h, ref_c = np_lstm(
        k,
        r,
        b,
        x,
        mask=mask,
        h0=h0,
        c0=c0,
        go_backwards=go_backwards,
        zero_output_for_mask=zero_output,
        activation=acts[0],
        recurrent_activation=acts[1],
    )
    p = LSTMParams(k, r, b)
    common = dict(
        initial_state=None if h0 is None else LSTMState(h0, c0),
        mask=mask,
        go_backwards=go_backwards,
        zero_output_for_mask=zero_output,
        activation=acts[0],
        recurrent_activation=acts[1],
    )
    seq, final = lstm_scan(p, x, **common)
    last, _ = lstm_scan(p, x, return_sequences=False, **common)
    np.testing.assert_allclose(seq, ref_seq, atol=ATOL)
    np.testing.assert_allclose(last, ref_last, atol=ATOL)
    np.testing.assert_allclose(final.h, ref_h, atol=ATOL)
    np.testing.assert_allclose(final.c, ref_c, atol=ATOL)


def test_unbatched_and_many_batch_axes_agree_with_batched():
    rng = np.random.default_rng(2)
    p = _params(rng, 3, 4)
    x = jnp.asarray(rng.normal(size=(2, 3, 6, 3)), jnp.float32)
    mask = jnp.asarray(rng.random((2, 3, 6)) > 0.3)
    flat, flat_state = lstm_scan(p, x.reshape(6, 6, 3), mask=mask.reshape(6, 6))
    nested, nested_state = lstm_scan(p, x, mask=mask)
    np.testing.assert_allclose(nested.reshape(6, 6, 4), flat, atol=1e-6)
    np.testing.assert_allclose(nested_state.h.reshape(6, 4), flat_state.h, atol=1e-6)
    single, single_state = lstm_scan(p, x[1, 2], mask=mask[1, 2])
    assert single.shape == (6, 4) and single_state.h.shape == (4,)
    np.testing.assert_allclose(single, nested[1, 2], atol=1e-6)


def test_time_major_is_a_transpose():
    rng = np.random.default_rng(3)
    p = _params(rng, 2, 3)
    x = jnp.asarray(rng.normal(size=(4, 5, 2)), jnp.float32)
    mask = jnp.asarray(rng.random((4, 5)) > 0.3)
    ref, _ = lstm_scan(p, x, mask=mask)
    got, _ = lstm_scan(p, jnp.swapaxes(x, 0, 1), mask=mask.T, time_major=True)
    np.testing.assert_allclose(jnp.swapaxes(got, 0, 1), ref, atol=1e-6)


def test_unroll_changes_nothing():
    rng = np.random.default_rng(4)
    p = _params(rng, 2, 3)
    x = jnp.asarray(rng.normal(size=(2, 9, 2)), jnp.float32)
    ref, _ = lstm_scan(p, x)
    for unroll in (2, 4, True):
        np.testing.assert_allclose(lstm_scan(p, x, unroll=unroll)[0], ref, atol=1e-6)


def test_bfloat16_compute_keeps_a_float32_carry():
    rng = np.random.default_rng(5)
    p = _params(rng, 8, 16)
    x = jnp.asarray(rng.normal(size=(4, 20, 8)), jnp.float32)
    ref, _ = lstm_scan(p, x)
    got, state = lstm_scan(p, x, compute_dtype=jnp.bfloat16)
    assert got.dtype == jnp.float32 and state.c.dtype == jnp.float32
    np.testing.assert_allclose(got, ref, atol=5e-2)
    assert float(jnp.max(jnp.abs(got - ref))) > 0  # it really ran in bfloat16


def test_dropout_masks_scale_inputs_and_state():
    rng = np.random.default_rng(6)
    k, r, b = random_params(rng, 3, 4)
    x = rng.normal(size=(2, 5, 3)).astype(np.float32)
    dm = (rng.random((2, 3)) > 0.5) * 2.0
    rdm = (rng.random((2, 4)) > 0.3) / 0.7
    got, _ = lstm_scan(LSTMParams(k, r, b), x, dropout_mask=dm, recurrent_dropout_mask=rdm)
    ref, *_ = np_lstm(k, r, b, x, dropout_mask=dm, recurrent_dropout_mask=rdm)
    np.testing.assert_allclose(got, ref, atol=ATOL)


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(7)
    k, r, b = random_params(rng, 2, 3)
    x = rng.normal(size=(2, 4, 2))
    mask = np.array([[True, True, False, True], [False, True, True, True]])

    def loss(params, x):
        ys, state = lstm_scan(params, x, mask=mask)
        return jnp.sum(ys**2) + jnp.sum(state.c)

    with jax.enable_x64(True):
        p = LSTMParams(*(jnp.asarray(a, jnp.float64) for a in (k, r, b)))
        check_grads(loss, (p, jnp.asarray(x)), order=1, modes=["rev", "fwd"], atol=1e-5, rtol=1e-5)


def test_jit_traces_once_per_shape():
    rng = np.random.default_rng(8)
    p = _params(rng, 3, 4)
    traces = []

    @jax.jit
    def run(p, x, mask):
        traces.append(x.shape)
        return lstm_scan(p, x, mask=mask)[0]

    for _ in range(3):
        run(p, jnp.ones((2, 5, 3)), jnp.ones((2, 5), bool))
    run(p, jnp.ones((2, 6, 3)), jnp.ones((2, 6), bool))
    assert traces == [(2, 5, 3), (2, 6, 3)]


def test_masks_may_be_int_or_trailing_one():
    rng = np.random.default_rng(9)
    p = _params(rng, 2, 3)
    x = jnp.asarray(rng.normal(size=(2, 5, 2)), jnp.float32)
    m = rng.random((2, 5)) > 0.4
    ref, _ = lstm_scan(p, x, mask=m)
    np.testing.assert_allclose(lstm_scan(p, x, mask=m.astype(np.int32))[0], ref)
    np.testing.assert_allclose(lstm_scan(p, x, mask=m[..., None])[0], ref)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (
            dict(x=np.ones((2, 5, 4))),
            r"inputs have shape \(2, 5, 4\); expected \(\*batch, time, 3\)",
        ),
        (dict(x=np.ones((5,))), r"inputs have shape \(5,\)"),
        (
            dict(mask=np.ones((2, 4), bool)),
            r"mask has shape \(2, 4\); expected \(\*batch, time\) = \(2, 5\)",
        ),
        (
            dict(initial_state=LSTMState(np.zeros((2, 3)), np.zeros((2, 4)))),
            r"initial_state.h has shape \(2, 3\)",
        ),
        (dict(initial_state=(np.zeros((2, 4)),)), r"initial_state has 1 arrays; expected 2"),
    ],
)
def test_shape_errors_say_what_was_expected(kwargs, match):
    p = _params(np.random.default_rng(0), 3, 4)
    args = dict(x=np.ones((2, 5, 3)))
    args.update(kwargs)
    with pytest.raises(jaxlstm.ShapeError, match=match):
        lstm_scan(p, args.pop("x"), **args)


def test_inconsistent_params_are_refused():
    with pytest.raises(jaxlstm.ShapeError, match=r"recurrent_kernel has shape \(4, 12\)"):
        lstm_scan(LSTMParams(jnp.ones((3, 16)), jnp.ones((4, 12)), None), jnp.ones((1, 2, 3)))
    with pytest.raises(
        jaxlstm.ShapeError, match=r"bias has shape \(12,\); expected \(4\*units,\) = \(16,\)"
    ):
        lstm_scan(
            LSTMParams(jnp.ones((3, 16)), jnp.ones((4, 16)), jnp.ones(12)), jnp.ones((1, 2, 3))
        )


def test_empty_batch_and_single_step():
    p = _params(np.random.default_rng(0), 3, 4)
    ys, state = lstm_scan(p, jnp.ones((0, 5, 3)))
    assert ys.shape == (0, 5, 4) and state.h.shape == (0, 4)
    ys, state = lstm_scan(p, jnp.ones((2, 1, 3)))
    np.testing.assert_allclose(ys[:, 0], state.h)
