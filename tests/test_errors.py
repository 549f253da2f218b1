"""Every error path of the readers and the loader: our own error class, and a message that says
what was found, what was expected and what to do."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import h5py
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_matches_keras, recorded

import jaxlstm
from jaxlstm import (
    KerasFileError,
    LayerNotFoundError,
    UnknownActivationError,
    UnsupportedOptionError,
)

FIX = Path(__file__).parent / "fixtures"
SEQ = FIX / "keras2" / "lstm_seq.h5"  # a model with one LSTM(5)


def copy(tmp_path, src=SEQ, name="m.h5") -> Path:
    dst = tmp_path / name
    shutil.copy(src, dst)
    return dst


def lstm_group(f):
    """The h5py group holding the only LSTM layer's arrays in a legacy full-model file."""
    name = next(iter(jaxlstm.read_keras_file(f.filename).layers))
    return f["model_weights"][name], name


def test_all_errors_share_one_base():
    for cls in (
        KerasFileError,
        LayerNotFoundError,
        UnsupportedOptionError,
        UnknownActivationError,
        jaxlstm.ShapeError,
    ):
        assert issubclass(cls, jaxlstm.JaxLSTMError)


def test_missing_file(tmp_path):
    with pytest.raises(KerasFileError, match=r"nope\.h5: no such file"):
        jaxlstm.load_keras_layer(tmp_path / "nope.h5")


def test_not_a_keras_container(tmp_path):
    p = tmp_path / "model.h5"
    p.write_text("hello, I am a text file")
    with pytest.raises(KerasFileError, match="neither an HDF5 file nor a zip archive"):
        jaxlstm.load_keras_layer(p)


def test_hdf5_that_keras_did_not_write(tmp_path):
    p = tmp_path / "data.h5"
    with h5py.File(p, "w") as f:
        f["stuff"] = np.ones(3)
    with pytest.raises(KerasFileError, match="an HDF5 file, but not one Keras wrote"):
        jaxlstm.load_keras_layer(p)


def test_truncated_hdf5(tmp_path):
    data = SEQ.read_bytes()
    p = tmp_path / "cut.h5"
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(KerasFileError, match=r"cut\.h5: unreadable HDF5 file"):
        jaxlstm.load_keras_layer(p)


def test_broken_zip(tmp_path):
    p = tmp_path / "m.keras"
    p.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    with pytest.raises(KerasFileError, match=r"not a readable \.keras zip archive"):
        jaxlstm.load_keras_layer(p)


def test_archive_without_config(tmp_path):
    p = tmp_path / "m.keras"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("metadata.json", "{}")
    with pytest.raises(
        KerasFileError, match=r"has no 'config.json' .*expected a file written by Keras 3"
    ):
        jaxlstm.load_keras_layer(p)


def test_archive_with_bad_json(tmp_path):
    p = tmp_path / "m.keras"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("config.json", "{not json")
        z.writestr("model.weights.h5", b"")
    with pytest.raises(KerasFileError, match=r"config\.json in the archive is not valid JSON"):
        jaxlstm.load_keras_layer(p)


def test_bad_model_config_json(tmp_path):
    p = copy(tmp_path)
    with h5py.File(p, "r+") as f:
        f.attrs["model_config"] = "{broken"
    with pytest.raises(KerasFileError, match="attribute 'model_config' is not valid JSON"):
        jaxlstm.load_keras_layer(p)


def test_unknown_layer_name_lists_the_lstm_layers():
    with pytest.raises(
        LayerNotFoundError,
        match=r"no recurrent layer named 'nope'; the file's recurrent layers \(LSTM, GRU, "
        r"SimpleRNN\) are \['",
    ):
        jaxlstm.load_keras_layer(SEQ, "nope")


def test_non_lstm_layer_is_named_as_such():
    kf = jaxlstm.read_keras_file(FIX / "keras2" / "lstm_last.h5")
    other, cls = kf.other_layers[0]
    with pytest.raises(LayerNotFoundError, match=f"is a {cls} layer, not a recurrent one"):
        jaxlstm.load_keras_layer(kf.path, other)


