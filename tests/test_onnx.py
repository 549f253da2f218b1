"""ONNX recurrent nodes in jaxlstm and back: PyTorch 2.13's own ONNX exports and hand-written
single nodes (tests/fixtures/pytorch/make_torch_fixtures.py) against onnxruntime's recorded
outputs; jaxlstm modules written as ONNX models run by onnxruntime (where installed) and read
back; Keras files through both ways; refusals; hostile external data."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from rosetta_helpers import make

import jaxlstm
from jaxlstm._src.readers.onnx_files import read_onnx_nodes

onnx = pytest.importorskip("onnx")

ONNX_DIR = Path(__file__).parent / "fixtures" / "pytorch" / "onnx"
KERAS2 = Path(__file__).parent / "fixtures" / "keras2"
ATOL = 1e-5
H = 4

NODE_CASES = [
    "lstm_forward",
    "lstm_reverse_lens",
    "lstm_bi_layout1_lens",
    "lstm_activations",
    "gru_bi_lbr",
    "gru_lbr0",
    "rnn_relu_reverse",
    "lstm_peepholes",
    "lstm_clip",
    "lstm_clip_saturated",
    "lstm_input_forget",
]


def node_attributes(path: Path) -> dict:
    node = onnx.load(path).graph.node[0]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}


def as_onnx_y(y, direction: str, layout: int) -> np.ndarray:
    """jaxlstm's output as the node's Y: (T, D, B, H) for layout 0, (B, T, D, H) for 1."""
    y = np.asarray(y)
    if direction == "bidirectional":
        return np.stack([y[..., :H], y[..., H:]], axis=1 if layout == 0 else 2)
    if direction == "reverse":  # jaxlstm returns processing order, ONNX input order
        y = np.flip(y, 0 if layout == 0 else 1)
    return np.expand_dims(y, 1 if layout == 0 else 2)


@pytest.mark.parametrize("name", NODE_CASES)
def test_node_matches_onnxruntime(name):
    path = ONNX_DIR / f"node_{name}.onnx"
    record = dict(np.load(ONNX_DIR / f"node_{name}.npz"))
    attrs = node_attributes(path)
    layout, direction = attrs.get("layout", 0), attrs.get("direction", "forward")
    module = jaxlstm.load_onnx(path)
    t = record["X"].shape[0 if layout == 0 else 1]
    mask = None
    if "L" in record:
        mask = np.arange(t)[None, :] < record["L"][:, None]
        mask = mask.T if layout == 0 else mask
    init = None
    if "H0" in record:
        to_dbh = (lambda a: a) if layout == 0 else (lambda a: a.transpose(1, 0, 2))
        h0 = to_dbh(record["H0"])
        c0 = to_dbh(record["C0"]) if "C0" in record else None
        init = [a for d in range(h0.shape[0]) for a in ([h0[d]] if c0 is None else [h0[d], c0[d]])]
    y, *states = module(record["X"], mask=mask, initial_state=init, return_state=True)
    np.testing.assert_allclose(as_onnx_y(y, direction, layout), record["Y"], atol=ATOL, rtol=1e-6)
    per = 2 if name.startswith("lstm") else 1
    y_h = np.stack(states[0::per])
    y_h = y_h if layout == 0 else y_h.transpose(1, 0, 2)
    np.testing.assert_allclose(y_h, record["Y_h"], atol=ATOL, rtol=1e-6)
    if per == 2:
        y_c = np.stack(states[1::2])
        y_c = y_c if layout == 0 else y_c.transpose(1, 0, 2)
        np.testing.assert_allclose(y_c, record["Y_c"], atol=ATOL, rtol=1e-6)


@pytest.mark.parametrize(
    "name", ["torch_lstm", "torch_gru", "torch_rnn_tanh_stack", "torch_lstm_stack_bi_packed"]
)
def test_pytorch_export_matches_onnxruntime(name):
    """torch.onnx.export(dynamo=False) writes one node per layer; the nodes, loaded by name and
    run one after another, give the graph's outputs as onnxruntime computed them."""
    path = ONNX_DIR / f"{name}.onnx"
    record = dict(np.load(ONNX_DIR / f"{name}.npz"))
    nodes, _ = read_onnx_nodes(path)
    assert [n.name for n in nodes] == list(record["nodes"])
    layers = [jaxlstm.load_onnx(path, n.name) for n in nodes]
    module = layers[0] if len(layers) == 1 else jaxlstm.RNNLayers(layers)
    init = None
    if "h0" in record:
        h0, c0 = record["h0"], record.get("c0")
        init = [a for k in range(h0.shape[0]) for a in ([h0[k]] if c0 is None else [h0[k], c0[k]])]
    y = module(record["x"], initial_state=init)
    np.testing.assert_allclose(y, record["y"], atol=ATOL, rtol=1e-6)


