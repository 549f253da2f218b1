"""Test helpers: a NumPy reference LSTM written from Keras's definition, independent of jaxlstm,
random weights, and the two checks every parity test makes: what Keras recorded in a fixture,
and whether outputs match it."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

SIGMOID = lambda x: 1.0 / (1.0 + np.exp(-x))

NP_ACTIVATIONS = {
    "tanh": np.tanh,
    "sigmoid": SIGMOID,
    "hard_sigmoid": lambda x: np.clip(x + 3.0, 0.0, 6.0) / 6.0,  # Keras 3
    "hard_sigmoid_keras2": lambda x: np.clip(0.2 * x + 0.5, 0.0, 1.0),  # Keras 1/2
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "selu": lambda x: (
        1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0)))
    ),
    "celu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "softplus": lambda x: np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "squareplus": lambda x: (x + np.sqrt(x * x + 4.0)) / 2,
    "exponential": np.exp,
    "gelu": lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2.0))),
    "silu": lambda x: x * SIGMOID(x),
    "swish": lambda x: x * SIGMOID(x),
    "hard_silu": lambda x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0,
    "hard_swish": lambda x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0,
    "hard_tanh": lambda x: np.clip(x, -1, 1),
    "tanh_shrink": lambda x: x - np.tanh(x),
    "soft_shrink": lambda x: np.sign(x) * np.maximum(np.abs(x) - 0.5, 0),
    "hard_shrink": lambda x: np.where(np.abs(x) > 0.5, x, 0.0),
    "sparse_plus": lambda x: np.where(x <= -1, 0, np.where(x >= 1, x, (x + 1) ** 2 / 4)),
    "sparse_sigmoid": lambda x: np.clip(0.5 * (x + 1), 0, 1),
    "log_sigmoid": lambda x: -(np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0)),
    "mish": lambda x: x * np.tanh(np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)),
    "softmax": lambda x: (
        np.exp(x - x.max(-1, keepdims=True))
        / np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)
    ),
    "log_softmax": lambda x: (
        x
        - x.max(-1, keepdims=True)
        - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True))
    ),
    "sparsemax": None,  # checked against known values in test_core
}


def _np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def _np_relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras's ReLU: max_value above it, x above the threshold, and negative_slope *
    (x - threshold) below it; at the threshold 0 (Keras computes ``x > threshold`` with the
    threshold cast to float32, not the docstring's ``threshold <= x``)."""
    top = np.inf if max_value is None else max_value
    above = x > np.float32(threshold)
    return np.where(above, np.minimum(x, top), 0.0) + np.where(
        above, 0.0, negative_slope * (x - threshold)
    )


# Activations with parameters, float64, from Keras's definitions: name -> fn(x, **params).
NP_PARAMETERISED = {
    "relu": _np_relu,
    "leaky_relu": lambda x, negative_slope=0.2: np.where(x >= 0, x, negative_slope * x),
    "elu": lambda x, alpha=1.0: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))),
    "celu": lambda x, alpha=1.0: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0) / alpha)),
    "gelu": lambda x, approximate=False: (
        0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
        if approximate
        else NP_ACTIVATIONS["gelu"](x)
    ),
    "softmax": _np_softmax,
    "log_softmax": lambda x, axis=-1: np.log(_np_softmax(x, axis)),
    "squareplus": lambda x, b=4.0: (x + np.sqrt(x * x + b)) / 2,
    "soft_shrink": lambda x, threshold=0.5: np.sign(x) * np.maximum(np.abs(x) - threshold, 0),
    "hard_shrink": lambda x, threshold=0.5: np.where(np.abs(x) > threshold, x, 0.0),
}


def random_params(rng, in_features, units, use_bias=True, scale=0.6):
    """Keras-layout weights, uniform in (-scale, scale): every entry non-zero in practice."""
    k = rng.uniform(-scale, scale, (in_features, 4 * units)).astype(np.float32)
    r = rng.uniform(-scale, scale, (units, 4 * units)).astype(np.float32)
    b = rng.uniform(-scale, scale, (4 * units,)).astype(np.float32) if use_bias else None
    return k, r, b