def test_several_lstm_layers_need_a_name(tmp_path):
    p = copy(tmp_path)
    with h5py.File(p, "r+") as f:  # add a second LSTM, "twin", with the first one's weights
        cfg = json.loads(f.attrs["model_config"])
        layers = cfg["config"]["layers"]
        twin = json.loads(json.dumps(next(la for la in layers if la["class_name"] == "LSTM")))
        f["model_weights"].copy(f["model_weights"][twin["config"]["name"]], "twin")
        twin["config"]["name"] = "twin"
        layers.append(twin)
        f.attrs["model_config"] = json.dumps(cfg)
        g = f["model_weights"]
        names = [n if isinstance(n, bytes) else n.encode() for n in g.attrs["layer_names"]]
        g.attrs["layer_names"] = np.array([*names, b"twin"])
    with pytest.raises(
        LayerNotFoundError, match=r"has 2 recurrent layers .* pass name=\.\.\. to choose one"
    ):
        jaxlstm.load_keras_layer(p)
    assert isinstance(jaxlstm.load_keras_layer(p, "twin"), jaxlstm.LSTM)


def test_wrong_recurrent_kernel_shape(tmp_path):
    p = copy(tmp_path)
    _replace(p, "recurrent_kernel", np.ones((5, 7), np.float32))
    with pytest.raises(
        KerasFileError,
        match=r"layer '.*': recurrent_kernel should have shape \(units, 4\*units\); "
        r"found .*\(5, 7\)",
    ):
        jaxlstm.load_keras_layer(p)


def _replace(p, role, array):
    with h5py.File(p, "r+") as f:
        g, _ = lstm_group(f)
        names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
        wname = next(n for n in names if n.split("/")[-1].split(":")[0] == role)
        del g[wname]
        g[wname] = array


def test_wrong_kernel_shape(tmp_path):
    p = copy(tmp_path)
    _replace(p, "kernel", np.ones((4, 7), np.float32))
    with pytest.raises(
        KerasFileError,
        match=r"kernel should have shape \(in_features, 4\*units\) = "
        r"\(in_features, 20\) for units=5",
    ):
        jaxlstm.load_keras_layer(p)


def test_wrong_bias_shape(tmp_path):
    p = copy(tmp_path)
    _replace(p, "bias", np.ones((7,), np.float32))
    with pytest.raises(
        KerasFileError,
        match=r"bias should have shape \(4\*units,\) = \(20,\) \(or \(40,\) for CuDNNLSTM\)",
    ):
        jaxlstm.load_keras_layer(p)


