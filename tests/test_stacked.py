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


# --- stacked cells from Keras 3 files, as jaxlstm.StackedRNN (NNX) and its Linen twin ------


def _save(model, path):
    if str(path).endswith(".weights.h5"):
        model.save_weights(path)  # no config: the cells and their order come from the arrays
    else:
        model.save(path)


def _randomize(layer, rng):
    for w in layer.weights:  # non-trivial biases
        w.assign(rng.normal(size=w.shape).astype(np.float32) * 0.5)


def _mask(rng, go_backwards=False):
    mask = rng.random((B, T)) > 0.3
    mask[0, :2] = False  # left padding
    mask[1, 3] = False  # a gap
    mask[:, -1 if go_backwards else 0] = True  # see test_stacked_matches_keras3
    return mask


def _flat(out):
    return [np.asarray(a) for a in jax.tree.leaves(out)]


def _linen_twin(stack):
    """jaxlstm.linen.StackedRNN with the NNX stack's cells and weights."""
    import jaxlstm.linen as jl

    twins, variables = [], {}
    for k, c in enumerate(stack.cells):
        name = type(c).__name__
        opts = {"activation": c.activation}
        if name != "SimpleRNN":
            opts["recurrent_activation"] = c.recurrent_activation
        if name == "GRU":
            opts["reset_after"] = c.reset_after
        twins.append(getattr(jl, name)(units=c.units, use_bias=c.bias is not None, **opts))
        variables[f"cell_{k}"] = {
            "kernel": c.kernel[...],
            "recurrent_kernel": c.recurrent_kernel[...],
        }
        if c.bias is not None:
            variables[f"cell_{k}"]["bias"] = c.bias[...]
    options = {n: getattr(stack, n) for n in ("return_sequences", "return_state", "go_backwards")}
    return jl.StackedRNN(cells=tuple(twins), **options), {"params": variables}


FILE_CASES = {
    # RNN([cell, cell]): returns the sequence and each cell's state
    "list_lstm_gru": lambda act: keras.layers.RNN(
        [keras.layers.LSTMCell(5), keras.layers.GRUCell(3)],
        return_sequences=True,
        return_state=True,
        name="stk",
    ),
    # RNN(StackedRNNCells([...])), backwards, the last output only
    "stacked_srnn_lstm": lambda act: keras.layers.RNN(
        keras.layers.StackedRNNCells(
            [keras.layers.SimpleRNNCell(5, activation=act), keras.layers.LSTMCell(2)]
        ),
        return_state=True,
        go_backwards=True,
        name="stk",
    ),
}


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "name, suffix",
    [
        ("list_lstm_gru", ".keras"),
        ("stacked_srnn_lstm", ".h5"),
        ("list_lstm_gru", ".weights.h5"),
        pytest.param("stacked_srnn_lstm", ".keras", marks=SLOW),
        pytest.param("list_lstm_gru", ".h5", marks=SLOW),
        pytest.param("stacked_srnn_lstm", ".weights.h5", marks=SLOW),
    ],
)
def test_stacked_layer_from_keras3_files(name, suffix, tmp_path):
    """load_keras_layer on each Keras 3 format gives a jaxlstm.StackedRNN with Keras's numbers:
    masks, Keras's nested initial_state, go_backwards, return_state; the Linen twin too."""
    import jaxlstm

    rng = np.random.default_rng(len(name) + len(suffix))
    act = "tanh" if suffix == ".weights.h5" else "relu"  # a weights-only file has no activations
    layer = FILE_CASES[name](act)
    model = keras.Sequential([keras.Input((T, F)), layer])
    _randomize(layer, rng)
    path = tmp_path / f"m{suffix}"
    _save(model, path)
    go_backwards = layer.go_backwards
    overrides = {}
    if suffix == ".weights.h5":  # the RNN's own options are not in the arrays
        overrides = dict(return_sequences=layer.return_sequences, return_state=True)
        overrides["go_backwards"] = go_backwards
    ours = jaxlstm.load_keras_layer(path, "stk", **overrides)
    assert isinstance(ours, jaxlstm.StackedRNN)

    x = rng.normal(size=(B, T, F)).astype(np.float32)
    mask = _mask(rng, go_backwards)
    # one entry per cell, each a list: [[h0, c0], [h1]]
    init = [
        [rng.normal(size=(B, n)).astype(np.float32) for n in np.atleast_1d(c.state_size)]
        for c in layer.cell.cells
    ]
    theirs = _flat(layer(x, mask=mask, initial_state=init))
    got = ours(x, mask=mask, initial_state=init)
    assert len(got) == 1 + len(layer.cell.cells)  # output, then one state tuple per cell
    for a, b in zip(_flat(got), theirs, strict=True):
        np.testing.assert_allclose(a, b, atol=ATOL)
    # flat initial state ([h0, c0, h1]) is the same call
    flat_init = [a for s in init for a in s]
    for a, b in zip(_flat(ours(x, mask=mask, initial_state=flat_init)), theirs, strict=True):
        np.testing.assert_allclose(a, b, atol=ATOL)
    # the Linen twin, with the same weights
    twin, variables = _linen_twin(ours)
    for a, b in zip(
        _flat(twin.apply(variables, x, mask=mask, initial_state=init)), theirs, strict=True
    ):
        np.testing.assert_allclose(a, b, atol=ATOL)