def _with_attribute(tmp_path: Path, name: str, **attrs) -> Path:
    model = onnx.load(ONNX_DIR / f"node_{name}.onnx")
    model.graph.node[0].attribute.extend(onnx.helper.make_attribute(k, v) for k, v in attrs.items())
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    return path


def test_extras_are_a_peephole_lstm():
    """Peepholes, clip (bounding the activations' inputs, not c: the saturated fixture's c
    passes the clip) and input_forget load as jaxlstm.PeepholeLSTM; P all zeros is the LSTM."""
    for name in ("lstm_peepholes", "lstm_clip", "lstm_clip_saturated", "lstm_input_forget"):
        assert isinstance(jaxlstm.load_onnx(ONNX_DIR / f"node_{name}.onnx"), jaxlstm.PeepholeLSTM)
    record = np.load(ONNX_DIR / "node_lstm_clip_saturated.npz")
    assert np.abs(record["Y_c"]).max() > 1.5  # the clip is 1.5


def test_refused_nodes(tmp_path):
    gru_clip = _with_attribute(tmp_path, "gru_lbr0", clip=1.0)
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"clip=1\.0; a cell clip is implem"):
        jaxlstm.load_onnx(gru_clip)
    alpha = _with_attribute(tmp_path, "lstm_forward", activation_alpha=[0.3])
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"activation_alpha=\[0\.3"):
        jaxlstm.load_onnx(alpha)
    text = jaxlstm.describe_onnx_file(gru_clip)
    assert "loads: no (node 'gru_lbr0': clip=1.0; a cell clip" in text


def test_unknown_node_lists_them():
    with pytest.raises(jaxlstm.LayerNotFoundError, match=r"'/LSTM' \(LSTM\), '/LSTM_1' \(LSTM\)"):
        jaxlstm.load_onnx(ONNX_DIR / "torch_lstm_stack_bi_packed.onnx")


def test_inspect_onnx():
    text = jaxlstm.describe_onnx_file(ONNX_DIR / "torch_lstm.onnx")
    assert "node '/LSTM': LSTM -> jaxlstm.LSTM" in text
    assert "o: rows 4:8          -> o 12:16" in text
    assert "f: rows 8:12         -> f 4:8" in text
    assert "c: rows 12:16        -> c 8:12" in text
    assert "loads: yes" in text
    text = jaxlstm.describe_onnx_file(ONNX_DIR / "node_lstm_peepholes.onnx")
    assert "P (1, 12)" in text and "loads: yes" in text


def test_cli_inspect_onnx(capsys):
    from jaxlstm._src.cli import main

    assert main(["inspect", str(ONNX_DIR / "node_gru_lbr0.onnx")]) == 0
    assert "linear_before_reset=0" in capsys.readouterr().out


# --- jaxlstm -> ONNX ------------------------------------------------------------------------