def test_config_units_disagree_with_weights(tmp_path):
    p = copy(tmp_path)
    with h5py.File(p, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        for layer in cfg["config"]["layers"]:
            if layer["class_name"] == "LSTM":
                layer["config"]["units"] = 9
        f.attrs["model_config"] = json.dumps(cfg)
    with pytest.raises(
        KerasFileError, match="the config says units=9 but the weights have units=5"
    ):
        jaxlstm.load_keras_layer(p)


def test_missing_dataset(tmp_path):
    p = copy(tmp_path)
    with h5py.File(p, "r+") as f:
        g, _ = lstm_group(f)
        first = g.attrs["weight_names"][0]
        del g[first.decode() if isinstance(first, bytes) else first]
    with pytest.raises(
        KerasFileError, match=r"lists array .* in 'weight_names' but the file has no such dataset"
    ):
        jaxlstm.load_keras_layer(p)


def test_missing_layer_group(tmp_path):
    p = copy(tmp_path)
    with h5py.File(p, "r+") as f:
        _, name = lstm_group(f)
        del f["model_weights"][name]
    with pytest.raises(KerasFileError, match="is listed in 'layer_names' but has no group"):
        jaxlstm.load_keras_layer(p)


def _set_lstm_option(p, key, value):
    with h5py.File(p, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        for layer in cfg["config"]["layers"]:
            if layer["class_name"] == "LSTM":
                layer["config"][key] = value
        f.attrs["model_config"] = json.dumps(cfg)


def test_custom_activation_name_needs_an_override(tmp_path):
    p = copy(tmp_path)
    _set_lstm_option(p, "activation", "my_act")
    with pytest.raises(
        UnknownActivationError, match=r"unknown activation 'my_act'.*activation=my_fn"
    ):
        jaxlstm.load_keras_layer(p)
    module = jaxlstm.load_keras_layer(p, activation=jnp.tanh)
    expected, _, want = recorded(SEQ)
    assert_matches_keras(module(expected["x"]), want)


def test_custom_activation_object_is_not_executed(tmp_path):
    p = copy(tmp_path)
    _set_lstm_option(p, "activation", {"module": "os", "class_name": "system", "config": {}})
    with pytest.raises(
        UnsupportedOptionError, match=r"activation is a custom object .* jaxlstm runs no code"
    ):
        jaxlstm.load_keras_layer(p)


def test_unknown_config_option_warns(tmp_path):
    p = copy(tmp_path)
    _set_lstm_option(p, "frobnicate", 3)
    with pytest.warns(UserWarning, match="ignoring unknown LSTM option frobnicate=3"):
        jaxlstm.load_keras_layer(p)


def test_unknown_override():
    with pytest.raises(
        UnsupportedOptionError, match=r"unknown option\(s\) \['colour'\] for load_keras_layer"
    ):
        jaxlstm.load_keras_layer(SEQ, colour="red")


def test_bidirectional_direction_cannot_be_overridden():
    with pytest.raises(
        UnsupportedOptionError, match="go_backwards cannot be overridden for a Bidirectional"
    ):
        jaxlstm.load_keras_layer(FIX / "keras2" / "bidi_concat.h5", go_backwards=True)


def test_keras3_archive_missing_weights_group(tmp_path):
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((3, 2)), keras.layers.LSTM(2, name="l")])
    p = tmp_path / "m.keras"
    model.save(p)
    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(p) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "model.weights.h5":
                w = tmp_path / "w.h5"
                w.write_bytes(data)
                with h5py.File(w, "r+") as f:
                    del f["layers/lstm"]
                data = w.read_bytes()
            dst.writestr(item, data)
    with pytest.raises(KerasFileError, match=r"layer 'l' should keep its weights at 'layers/lstm'"):
        jaxlstm.load_keras_layer(broken)


def test_cli_reports_errors_without_traceback(capsys, tmp_path):
    from jaxlstm._src.cli import main

    assert main(["inspect", str(tmp_path / "missing.h5")]) == 2
    err = capsys.readouterr().err
    assert "jaxlstm: error:" in err and "no such file" in err and "Traceback" not in err


def test_archive_with_damaged_weights(tmp_path):
    p = tmp_path / "m.keras"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr(
            "config.json", json.dumps({"class_name": "Sequential", "config": {"layers": []}})
        )
        z.writestr("model.weights.h5", SEQ.read_bytes()[:2000])
    with pytest.raises(KerasFileError, match=r"model\.weights\.h5 in the archive is unreadable"):
        jaxlstm.load_keras_layer(p)


# --- only what parsing a file raises is blamed on the file (issue 10 item 7) ----------------

MODELS = FIX / "keras2_models"
KERAS3 = Path(jaxlstm.__file__).parent / "data" / "keras3_bidirectional.keras"


def _bug(exc):
    def raise_(*args, **kwargs):
        raise exc("module 'flax.nnx' has no attribute 'data'")  # as an older Flax did

    return raise_


@pytest.mark.parametrize(
    "target,call,exc",
    [
        (
            "jaxlstm._src.readers.legacy_h5.record_from_config",
            lambda: jaxlstm.read_keras_file(SEQ),
            AttributeError,
        ),
        (
            "jaxlstm._src.readers.keras_v3.record_from_config",
            lambda: jaxlstm.read_keras_file(KERAS3),
            KeyError,
        ),
        ("jaxlstm._src.readers.h5attrs.text", lambda: jaxlstm.read_keras_file(SEQ), TypeError),
        ("jaxlstm._src.load.params_from_arrays", lambda: jaxlstm.load_keras_layer(SEQ), TypeError),
        (
            "jaxlstm._src.models.layers.Dense.__init__",
            lambda: jaxlstm.load_keras(MODELS / "forecaster.h5"),
            AttributeError,
        ),
        (
            "jaxlstm._src.models.graph._topological",
            lambda: jaxlstm.load_keras(MODELS / "seq2seq.h5"),
            ValueError,
        ),
        (
            "jaxlstm._src.modules.nnx.LSTM.__init__",
            lambda: jaxlstm.load_keras(KERAS3),
            AttributeError,
        ),
    ],
)
def test_a_bug_of_ours_or_a_dependency_is_not_reported_as_a_damaged_file(
    monkeypatch, target, call, exc
):
    monkeypatch.setattr(target, _bug(exc))
    with pytest.raises(exc, match=r"flax\.nnx' has no attribute 'data'") as info:
        call()
    assert not isinstance(info.value, jaxlstm.JaxLSTMError)


