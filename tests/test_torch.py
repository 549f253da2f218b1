"""PyTorch weights in jaxlstm and back: nn.LSTM / nn.GRU / nn.RNN state dicts written by real
PyTorch 2.13 (tests/fixtures/pytorch/make_torch_fixtures.py), against the outputs, final states and
gradients PyTorch recorded; the jaxlstm -> PyTorch state dict round trip; refusals; hostile
files. A live-PyTorch round trip runs with -m slow where PyTorch is installed."""

from __future__ import annotations

import json
import pickle
import struct
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx
from rosetta_helpers import make

import jaxlstm
from jaxlstm._src.readers import torch_files

FIXTURES = Path(__file__).parent / "fixtures" / "pytorch"
ATOL = 1e-5

# name -> (batch_first, nonlinearity), as the fixture script built them
CASES = {
    "lstm": (False, None),
    "lstm_batch_first_nobias": (True, None),
    "lstm_stack_bi_packed": (False, None),
    "gru": (False, None),
    "gru_stack_bi_packed": (True, None),
    "gru_packed_nobias": (False, None),
    "rnn_tanh_stack": (False, None),
    "rnn_relu_bi_packed": (False, "relu"),
    "lstm_proj_stack_bi_packed": (True, None),
}


def torch_inputs(record, batch_first: bool):
    """The mask (from packed lengths) and the flat initial states of a fixture record, as
    jaxlstm takes them: per layer and direction ``h`` (and ``c``), PyTorch's ``h0[2k + d]``."""
    mask = None
    if "lengths" in record:
        t = record["x"].shape[1 if batch_first else 0]
        mask = np.arange(t)[None, :] < record["lengths"][:, None]
        mask = mask if batch_first else mask.T
    init = None
    if "h0" in record:
        h0, c0 = record["h0"], record["c0"] if "c0" in record else None
        init = []
        for k in range(h0.shape[0]):
            init += [h0[k]] if c0 is None else [h0[k], c0[k]]
    return mask, init


def run_with_grads(module, record, batch_first, lstm: bool):
    """Outputs, final states and the gradients of the fixture's loss, through jaxlstm."""
    mask, init = torch_inputs(record, batch_first)
    per = 2 if lstm else 1

    def loss(m, x):
        y, *states = m(x, mask=mask, initial_state=init, return_state=True)
        h_n = jax.numpy.stack(states[0::per])
        total = (y * record["w"]).sum() + (h_n * record["w_h"]).sum()
        c_n = None
        if lstm:
            c_n = jax.numpy.stack(states[1::2])
            total = total + (c_n * record["w_c"]).sum()
        return total, (y, h_n, c_n)

    (_, (y, h_n, c_n)), (g_module, g_x) = nnx.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        module, record["x"]
    )
    grads = nnx.clone(module)
    nnx.update(grads, g_module)
    return y, h_n, c_n, g_x, grads


@pytest.mark.parametrize("name", list(CASES))
def test_fixture_matches_pytorch(name):
    batch_first, nonlinearity = CASES[name]
    record = dict(np.load(FIXTURES / f"{name}.npz"))
    module = jaxlstm.load_torch(
        FIXTURES / f"{name}.safetensors", batch_first=batch_first, nonlinearity=nonlinearity
    )
    lstm = name.startswith("lstm")
    y, h_n, c_n, g_x, grads = run_with_grads(module, record, batch_first, lstm)
    np.testing.assert_allclose(y, record["y"], atol=ATOL, rtol=1e-6)
    np.testing.assert_allclose(h_n, record["h_n"], atol=ATOL, rtol=1e-6)
    if lstm:
        np.testing.assert_allclose(c_n, record["c_n"], atol=ATOL, rtol=1e-6)
    np.testing.assert_allclose(g_x, record["grad_x"], atol=ATOL, rtol=1e-5)
    ours, _ = jaxlstm.torch_state_dict(grads)
    for key, array in ours.items():
        want = record[f"grad/{key}"]
        if key.startswith("bias_hh") and not name.startswith("gru"):
            # one Keras bias is bias_ih + bias_hh: both have its gradient
            array = ours[key.replace("bias_hh", "bias_ih")]
        np.testing.assert_allclose(array, want, atol=ATOL, rtol=1e-5, err_msg=key)
    assert {k[len("grad/") :] for k in record if k.startswith("grad/")} == set(ours)