@functools.cache
def _modules():
    seeds = iter(range(3, 100))
    lstm = make(
        jaxlstm.LSTM, 3, 4, return_sequences=True, zero_output_for_mask=True, seed=next(seeds)
    )
    bi_gru = jaxlstm.Bidirectional(
        make(jaxlstm.GRU, 3, 4, return_sequences=True, reset_after=False, seed=next(seeds)),
        make(
            jaxlstm.GRU,
            3,
            4,
            return_sequences=True,
            reset_after=False,
            go_backwards=True,
            seed=next(seeds),
        ),
    )
    stack = jaxlstm.RNNLayers(
        [
            make(
                jaxlstm.SimpleRNN, 3, 4, return_sequences=True, activation="relu", seed=next(seeds)
            ),
            make(
                jaxlstm.LSTM,
                4,
                4,
                return_sequences=True,
                go_backwards=True,
                recurrent_activation="hard_sigmoid_keras2",
                zero_output_for_mask=True,
                seed=next(seeds),
            ),
        ]
    )
    peephole = jaxlstm.Bidirectional(
        make(jaxlstm.PeepholeLSTM, 3, 4, clip=0.8, return_sequences=True, seed=next(seeds)),
        make(
            jaxlstm.PeepholeLSTM,
            3,
            4,
            clip=0.8,
            return_sequences=True,
            go_backwards=True,
            seed=next(seeds),
        ),
    )
    return {
        "lstm": lstm,
        "bi_gru_reset_before": bi_gru,
        "rnn_then_reverse_lstm": stack,
        "bi_peephole_clip": peephole,
    }


MODULE_NAMES = ("lstm", "bi_gru_reset_before", "rnn_then_reverse_lstm", "bi_peephole_clip")


X = np.random.default_rng(5).normal(size=(3, 6, 3)).astype(np.float32)
LENGTHS = np.asarray([6, 2, 4], np.int32)
MASK = np.arange(6)[None, :] < LENGTHS[:, None]


def _layers_and_states(module, seed: int):
    """Random initial states for ``module``: (per-layer ONNX feeds, the module's flat list)."""
    rng = np.random.default_rng(seed)
    feeds, flat = {}, []
    cells = [[c] for c in module.layers] if isinstance(module, jaxlstm.RNNLayers) else [[module]]
    for k, (layer,) in enumerate(cells):
        dirs = [layer.forward, layer.backward] if hasattr(layer, "forward") else [layer]
        names = ["initial_h", "initial_c"][: len(dirs[0].state_fields)]
        per = {n: rng.normal(size=(len(dirs), 3, dirs[0].units)).astype(np.float32) for n in names}
        feeds.update({f"{n}{k}": a for n, a in per.items()})
        flat += [per[n][d] for d in range(len(dirs)) for n in names]
    return feeds, flat


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_written_onnx_runs_in_onnxruntime(name, tmp_path):
    """Masks as sequence_lens and initial states as graph inputs: onnxruntime computes what
    the module does."""
    ort = pytest.importorskip("onnxruntime")
    module = _modules()[name]
    path = tmp_path / "m.onnx"
    jaxlstm.save_onnx(module, path, sequence_lens=True, initial_states=True)
    feeds, init = _layers_and_states(module, 7)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = sess.run(["Y"], {"X": X, "sequence_lens": LENGTHS, **feeds})
    np.testing.assert_allclose(y, module(X, mask=MASK, initial_state=init), atol=ATOL, rtol=1e-6)


def test_written_onnx_reads_back(tmp_path):
    """save_onnx -> load_onnx gives the same module, node by node, without onnxruntime."""
    module = _modules()["rnn_then_reverse_lstm"]
    path = tmp_path / "m.onnx"
    jaxlstm.save_onnx(module, path)
    nodes, _ = read_onnx_nodes(path)
    back = jaxlstm.RNNLayers(
        [
            jaxlstm.load_onnx(path, n.name)
            for n in nodes  # loaded time-major (layout 0), as written
        ]
    )
    x_tm = X.transpose(1, 0, 2)
    np.testing.assert_allclose(
        np.asarray(back(x_tm)).transpose(1, 0, 2), module(X), atol=1e-6, rtol=1e-6
    )