def _edit_config(tmp_path, src, edit) -> Path:
    p = copy(tmp_path, src)
    with h5py.File(p, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        edit(config)
        f.attrs["model_config"] = json.dumps(config).encode()
    return p


def _layer(config, name):
    return next(e for e in config["config"]["layers"] if e["config"].get("name") == name)


@pytest.mark.parametrize(
    "src,edit,match",
    [
        (
            "autoencoder",
            lambda c: _layer(c, "repeat_vector")["config"].update(n="six"),
            r"layer 'repeat_vector' \(RepeatVector\): option n='six'; expected an integer",
        ),
        (
            "masking_layers",
            lambda c: _layer(c, "gaussian_dropout")["config"].update(rate=1.5),
            r"\(GaussianDropout\): option rate=1.5; expected a number in \[0.0, 1.0\]",
        ),
        (
            "forecaster",
            lambda c: _layer(c, "dense")["config"].update(use_bias="yes"),
            r"\(Dense\): option use_bias='yes'; expected true or false",
        ),
        (
            "seq2seq",
            lambda c: _layer(c, "lstm")["inbound_nodes"][0][0].__setitem__(1, "zero"),
            r"layer 'lstm': inbound_nodes: a tensor reference \['input_1', 'zero', 0, \{\}\]; "
            r"expected \[layer name, node index, tensor index\]",
        ),
        (
            "seq2seq",
            lambda c: _layer(c, "lstm")["inbound_nodes"][0].__setitem__(0, "input_1"),
            r"layer 'lstm': inbound_nodes: call #0 is \['input_1'\]; expected a list of",
        ),
        (
            "seq2seq",
            lambda c: c["config"].update(output_layers=[["dense", 7, 0]]),
            r"output_layers name \['dense'\], which no layer call of the model produces",
        ),
    ],
)
def test_a_damaged_config_value_is_named(tmp_path, src, edit, match):
    p = _edit_config(tmp_path, MODELS / f"{src}.h5", edit)
    with pytest.raises(KerasFileError, match=match):
        jaxlstm.load_keras(p)


def test_keras1_per_gate_arrays_that_do_not_fit(tmp_path):
    p = copy(tmp_path, FIX / "keras1" / "k1_lstm.h5")
    with h5py.File(p, "r+") as f:
        g = f["model_weights"]["lstm_1"]
        del g["lstm_1_W_f"]
        g["lstm_1_W_f"] = np.ones((4, 4), np.float32)  # in_features 4, the others 3
    with pytest.raises(
        KerasFileError, match=r"Keras 1's per-gate arrays should be W_\* \(in_features, units\)"
    ):
        jaxlstm.load_keras_layer(p)


def test_wrong_number_of_model_inputs_names_the_inputs():
    x = np.zeros((2, 6, 3), np.float32)
    model = jaxlstm.load_keras(MODELS / "seq2seq.h5")
    with pytest.raises(
        jaxlstm.ShapeError, match=r"takes 2 input\(s\) \['input_1', 'input_2'\]; received 1"
    ):
        model(x)
    sequential = jaxlstm.load_keras(MODELS / "forecaster.h5")
    with pytest.raises(jaxlstm.ShapeError, match=r"takes 1 input\(s\) \['input_1'\]; received 2"):
        sequential(x, x)


def test_a_model_config_that_is_a_bare_empty_list(tmp_path):
    """Found by the fuzz tests once our own errors stopped being swallowed: an AttributeError
    from treating the list as a dict, reported until then as a damaged file by accident."""
    p = copy(tmp_path, MODELS / "forecaster.h5")
    with h5py.File(p, "r+") as f:
        f.attrs["model_config"] = b"[]"
    with pytest.raises(KerasFileError, match="a Sequential model with no layers to run"):
        jaxlstm.load_keras(p)
