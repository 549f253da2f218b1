"""Whole files written by real Keras 2 (tf.keras 2.21) and in Keras 1's layout, against the
outputs Keras computed for them (tests/fixtures/make_fixtures.py made both)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import assert_matches_keras, recorded

import jaxlstm

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted([*FIXTURES.glob("keras1/*.h5"), *FIXTURES.glob("keras2/*.h5")])


def run_fixture(path: Path):
    expected, _, want = recorded(path)
    module = jaxlstm.load_keras_layer(
        path, str(expected["layer"]), **json.loads(str(expected["options"]))
    )
    kwargs = {}
    if "mask" in expected:
        kwargs["mask"] = expected["mask"]
    if "initial_h" in expected:
        kwargs["initial_state"] = [expected["initial_h"], expected["initial_c"]]
    if "initial_h_fw" in expected:
        kwargs["initial_state"] = [
            expected[f"initial_{s}"] for s in ("h_fw", "c_fw", "h_bw", "c_bw")
        ]
    if "h1" in expected:  # stacked cells: Keras's nested initial state, one entry per cell
        kwargs["initial_state"] = [[expected["h0"], expected["c0"]], expected["h1"]]
    got = module(expected["x"], **kwargs)
    got = got if isinstance(got, tuple) else (got,)
    got = tuple(a for out in got for a in (out if isinstance(out, tuple) else (out,)))
    return module, got, want, expected


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_file_matches_keras(path):
    _, got, want, _ = run_fixture(path)
    assert_matches_keras(got, want)


def test_there_are_fixtures_of_every_family():
    names = {p.stem for p in CASES}
    assert {"cudnn", "chunked", "k1_lstm", "k1_bidi", "weights_only_keras224", "nested"} <= names
    assert {"gru_reset_after", "gru_reset_before", "gru_weights_only_keras224"} <= names
    assert {"cudnn_gru", "k1_gru", "k1_simple_rnn", "simple_rnn", "bidi_gru"} <= names
    assert {"stacked_cells", "stacked_bidi", "stacked_cells_weights_only"} <= names
    assert "stacked_bidi_weights_only" in names


def test_keras_version_and_layout_are_read():
    kf = jaxlstm.read_keras_file(FIXTURES / "keras1" / "k1_lstm.h5")
    assert kf.keras_version == "1" and "Keras 1" in kf.format
    assert jaxlstm.read_keras_file(FIXTURES / "keras2" / "lstm_seq.h5").keras_version.startswith(
        "2."
    )


def test_old_keras2_weights_default_to_hard_sigmoid():
    module = jaxlstm.load_keras_layer(
        FIXTURES / "keras2" / "weights_only_keras224.h5", return_sequences=True
    )
    assert module.recurrent_activation == "hard_sigmoid_keras2"
    module = jaxlstm.load_keras_layer(
        FIXTURES / "keras2" / "weights_only.h5", return_sequences=True
    )
    assert module.recurrent_activation == "sigmoid"


@pytest.mark.parametrize(
    "name", ["cudnn_weights_only_keras224", "cudnn_bidi_weights_only_keras224"]
)
def test_cudnn_weights_only_file_follows_the_class_its_arrays_prove(name):
    """Keras 2.2.4's LSTM default is hard_sigmoid, but an 8u bias was written by a CuDNNLSTM,
    whose activations are tanh and sigmoid whatever the version (tf.keras computed out0 so)."""
    path = FIXTURES / "keras2" / f"{name}.h5"
    module, got, want, _ = run_fixture(path)
    lstms = [module.forward, module.backward] if hasattr(module, "forward") else [module]
    assert [m.recurrent_activation for m in lstms] == ["sigmoid"] * len(lstms)
    assert_matches_keras(got, want)
    text = jaxlstm.describe_keras_file(path)
    assert "keras_version: 2.2.4" in text
    assert "class CuDNNLSTM (inferred: CuDNN layout, bias 8u)" in text
    assert "recurrent_activation=sigmoid (inferred: CuDNN layout, bias 8u)" in text
    assert "hard_sigmoid" not in text


def test_inspect_says_what_a_weights_only_file_left_to_defaults():
    text = jaxlstm.describe_keras_file(FIXTURES / "keras2" / "weights_only_keras224.h5")
    assert "recurrent_activation=hard_sigmoid_keras2 (inferred: Keras 2.2.4 default)" in text
    assert "return_sequences=False (inferred: Keras default)" in text
    text = jaxlstm.describe_keras_file(FIXTURES / "keras1" / "k1_weights_only.h5")
    assert "class LSTM (inferred: Keras 1 layout, 12 per-gate arrays)" in text
    assert "recurrent_activation=hard_sigmoid_keras2 (inferred: Keras 1 default)" in text
    # a full model's options come from its config: nothing is marked as inferred
    text = jaxlstm.describe_keras_file(FIXTURES / "keras2" / "lstm_hard_sigmoid.h5")
    assert "inferred" not in text and "recurrent_activation=hard_sigmoid_keras2" in text


def test_hard_sigmoid_definition_matters():
    """The trap: a Keras 2 file read with Keras 3's hard_sigmoid gives other numbers."""
    path = FIXTURES / "keras2" / "lstm_hard_sigmoid.h5"
    expected, _, want = recorded(path)
    right = jaxlstm.load_keras_layer(path)
    wrong = jaxlstm.load_keras_layer(path, recurrent_activation="hard_sigmoid")
    assert right.recurrent_activation == "hard_sigmoid_keras2"
    assert_matches_keras(right(expected["x"]), want)
    assert np.max(np.abs(np.asarray(wrong(expected["x"])) - want[0])) > 1e-3