def test_modules_built_as_pytorch_stacks_them():
    """Sizes from the arrays; num_layers > 1 is an RNNLayers; bidirectional a Bidirectional
    concatenating forward then reverse."""
    m = jaxlstm.load_torch(FIXTURES / "lstm_stack_bi_packed.safetensors")
    assert isinstance(m, jaxlstm.RNNLayers) and len(m.layers) == 2
    first = m.layers[0]
    assert isinstance(first, jaxlstm.Bidirectional) and first.merge_mode == "concat"
    assert (first.forward.in_features, first.forward.units) == (3, 4)
    assert m.layers[1].forward.in_features == 8 and first.backward.go_backwards
    single = jaxlstm.load_torch(FIXTURES / "gru.safetensors")
    assert isinstance(single, jaxlstm.GRU) and single.reset_after and single.time_major
    assert single.bias.shape == (2, 12)


def test_embedding_lstm_linear_by_prefix():
    record = np.load(FIXTURES / "model.npz")
    path = FIXTURES / "model.safetensors"
    embed = jaxlstm.load_torch(path, "embed", kind="embedding")
    lstm = jaxlstm.load_torch(path, "encoder.lstm", batch_first=True)
    head = jaxlstm.load_torch(path, "head")
    out = head(lstm(embed(record["ids"]))[:, -1])
    np.testing.assert_allclose(out, record["out"], atol=ATOL, rtol=1e-6)
    with pytest.raises(
        jaxlstm.UnsupportedOptionError, match='pass kind="linear" or kind="embedding"'
    ):
        jaxlstm.load_torch(path, "embed")
    with pytest.raises(jaxlstm.LayerNotFoundError, match=r"no module 'decoder'"):
        jaxlstm.load_torch(path, "decoder")


def test_one_recurrent_module_needs_no_name():
    lstm = jaxlstm.load_torch(FIXTURES / "model.safetensors", batch_first=True)
    assert isinstance(lstm, jaxlstm.LSTM)


def test_proj_size_is_a_projected_lstm():
    m = jaxlstm.load_torch(FIXTURES / "lstm_proj_stack_bi_packed.safetensors", batch_first=True)
    first = m.layers[0].forward
    assert isinstance(first, jaxlstm.ProjLSTM)
    assert (first.in_features, first.units, first.proj_size) == (3, 4, 2)
    assert first.projection.shape == (4, 2) and first.recurrent_kernel.shape == (2, 16)
    assert m.layers[1].forward.in_features == 4  # both directions' projected outputs
    _, config = jaxlstm.torch_state_dict(m)
    assert config.kwargs()["proj_size"] == 2
    text = jaxlstm.describe_torch_file(FIXTURES / "lstm_proj_stack_bi_packed.safetensors")
    assert "proj_size=2 (from the arrays: weight_hr_l* (2, 4), projection = weight_hr^T)" in text


def test_nonlinearity_only_for_rnn():
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"only nn.RNN takes a nonlinearity"):
        jaxlstm.load_torch(FIXTURES / "lstm.safetensors", nonlinearity="relu")
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"expected one of \('tanh', 'relu'"):
        jaxlstm.load_torch(FIXTURES / "rnn_tanh_stack.safetensors", nonlinearity="gelu")


def test_state_dict_of_arrays_and_inconsistent_shapes():
    state = torch_files.read_safetensors(str(FIXTURES / "lstm_stack_bi_packed.safetensors"))
    module = jaxlstm.load_torch(state)
    assert isinstance(module, jaxlstm.RNNLayers)
    broken = {k: v for k, v in state.items() if not k.endswith("_l1_reverse")}
    with pytest.raises(jaxlstm.KerasFileError, match=r"The state dict is incomplete"):
        jaxlstm.load_torch(broken)
    broken = dict(state)
    del broken["weight_hh_l1"]
    with pytest.raises(jaxlstm.KerasFileError, match=r"layer 1 has bias_hh \(16,\), bias_ih"):
        jaxlstm.load_torch(broken)
    broken = dict(state, weight_ih_l1=np.zeros((16, 5), np.float32))
    with pytest.raises(jaxlstm.KerasFileError, match=r"expected weight_ih \(16, 8\)"):
        jaxlstm.load_torch(broken)
    with pytest.raises(jaxlstm.KerasFileError, match=r"5 gate blocks"):
        jaxlstm.load_torch({"weight_ih_l0": np.zeros((10, 3)), "weight_hh_l0": np.zeros((10, 2))})