@pytest.mark.parametrize(
    "suffix", [".keras", pytest.param(".h5", marks=SLOW), pytest.param(".weights.h5", marks=SLOW)]
)
def test_bidirectional_stacked_from_keras3_files(suffix, tmp_path):
    """Bidirectional(RNN([GRUCell, LSTMCell])) with a mask, through load_keras (whole model)
    and load_keras_layer, and its Linen twin; save_keras's .weights.h5 back into Keras."""
    import jaxlstm
    import jaxlstm.linen as jl

    rng = np.random.default_rng(7 + len(suffix))
    L = keras.layers
    bi = L.Bidirectional(
        L.RNN([L.GRUCell(3), L.LSTMCell(2)], return_sequences=True), merge_mode="sum", name="bi"
    )
    model = keras.Sequential([keras.Input((T, F)), L.Masking(0.0), bi])
    _randomize(bi, rng)
    path = tmp_path / f"m{suffix}"
    _save(model, path)
    x = rng.normal(size=(B, T, F)).astype(np.float32)
    x[0, :2] = 0.0  # masked by Masking: left padding
    x[1, 3] = 0.0  # a gap
    mask = np.any(x != 0.0, axis=-1)
    expected = np.asarray(model(x))
    overrides = {} if suffix != ".weights.h5" else dict(return_sequences=True, merge_mode="sum")
    ours = jaxlstm.load_keras_layer(path, "bi", **overrides)
    assert isinstance(ours.forward, jaxlstm.StackedRNN) and ours.backward.go_backwards
    np.testing.assert_allclose(np.asarray(ours(x, mask=mask)), expected, atol=ATOL)
    fw, fw_vars = _linen_twin(ours.forward)
    bw, bw_vars = _linen_twin(ours.backward)
    twin = jl.Bidirectional(fw, bw, merge_mode="sum")
    variables = {
        "params": {"forward_layer": fw_vars["params"], "backward_layer": bw_vars["params"]}
    }
    np.testing.assert_allclose(np.asarray(twin.apply(variables, x, mask=mask)), expected, atol=ATOL)
    if suffix == ".weights.h5":
        return
    loaded = jaxlstm.load_keras(path)
    np.testing.assert_allclose(np.asarray(loaded(x)), expected, atol=ATOL)
    # and back: the Keras 3 weights file (each direction's cells under cell/cells)
    jaxlstm.save_keras(loaded, tmp_path / "back.weights.h5")
    for w in bi.weights:
        w.assign(np.zeros(w.shape, np.float32))
    model.load_weights(tmp_path / "back.weights.h5")
    np.testing.assert_allclose(np.asarray(model(x)), expected, atol=ATOL)


@pytest.mark.parametrize("suffix", [".keras", pytest.param(".h5", marks=SLOW)])
def test_functional_stacked_with_nested_initial_state(suffix, tmp_path):
    """A Keras 3 Functional model feeding a stack its mask and nested initial states
    ([[h0, c0], [h1]]) and returning every state: Keras 3 nests the outputs too."""
    import jaxlstm

    rng = np.random.default_rng(11)
    L = keras.layers
    x, m = keras.Input((T, F), name="x"), keras.Input((T,), dtype="bool", name="m")
    h0, c0, h1 = (keras.Input((n,), name=s) for s, n in (("h0", 4), ("c0", 4), ("h1", 3)))
    rnn = L.RNN([L.LSTMCell(4), L.GRUCell(3)], return_sequences=True, return_state=True, name="r")
    model = keras.Model([x, m, h0, c0, h1], rnn(x, mask=m, initial_state=[[h0, c0], [h1]]))
    _randomize(rnn, rng)
    path = tmp_path / f"f{suffix}"
    model.save(path)
    ins = [
        rng.normal(size=(B, T, F)).astype(np.float32),
        _mask(rng),
        *(rng.normal(size=(B, n)).astype(np.float32) for n in (4, 4, 3)),
    ]
    theirs = _flat(model(ins))
    ours = jaxlstm.load_keras(path)
    got = ours(*ins)
    assert len(got) == 4  # y, h0, c0, h1: flat, in Keras's order
    for a, b in zip(_flat(got), theirs, strict=True):
        np.testing.assert_allclose(a, b, atol=ATOL)


