"""Stacked cells (``RNN([cell, cell])``, ``RNN(StackedRNNCells([...]))``) on the scan driver,
against live Keras 3: the last cell's output, each cell's final state in Keras's nested order,
masks, initial states, go_backwards; and against a loop of the cells' own steps."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlstm._src.core.activations import get_activation
from jaxlstm._src.core.gru import GRUCell, GRUParams
from jaxlstm._src.core.lstm import LSTMCell, LSTMParams
from jaxlstm._src.core.simple_rnn import SimpleRNNCell, SimpleRNNParams
from jaxlstm._src.core.stacked import stacked_scan
from jaxlstm._src.errors import ShapeError

keras = pytest.importorskip("keras")

ATOL = 1e-5
T, B, F = 6, 3, 4
SIG, TANH = get_activation("sigmoid"), get_activation("tanh")


def _keras_layer(cells, stacked_class, go_backwards):
    cell = keras.layers.StackedRNNCells(cells) if stacked_class else cells
    return keras.layers.RNN(
        cell, return_sequences=True, return_state=True, go_backwards=go_backwards
    )


def _ours(kcells, layer):
    """Our cells and params from the built Keras cells, weights in Keras's order."""
    ours, params, weights = [], [], [np.asarray(w) for w in layer.get_weights()]
    for c in kcells:
        n = len(c.weights)
        w, weights = [jnp.asarray(a) for a in weights[:n]], weights[n:]
        if isinstance(c, keras.layers.LSTMCell):
            ours.append(LSTMCell(TANH, SIG))
            params.append(LSTMParams(*w))
        elif isinstance(c, keras.layers.GRUCell):
            ours.append(GRUCell(TANH, SIG, bool(c.reset_after)))
            params.append(GRUParams(*w))
        else:
            ours.append(SimpleRNNCell(get_activation(c.activation.__name__)))
            params.append(SimpleRNNParams(*w))
    assert not weights
    return ours, params