def test_write_back_round_trip(tmp_path):
    """load_torch -> torch_state_dict gives PyTorch's own arrays back (up to the LSTM's and
    RNN's two biases, kept as their sum in bias_ih); save_torch -> load_torch computes the same."""
    for name, (batch_first, nonlinearity) in CASES.items():
        path = FIXTURES / f"{name}.safetensors"
        original = torch_files.read_safetensors(str(path))
        module = jaxlstm.load_torch(path, batch_first=batch_first, nonlinearity=nonlinearity)
        state, config = jaxlstm.torch_state_dict(module)
        assert set(state) == set(original), name
        assert config.batch_first == batch_first
        assert config.nonlinearity == (nonlinearity or "tanh" if name.startswith("rnn") else None)
        for key, array in state.items():
            if key.startswith("bias") and not name.startswith("gru"):
                if key.startswith("bias_ih"):
                    want = original[key] + original[key.replace("bias_ih", "bias_hh")]
                    np.testing.assert_allclose(array, want, rtol=1e-6)
                continue
            np.testing.assert_array_equal(array, original[key], err_msg=f"{name} {key}")
    module = jaxlstm.load_torch(FIXTURES / "gru_stack_bi_packed.safetensors", batch_first=True)
    out = tmp_path / "gru.safetensors"
    config = jaxlstm.save_torch(module, out, prefix="rnn.")
    assert config.kwargs() == dict(
        input_size=3, hidden_size=4, num_layers=2, bias=True, bidirectional=True, batch_first=True
    )
    again = jaxlstm.load_torch(out, "rnn", batch_first=True)
    x = np.load(FIXTURES / "gru_stack_bi_packed.npz")["x"]
    np.testing.assert_array_equal(again(x), module(x))


def _lstm(**kw):
    return make(jaxlstm.LSTM, 3, 4, return_sequences=True, seed=0, **kw)


def test_write_refusals():
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"reset_after=False .* no PyTorch"):
        jaxlstm.torch_state_dict(make(jaxlstm.GRU, 3, 4, reset_after=False, seed=0))
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"hard_sigmoid, relu, ... have no"):
        jaxlstm.torch_state_dict(_lstm(recurrent_activation="hard_sigmoid"))
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"only tanh or relu"):
        jaxlstm.torch_state_dict(make(jaxlstm.SimpleRNN, 3, 4, activation="elu", seed=0))
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"go_backwards=True alone"):
        jaxlstm.torch_state_dict(_lstm(go_backwards=True))
    bi = jaxlstm.Bidirectional(_lstm(), _lstm(go_backwards=True), merge_mode="sum")
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"merge_mode='sum'"):
        jaxlstm.torch_state_dict(bi)
    mixed = jaxlstm.StackedRNN([make(jaxlstm.LSTM, 3, 4, seed=0), make(jaxlstm.GRU, 4, 4, seed=1)])
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"layer 1 is a GRU but layer 0"):
        jaxlstm.torch_state_dict(mixed)
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"PeepholeLSTM has no PyTorch"):
        jaxlstm.torch_state_dict(make(jaxlstm.PeepholeLSTM, 3, 4, clip=1.0, seed=0))
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"writes .safetensors files"):
        jaxlstm.save_torch(_lstm(), "x.pt")