def test_stateful_stacked_streams_as_keras3(tmp_path):
    """A stateful RNN([LSTMCell, GRUCell]) streamed chunk by chunk: Keras 3 carrying its
    state, jaxlstm's call_with_state (each cell's state, in a tuple), and one call on the
    whole sequence agree."""
    import jaxlstm

    rng = np.random.default_rng(3)
    L = keras.layers
    rnn = L.RNN([L.LSTMCell(4), L.GRUCell(3)], return_sequences=True, stateful=True, name="s")
    model = keras.Sequential([keras.Input(batch_shape=(B, 4, F)), rnn])
    _randomize(rnn, rng)
    model.save(tmp_path / "s.keras")
    chunks = [rng.normal(size=(B, 4, F)).astype(np.float32) for _ in range(3)]
    theirs = [np.asarray(model(c)) for c in chunks]  # Keras carries the state between calls
    ours = jaxlstm.load_keras(tmp_path / "s.keras")
    step = jaxlstm.predictor(ours, "call_with_state")
    states = None
    for chunk, expected in zip(chunks, theirs, strict=True):
        y, states = step(chunk, states=states)
        np.testing.assert_allclose(np.asarray(y), expected, atol=ATOL)
    lstm_state, gru_state = states["s"]
    assert lstm_state.c.shape == (B, 4) and gru_state.h.shape == (B, 3)
    np.testing.assert_allclose(
        np.asarray(ours(np.concatenate(chunks, axis=1))),
        np.concatenate(theirs, axis=1),
        atol=ATOL,
    )


# --- what is refused, with what to do -------------------------------------------------------


def test_stacked_rnn_module_errors():
    from flax import nnx

    import jaxlstm
    import jaxlstm.linen as jl

    rngs = nnx.Rngs(0)
    lstm = jaxlstm.LSTM(F, 4, rngs=rngs)
    err = jaxlstm.UnsupportedOptionError
    with pytest.raises(err, match="received cells=LSTM; expected a list of cell modules"):
        jaxlstm.StackedRNN(lstm)
    with pytest.raises(err, match="received no cells; expected a list of one or more"):
        jaxlstm.StackedRNN([])
    with pytest.raises(
        err, match=r"cell 0 is a LSTM; expected one of jaxlstm\.GRU / jaxlstm\.LSTM /"
    ):
        jaxlstm.StackedRNN([jl.LSTM(4)])  # a Linen cell in the NNX stack
    with pytest.raises(err, match=r"cell 0 \(LSTM\) has return_sequences=True; .* pass "):
        jaxlstm.StackedRNN([jaxlstm.LSTM(F, 4, return_sequences=True, rngs=rngs)])
    with pytest.raises(ShapeError, match=r"cell 1 \(GRU\) has in_features=5; expected 4"):
        jaxlstm.StackedRNN([lstm, jaxlstm.GRU(5, 3, rngs=rngs)])
    stack = jaxlstm.StackedRNN([lstm, jaxlstm.GRU(4, 3, dropout=0.2, rngs=rngs)])
    x = jnp.ones((B, T, F))
    with pytest.raises(err, match=r"cell 1 has dropout=0\.2.*dropout inside stacked cells is not"):
        stack(x)  # modules start in training mode
    stack.eval()
    y = stack(x)  # eval mode: dropout off, as in Keras
    assert y.shape == (B, 3)
    np.testing.assert_allclose(np.asarray(jaxlstm.predictor(stack)(x)), np.asarray(y), atol=ATOL)
    with pytest.raises(ShapeError, match=r"initial_state has 1 entries; expected 2, .* 3 arrays"):
        stack(x, initial_state=[jnp.zeros((B, 4))])
    twin = jl.StackedRNN(cells=(jl.LSTM(4), jl.GRU(3, dropout=0.5)))
    with pytest.raises(err, match=r"jaxlstm\.linen\.StackedRNN called in training mode"):
        twin.init(jax.random.key(0), x, deterministic=False)


