"""The fast paths of the core: the scan's hand-written JVP (and so its backward pass) against
plain autodiff of a step-by-step reference, checkpointed (``remat_chunk``) gradients against the
plain ones, implementation choice (``impl``), the cuDNN wrapper's Keras semantics (on CPU through
``jax.experimental.rnn.lstm_ref``; on GPU against cuDNN itself), and retracing."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

import jaxlstm
from jaxlstm import LSTMParams, LSTMState, lstm_scan, lstm_step
from jaxlstm._src.core import cudnn
from jaxlstm._src.core.lstm import which_impl

ON_GPU = jax.default_backend() == "gpu"


def reference_scan(
    params,
    x,
    *,
    mask=None,
    initial_state=None,
    go_backwards=False,
    zero_output_for_mask=False,
    recurrent_dropout_mask=None,
    return_sequences=True,
    **step_options,
):
    """Keras's LSTM as a plain ``lax.scan`` of the public :func:`lstm_step` (autodiff only)."""
    b, t, _ = x.shape
    u = params.units
    carry_dtype = jnp.float32
    h0, c0 = initial_state if initial_state is not None else (jnp.zeros((b, u)),) * 2
    m = jnp.ones((b, t), bool) if mask is None else jnp.asarray(mask, bool)
    xs, ms = jnp.swapaxes(x, 0, 1), jnp.swapaxes(m, 0, 1)[..., None]
    if go_backwards:
        xs, ms = xs[::-1], ms[::-1]
    rdm = 1.0 if recurrent_dropout_mask is None else recurrent_dropout_mask

    def step(carry, inputs):
        h, c, out = carry
        x_t, m_t = inputs
        new = lstm_step(params, LSTMState(h * rdm, c), x_t, **step_options)
        out = jnp.where(m_t, new.h, 0.0 if zero_output_for_mask else out)
        return (jnp.where(m_t, new.h, h), jnp.where(m_t, new.c, c), out), out

    init = (h0.astype(carry_dtype), c0.astype(carry_dtype), jnp.zeros((b, u), carry_dtype))
    (h, c, out), ys = lax.scan(step, init, (xs, ms))
    return (jnp.swapaxes(ys, 0, 1) if return_sequences else out), LSTMState(h, c)


def _setup(seed=0, b=3, t=9, f=4, u=5, use_bias=True):
    k = jax.random.split(jax.random.key(seed), 8)
    params = LSTMParams(
        0.5 * jax.random.normal(k[0], (f, 4 * u)),
        0.5 * jax.random.normal(k[1], (u, 4 * u)),
        0.3 * jax.random.normal(k[2], (4 * u,)) if use_bias else None,
    )
    x = jax.random.normal(k[3], (b, t, f))
    state = LSTMState(0.5 * jax.random.normal(k[4], (b, u)), jax.random.normal(k[5], (b, u)))
    mask = jax.random.bernoulli(k[6], 0.7, (b, t)).at[-1].set(False)  # one fully masked row
    rdm = jax.random.bernoulli(k[7], 0.7, (b, u)) / 0.7
    return params, x, state, mask, rdm


def _loss(fn, **kwargs):
    def loss(params, x, state):
        ys, final = fn(params, x, initial_state=state, **kwargs)
        return jnp.sum(jnp.sin(ys)) + jnp.sum(final.h**2) + jnp.sum(jnp.cos(final.c))

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))


def _assert_trees_close(got, want, rtol, atol=0.0):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        scale = float(jnp.max(jnp.abs(w))) or 1.0
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=0, atol=rtol * scale + atol)


CASES = {
    "plain": dict(),
    "mask+backwards+zero_output": dict(mask=True, go_backwards=True, zero_output_for_mask=True),
    "last_output+mask+no_bias": dict(mask=True, return_sequences=False, use_bias=False),
    "recurrent_dropout+mask": dict(recurrent_dropout_mask=True, mask=True),
    "hard_sigmoid+relu": dict(activation="relu", recurrent_activation="hard_sigmoid_keras2"),
    "softmax (generic jvp)": dict(activation="softmax", mask=True),
    "callable (generic jvp)": dict(activation=lambda z: z / (1 + jnp.abs(z))),
}


@pytest.mark.parametrize("case", list(CASES))
def test_scan_value_and_gradients_equal_autodiff_of_reference(case):
    opts = dict(CASES[case])
    params, x, state, mask, rdm = _setup(use_bias=opts.pop("use_bias", True))
    if opts.pop("mask", False):
        opts["mask"] = mask
    if opts.pop("recurrent_dropout_mask", False):
        opts["recurrent_dropout_mask"] = rdm
    got = _loss(lstm_scan, **opts)(params, x, state)
    want = _loss(reference_scan, **opts)(params, x, state)
    _assert_trees_close(got, want, rtol=2e-6)


def test_bfloat16_compute_gradients_match_reference():
    params, x, state, mask, _ = _setup(seed=1)
    opts = dict(mask=mask, compute_dtype=jnp.bfloat16)
    got = _loss(lstm_scan, **opts)(params, x, state)
    want = _loss(reference_scan, **opts)(params, x, state)
    _assert_trees_close(got, want, rtol=3e-2)


@pytest.mark.parametrize(
    "chunk,masked,return_sequences", [(7, False, True), (16, True, False), (64, True, True)]
)
def test_checkpointed_gradients_equal_plain(chunk, masked, return_sequences):
    params, x, state, _, _ = _setup(seed=3, b=2, t=50, f=3, u=6)
    mask = None
    if masked:
        mask = jax.random.bernoulli(jax.random.key(9), 0.8, (2, 50))
    opts = dict(mask=mask, return_sequences=return_sequences)
    got = _loss(lstm_scan, remat_chunk=chunk, **opts)(params, x, state)
    want = _loss(lstm_scan, **opts)(params, x, state)
    _assert_trees_close(got, want, rtol=1e-6)