def test_write_refusals():
    seeds = iter(range(100))
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"Keras 3's hard_sigmoid would"):
        jaxlstm.onnx_model(
            make(jaxlstm.LSTM, 3, 4, recurrent_activation="hard_sigmoid", seed=next(seeds))
        )
    bi = jaxlstm.Bidirectional(
        make(jaxlstm.LSTM, 3, 4, seed=next(seeds)),
        make(jaxlstm.LSTM, 3, 4, go_backwards=True, seed=next(seeds)),
        "ave",
    )
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"merge_mode='ave'"):
        jaxlstm.onnx_model(bi)
    proj = jaxlstm.load_torch(
        Path(__file__).parent / "fixtures" / "pytorch" / "lstm_proj_stack_bi_packed.safetensors"
    )
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"has no output projection"):
        jaxlstm.onnx_model(proj)


def test_keras_file_to_onnx_and_pytorch(tmp_path):
    """tf.keras files (Bidirectional(LSTM), GRU) -> jaxlstm -> .onnx (onnxruntime, where
    installed) and -> PyTorch state dict -> load_torch; jaxlstm matches Keras's recorded
    outputs (with the file's mask), the other two jaxlstm (without it)."""
    for name in ("bidi_concat", "gru_reset_after"):
        _keras_both_ways(name, tmp_path)


def _keras_both_ways(name, tmp_path):
    record = np.load(KERAS2 / f"{name}.npz")
    layer = jaxlstm.load_keras_layer(KERAS2 / f"{name}.h5")
    np.testing.assert_allclose(layer(record["x"], mask=record["mask"]), record["out0"], atol=ATOL)
    want = layer(record["x"])
    state, config = jaxlstm.torch_state_dict(layer)
    assert config.batch_first
    back = jaxlstm.load_torch(state, batch_first=True)
    np.testing.assert_allclose(back(record["x"]), want, atol=1e-6)
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / f"{name}.onnx"
    jaxlstm.save_onnx(layer, path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = sess.run(["Y"], {"X": record["x"]})
    np.testing.assert_allclose(y, want, atol=ATOL)
    whole = record["mask"].all(axis=1)  # onnxruntime against Keras itself, where unmasked
    np.testing.assert_allclose(y[whole], record["out0"][whole], atol=ATOL)


def test_keras_gru_reset_before_refused_for_pytorch_but_written_to_onnx():
    layer = jaxlstm.load_keras_layer(KERAS2 / "gru_reset_before.h5")
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"no PyTorch equivalent"):
        jaxlstm.torch_state_dict(layer)
    model = jaxlstm.onnx_model(layer)
    (node,) = [n for n in model.graph.node if n.op_type == "GRU"]
    assert {a.name: a.i for a in node.attribute}["linear_before_reset"] == 0


# --- hostile files --------------------------------------------------------------------------


def _external_model(tmp_path: Path, location: str, length: int = 4 * 4 * 3) -> Path:
    model = onnx.load(ONNX_DIR / "node_lstm_forward.onnx")
    w = next(t for t in model.graph.initializer if t.name == "W")
    w.ClearField("raw_data")
    del w.float_data[:]
    w.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(length))):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    path = tmp_path / "model" / "m.onnx"
    path.parent.mkdir(exist_ok=True)
    onnx.save(model, path)
    return path


def test_external_data_outside_the_folder_refused(tmp_path):
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4096)
    for location in ("../secret.bin", str(tmp_path / "secret.bin")):
        path = _external_model(tmp_path, location, 16 * 3 * 4)
        with pytest.raises(jaxlstm.UnsafeFileError, match=r"outside the model's folder"):
            jaxlstm.load_onnx(path)
    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "model" / "link.bin").symlink_to(tmp_path / "secret.bin")
    path = _external_model(tmp_path, "link.bin", 16 * 3 * 4)
    with pytest.raises(jaxlstm.UnsafeFileError, match=r"outside the model's folder"):
        jaxlstm.load_onnx(path)