def test_stacked_cells_are_num_layers():
    """Keras's per-step stacked cells of one family and size are PyTorch's num_layers (forward
    only): written, read back as RNNLayers, same numbers."""
    stack = jaxlstm.StackedRNN(
        [make(jaxlstm.LSTM, 3, 4, seed=0), make(jaxlstm.LSTM, 4, 4, seed=1)],
        return_sequences=True,
    )
    state, config = jaxlstm.torch_state_dict(stack)
    assert config.num_layers == 2 and config.batch_first  # jaxlstm: (B, T, F) by default
    back = jaxlstm.load_torch(state, batch_first=True)
    x = np.random.default_rng(0).normal(size=(2, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(back(x), stack(x), atol=1e-6)


def test_inspect_shows_gate_rows_and_assumptions():
    text = jaxlstm.describe_torch_file(FIXTURES / "gru_stack_bi_packed.safetensors")
    assert "nn.GRU -> jaxlstm.GRU" in text
    assert "num_layers=2, bidirectional=True" in text
    assert "batch_first=False (assumed: PyTorch's default" in text
    assert "r: rows 0:4          -> r 4:8" in text
    assert "z: rows 4:8          -> z 0:4" in text
    assert "n: rows 8:12         -> h 8:12" in text
    assert "row 0 bias_ih, row 1 bias_hh" in text
    text = jaxlstm.describe_torch_file(FIXTURES / "rnn_tanh_stack.safetensors")
    assert "nonlinearity=tanh (assumed" in text
    text = jaxlstm.describe_torch_file(FIXTURES / "model.safetensors")
    assert "'head' weight (2, 4) bias (2,) (nn.Linear)" in text


def test_cli_inspect_safetensors(capsys):
    from jaxlstm._src.cli import main

    assert main(["inspect", str(FIXTURES / "lstm.safetensors")]) == 0
    assert "g: rows 8:12         -> c 8:12" in capsys.readouterr().out


# --- hostile and damaged files --------------------------------------------------------------


def _safetensors(path: Path, header: dict, data: bytes = b"", declared: int | None = None):
    raw = json.dumps(header).encode()
    n = len(raw) if declared is None else declared
    path.write_bytes(struct.pack("<Q", n) + raw + data)
    return path


def test_oversized_safetensors_header_refused(tmp_path):
    path = _safetensors(tmp_path / "big.safetensors", {}, declared=1 << 40)
    with pytest.raises(jaxlstm.UnsafeFileError, match=r"header declares 1024 GiB"):
        jaxlstm.load_torch(path)


def test_safetensors_offsets_outside_data_refused(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}}
    path = _safetensors(tmp_path / "lie.safetensors", header, b"\0" * 16)
    with pytest.raises(jaxlstm.UnsafeFileError, match=r"of a 16-byte data section"):
        jaxlstm.load_torch(path)


def test_safetensors_damaged(tmp_path):
    path = tmp_path / "short.safetensors"
    path.write_bytes(b"\1\0")
    with pytest.raises(jaxlstm.KerasFileError, match=r"too short for a .safetensors"):
        jaxlstm.load_torch(path)
    path.write_bytes(struct.pack("<Q", 4) + b"{{{{")
    with pytest.raises(jaxlstm.KerasFileError, match=r"header is not JSON"):
        jaxlstm.load_torch(path)
    header = {"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}
    with pytest.raises(jaxlstm.KerasFileError, match=r"dtype BF16, which numpy cannot hold"):
        jaxlstm.load_torch(_safetensors(tmp_path / "bf.safetensors", header, b"\0" * 4))


def test_pt_file_without_torch_is_a_clear_error(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"weight_ih_l0": [1.0]}))
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(jaxlstm.MissingDependencyError, match=r"torch.load\(weights_only=True"):
            jaxlstm.load_torch(path)
    else:
        with pytest.raises(jaxlstm.KerasFileError):
            jaxlstm.load_torch(path)


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_pickle_with_code_refused_by_weights_only(tmp_path):
    pytest.importorskip("torch")
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"weight_ih_l0": _Evil()}))
    with pytest.raises(
        jaxlstm.UnsafeFileError, match=r"refused by torch.load\(weights_only=True\)"
    ):
        jaxlstm.load_torch(path)


# --- live PyTorch (slow; only where PyTorch is installed) --------------------------------------