def test_auto_picks_the_scan_here_and_cudnn_only_where_it_applies():
    params, x, _, mask, rdm = _setup()
    expected = "cudnn" if ON_GPU else "scan"
    assert which_impl(params, x) == expected
    assert which_impl(params, x, mask=mask) == "scan"  # right padding unknown while tracing
    assert which_impl(params, x, activation="relu") == "scan"
    assert which_impl(params, x, compute_dtype=jnp.bfloat16) == "scan"
    assert which_impl(params, x, recurrent_dropout_mask=rdm) == "scan"
    assert which_impl(params, x, remat_chunk=4) == "scan"
    assert which_impl(params, x, impl="scan") == "scan"


@pytest.mark.skipif(ON_GPU, reason="checks the refusal off GPU")
def test_forcing_cudnn_off_gpu_is_a_clear_error():
    params, x, _, _, _ = _setup()
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"impl='cudnn'.*GPU only.*'cpu'"):
        which_impl(params, x, impl="cudnn")
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"impl='cudnn'"):
        lstm_scan(params, x, impl="cudnn")
    lstm = jaxlstm.LSTM(4, 5, impl="cudnn", rngs=nnx.Rngs(0))
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"GPU only"):
        lstm(x)


def test_cudnn_refusals_name_the_reason():
    params, x, _, _, _ = _setup()
    conditions = dict(
        platform="gpu",
        activation=jaxlstm.get_activation("tanh"),
        recurrent_activation=jaxlstm.get_activation("sigmoid"),
        masked=False,
        go_backwards=False,
        recurrent_dropout=False,
        compute_dtype=None,
        dtypes=(jnp.float32,),
        remat_chunk=None,
    )
    assert cudnn.unsupported_reason(**conditions) is None
    for change, match in [
        (dict(activation=jaxlstm.get_activation("relu")), "tanh"),
        (dict(compute_dtype=jnp.bfloat16), "float32"),
        (dict(dtypes=(jnp.float16,)), "float32"),
        (dict(recurrent_dropout=True), "recurrent dropout"),
        (dict(masked=True, go_backwards=True), "go_backwards"),
        (dict(remat_chunk=8), "remat_chunk"),
    ]:
        assert match in cudnn.unsupported_reason(**{**conditions, **change})
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"impl='fast'; expected one of"):
        lstm_scan(params, x, impl="fast")


def _right_padded(b, t, seed=0):
    lengths = jax.random.randint(jax.random.key(seed), (b,), 0, t + 1).at[0].set(t).at[1].set(0)
    return jnp.arange(t)[None, :] < lengths[:, None]


@pytest.mark.parametrize(
    "zero_output_for_mask,return_sequences,use_bias",
    [(False, True, True), (True, True, False), (False, False, False), (True, False, True)],
)
def test_cudnn_wrapper_has_keras_semantics(zero_output_for_mask, return_sequences, use_bias):
    """Weight packing and the fill-in around right-padded masks, through cuDNN's reference."""
    params, x, state, _, _ = _setup(seed=4, b=5, t=7, use_bias=use_bias)
    mask = _right_padded(5, 7)
    opts = dict(return_sequences=return_sequences, zero_output_for_mask=zero_output_for_mask)
    for m in (None, mask):
        y, h, c = cudnn.lstm(*params, x, *state, m, reference=True, **opts)
        want_y, want = lstm_scan(params, x, mask=m, initial_state=state, impl="scan", **opts)
        np.testing.assert_allclose(y, want_y, atol=2e-6)
        np.testing.assert_allclose(h, want.h, atol=2e-6)
        np.testing.assert_allclose(c, want.c, atol=2e-6)


def test_cudnn_wrapper_refuses_a_mask_that_is_not_right_padded():
    params, x, state, mask, _ = _setup(seed=5)
    y, h, _ = cudnn.lstm(
        *params, x, *state, mask.at[0, 0].set(False).at[0, 1].set(True), reference=True,
        return_sequences=True, zero_output_for_mask=False,
    )  # fmt: skip
    assert bool(jnp.all(jnp.isnan(y))) and bool(jnp.all(jnp.isnan(h)))


@pytest.mark.skipif(not ON_GPU, reason="cuDNN needs a GPU")
@pytest.mark.parametrize("masked", [False, True])
def test_cudnn_equals_scan_on_gpu(masked):
    params, x, state, _, _ = _setup(seed=6, b=8, t=33, f=16, u=32)
    mask = _right_padded(8, 33) if masked else None
    with jax.default_matmul_precision("highest"):
        got = _loss(lstm_scan, mask=mask, impl="cudnn")(params, x, state)
        want = _loss(lstm_scan, mask=mask, impl="scan")(params, x, state)
    _assert_trees_close(got, want, rtol=1e-5)


def test_one_trace_per_shape_for_values_and_gradients():
    params, _, _, _, _ = _setup()
    traces = []

    @jax.jit
    def run(params, x, mask):
        traces.append(x.shape)
        ys, _ = lstm_scan(params, x, mask=mask, remat_chunk=3)
        return jnp.sum(ys)

    grad = jax.jit(jax.grad(run.__wrapped__ if hasattr(run, "__wrapped__") else run))
    for t in (9, 9, 9, 12, 12):
        x, m = jnp.ones((3, t, 4)), jnp.ones((3, t), bool)
        run(params, x, m)
        grad(params, x, m)
    assert traces.count((3, 9, 4)) == 2 and traces.count((3, 12, 4)) == 2  # one each: run, grad