def test_external_data_inside_the_folder_reads_and_is_bounded(tmp_path):
    w = dict((t.name, t) for t in onnx.load(ONNX_DIR / "node_lstm_forward.onnx").graph.initializer)
    raw = onnx.numpy_helper.to_array(w["W"]).tobytes()
    path = _external_model(tmp_path, "w.bin", len(raw))
    (path.parent / "w.bin").write_bytes(raw)
    y = jaxlstm.load_onnx(path)(np.ones((2, 1, 3), np.float32))
    want = jaxlstm.load_onnx(ONNX_DIR / "node_lstm_forward.onnx")(np.ones((2, 1, 3), np.float32))
    np.testing.assert_array_equal(y, want)
    (path.parent / "w.bin").write_bytes(raw[:10])
    with pytest.raises(jaxlstm.UnsafeFileError, match=r"declares bytes 0:192 of 'w.bin'"):
        jaxlstm.load_onnx(path)


def test_not_onnx(tmp_path):
    path = tmp_path / "x.onnx"
    path.write_bytes(b"\xff\xff\xff garbage")
    with pytest.raises(jaxlstm.KerasFileError, match=r"not an ONNX model"):
        jaxlstm.load_onnx(path)


def test_cli_convert_between_frameworks(tmp_path, capsys):
    """jaxlstm convert: Keras -> .onnx, PyTorch .safetensors -> .onnx, ONNX -> .safetensors;
    the numbers survive each step; a reverse-only ONNX node has no PyTorch equivalent."""
    from jaxlstm._src.cli import main

    record = np.load(KERAS2 / "lstm_seq.npz")
    onnx_path, st_path = tmp_path / "lstm.onnx", tmp_path / "lstm.safetensors"
    assert main(["--no-cache", "convert", str(KERAS2 / "lstm_seq.h5"), str(onnx_path)]) == 0
    assert main(["--no-cache", "convert", str(onnx_path), str(st_path)]) == 0
    out = capsys.readouterr().out
    assert "torch.nn.LSTM(input_size=3, hidden_size=5" in out and "batch_first=False" in out
    y = jaxlstm.load_torch(st_path)(record["x"].transpose(1, 0, 2))
    np.testing.assert_allclose(np.asarray(y).transpose(1, 0, 2), record["out0"], atol=ATOL)
    again = tmp_path / "again.onnx"
    assert main(["--no-cache", "convert", str(st_path), str(again)]) == 0
    assert main(["convert", str(st_path), str(again)]) == 2  # exists
    rev = ONNX_DIR / "node_lstm_reverse_lens.onnx"
    assert main(["--no-cache", "convert", str(rev), str(tmp_path / "rev.safetensors")]) == 2
    assert "go_backwards=True alone" in capsys.readouterr().err
    assert main(["--no-cache", "convert", str(st_path), str(tmp_path / "m.keras")]) == 2
    assert "cannot be written as a Keras model" in capsys.readouterr().err


def test_oversized_initializer_refused(tmp_path):
    model = onnx.load(ONNX_DIR / "node_lstm_forward.onnx")
    w = next(t for t in model.graph.initializer if t.name == "W")
    w.ClearField("raw_data")
    del w.dims[:]
    w.dims.extend([1, 1 << 20, 1 << 12])  # 16 GiB declared, nothing stored
    path = tmp_path / "big.onnx"
    onnx.save(model, path)
    with pytest.raises(jaxlstm.UnsafeFileError, match=r"tensor 'W' declares 16 GiB"):
        jaxlstm.load_onnx(path)


def test_constant_initial_state_refused(tmp_path):
    model = onnx.load(ONNX_DIR / "node_lstm_forward.onnx")
    h0 = onnx.numpy_helper.from_array(np.ones((1, 3, 4), np.float32), "H0")
    model.graph.initializer.append(h0)
    node = model.graph.node[0]
    inputs = list(node.input) + [""] * (6 - len(node.input))
    inputs[5] = "H0"
    del node.input[:]
    node.input.extend(inputs)
    path = tmp_path / "h0.onnx"
    onnx.save(model, path)
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"initial_h is a non-zero constant"):
        jaxlstm.load_onnx(path)