def np_lstm(
    kernel,
    recurrent_kernel,
    bias,
    x,
    *,
    mask=None,
    h0=None,
    c0=None,
    go_backwards=False,
    zero_output_for_mask=False,
    activation="tanh",
    recurrent_activation="sigmoid",
    dropout_mask=None,
    recurrent_dropout_mask=None,
):
    """Keras's LSTM, one step at a time in float64. x: (B, T, F); mask: (B, T).

    Returns (outputs (B, T, u) in processing order, last output (B, u), h (B, u), c (B, u)).
    """
    act, rec = NP_ACTIVATIONS[activation], NP_ACTIVATIONS[recurrent_activation]
    x = np.asarray(x, np.float64)
    b, t, _ = x.shape
    u = recurrent_kernel.shape[0]
    h = np.zeros((b, u)) if h0 is None else np.asarray(h0, np.float64)
    c = np.zeros((b, u)) if c0 is None else np.asarray(c0, np.float64)
    mask = np.ones((b, t), bool) if mask is None else np.asarray(mask, bool)
    order = range(t - 1, -1, -1) if go_backwards else range(t)
    prev_out = np.zeros((b, u))
    outs = []
    for step in order:
        xt = x[:, step] if dropout_mask is None else x[:, step] * dropout_mask
        hp = h if recurrent_dropout_mask is None else h * recurrent_dropout_mask
        z = xt @ kernel + hp @ recurrent_kernel + (0 if bias is None else bias)
        zi, zf, zc, zo = np.split(z, 4, axis=-1)
        c_new = rec(zf) * c + rec(zi) * act(zc)
        h_new = rec(zo) * act(c_new)
        m = mask[:, step][:, None]
        h, c = np.where(m, h_new, h), np.where(m, c_new, c)
        out = np.where(m, h_new, 0.0 if zero_output_for_mask else prev_out)
        prev_out = out
        outs.append(out)
    outputs = np.stack(outs, axis=1) if outs else np.zeros((b, 0, u))
    return outputs, prev_out, h, c


def random_mask(rng, batch, steps, kind):
    """Masks as users have them: none, right padding, left padding, gaps, a fully masked row."""
    mask = np.ones((batch, steps), bool)
    if kind == "right":
        for i in range(batch):
            mask[i, rng.integers(1, steps + 1) :] = False
    elif kind == "left":
        for i in range(batch):
            mask[i, : rng.integers(0, steps)] = False
    elif kind == "gaps":
        mask = rng.random((batch, steps)) > 0.35
    elif kind == "full_row":
        mask = rng.random((batch, steps)) > 0.3
        mask[rng.integers(batch)] = False
    return mask


class Recorded(NamedTuple):
    """What a fixture's ``.npz`` holds (tests/fixtures/make_*fixtures.py): every array by key,
    and the numbered model inputs ``in0, in1, ...`` and Keras's outputs ``out0, out1, ...``."""

    data: dict
    inputs: list
    outputs: list


def recorded(path) -> Recorded:
    """Load the outputs Keras recorded for a fixture: ``path`` is its ``.h5`` or ``.npz``."""
    with np.load(Path(path).with_suffix(".npz")) as npz:
        data = {k: npz[k] for k in npz.files}

    def numbered(prefix):
        keys = sorted((int(m[1]), k) for k in data if (m := re.fullmatch(prefix + r"(\d+)", k)))
        assert [i for i, _ in keys] == list(range(len(keys))), sorted(data)
        return [data[k] for _, k in keys]

    return Recorded(data, numbered("in"), numbered("out"))


def assert_close_at_scale(got, want, atol: float = 1e-5, err_msg: str = "") -> None:
    """``got`` equals the reference ``want`` (same shape, no broadcasting) within
    ``atol * max(1, max|want|)``. float32's rounding grows with the magnitude of the values
    that are summed into an element, not with the element itself (a small output of large
    terms carries their error), so the bound follows the output's scale: ``atol`` exactly where
    values are O(1), proportionally looser where a linear recurrence reaches 1e5."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (err_msg, got.shape, want.shape)
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, atol=atol * scale, rtol=0, err_msg=err_msg)


def assert_matches_keras(got, want, atol: float = 1e-5) -> None:
    """``got`` (one array or a tuple, as a module returns them) equals Keras's outputs ``want``
    (one array or a list): as many outputs, the same shapes, each within ``atol`` times its
    scale (:func:`assert_close_at_scale`)."""
    got = list(got) if isinstance(got, tuple | list) else [got]
    want = list(want) if isinstance(want, tuple | list) else [want]
    assert len(got) == len(want), (len(got), len(want))
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert_close_at_scale(g, w, atol, err_msg=f"output {i}")


def random_cell_params(rng, cell, in_features, units, use_bias=True, reset_after=True, scale=0.6):
    """Keras-layout weights for ``cell`` in ("lstm", "gru", "simple_rnn"), uniform in
    (-scale, scale). A GRU's bias is ``(2, 3u)`` with ``reset_after``, else ``(3u,)``."""
    gates = {"lstm": 4, "gru": 3, "simple_rnn": 1}[cell]
    k = rng.uniform(-scale, scale, (in_features, gates * units)).astype(np.float32)
    r = rng.uniform(-scale, scale, (units, gates * units)).astype(np.float32)
    b = None
    if use_bias:
        shape = (2, 3 * units) if cell == "gru" and reset_after else (gates * units,)
        b = rng.uniform(-scale, scale, shape).astype(np.float32)
    return k, r, b