def test_cudnn_weights_are_converted_not_copied():
    record = jaxlstm.read_keras_file(FIXTURES / "keras2" / "cudnn.h5").layers["cu_dnnlstm"]
    bias = next(a for n, a in record.weights if "bias" in n)
    assert bias.shape[0] == 8 * record.config["units"]
    module, got, want, _ = run_fixture(FIXTURES / "keras2" / "cudnn.h5")
    kernel = next(a for n, a in record.weights if n.endswith("/kernel:0"))
    assert not np.allclose(np.asarray(module.kernel[...]), kernel)  # per-gate transposes applied
    assert_matches_keras(got, want)


def test_chunked_attributes_are_joined():
    import h5py

    path = FIXTURES / "keras2" / "chunked.h5"
    with h5py.File(path) as f:
        assert (
            "layer_names0" in f["model_weights"].attrs
            and "layer_names" not in f["model_weights"].attrs
        )
    assert "lstm" in " ".join(jaxlstm.read_keras_file(path).layers)


def test_time_distributed_lstm_takes_the_extra_axis():
    _module, got, want, expected = run_fixture(FIXTURES / "keras2" / "time_distributed.h5")
    assert expected["x"].ndim == 4
    assert_matches_keras(got, want)


def test_layer_in_nested_model_by_short_or_full_name():
    path = FIXTURES / "keras2" / "nested.h5"
    names = list(jaxlstm.read_keras_file(path).layers)
    assert any(n.endswith("/inner_lstm") for n in names)
    short = jaxlstm.load_keras_layer(path, "inner_lstm")
    full = jaxlstm.load_keras_layer(path, next(n for n in names if n.endswith("/inner_lstm")))
    np.testing.assert_array_equal(short.kernel[...], full.kernel[...])


def test_weights_only_gru_of_keras224_takes_its_conventions_from_bias_and_version():
    """No config: the (3u,) bias proves reset_after=False and Keras 2.2.4's default recurrent
    activation is hard_sigmoid; neither is in the fixture's options, tf.keras computed so."""
    path = FIXTURES / "keras2" / "gru_weights_only_keras224.h5"
    module, got, want, _ = run_fixture(path)
    assert isinstance(module, jaxlstm.GRU)
    assert module.reset_after is False and module.recurrent_activation == "hard_sigmoid_keras2"
    assert_matches_keras(got, want)
    text = jaxlstm.describe_keras_file(path)
    assert "class GRU (inferred: Keras layout, bias (3u,))" in text
    assert "reset_after=False (inferred: bias (3u,))" in text
    assert "recurrent_activation=hard_sigmoid_keras2 (inferred: Keras 2.2.4 default)" in text


def test_weights_only_cudnn_gru_follows_the_class_its_bias_proves():
    """Keras 2.2.4's GRU defaults are hard_sigmoid and reset_after=False, but a 6u bias was
    written by a CuDNNGRU: sigmoid and reset_after=True (tf.keras computed out0 so)."""
    path = FIXTURES / "keras2" / "cudnn_gru_weights_only_keras224.h5"
    module, got, want, _ = run_fixture(path)
    assert module.recurrent_activation == "sigmoid" and module.reset_after is True
    assert_matches_keras(got, want)
    text = jaxlstm.describe_keras_file(path)
    assert "class CuDNNGRU (inferred: CuDNN layout, bias 6u)" in text
    assert "reset_after=True (inferred: CuDNN layout, bias 6u)" in text
    assert "hard_sigmoid" not in text


