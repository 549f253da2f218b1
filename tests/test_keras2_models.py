"""Whole models written by real tf.keras 2.21 (tests/fixtures/make_model_fixtures.py) against
the outputs Keras computed: files Keras 3 itself refuses to load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import assert_matches_keras, recorded

import jaxlstm

FIX = Path(__file__).parent / "fixtures" / "keras2_models"
# gru_refused (named when GRUs were refused) now loads
REFUSED = {"lambda_refused": "Lambda", "ctc_head": "Lambda"}
CASES = sorted(p.stem for p in FIX.glob("*.h5") if p.stem not in REFUSED)


@pytest.mark.parametrize("name", CASES)
def test_keras2_model_matches_keras(name):
    data, inputs, want = recorded(FIX / f"{name}.h5")
    model = jaxlstm.load_keras(FIX / f"{name}.h5")
    if "chunk" in data:  # Keras's outputs were streamed chunk by chunk
        chunk, states, got = int(data["chunk"]), None, []
        for i in range(0, inputs[0].shape[1], chunk):  # initial states fed whole each time
            part = inputs[0][:, i : i + chunk]
            y, states = model.call_with_state(part, *inputs[1:], states=states)
            got.append(np.asarray(y))
        got = (np.concatenate(got, axis=1),)
    else:
        got = model(*inputs)
    assert_matches_keras(got, want)


@pytest.mark.parametrize("name,cls", sorted(REFUSED.items()))
def test_unsupported_layers_are_refused_without_running_them(name, cls):
    with pytest.raises(jaxlstm.UnsupportedLayerError, match=rf"is {cls}: .*custom_layers="):
        jaxlstm.load_keras(FIX / f"{name}.h5")


def test_model_graph_leaves_its_lstms_options_as_the_file_says():
    """The graph asks each LSTM for its final state per call; the modules keep the file's options
    (what ``model.layer(name)`` hands out, and what ``save_keras`` writes back)."""
    model = jaxlstm.load_keras(FIX / "classifier_right_pad.h5")
    rnns = [m.module for m in model.layers.values() if hasattr(m, "module")]
    assert len(rnns) == 2
    for bi in rnns:
        assert bi.return_state is False
        for lstm in (bi.forward, bi.backward):
            assert lstm.return_state is False and lstm.zero_output_for_mask is False
    seq2seq = jaxlstm.load_keras(FIX / "seq2seq.h5")
    flags = sorted(m.module.return_state for m in seq2seq.layers.values() if hasattr(m, "module"))
    assert flags == [True, True]  # both LSTMs say return_state=True in the file


def _with_edited_rnn_call(tmp_path, edit) -> Path:
    """A copy of tests/fixtures/keras2/bidi_state.h5 (a tf.keras Bidirectional called with
    initial states and a mask) whose Bidirectional entry ``edit(entry)`` changes."""
    import json
    import shutil

    import h5py

    path = tmp_path / "bidi_state.h5"
    shutil.copy(FIX.parent / "keras2" / "bidi_state.h5", path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        (entry,) = [e for e in config["config"]["layers"] if e["class_name"] == "Bidirectional"]
        edit(entry)
        f.attrs["model_config"] = json.dumps(config)
    return path


def test_rnn_called_with_constants_is_refused(tmp_path):
    """A non-null ``constants`` call argument, or ``num_constants`` in the config (tf.keras's
    graph form: the constants are the call's last tensors, which would be read as initial
    states), is refused naming the layer; ``constants: null`` loads (test above)."""

    def in_kwargs(entry):
        for tensor in entry["inbound_nodes"][0]:
            tensor[3]["constants"] = [["mask", 0, 0]]

    def in_config(entry):
        entry["config"]["num_constants"] = 1

    for edit in (in_kwargs, in_config):
        path = _with_edited_rnn_call(tmp_path, edit)
        with pytest.raises(
            jaxlstm.UnsupportedOptionError,
            match=r"layer 'bidi_st' is called with constants .*expected none \(constants: null\)",
        ):
            jaxlstm.load_keras(path)
    jaxlstm.load_keras(_with_edited_rnn_call(tmp_path, lambda entry: None))  # unedited: loads