@pytest.mark.slow
def test_live_pytorch_round_trip(tmp_path):
    """A Keras-style jaxlstm Bidirectional(LSTM) stack and a GRU -> .safetensors -> nn.LSTM /
    nn.GRU with strict=True -> the same outputs; and a .pt state dict through
    torch.load(weights_only=True)."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    seeds = iter(range(100))
    layers = jaxlstm.RNNLayers(
        [
            jaxlstm.Bidirectional(
                make(jaxlstm.LSTM, 3, 4, return_sequences=True, time_major=True, seed=next(seeds)),
                make(
                    jaxlstm.LSTM,
                    3,
                    4,
                    return_sequences=True,
                    go_backwards=True,
                    time_major=True,
                    seed=next(seeds),
                ),
            ),
            jaxlstm.Bidirectional(
                make(jaxlstm.LSTM, 8, 4, return_sequences=True, time_major=True, seed=next(seeds)),
                make(
                    jaxlstm.LSTM,
                    8,
                    4,
                    return_sequences=True,
                    go_backwards=True,
                    time_major=True,
                    seed=next(seeds),
                ),
            ),
        ]
    )
    gru = make(jaxlstm.GRU, 3, 5, return_sequences=True, seed=next(seeds))
    proj = jaxlstm.Bidirectional(
        make(jaxlstm.ProjLSTM, 3, 5, 2, return_sequences=True, seed=next(seeds)),
        make(jaxlstm.ProjLSTM, 3, 5, 2, return_sequences=True, go_backwards=True, seed=next(seeds)),
    )
    x = np.random.default_rng(1).normal(size=(6, 2, 3)).astype(np.float32)
    xb = x.transpose(1, 0, 2)
    for module, xin in ((layers, x), (gru, xb), (proj, xb)):
        path = tmp_path / "m.safetensors"
        config = jaxlstm.save_torch(module, path)
        net = getattr(torch.nn, config.mode)(**config.kwargs())
        net.load_state_dict(load_file(path), strict=True)
        with torch.no_grad():
            y, _ = net(torch.from_numpy(xin))
        np.testing.assert_allclose(y.numpy(), module(xin), atol=ATOL)
        pt = tmp_path / "m.pt"
        torch.save(net.state_dict(), pt)
        back = jaxlstm.load_torch(pt, batch_first=config.batch_first)
        np.testing.assert_allclose(back(xin), module(xin), atol=ATOL)


def test_torch_without_weights_only_refused(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")

    def old_load(f, map_location=None):  # a PyTorch from before weights_only (< 1.13)
        raise AssertionError("must not be called")

    monkeypatch.setattr(torch, "load", old_load)
    path = tmp_path / "m.pt"
    path.write_bytes(b"anything")
    with pytest.raises(jaxlstm.UnsafeFileError, match=r"has no torch.load\(weights_only=True\)"):
        jaxlstm.load_torch(path)


@pytest.mark.slow
def test_live_keras_file_to_pytorch(tmp_path):
    """tf.keras files -> jaxlstm -> .safetensors -> nn.LSTM / nn.GRU (strict=True): PyTorch
    computes what Keras recorded, on the rows whose mask PyTorch can express (a left-padded
    row is the sequence after its padding; rows with gaps are skipped)."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    keras2 = Path(__file__).parent / "fixtures" / "keras2"
    for name in ("lstm_seq", "bidi_concat", "gru_reset_after"):
        record = np.load(keras2 / f"{name}.npz")
        layer = jaxlstm.load_keras_layer(keras2 / f"{name}.h5")
        path = tmp_path / f"{name}.safetensors"
        config = jaxlstm.save_torch(layer, path)
        net = getattr(torch.nn, config.mode)(**config.kwargs())
        net.load_state_dict(load_file(path), strict=True)
        mask = record["mask"] if "mask" in record else np.ones(record["x"].shape[:2], bool)
        checked = 0
        for row, m in enumerate(mask.astype(bool)):
            first = int(np.argmax(m)) if m.any() else len(m)
            if not m[first:].all() or first == len(m):
                continue  # gaps, or nothing unmasked: no PyTorch equivalent
            # left padding: Keras carries the zero state over it (and outputs zeros there)
            with torch.no_grad():
                y, _ = net(torch.from_numpy(record["x"][row : row + 1, first:]))
            np.testing.assert_allclose(
                y.numpy()[0], record["out0"][row, first:], atol=ATOL, err_msg=name
            )
            checked += 1
        assert checked, name


def test_missing_extras_are_named(monkeypatch):
    """Without the package a format needs: an error naming the extra to install."""
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(jaxlstm.MissingDependencyError, match=r'pip install "jaxlstm\[torch\]"'):
        jaxlstm.load_torch(FIXTURES / "lstm.safetensors")
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(jaxlstm.MissingDependencyError, match=r'pip install "jaxlstm\[onnx\]"'):
        jaxlstm.load_onnx(FIXTURES / "onnx" / "node_lstm_forward.onnx")
