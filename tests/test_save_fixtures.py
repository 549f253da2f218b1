"""Every fixture load_keras reads, through save_keras into ``.keras`` and legacy ``.h5``, back
into live Keras 3 (JAX backend) with the numbers Keras computed when it wrote the fixture.

Fixtures Keras 3 cannot reproduce (Keras 1/2's ``hard_sigmoid``, ``time_major``, a tf.keras stateful
LSTM fed its initial state) must be refused
with our error and leave nothing behind. The default run takes a representative subset (one
file of each kind and every path of the config rewrite); ``-m slow`` takes them all."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import assert_matches_keras, recorded

import jaxlstm

keras = pytest.importorskip("keras")
ROOT = Path(__file__).parent.parent
FILES = sorted(
    p.relative_to(ROOT).as_posix()
    for p in [
        *(ROOT / "tests" / "fixtures").glob("keras*/*.h5"),
        *(ROOT / "jaxlstm" / "data").glob("*.h5"),
        *(ROOT / "jaxlstm" / "data").glob("*.keras"),
    ]
)
WEIGHTS_ONLY = {  # no model config: load_keras refuses them (test_errors pins that)
    "tests/fixtures/keras1/k1_weights_only.h5",
    "tests/fixtures/keras2/bidi_gru_weights_only.h5",
    "tests/fixtures/keras2/conv_lstm2d_weights_only.h5",
    "tests/fixtures/keras2/cudnn_bidi_weights_only_keras224.h5",
    "tests/fixtures/keras2/cudnn_gru_weights_only_keras224.h5",
    "tests/fixtures/keras2/cudnn_weights_only_keras224.h5",
    "tests/fixtures/keras2/gru_weights_only_keras224.h5",
    "tests/fixtures/keras2/stacked_bidi_weights_only.h5",
    "tests/fixtures/keras2/stacked_cells_weights_only.h5",
    "tests/fixtures/keras2/weights_only.h5",
    "tests/fixtures/keras2/weights_only_keras224.h5",
}
NOT_LOADABLE = {  # load_keras refuses these on purpose (test_models pins that)
    "tests/fixtures/keras2_models/lambda_refused.h5": r"layer 'lambda' is Lambda",
    "tests/fixtures/keras2_models/ctc_head.h5": r"layer 'ctc' is Lambda",  # loads cut: test_cut
}
REFUSED = {  # what Keras 3 would compute differently: save_keras must refuse
    "jaxlstm/data/keras1_lstm.h5": r"recurrent_activation='hard_sigmoid', which meant clip",
    "jaxlstm/data/keras2_hard_sigmoid.h5": r"recurrent_activation='hard_sigmoid', which meant",
    "tests/fixtures/keras1/k1_bidi.h5": r"recurrent_activation='hard_sigmoid', which meant",
    "tests/fixtures/keras1/k1_gru.h5": r"recurrent_activation='hard_sigmoid', which meant",
    "tests/fixtures/keras2/gru_reset_before.h5": r"recurrent_activation='hard_sigmoid', which",
    "tests/fixtures/keras1/k1_lstm.h5": r"recurrent_activation='hard_sigmoid', which meant",
    "tests/fixtures/keras2/lstm_hard_sigmoid.h5": r"recurrent_activation='hard_sigmoid', which",
    "tests/fixtures/keras2_models/time_major.h5": r"time_major=True, which Keras 3 layers do not",
    # tf.keras streams these from the carried state, Keras 3 from the fed one (carried_state_wins)
    "tests/fixtures/keras2_models/stateful_initial_state.h5": r"layer 'lstm' is stateful and "
    r"called with initial_state .*Keras 3 restarts it from the fed state",
    "tests/fixtures/keras2_models/stateful_bidi_initial_state.h5": r"layer 'bidirectional' is "
    r"stateful and called with initial_state .*Keras 3 would compute different numbers",
    "tests/fixtures/keras2_models/softmax_masked.h5": r"a Softmax called with a mask\. tf\.keras",
    # an RNN fed initial states runs without its input's mask in Keras 3, with it in tf.keras
    "tests/fixtures/keras2_models/attention_seq2seq.h5": r"layer 'lstm_1' is called with "
    r"initial_state in a model with masks \(from 'embedding'\)\. Keras 3 runs an RNN",
    # tf.keras's ConvLSTM default: its hard_sigmoid; in Bidirectional it kept masked outputs
    "tests/fixtures/keras2/conv_lstm2d.h5": r"recurrent_activation='hard_sigmoid', which meant",
    "tests/fixtures/keras2/conv_lstm2d_bidi.h5": r"tf\.keras Bidirectional\(ConvLSTM\) returning "
    r"sequences: tf\.keras's ConvLSTM repeats the previous output at masked steps",
}
SAVED = [f for f in FILES if f not in WEIGHTS_ONLY | set(NOT_LOADABLE) | set(REFUSED)]
DEFAULT = {  # one of each family, and every rewrite: Keras 1 names, CuDNN, constants=None,
    # chunked attributes, initial states with a mask, nested, TimeDistributed, several inputs
    # (Keras 3 files: test_save.py's fine-tuning round trips and the legacy .h5 test below)
    "tests/fixtures/keras1/k1_lstm_122.h5",
    "tests/fixtures/keras2/bidi_state.h5",
    "tests/fixtures/keras2/chunked.h5",
    "tests/fixtures/keras2/cudnn_bidi.h5",
    "tests/fixtures/keras2/cudnn_gru.h5",  # CuDNNGRU -> GRU(reset_after=True)
    "tests/fixtures/keras1/k1_simple_rnn.h5",  # Keras 1 SimpleRNN option names
    "tests/fixtures/keras2_models/gru_refused.h5",  # (named when GRUs were refused)
    "tests/fixtures/keras2/lstm_state_backwards.h5",
    "tests/fixtures/keras2/time_distributed.h5",
    "tests/fixtures/keras2_models/nested.h5",
    "tests/fixtures/keras2_models/seq2seq.h5",
    "tests/fixtures/keras2/stacked_cells.h5",  # nested initial-state inbound nodes
    "tests/fixtures/keras2/conv_lstm3d_no_bias.h5",  # ConvLSTM3D (tf.keras's time_major dropped)
}


def _kind(name: str, tmp_path: Path) -> str:
    """What a fixture is, found by trying it: weights only, not loadable, refused by
    save_keras (for Keras 3 would compute other numbers), or saved."""
    if name.endswith(".h5"):
        with h5py.File(ROOT / name) as f:
            if "model_config" not in f.attrs:
                return "weights only"
    try:
        model = jaxlstm.load_keras(ROOT / name)
    except jaxlstm.UnsupportedLayerError as err:
        assert re.search(NOT_LOADABLE.get(name, "$^"), str(err)), (name, str(err))
        return "not loadable"
    try:
        jaxlstm.save_keras(model, tmp_path / "m.keras")
    except jaxlstm.UnsupportedOptionError:
        return "refused"  # the refusal's text is pinned below
    return "saved"


def test_the_lists_cover_every_fixture(tmp_path):
    """Each fixture is in the list of what it is, found by trying it: a fixture added without
    a list entry, or listed as what it is not, fails here, in the default run."""
    lists = {
        "weights only": WEIGHTS_ONLY,
        "not loadable": set(NOT_LOADABLE),
        "refused": set(REFUSED),
        "saved": set(SAVED),
    }
    kinds = {name: _kind(name, tmp_path) for name in FILES}
    for kind, names in lists.items():
        assert names == {n for n, k in kinds.items() if k == kind}, kind
    assert DEFAULT <= set(SAVED) and len(SAVED) >= 30


@functools.cache
def loaded(name: str):
    """The jaxlstm model, its inputs (in the model's order), Keras's recorded outputs, the
    layer they belong to (``None`` when they are the model's own outputs) and whether the
    model is fed a mask and initial states."""
    data, ins, outs = recorded(ROOT / name)  # outs: out0, out1, ..., out10 by number
    model = jaxlstm.load_keras(ROOT / name)
    names = [r.layer for r in model.inputs]
    if not ins:  # the layer fixtures: inputs named after their npz keys; Sequential: x
        ins = [data[n] for n in names] if set(names) <= set(data) else [data["x"]]
    assert len(ins) == len(names), (name, len(ins), names)
    if "chunk" in data:  # Keras streamed it; compare the first chunk from a fresh state
        ins = [ins[0][:, : int(data["chunk"])]]
        outs = [outs[0][:, : int(data["chunk"])]]
    layer = str(data["layer"]) if "layer" in data else ""
    if not layer or all(r.layer == layer for r in model.outputs):
        layer = None  # Keras recorded the model's outputs
    stateful_mask = "mask" in data and any(
        k.startswith("initial_") or k == "h0"
        for k in data  # h0: stacked cells' states
    )
    return model, ins, outs, layer, stateful_mask


def _keras_layer_outputs(kmodel, layer: str, ins) -> list[np.ndarray]:
    """Keras 3's outputs of ``layer`` (top level, or inside a model called on the model's
    inputs) in ``kmodel`` on ``ins``: the layer whose outputs Keras recorded."""
    feed = ins if len(ins) > 1 else ins[0]
    names = [lay.name for lay in kmodel.layers]
    if layer in names:
        sub = keras.Model(kmodel.inputs, kmodel.get_layer(layer).output)
    else:
        (inner,) = [
            lay
            for lay in kmodel.layers
            if isinstance(lay, keras.Model) and layer in [x.name for x in lay.layers]
        ]
        (node,) = inner._inbound_nodes  # called once, on the model's own inputs
        assert [t.name for t in node.input_tensors] == [t.name for t in kmodel.inputs]
        sub = keras.Model(inner.inputs, inner.get_layer(layer).output)
    got = sub(feed, training=False)
    return [np.asarray(g) for g in (got if isinstance(got, list | tuple) else [got])]


def _unrolled(kmodel) -> None:
    """Keras's JAX backend, on its lax.scan path, outputs h0 at masked steps before the first
    unmasked one when the initial state is not zero; its TensorFlow backend (which wrote these
    fixtures), NumPy, PyTorch and JAX's unrolled path output zeros (test_keras3_parity pins
    both). Ask Keras-on-JAX for the latter. (Its lax.scan path also repeats ``states[-1][0]``
    at masked steps of stacked cells, which for a last cell's state fed as a bare tensor is a
    row of it, not the previous output; the unrolled path repeats the output.)"""
    for layer in kmodel.layers:
        for part in (
            layer,
            getattr(layer, "forward_layer", None),
            getattr(layer, "backward_layer", None),
        ):
            if part is not None and hasattr(part, "unroll"):
                part.unroll = True


def check_round_trip(name: str, ext: str, tmp_path: Path) -> None:
    """The written file in live Keras 3 gives the numbers Keras recorded (the model's outputs,
    or the recorded layer's), and jaxlstm reads back what Keras 3 computes from it."""
    model, ins, want, layer, stateful_mask = loaded(name)
    out = tmp_path / f"{Path(name).stem}{ext}"
    jaxlstm.save_keras(model, out)
    kmodel = keras.saving.load_model(out, compile=False)
    if stateful_mask:
        _unrolled(kmodel)
    got = kmodel(ins if len(ins) > 1 else ins[0], training=False)
    got = [np.asarray(g) for g in (got if isinstance(got, list | tuple) else [got])]
    assert_matches_keras(_keras_layer_outputs(kmodel, layer, ins) if layer else got, want)
    # and jaxlstm reads back what it wrote, with Keras 3's numbers for that file
    assert_matches_keras(jaxlstm.load_keras(out)(*ins), got)


@pytest.mark.parametrize("ext", [".keras", ".h5"])
@pytest.mark.parametrize("name", sorted(DEFAULT))
def test_fixture_round_trips_through_keras3(name, ext, tmp_path):
    check_round_trip(name, ext, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("ext", [".keras", ".h5"])
@pytest.mark.parametrize("name", sorted(set(SAVED) - DEFAULT))
def test_every_other_fixture_round_trips_through_keras3(name, ext, tmp_path):
    check_round_trip(name, ext, tmp_path)


@pytest.mark.parametrize("ext", [".keras", ".h5", ".weights.h5"])
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_keras3_would_compute_differently_is_refused(name, ext, tmp_path):
    model = jaxlstm.load_keras(ROOT / name)
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=REFUSED[name]):
        jaxlstm.save_keras(model, tmp_path / f"m{ext}")
    assert os.listdir(tmp_path) == []


def _keras3_models():
    L = keras.layers
    seq = keras.Sequential(
        [keras.Input((5, 3)), L.Masking(), L.LSTM(4, return_sequences=True), L.Dense(2)]
    )
    inner = keras.Sequential([keras.Input((5, 3)), L.LSTM(4, return_sequences=True)], name="inner")
    x = keras.Input((5, 3))
    h = L.TimeDistributed(L.Dense(3))(inner(x))
    nested = keras.Model(x, L.Bidirectional(L.LSTM(2))(h))
    return {"sequential": seq, "nested": nested}


@pytest.mark.parametrize("kind", ["sequential", "nested"])
def test_a_keras3_legacy_h5_becomes_a_keras_archive_keras3_opens(kind, tmp_path):
    """Keras 3's own legacy .h5 saver leaves the model's class module out of its config; the
    .keras loader cannot find the class without it ("Could not locate class 'Sequential'")."""
    src = _keras3_models()[kind]
    x = np.random.default_rng(0).normal(size=(3, 5, 3)).astype("float32")
    x[1, 3:] = 0.0  # masked steps for the Masking layer
    want = np.asarray(src(x))
    src.save(tmp_path / "k3.h5")
    model = jaxlstm.load_keras(tmp_path / "k3.h5")
    jaxlstm.save_keras(model, tmp_path / "back.keras")
    back = keras.saving.load_model(tmp_path / "back.keras", compile=False)
    np.testing.assert_allclose(np.asarray(back(x)), want, atol=1e-5, rtol=0)


def _edited_copy(name: str, tmp_path: Path, edit) -> Path:
    """A copy of a fixture whose model_config ``edit`` changed in place."""
    out = tmp_path / Path(name).name
    shutil.copy(ROOT / name, out)
    with h5py.File(out, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        edit(config)
        f.attrs["model_config"] = json.dumps(config)
    return out


def test_what_keras1_and_tf_keras_options_keras3_cannot_read_are_refused(tmp_path):
    def regularized(config):
        config["config"][0]["config"]["W_regularizer"] = {"name": "WeightRegularizer", "l2": 0.01}

    src = _edited_copy("tests/fixtures/keras1/k1_lstm_122.h5", tmp_path, regularized)
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="has a Keras 1 W_regularizer"):
        jaxlstm.save_keras(jaxlstm.load_keras(src), tmp_path / "out.keras")

    def with_constants(config):
        bidi = next(e for e in config["config"]["layers"] if e["class_name"] == "Bidirectional")
        for ref in bidi["inbound_nodes"][0]:
            ref[3]["constants"] = [["initial_h_fw", 0, 0]]

    src = _edited_copy("tests/fixtures/keras2/bidi_state.h5", tmp_path, with_constants)
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="is called with constants"):
        jaxlstm.save_keras(jaxlstm.load_keras(src), tmp_path / "out.keras")
    assert sorted(os.listdir(tmp_path)) == ["bidi_state.h5", "k1_lstm_122.h5"]


@pytest.mark.parametrize(
    "name", ["tests/fixtures/keras2/cudnn_bidi.h5", "tests/fixtures/keras2_models/nested.h5"]
)
def test_a_keras2_model_as_keras3_weights_only(name, tmp_path):
    """.weights.h5 follows the Keras 3 model that the rewritten config builds (CuDNNLSTM become
    LSTM, nested models, InputLayers added): what load_weights reads into that model."""
    model, ins, want, layer, _ = loaded(name)
    assert layer is None  # the model's outputs were recorded
    jaxlstm.save_keras(model, tmp_path / "m.keras")
    jaxlstm.save_keras(model, tmp_path / "m.weights.h5")
    config = keras.saving.load_model(tmp_path / "m.keras", compile=False).get_config()
    fresh = keras.Model.from_config(config)  # new weights, from Keras's initializers
    fresh.load_weights(tmp_path / "m.weights.h5")
    got = fresh(ins if len(ins) > 1 else ins[0], training=False)
    for g, w in zip(got if isinstance(got, list | tuple) else [got], want, strict=True):
        np.testing.assert_allclose(np.asarray(g), w, atol=1e-5, rtol=0)