def _np_scan(step, x, h0, units, *, mask, go_backwards, zero_output_for_mask, dropout_mask):
    """Keras's RNN loop in float64 around ``step(x_t, h) -> h`` (masks, direction, outputs)."""
    x = np.asarray(x, np.float64)
    b, t, _ = x.shape
    h = np.zeros((b, units)) if h0 is None else np.asarray(h0, np.float64)
    mask = np.ones((b, t), bool) if mask is None else np.asarray(mask, bool)
    order = range(t - 1, -1, -1) if go_backwards else range(t)
    prev_out = np.zeros((b, units))
    outs = []
    for s in order:
        xt = x[:, s] if dropout_mask is None else x[:, s] * dropout_mask
        h_new = step(xt, h)
        m = mask[:, s][:, None]
        h = np.where(m, h_new, h)
        out = np.where(m, h_new, 0.0 if zero_output_for_mask else prev_out)
        prev_out = out
        outs.append(out)
    outputs = np.stack(outs, axis=1) if outs else np.zeros((b, 0, units))
    return outputs, prev_out, h


def np_gru(
    kernel,
    recurrent_kernel,
    bias,
    x,
    *,
    reset_after=True,
    mask=None,
    h0=None,
    go_backwards=False,
    zero_output_for_mask=False,
    activation="tanh",
    recurrent_activation="sigmoid",
    dropout_mask=None,
    recurrent_dropout_mask=None,
):
    """Keras's GRU (keras/src/layers/rnn/gru.py, GRUCell.call, implementation 1), one step at a
    time in float64. Returns (outputs in processing order, last output, h)."""
    act, rec = NP_ACTIVATIONS[activation], NP_ACTIVATIONS[recurrent_activation]
    u = recurrent_kernel.shape[0]
    k, rk = np.asarray(kernel, np.float64), np.asarray(recurrent_kernel, np.float64)
    if bias is None:
        b_in = b_rec = np.zeros(3 * u)
    elif reset_after:
        b_in, b_rec = np.asarray(bias, np.float64)
    else:
        b_in, b_rec = np.asarray(bias, np.float64), None

    def step(xt, h):
        hd = h if recurrent_dropout_mask is None else h * recurrent_dropout_mask
        x_z = xt @ k[:, :u] + b_in[:u]
        x_r = xt @ k[:, u : 2 * u] + b_in[u : 2 * u]
        x_h = xt @ k[:, 2 * u :] + b_in[2 * u :]
        rec_z, rec_r = hd @ rk[:, :u], hd @ rk[:, u : 2 * u]
        if reset_after:
            rec_z, rec_r = rec_z + b_rec[:u], rec_r + b_rec[u : 2 * u]
        z, r = rec(x_z + rec_z), rec(x_r + rec_r)
        if reset_after:
            rec_h = r * (hd @ rk[:, 2 * u :] + b_rec[2 * u :])
        else:
            rec_h = (r * hd) @ rk[:, 2 * u :]
        hh = act(x_h + rec_h)
        return z * h + (1 - z) * hh

    return _np_scan(
        step, x, h0, u, mask=mask, go_backwards=go_backwards,
        zero_output_for_mask=zero_output_for_mask, dropout_mask=dropout_mask,
    )  # fmt: skip


def np_simple_rnn(
    kernel,
    recurrent_kernel,
    bias,
    x,
    *,
    mask=None,
    h0=None,
    go_backwards=False,
    zero_output_for_mask=False,
    activation="tanh",
    dropout_mask=None,
    recurrent_dropout_mask=None,
):
    """Keras's SimpleRNN (keras/src/layers/rnn/simple_rnn.py, SimpleRNNCell.call) in float64.
    Returns (outputs in processing order, last output, h)."""
    act = NP_ACTIVATIONS[activation]
    k, rk = np.asarray(kernel, np.float64), np.asarray(recurrent_kernel, np.float64)
    b = 0.0 if bias is None else np.asarray(bias, np.float64)

    def step(xt, h):
        hd = h if recurrent_dropout_mask is None else h * recurrent_dropout_mask
        return act(xt @ k + b + hd @ rk)

    return _np_scan(
        step, x, h0, rk.shape[0], mask=mask, go_backwards=go_backwards,
        zero_output_for_mask=zero_output_for_mask, dropout_mask=dropout_mask,
    )  # fmt: skip


class CallCount:
    """Python and C function calls made while a ``with`` block runs (``sys.setprofile``, this
    thread): a bound on the work a loader does that a busy machine cannot move, where a
    wall-clock limit would fail for no fault of the code (a loop that runs away on a hostile
    file makes calls, whatever the clock says)."""

    def __init__(self) -> None:
        self.calls = 0

    def _profile(self, frame, event, arg) -> None:
        if event == "call" or event == "c_call":
            self.calls += 1

    def __enter__(self) -> CallCount:
        import sys

        self._previous = sys.getprofile()
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc) -> None:
        import sys

        sys.setprofile(self._previous)