def test_cudnn_gru_and_keras1_gru_layouts_are_named_by_inspect():
    module, got, want, _ = run_fixture(FIXTURES / "keras2" / "cudnn_gru.h5")
    assert isinstance(module, jaxlstm.GRU) and module.reset_after is True
    assert (module.activation, module.recurrent_activation) == ("tanh", "sigmoid")
    assert_matches_keras(got, want)
    text = jaxlstm.describe_keras_file(FIXTURES / "keras2" / "cudnn_gru.h5")
    assert "layout: CuDNNGRU: gates z, r, h; each kernel block stored transposed" in text
    assert "bias of 6u = 18: input half + recurrent half (kept apart: reset_after=True)" in text
    assert "reset_after=True (inferred: fixed by CuDNNGRU)" in text
    module, got, want, _ = run_fixture(FIXTURES / "keras1" / "k1_gru.h5")
    assert isinstance(module, jaxlstm.GRU) and module.reset_after is False
    assert_matches_keras(got, want)
    text = jaxlstm.describe_keras_file(FIXTURES / "keras1" / "k1_gru.h5")
    assert "saved in order z, r, h" in text and "kernel = [W_z | W_r | W_h]" in text
    assert "reset_after=False (inferred: Keras 1 layout, 9 per-gate arrays)" in text


def test_a_gru_config_without_reset_after_is_written_with_false(tmp_path):
    """Keras 1 (and Keras 2.0) GRU configs predate reset_after and reset before the matmul;
    Keras 3's default is True, so save_keras must write False (Keras 3 then computes what
    jaxlstm computes; with its default it would refuse the (3u,) bias)."""
    keras = pytest.importorskip("keras")
    path = tmp_path / "k1_gru_sigmoid.h5"
    shutil.copy(FIXTURES / "keras1" / "k1_gru.h5", path)
    with h5py.File(path, "r+") as f:  # a recurrent activation Keras 3 can express
        cfg = json.loads(f.attrs["model_config"])
        cfg["config"][0]["config"]["inner_activation"] = "sigmoid"
        f.attrs["model_config"] = json.dumps(cfg)
    model = jaxlstm.load_keras(path)
    x = np.load(FIXTURES / "keras1" / "k1_gru.npz")["x"]
    jaxlstm.save_keras(model, tmp_path / "out.keras")
    kmodel = keras.saving.load_model(tmp_path / "out.keras", compile=False)
    assert kmodel.layers[-1].reset_after is False
    assert_matches_keras(np.asarray(kmodel(x)), np.asarray(model(x)))


def test_a_weights_only_file_from_an_ambiguous_version_asks_for_its_recurrent_activation(
    tmp_path,
):
    """tf.keras wrote "2.2.4-tf" both in TF 1.13-1.15 (LSTM default hard_sigmoid) and TF
    2.0-2.1 (sigmoid): a weights-only file claiming it does not say which, so loading asks,
    inspect shows the gap, and the answer gives Keras's numbers."""
    src = FIXTURES / "keras2" / "weights_only.h5"  # tf-keras 2.21: sigmoid
    path = tmp_path / "weights_only_224tf.h5"
    shutil.copy(src, path)
    with h5py.File(path, "r+") as f:
        f.attrs["keras_version"] = "2.2.4-tf"
    expected, _, want = recorded(src)
    options = json.loads(str(expected["options"]))
    with pytest.raises(
        jaxlstm.UnsupportedOptionError,
        match=r"does not say the layer's recurrent_activation, and the Keras that wrote it "
        r"\(2\.2\.4-tf\) does not decide its default: TF 1\.13-1\.15 .*Pass the one it was "
        r"trained with: load_keras_layer\(path, name, recurrent_activation='sigmoid'\)",
    ):
        jaxlstm.load_keras_layer(path, str(expected["layer"]), **options)
    assert "recurrent_activation=? (unknown: TF 1.13-1.15" in jaxlstm.describe_keras_file(path)
    module = jaxlstm.load_keras_layer(
        path, str(expected["layer"]), recurrent_activation="sigmoid", **options
    )
    assert_matches_keras(module(expected["x"]), want)
