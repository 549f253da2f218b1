"""ConvLSTM1D / ConvLSTM2D / ConvLSTM3D: the cell against a float64 NumPy reference, the scan
against a loop of its own steps (values and gradients), and the layers against live Keras 3
(every rank, padding, strides, dilation, data format, masks, go_backwards, initial states,
Keras 3's four dropout masks, Bidirectional)."""

from __future__ import annotations

import itertools
import json
import os
import shutil

os.environ.setdefault("KERAS_BACKEND", "jax")

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxlstm
from jaxlstm import (
    ConvLSTMParams,
    ConvLSTMState,
    ShapeError,
    UnsupportedOptionError,
    conv_lstm_scan,
    conv_lstm_step,
)
from jaxlstm._src.core.conv_lstm import conv_lstm_cell, conv_lstm_dropout_masks

ATOL = 1e-5
RNG = np.random.default_rng(0)


# --- a float64 NumPy reference ---------------------------------------------------------------


def _pads(n, k, s, d, padding):
    """Keras's padding of one spatial axis: ``(before, after, out)``."""
    span = (k - 1) * d + 1
    if padding == "valid":
        return 0, 0, (n - span) // s + 1
    out = -(-n // s)
    total = max((out - 1) * s + span - n, 0)
    return total // 2, total - total // 2, out


def np_conv(x, kernel, strides, padding, dilation):
    """``x`` ``(N, *spatial, C)`` convolved with ``kernel`` ``(*k, C, F)``, in float64."""
    rank = kernel.ndim - 2
    pads = [
        _pads(x.shape[1 + a], kernel.shape[a], strides[a], dilation[a], padding)
        for a in range(rank)
    ]
    xp = np.pad(x, [(0, 0), *[(p[0], p[1]) for p in pads], (0, 0)])
    outs = [p[2] for p in pads]
    y = np.zeros((x.shape[0], *outs, kernel.shape[-1]))
    for offset in itertools.product(*[range(k) for k in kernel.shape[:rank]]):
        index = tuple(
            slice(o * d, o * d + (n - 1) * s + 1, s)
            for o, d, s, n in zip(offset, dilation, strides, outs, strict=True)
        )
        y += np.tensordot(xp[(slice(None), *index)], kernel[offset], axes=([-1], [0]))
    return y


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_conv_lstm(
    params,
    x,
    *,
    strides,
    padding,
    dilation,
    data_format,
    h0=None,
    c0=None,
    mask=None,
    go_backwards=False,
    dropout=None,
    recurrent_dropout=None,
):
    """A ConvLSTM over ``x`` ``(B, T, *in)`` as Keras writes it, gate by gate, in float64:
    ``(outputs (B, T, *state), h, c)`` (outputs in processing order). ``dropout`` /
    ``recurrent_dropout``: four multipliers per gate, ``(B, 4, *in)`` / ``(B, 4, *state)``."""
    k, rk, b = (None if a is None else np.asarray(a, np.float64) for a in params)
    rank, f = k.ndim - 2, rk.shape[-2]
    x = np.asarray(x, np.float64)
    first = data_format == "channels_first"

    def last(a):  # channels_first -> channels_last, for the reference's convolutions
        return np.moveaxis(a, 1, -1) if first else a

    def back(a):
        return np.moveaxis(a, -1, 1) if first else a

    steps = range(x.shape[1])[::-1] if go_backwards else range(x.shape[1])
    ones = (1,) * rank
    h = c = None
    if h0 is not None:
        h, c = last(np.asarray(h0, np.float64)), last(np.asarray(c0, np.float64))
    outs, prev = [], None
    for t in steps:
        xt = x[:, t]
        zs = []
        for g in range(4):
            xg = xt if dropout is None else xt * dropout[:, g]
            z = np_conv(last(xg), k[..., g * f : (g + 1) * f], strides, padding, dilation)
            if b is not None:
                z = z + b[g * f : (g + 1) * f]
            zs.append(z)
        if h is None:
            h = np.zeros_like(zs[0])
            c = np.zeros_like(zs[0])
            prev = np.zeros_like(h)
        if prev is None:
            prev = np.zeros_like(h)
        for g in range(4):
            hg = h if recurrent_dropout is None else h * last(recurrent_dropout[:, g])
            zs[g] = zs[g] + np_conv(hg, rk[..., g * f : (g + 1) * f], ones, "same", ones)
        i, fg, o = _sigmoid(zs[0]), _sigmoid(zs[1]), _sigmoid(zs[3])
        c_new = fg * c + i * np.tanh(zs[2])
        h_new = o * np.tanh(c_new)
        if mask is not None:
            m = mask[:, t].reshape(-1, *([1] * (h.ndim - 1))).astype(bool)
            h_new, c_new = np.where(m, h_new, h), np.where(m, c_new, c)
            out = np.where(m, h_new, prev)
        else:
            out = h_new
        h, c, prev = h_new, c_new, out
        outs.append(out)
    return back_seq(np.stack(outs, 1), back), back(h), back(c)


def back_seq(seq, back):
    return np.stack([back(seq[:, t]) for t in range(seq.shape[1])], 1)


def random_params(rank, cin, f, k=3, use_bias=True, scale=0.5):
    ks = (k,) * rank
    return ConvLSTMParams(
        jnp.asarray(RNG.normal(size=(*ks, cin, 4 * f)) * scale, jnp.float32),
        jnp.asarray(RNG.normal(size=(*ks, f, 4 * f)) * scale, jnp.float32),
        jnp.asarray(RNG.normal(size=(4 * f,)), jnp.float32) if use_bias else None,
    )


def inputs(rank, data_format, batch=2, steps=4, size=6, cin=2):
    spatial = (size,) * rank
    shape = (
        (batch, steps, *spatial, cin)
        if data_format == "channels_last"
        else (batch, steps, cin, *spatial)
    )
    return RNG.normal(size=shape).astype(np.float32)


SLOW = pytest.mark.slow
CONFIGS = [  # rank, padding, strides, dilation, data_format
    (1, "valid", 1, 1, "channels_last"),
    (1, "same", 2, 1, "channels_first"),
    pytest.param(2, "same", 1, 1, "channels_last", marks=SLOW),
    (2, "valid", 2, 1, "channels_first"),
    (2, "same", 1, 2, "channels_last"),
    pytest.param(3, "valid", 1, 1, "channels_first", marks=SLOW),
    (3, "same", 2, 1, "channels_last"),
]


def _conv_options(padding, strides, dilation, data_format):
    return dict(padding=padding, strides=strides, dilation_rate=dilation, data_format=data_format)


@pytest.mark.parametrize("rank,padding,strides,dilation,data_format", CONFIGS)
def test_scan_matches_float64_reference(rank, padding, strides, dilation, data_format):
    """Masked steps, a non-zero initial state, go_backwards and per-gate dropout multipliers,
    against the reference."""
    params = random_params(rank, 2, 3)
    x = inputs(rank, data_format)
    opts = _conv_options(padding, strides, dilation, data_format)
    _, state = conv_lstm_scan(params, x, **opts)  # the state's shape
    h0 = RNG.normal(size=state.h.shape).astype(np.float32)
    c0 = RNG.normal(size=state.h.shape).astype(np.float32)
    mask = np.array([[1, 0, 1, 1], [0, 1, 1, 0]], bool)
    dm = (RNG.random((2, 4, *x.shape[2:])) > 0.3) / 0.7
    rdm = (RNG.random((2, 4, *state.h.shape[1:])) > 0.2) / 0.8
    ys, final = conv_lstm_scan(
        params,
        x,
        initial_state=ConvLSTMState(h0, c0),
        mask=mask,
        go_backwards=True,
        dropout_mask=dm.astype(np.float32),
        recurrent_dropout_mask=rdm.astype(np.float32),
        **opts,
    )
    want_y, want_h, want_c = np_conv_lstm(
        params,
        x,
        strides=(strides,) * rank,
        padding=padding,
        dilation=(dilation,) * rank,
        data_format=data_format,
        h0=h0,
        c0=c0,
        mask=mask,
        go_backwards=True,
        dropout=dm,
        recurrent_dropout=rdm,
    )
    np.testing.assert_allclose(ys, want_y, atol=ATOL)
    np.testing.assert_allclose(final.h, want_h, atol=ATOL)
    np.testing.assert_allclose(final.c, want_c, atol=ATOL)


def _step_loop(params, x, opts, state, mask=None):
    ys = []
    for t in range(x.shape[1]):
        new = conv_lstm_step(params, state, x[:, t], **opts)
        if mask is not None:
            m = mask[:, t].reshape(-1, *([1] * (new.h.ndim - 1)))
            new = ConvLSTMState(jnp.where(m, new.h, state.h), jnp.where(m, new.c, state.c))
        ys.append(new.h)
        state = new
    return jnp.stack(ys, 1), state


def test_scan_matches_loop_of_steps_and_its_gradients():
    params = random_params(1, 2, 3, use_bias=True)
    x = jnp.asarray(inputs(1, "channels_last", steps=3, size=5))
    opts = _conv_options("same", 1, 1, "channels_last")
    zeros = jnp.zeros((2, 5, 3))
    mask = jnp.array([[1, 0, 1], [0, 1, 1]], bool)

    def by_scan(p, x):
        ys, s = conv_lstm_scan(p, x, mask=mask, **opts)
        return ys, s

    def by_loop(p, x):
        return _step_loop(p, x, opts, ConvLSTMState(zeros, zeros), mask)

    (ys, s), (ys_loop, s_loop) = by_scan(params, x), by_loop(params, x)
    np.testing.assert_allclose(ys, ys_loop, atol=ATOL)
    np.testing.assert_allclose(s.c, s_loop.c, atol=ATOL)

    def loss(run):
        def f(p, x):
            ys, s = run(p, x)
            return jnp.sum(ys**2) + jnp.sum(s.c)

        return jax.jit(jax.grad(f, argnums=(0, 1)))

    g_scan, g_loop = loss(by_scan)(params, x), loss(by_loop)(params, x)
    for a, b in zip(jax.tree.leaves(g_scan), jax.tree.leaves(g_loop), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    # checkpointed in chunks: the same gradients
    g_remat = loss(lambda p, x: conv_lstm_scan(p, x, mask=mask, remat_chunk=3, **opts))(params, x)
    for a, b in zip(jax.tree.leaves(g_remat), jax.tree.leaves(g_scan), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_gradient_matches_finite_differences():
    """A directional derivative of the loss against central differences in float64 NumPy."""
    params = random_params(1, 2, 2, k=2, scale=0.3)
    x = inputs(1, "channels_last", steps=3, size=5)
    opts = _conv_options("same", 1, 1, "channels_last")
    direction = jax.tree.map(lambda a: RNG.normal(size=a.shape), params)

    def ref_loss(p):
        y, _, c = np_conv_lstm(
            p, x, strides=(1,), padding="same", dilation=(1,), data_format="channels_last"
        )
        return float(np.sum(y**2) + np.sum(c))

    eps = 1e-5
    plus = jax.tree.map(lambda a, d: np.asarray(a, np.float64) + eps * d, params, direction)
    minus = jax.tree.map(lambda a, d: np.asarray(a, np.float64) - eps * d, params, direction)
    numeric = (ref_loss(plus) - ref_loss(minus)) / (2 * eps)

    def loss(p):
        ys, state = conv_lstm_scan(p, x, **opts)
        return jnp.sum(ys**2) + jnp.sum(state.c)

    grads = jax.jit(jax.grad(loss))(params)
    analytic = sum(float(jnp.sum(g * d)) for g, d in zip(grads, direction, strict=True))
    assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-4)


def test_batch_axes_and_time_major():
    params = random_params(1, 2, 3)
    x = inputs(1, "channels_last", batch=6)
    opts = _conv_options("valid", 1, 1, "channels_last")
    ys, s = conv_lstm_scan(params, x, **opts)
    ys4, s4 = conv_lstm_scan(params, x.reshape(2, 3, *x.shape[1:]), **opts)
    np.testing.assert_allclose(ys4.reshape(ys.shape), ys, atol=1e-6)
    np.testing.assert_allclose(s4.c.reshape(s.c.shape), s.c, atol=1e-6)
    ys_tm, _ = conv_lstm_scan(params, np.swapaxes(x, 0, 1), time_major=True, **opts)
    np.testing.assert_allclose(np.swapaxes(ys_tm, 0, 1), ys, atol=1e-6)


def test_compute_dtype_bfloat16_is_close():
    params = random_params(2, 2, 3, scale=0.2)
    x = inputs(2, "channels_last")
    ys, _ = conv_lstm_scan(params, x, padding="same")
    ys16, s16 = conv_lstm_scan(params, x, padding="same", compute_dtype=jnp.bfloat16)
    assert s16.c.dtype == jnp.float32
    np.testing.assert_allclose(ys16, ys, atol=5e-2)
    assert float(jnp.max(jnp.abs(ys16 - ys))) > 0  # it really ran in bfloat16


# --- errors -----------------------------------------------------------------------------------


def test_wrong_inputs_and_options_are_refused():
    params = random_params(2, 2, 3)
    with pytest.raises(
        ShapeError,
        match=r"inputs have shape \(2, 4, 6, 6, 5\); expected .*"
        r"in_channels=2",
    ):
        conv_lstm_scan(params, np.zeros((2, 4, 6, 6, 5), np.float32))
    with pytest.raises(ShapeError, match=r"spatial shape \(2, 2\), too small for kernel_size"):
        conv_lstm_scan(params, np.zeros((2, 4, 2, 2, 2), np.float32))
    with pytest.raises(UnsupportedOptionError, match="strides > 1 or dilation_rate > 1, not both"):
        conv_lstm_scan(params, inputs(2, "channels_last"), strides=2, dilation_rate=2)
    with pytest.raises(UnsupportedOptionError, match="padding='causal'; expected one of"):
        conv_lstm_scan(params, inputs(2, "channels_last"), padding="causal")
    with pytest.raises(
        UnsupportedOptionError, match="cuDNN kernel for LSTM only, not for ConvLSTM"
    ):
        conv_lstm_scan(params, inputs(2, "channels_last"), impl="cudnn")
    with pytest.raises(
        ShapeError,
        match=r"initial_state.h has shape \(2, 6, 6, 3\); expected "
        r"\(\*batch, 4, 4, 3\)",
    ):
        z = np.zeros((2, 6, 6, 3), np.float32)
        conv_lstm_scan(params, inputs(2, "channels_last"), initial_state=[z, z])
    with pytest.raises(ShapeError, match=r"recurrent_kernel has shape \(3, 3, 3, 8\); expected"):
        conv_lstm_scan(
            params._replace(recurrent_kernel=np.zeros((3, 3, 3, 8))), inputs(2, "channels_last")
        )
    with pytest.raises(
        ShapeError,
        match=r"dropout_mask has shape \(2, 6, 6, 2\); expected "
        r"\(\*batch, 4, 6, 6, 2\)",
    ):
        conv_lstm_scan(params, inputs(2, "channels_last"), dropout_mask=np.ones((2, 6, 6, 2)))


# --- live Keras 3 -----------------------------------------------------------------------------

keras = pytest.importorskip("keras")
KERAS_CLASSES = {1: "ConvLSTM1D", 2: "ConvLSTM2D", 3: "ConvLSTM3D"}
OURS = {1: jaxlstm.ConvLSTM1D, 2: jaxlstm.ConvLSTM2D, 3: jaxlstm.ConvLSTM3D}


def keras_layer(rank, x, filters=3, kernel_size=3, **options):
    """A built Keras ConvLSTM with random weights (a non-zero bias), and its weights."""
    layer = getattr(keras.layers, KERAS_CLASSES[rank])(filters, kernel_size, **options)
    layer.build(x.shape)
    weights = [RNG.normal(size=w.shape).astype(np.float32) * 0.5 for w in layer.get_weights()]
    layer.set_weights(weights)
    return layer, weights


def ours_like(rank, layer, weights, x, **options):
    cin = x.shape[-1] if layer.data_format == "channels_last" else x.shape[2]
    return OURS[rank](
        cin,
        layer.filters,
        layer.kernel_size,
        strides=layer.strides,
        padding=layer.padding,
        dilation_rate=layer.dilation_rate,
        data_format=layer.data_format,
        use_bias=layer.use_bias,
        return_sequences=layer.return_sequences,
        return_state=layer.return_state,
        go_backwards=layer.go_backwards,
        weights=ConvLSTMParams(*weights) if layer.use_bias else ConvLSTMParams(*weights, None),
        **options,
    )


def assert_close(ours, theirs):
    ours, theirs = jax.tree.leaves(ours), [np.asarray(t) for t in jax.tree.leaves(theirs)]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=ATOL)


# rank 3 against Keras 3 in the default run: the conv_lstm3d_no_bias fixture (tf.keras, and
# through save_keras into Keras 3 in test_save_fixtures.py)
KERAS_CONFIGS = [
    (1, "valid", 1, 1, "channels_last"),
    (1, "same", 2, 1, "channels_first"),
    pytest.param(2, "same", 1, 1, "channels_last", marks=SLOW),
    (2, "valid", 2, 1, "channels_first"),
    (2, "same", 1, 2, "channels_last"),
    pytest.param(3, "valid", 1, 1, "channels_first", marks=SLOW),
    pytest.param(3, "same", 2, 1, "channels_last", marks=SLOW),
]


@pytest.mark.parametrize("rank,padding,strides,dilation,data_format", KERAS_CONFIGS)
def test_layer_matches_keras3(rank, padding, strides, dilation, data_format):
    x = inputs(rank, data_format)
    opts = _conv_options(padding, strides, dilation, data_format)
    layer, w = keras_layer(rank, x, return_sequences=True, return_state=True, **opts)
    assert_close(ours_like(rank, layer, w, x)(x), layer(x))


@pytest.mark.parametrize("rank", [1, 2, pytest.param(3, marks=SLOW)])
def test_mask_go_backwards_initial_state_match_keras3(rank):
    data_format = "channels_last" if rank != 2 else "channels_first"
    x = inputs(rank, data_format, size=5)
    # unroll=True: Keras 3's lax.scan path cannot run a masked ConvLSTM (it broadcasts the
    # (B, 1) mask against (B, *spatial, filters) states and fails); its unrolled loop can.
    layer, w = keras_layer(
        rank,
        x,
        kernel_size=2,
        padding="same",
        data_format=data_format,
        return_sequences=True,
        return_state=True,
        go_backwards=rank != 1,
        use_bias=rank != 3,
        unroll=True,
    )
    ours = ours_like(rank, layer, w, x)
    h = np.asarray(layer(x)[1])
    h0, c0 = (RNG.normal(size=h.shape).astype(np.float32) for _ in range(2))
    mask = np.array([[1, 1, 0, 1], [1, 0, 0, 1]], bool)  # (Keras's JAX corner: step 0 unmasked)
    assert_close(
        ours(x, mask=mask, initial_state=ConvLSTMState(h0, c0)),
        layer(x, mask=mask, initial_state=[h0, c0]),
    )


def test_dropout_masks_match_keras3():
    """Keras 3's four input and four recurrent masks (put in place of its draws) give the
    same numbers as ours passed as dropout_mask / recurrent_dropout_mask."""
    x = inputs(2, "channels_last", size=5)
    layer, w = keras_layer(
        2, x, padding="same", return_sequences=True, dropout=0.3, recurrent_dropout=0.4
    )
    dm = [(RNG.random(x[:, 0].shape) > 0.3).astype(np.float32) / 0.7 for _ in range(4)]
    h_shape = (*x.shape[:1], *x.shape[2:-1], 3)
    rdm = [(RNG.random(h_shape) > 0.4).astype(np.float32) / 0.6 for _ in range(4)]
    layer.cell._dropout_mask, layer.cell._recurrent_dropout_mask = dm, rdm
    theirs = layer(x, training=True)
    ys, _ = conv_lstm_scan(
        ConvLSTMParams(*w),
        x,
        padding="same",
        dropout_mask=np.stack(dm, 1),
        recurrent_dropout_mask=np.stack(rdm, 1),
    )
    np.testing.assert_allclose(ys, np.asarray(theirs), atol=ATOL)


def test_module_dropout_draws_keras3_masks():
    """In training mode the module draws Keras 3's masks: per call, four over the step input
    and four over ``h`` (one per gate), shaped as Keras's own cell draws them, each 0 or
    1 / (1 - rate); and its output is what Keras 3's layer computes with those masks put in
    place of its draws (pinned to Keras, not to our scan)."""
    x = inputs(1, "channels_last", size=5)
    layer, w = keras_layer(
        1, x, padding="same", return_sequences=True, dropout=0.5, recurrent_dropout=0.25
    )
    ours = ours_like(1, layer, w, x, dropout=0.5, recurrent_dropout=0.25, rngs=nnx.Rngs(0))
    ours.eval()
    y_eval = ours(x)
    np.testing.assert_allclose(y_eval, np.asarray(layer(x, training=False)), atol=ATOL)
    ours.train()
    key = jax.random.clone(ours.rngs.key[...])
    count = ours.rngs.count[...]
    y_train = ours(x)
    dm, rdm = conv_lstm_dropout_masks(
        jax.random.fold_in(key, count),
        conv_lstm_cell(1, padding="same"),
        ours.params,
        jnp.asarray(x),
        0.5,
        0.25,
    )
    # Keras's own draws for this input: four masks of each kind, of these shapes
    h0 = np.zeros((*x.shape[:1], *x.shape[2:-1], 3), np.float32)
    keras_dm = layer.cell.get_dropout_mask(x[:, 0])
    keras_rdm = layer.cell.get_recurrent_dropout_mask(h0)
    layer.cell.reset_dropout_mask()
    layer.cell.reset_recurrent_dropout_mask()
    assert [m.shape for m in np.unstack(np.asarray(dm), axis=1)] == [
        tuple(m.shape) for m in keras_dm
    ]
    assert [m.shape for m in np.unstack(np.asarray(rdm), axis=1)] == [
        tuple(m.shape) for m in keras_rdm
    ]
    assert set(np.unique(np.asarray(dm))) == {0.0, 2.0}
    assert set(np.unique(np.asarray(rdm))) == {0.0, np.float32(1 / 0.75)}
    # Keras 3's layer, our masks in place of its draws (its cell keeps them for the call)
    layer.cell._dropout_mask = list(np.unstack(np.asarray(dm), axis=1))
    layer.cell._recurrent_dropout_mask = list(np.unstack(np.asarray(rdm), axis=1))
    theirs = layer(x, training=True)
    np.testing.assert_allclose(y_train, np.asarray(theirs), atol=ATOL)
    assert not np.allclose(y_train, y_eval)


@pytest.mark.parametrize(
    "merge_mode,sequences,masked", [("concat", True, False), ("sum", False, True)]
)
def test_bidirectional_matches_keras3(merge_mode, sequences, masked):
    """Masked only without return_sequences: Keras 3 runs a masked ConvLSTM only unrolled
    (see test_mask_go_backwards_initial_state_match_keras3), and its unrolled loop ignores the
    zero_output_for_mask that Bidirectional sets (its scan and tf.keras honour it, as we do)."""
    x = inputs(2, "channels_last", size=5)
    inner = keras.layers.ConvLSTM2D(
        3, 2, padding="same", return_sequences=sequences, return_state=True, unroll=masked
    )
    bi = keras.layers.Bidirectional(inner, merge_mode=merge_mode)
    bi.build(x.shape)
    w = [RNG.normal(size=a.shape).astype(np.float32) * 0.5 for a in bi.get_weights()]
    bi.set_weights(w)
    opts = dict(padding="same", return_sequences=sequences, return_state=True)
    fw = jaxlstm.ConvLSTM2D(2, 3, 2, **opts, weights=ConvLSTMParams(*w[:3]))
    bw = jaxlstm.ConvLSTM2D(2, 3, 2, **opts, go_backwards=True, weights=ConvLSTMParams(*w[3:]))
    ours = jaxlstm.Bidirectional(fw, bw, merge_mode=merge_mode)
    mask = np.array([[1, 1, 0, 1], [1, 1, 1, 0]], bool) if masked else None
    assert_close(ours(x, mask=mask), bi(x, mask=mask))


def test_linen_twins_match_nnx():
    """The Linen ConvLSTM and a Linen Bidirectional of two (masked), with the NNX modules'
    weights, compute what the NNX modules compute."""
    x = inputs(1, "channels_first", size=7)
    opts = dict(strides=2, data_format="channels_first", return_sequences=True)
    nnx_layer = jaxlstm.ConvLSTM1D(2, 3, 3, **opts, rngs=nnx.Rngs(1))
    linen_layer = jaxlstm.linen.ConvLSTM1D(3, 3, **opts)
    variables = linen_layer.init(jax.random.key(0), x, deterministic=True)
    assert variables["params"]["kernel"].shape == (3, 2, 12)
    np.testing.assert_allclose(variables["params"]["bias"][3:6], 1.0)  # unit_forget_bias

    def as_variables(p):
        return {"kernel": p.kernel, "recurrent_kernel": p.recurrent_kernel, "bias": p.bias}

    np.testing.assert_allclose(
        linen_layer.apply({"params": as_variables(nnx_layer.params)}, x, deterministic=True),
        nnx_layer(x),
        atol=1e-6,
    )
    back = jaxlstm.ConvLSTM1D(2, 3, 3, **opts, go_backwards=True, rngs=nnx.Rngs(2))
    ours = jaxlstm.Bidirectional(nnx_layer, back, merge_mode="ave")
    bi = jaxlstm.linen.Bidirectional(
        jaxlstm.linen.ConvLSTM1D(3, 3, **opts),
        jaxlstm.linen.ConvLSTM1D(3, 3, **opts, go_backwards=True),
        merge_mode="ave",
    )
    mask = np.array([[1, 0, 1, 1], [1, 1, 1, 0]], bool)
    v = {
        "params": {
            "forward_layer": as_variables(nnx_layer.params),
            "backward_layer": as_variables(back.params),
        }
    }
    got = bi.apply(v, x, mask=mask, deterministic=True)
    np.testing.assert_allclose(got, ours(x, mask=mask), atol=1e-6)
    assert np.all(np.asarray(got)[0, 1] == 0)  # masked step of a returned sequence: zeros


def test_predictor_runs_a_conv_lstm():
    x = inputs(1, "channels_last", size=4)
    layer = jaxlstm.ConvLSTM1D(2, 2, 2, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(jaxlstm.predictor(layer)(x), layer(x), atol=1e-6)


# --- files ------------------------------------------------------------------------------------

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "keras2")


def video_classifier():
    """ConvLSTM2D(return_sequences) + BatchNormalization + MaxPooling3D + ConvLSTM2D +
    GlobalAveragePooling2D + Dense, with random weights (positive BatchNorm variances)."""
    rng = np.random.default_rng(7)
    inp = keras.Input((4, 6, 6, 2))
    y = keras.layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True, name="clstm")(inp)
    y = keras.layers.BatchNormalization(name="bn")(y)
    y = keras.layers.MaxPooling3D((1, 2, 2))(y)
    y = keras.layers.ConvLSTM2D(4, 2, name="clstm2")(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    y = keras.layers.Dense(3, name="head")(y)
    model = keras.Model(inp, y)
    for layer in model.layers:
        w = [rng.normal(size=a.shape).astype(np.float32) * 0.5 for a in layer.get_weights()]
        if layer.name == "bn":
            w[3] = np.abs(w[3]) + 0.5  # moving variance
        if w:
            layer.set_weights(w)
    return model


@pytest.fixture(scope="module")
def saved_classifier(tmp_path_factory):
    model = video_classifier()
    folder = tmp_path_factory.mktemp("conv_lstm")
    paths = {suffix: str(folder / f"video{suffix}") for suffix in (".keras", ".h5", ".weights.h5")}
    model.save(paths[".keras"])
    model.save(paths[".h5"])
    model.save_weights(paths[".weights.h5"])
    x = RNG.normal(size=(2, 4, 6, 6, 2)).astype(np.float32)
    return model, paths, x


@pytest.mark.parametrize("suffix", [".keras", pytest.param(".h5", marks=SLOW)])
def test_video_classifier_matches_keras3(saved_classifier, suffix):
    model, paths, x = saved_classifier
    ours = jaxlstm.load_keras(paths[suffix])
    np.testing.assert_allclose(ours(x), np.asarray(model(x)), atol=ATOL)
    layer = jaxlstm.load_keras_layer(paths[suffix], "clstm")
    assert type(layer) is jaxlstm.ConvLSTM2D and layer.recurrent_activation == "sigmoid"
    np.testing.assert_allclose(layer(x), np.asarray(model.get_layer("clstm")(x)), atol=ATOL)


def test_weights_only_file_needs_the_convolution_options(saved_classifier):
    model, paths, x = saved_classifier
    with pytest.raises(
        UnsupportedOptionError,
        match=r"a ConvLSTM2D from a weights-only file, "
        r"which does not say its strides, padding, dilation_rate, data_format",
    ):
        jaxlstm.load_keras_layer(paths[".weights.h5"], "clstm")
    layer = jaxlstm.load_keras_layer(
        paths[".weights.h5"],
        "clstm",
        padding="same",
        strides=1,
        dilation_rate=1,
        data_format="channels_last",
        return_sequences=True,
    )
    assert layer.recurrent_activation == "sigmoid"  # Keras 3's default
    np.testing.assert_allclose(layer(x), np.asarray(model.get_layer("clstm")(x)), atol=ATOL)


def test_tf_keras_convlstm_defaults_to_its_hard_sigmoid():
    """tf.keras 2.21's ConvLSTM defaults to hard_sigmoid (Keras 2's), unlike its LSTM, so a
    weights-only file from it does too (the fixture's outputs pin the numbers:
    test_keras_files.py runs every fixture)."""
    path = os.path.join(FIXTURES, "conv_lstm2d_weights_only.h5")
    layer = jaxlstm.load_keras_layer(
        path,
        padding="valid",
        strides=(1, 2),
        dilation_rate=1,
        data_format="channels_last",
        return_sequences=True,
    )
    assert layer.recurrent_activation == "hard_sigmoid_keras2"
    d = np.load(os.path.join(FIXTURES, "conv_lstm2d_weights_only.npz"))
    np.testing.assert_allclose(layer(d["x"]), d["out0"], atol=ATOL)
    bi = jaxlstm.load_keras_layer(os.path.join(FIXTURES, "conv_lstm2d_bidi.h5"))
    assert bi.zero_output_for_mask is False  # tf.keras's ConvRNN ignored it in Bidirectional
    d = np.load(os.path.join(FIXTURES, "conv_lstm2d_bidi.npz"))
    np.testing.assert_allclose(bi(d["x"], mask=d["mask"]), d["out0"], atol=ATOL)


@pytest.mark.parametrize("suffix", [".keras", pytest.param(".h5", marks=SLOW), ".weights.h5"])
def test_save_keras_reloads_in_keras3(saved_classifier, tmp_path, suffix):
    model, paths, x = saved_classifier
    ours = jaxlstm.load_keras(paths[".keras"])
    out = str(tmp_path / f"again{suffix}")
    jaxlstm.save_keras(ours, out)
    if suffix == ".weights.h5":
        fresh = video_classifier()
        fresh.load_weights(out)
    else:
        fresh = keras.saving.load_model(out)
    np.testing.assert_allclose(np.asarray(fresh(x)), np.asarray(model(x)), atol=ATOL)


def test_inspect_names_the_gate_slices():
    text = jaxlstm.describe_keras_file(os.path.join(FIXTURES, "conv_lstm2d_weights_only.h5"))
    assert "class ConvLSTM2D (inferred: Keras layout, recurrent_kernel (k, k, f, 4f))" in text
    assert "in_channels=3, filters=2, kernel_size=(2, 3), use_bias=True" in text
    assert "recurrent_activation=hard_sigmoid_keras2 (inferred: Keras 2.21.0 default)" in text
    assert "the file does not say padding, strides, dilation_rate or data_format" in text
    assert "f (forget)           kernel[..., 2:4]  recurrent_kernel[..., 2:4]  bias[2:4]" in text


def test_stateful_model_streams_as_keras3(tmp_path):
    """A stateful ConvLSTM called chunk by chunk: call_with_state carries a ConvLSTMState, and
    each chunk's outputs are Keras 3's."""
    inp = keras.Input((3, 5, 2), batch_size=2)
    out = keras.layers.ConvLSTM1D(
        3, 2, padding="same", stateful=True, return_sequences=True, name="s"
    )(inp)
    model = keras.Model(inp, out)
    layer = model.get_layer("s")
    layer.set_weights([RNG.normal(size=w.shape).astype(np.float32) * 0.5 for w in layer.weights])
    model.save(tmp_path / "stateful.keras")
    x = RNG.normal(size=(2, 6, 5, 2)).astype(np.float32)
    ours = jaxlstm.load_keras(tmp_path / "stateful.keras")
    y1, states = ours.call_with_state(x[:, :3])
    y2, states = ours.call_with_state(x[:, 3:], states=states)
    assert isinstance(states["s"], ConvLSTMState) and states["s"].c.shape == (2, 5, 3)
    np.testing.assert_allclose(y1, np.asarray(model(x[:, :3])), atol=ATOL)
    np.testing.assert_allclose(y2, np.asarray(model(x[:, 3:])), atol=ATOL)


def test_config_that_disagrees_with_the_weights_is_refused(tmp_path):
    path = tmp_path / "edited.h5"
    shutil.copy(os.path.join(FIXTURES, "conv_lstm1d_sigmoid.h5"), path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        layer = next(e for e in config["config"]["layers"] if e["class_name"] == "ConvLSTM1D")
        layer["config"]["filters"] = 5
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(
        jaxlstm.KerasFileError,
        match=r"layer 'clstm1d': the config says "
        r"filters=5, kernel_size=\(3,\) but the weights have filters=4",
    ):
        jaxlstm.load_keras_layer(path)
