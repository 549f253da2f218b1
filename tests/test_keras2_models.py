"""Whole models written by real tf.keras 2.21 (tests/fixtures/make_model_fixtures.py) against
the outputs Keras computed: files Keras 3 itself refuses to load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import assert_matches_keras, recorded

import jaxlstm

FIX = Path(__file__).parent / "fixtures" / "keras2_models"
REFUSED = {"lambda_refused": "Lambda"}  # gru_refused (named when GRUs were refused) now loads
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