CASES = {
    "list_lstm_gru": (lambda: [keras.layers.LSTMCell(5), keras.layers.GRUCell(3)], False),
    "stacked_srnn_lstm": (
        lambda: [keras.layers.SimpleRNNCell(5, activation="relu"), keras.layers.LSTMCell(2)],
        True,
    ),
    "list_gru_v1_srnn_gru": (
        lambda: [
            keras.layers.GRUCell(4, reset_after=False),
            keras.layers.SimpleRNNCell(3),
            keras.layers.GRUCell(2),
        ],
        False,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
def test_stacked_matches_keras3(name, go_backwards, with_state):
    make, stacked_class = CASES[name]
    rng = np.random.default_rng(len(name) + 2 * go_backwards + with_state)
    kcells = make()
    layer = _keras_layer(kcells, stacked_class, go_backwards)
    x = rng.normal(size=(B, T, F)).astype(np.float32)
    mask = rng.random((B, T)) > 0.3
    mask[0, :2] = False  # left padding
    mask[1, 3] = False  # a gap
    if with_state:
        # Before the first unmasked step Keras 3's JAX backend repeats the initial h, its
        # TensorFlow/PyTorch/NumPy backends (and jaxlstm, see lstm_scan) output zeros: only
        # compare where all backends agree.
        mask[:, -1 if go_backwards else 0] = True  # the first step processed
    layer.build((B, T, F))
    for w in layer.weights:  # non-trivial biases
        w.assign(rng.normal(size=w.shape).astype(np.float32) * 0.5)
    init = None
    if with_state:
        init = [
            [rng.normal(size=(B, n)).astype(np.float32) for n in np.atleast_1d(c.state_size)]
            for c in kcells
        ]
        out = layer(x, mask=mask, initial_state=init)  # nested, one entry per cell
    else:
        out = layer(x, mask=mask)
    ys_k = np.asarray(out[0])
    # Keras's nested order: one entry per cell, a lone h or [h] or [h, c]
    states_k = [np.asarray(a) for s in out[1:] for a in (s if isinstance(s, list | tuple) else [s])]

    cells, params = _ours(kcells, layer)
    ys, states = stacked_scan(
        cells,
        params,
        jnp.asarray(x),
        mask=jnp.asarray(mask),
        initial_state=init,
        go_backwards=go_backwards,
    )
    np.testing.assert_allclose(np.asarray(ys), ys_k, atol=ATOL)
    flat = [np.asarray(a) for s in states for a in s]
    assert [a.shape for a in flat] == [a.shape for a in states_k]
    for ours, theirs in zip(flat, states_k, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=ATOL)


def test_stacked_scan_is_a_loop_of_cell_steps():
    rng = np.random.default_rng(0)
    cells = [LSTMCell(TANH, SIG), GRUCell(TANH, SIG, True)]
    params = [
        LSTMParams(
            *(jnp.asarray(rng.normal(size=s), jnp.float32) for s in [(F, 20), (5, 20), (20,)])
        ),
        GRUParams(
            *(jnp.asarray(rng.normal(size=s), jnp.float32) for s in [(5, 9), (3, 9), (2, 9)])
        ),
    ]
    x = jnp.asarray(rng.normal(size=(B, T, F)), jnp.float32)
    ys, states = stacked_scan(cells, params, x)
    s = [(jnp.zeros((B, 5)),) * 2, (jnp.zeros((B, 3)),)]
    for t in range(T):
        inp = x[:, t]
        for k in range(2):
            s[k] = cells[k].step(params[k], s[k], inp)
            inp = s[k][0]
        np.testing.assert_allclose(ys[:, t], inp, atol=ATOL)
    for k in range(2):
        for a, b in zip(states[k], s[k], strict=True):
            np.testing.assert_allclose(a, b, atol=ATOL)
    grads = jax.grad(lambda p: stacked_scan(cells, p, x)[0].sum())(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for p in grads for g in p)


def test_stacked_shapes_are_checked():
    rng = np.random.default_rng(1)
    cells = [SimpleRNNCell(TANH), SimpleRNNCell(TANH)]
    p0 = SimpleRNNParams(
        *(jnp.asarray(rng.normal(size=s), jnp.float32) for s in [(F, 3), (3, 3), (3,)])
    )
    p1 = SimpleRNNParams(
        *(jnp.asarray(rng.normal(size=s), jnp.float32) for s in [(4, 2), (2, 2), (2,)])
    )
    x = jnp.zeros((B, T, F))
    with pytest.raises(
        ShapeError, match=r"cell 1's kernel has shape \(4, 2\); expected \(3, \.\.\.\)"
    ):
        stacked_scan(cells, [p0, p1], x)
    with pytest.raises(
        ShapeError, match="initial_state has 1 entries; expected 2, one state per cell"
    ):
        stacked_scan(
            cells, [p0, p0._replace(kernel=p0.kernel[:3])], x, initial_state=[jnp.zeros((B, 3))]
        )


def test_unsupported_cells_in_a_stack_are_refused_by_name(tmp_path):
    """A stack with a cell class jaxlstm does not implement is refused naming the cells, not
    run without it (the config is edited: Keras 3 has no other built-in cell to save)."""
    import json

    import h5py

    import jaxlstm
    from jaxlstm._src.errors import UnsupportedLayerError

    path = tmp_path / "m.h5"
    cells = [keras.layers.LSTMCell(3), keras.layers.GRUCell(2)]
    keras.Sequential([keras.Input((5, 4)), keras.layers.RNN(cells, name="r")]).save(path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][1]["config"]["cell"]["config"]["cells"][1]["class_name"] = (
            "PeepholeLSTMCell"
        )
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(
        UnsupportedLayerError,
        match=r"'r' is RNN\(StackedRNNCells\(\[LSTMCell, PeepholeLSTMCell\]\)\): stacked "
        "recurrent cells of which jaxlstm loads LSTMCell, GRUCell and SimpleRNNCell only",
    ):
        jaxlstm.load_keras(path)


def test_stacked_matches_tf_keras_fixture():
    """tf-keras 2.21's RNN([LSTMCell, GRUCell]) (tests/fixtures/make_fixtures.py,
    make_stacked_cells): weights in Keras's order, cell 0's then cell 1's; a mask with left
    padding, a gap and a fully masked row; nested initial states; each cell's final state."""
    import h5py

    import jaxlstm

    here = os.path.join(os.path.dirname(__file__), "fixtures", "keras2")
    path = os.path.join(here, "stacked_cells.h5")
    d = np.load(os.path.join(here, "stacked_cells.npz"))
    with h5py.File(path, "r") as f:
        g = f["model_weights/stk"]
        w = [
            jnp.asarray(g[n.decode() if isinstance(n, bytes) else n][()])
            for n in g.attrs["weight_names"]
        ]
    cells = [LSTMCell(TANH, SIG), GRUCell(TANH, SIG, True)]
    params = [LSTMParams(*w[:3]), GRUParams(*w[3:])]
    init = [(d["h0"], d["c0"]), (d["h1"],)]
    ys, states = stacked_scan(
        cells, params, jnp.asarray(d["x"]), mask=jnp.asarray(d["mask"]), initial_state=init
    )
    np.testing.assert_allclose(np.asarray(ys), d["out0"], atol=ATOL)
    for i, a in enumerate([a for s in states for a in s], start=1):
        np.testing.assert_allclose(np.asarray(a), d[f"out{i}"], atol=ATOL)
    # The whole model through load_keras: the inbound node nests the initial states per cell
    # ([x, [h0, c0], h1], each with the mask), and the outputs are the sequence then each
    # cell's final state, flat, as Keras numbers them.
    model = jaxlstm.load_keras(path)
    assert model.input_names == ("x", "mask", "h0", "c0", "h1")
    outs = model(*(d[n] for n in model.input_names))
    assert len(outs) == 4
    for i, out in enumerate(outs):
        np.testing.assert_allclose(np.asarray(out), d[f"out{i}"], atol=ATOL)
    # one layer: jaxlstm.StackedRNN over an LSTM and a GRU, Keras's nested initial state
    layer = jaxlstm.load_keras_layer(path, "stk")
    assert isinstance(layer, jaxlstm.StackedRNN)
    assert [type(c).__name__ for c in layer.cells] == ["LSTM", "GRU"]
    y, s0, s1 = layer(d["x"], mask=d["mask"], initial_state=[[d["h0"], d["c0"]], d["h1"]])
    for i, a in enumerate([y, *s0, *s1]):
        np.testing.assert_allclose(np.asarray(a), d[f"out{i}"], atol=ATOL)