def _edited(tmp_path, edit, version=None):
    """A copy of the tf-keras stacked-cells fixture with its model config edited."""
    import json
    import shutil

    import h5py

    src = os.path.join(os.path.dirname(__file__), "fixtures", "keras2", "stacked_cells.h5")
    path = tmp_path / "stacked_cells.h5"
    shutil.copy(src, path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        stk = next(e for e in config["config"]["layers"] if e["class_name"] == "RNN")
        edit(stk["config"]["cell"]["config"]["cells"])
        f.attrs["model_config"] = json.dumps(config)
        if version is not None:
            f.attrs["keras_version"] = version
    return path


def test_per_cell_keras_version_defaults(tmp_path):
    """Each cell gets the defaults of the Keras that wrote the file, as a single cell does:
    hard_sigmoid (clip(0.2x + 0.5)) before 2.3.0, a GRU's reset_after from its bias shape."""
    import jaxlstm

    def old(cells):
        for c in cells:
            del c["config"]["recurrent_activation"]
            c["config"].pop("reset_after", None)

    layer = jaxlstm.load_keras_layer(_edited(tmp_path, old, "2.2.4"), "stk")
    assert [c.recurrent_activation for c in layer.cells] == ["hard_sigmoid_keras2"] * 2
    assert layer.cells[1].reset_after is True  # bias (2, 3u)
    report = jaxlstm.describe_keras_file(tmp_path / "stacked_cells.h5")
    assert "recurrent_activation=hard_sigmoid_keras2 (inferred: Keras 2.2.4 default)" in report
    assert "reset_after=True (inferred: bias (2, 3u))" in report


def test_stacked_files_refused_with_what_to_do(tmp_path):
    import jaxlstm

    def no_bias(cells):
        cells[0]["config"]["use_bias"] = False

    with pytest.raises(jaxlstm.KerasFileError, match=r"take 5 arrays \(\[2, 3\] per cell.*found 6"):
        jaxlstm.load_keras(_edited(tmp_path, no_bias))

    def foreign(cells):
        cells[1]["module"] = "mypackage.cells"

    with pytest.raises(jaxlstm.UnsupportedLayerError, match=r"from module 'mypackage\.cells'"):
        jaxlstm.load_keras(_edited(tmp_path, foreign))

    def hard_sigmoid(cells):
        cells[0]["config"]["recurrent_activation"] = "hard_sigmoid"

    model = jaxlstm.load_keras(_edited(tmp_path, hard_sigmoid))
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="hard_sigmoid', which meant clip"):
        jaxlstm.save_keras(model, tmp_path / "m.keras")  # inside a cell, as for a layer

    path = os.path.join(os.path.dirname(__file__), "fixtures", "keras2", "stacked_cells.h5")
    with pytest.raises(
        jaxlstm.UnsupportedOptionError,
        match=r"unknown option\(s\) \['activation'\] for load_keras_layer of stacked cells",
    ):
        jaxlstm.load_keras_layer(path, "stk", activation="relu")


def test_weights_only_stack_of_ambiguous_order_is_refused(tmp_path):
    """Keras 3's .weights.h5 does not record the cells' order; when the sizes allow several
    (here two cells of 4 units on 4 features), jaxlstm refuses rather than guesses."""
    import jaxlstm

    L = keras.layers
    model = keras.Sequential(
        [keras.Input((T, F)), L.RNN([L.GRUCell(F), L.LSTMCell(F)], name="stk")]
    )
    model.save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(jaxlstm.KerasFileError, match="2 orders fit their sizes; jaxlstm will not"):
        jaxlstm.load_keras_layer(tmp_path / "w.weights.h5")


def test_inspect_lists_each_cell_with_its_gate_slices():
    import jaxlstm
    from jaxlstm._src.inspect import describe_model

    path = os.path.join(os.path.dirname(__file__), "fixtures", "keras2", "stacked_cells.h5")
    report = jaxlstm.describe_keras_file(path)
    assert "layer 'stk': RNN(StackedRNNCells)" in report
    assert "stacked cells (2: LSTM -> GRU), cell k's h is cell k+1's input" in report
    assert "RNN options: return_sequences=True, return_state=True, go_backwards=False" in report
    cell0, cell1 = report.split("cell 0 (lstm_cell):")[1].split("cell 1 (gru_cell):")
    assert "class LSTM, in_features=3, units=4" in cell0
    assert "o (output)           kernel[:, 12:16]  recurrent_kernel[:, 12:16]  bias[12:16]" in cell0
    assert "class GRU, in_features=4, units=3" in cell1
    assert "h (candidate)        kernel[:, 6:9]  recurrent_kernel[:, 6:9]  bias[0, 6:9]" in cell1
    table = describe_model(path)
    assert "RNN([LSTMCell, GRUCell])" in table
