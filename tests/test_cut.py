"""Part of a graph: load_keras(path, outputs=[...], inputs=[...]) against live Keras 3 sub-models
and a tf.keras 2.21 CTC training graph (tests/fixtures/make_model_fixtures.py, ``ctc_head``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import assert_matches_keras, recorded

import jaxlstm
from jaxlstm._src.inspect import describe_model

keras = pytest.importorskip("keras")
L = keras.layers
FIX = Path(__file__).parent / "fixtures" / "keras2_models"


def randomize(model, seed):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.uniform(-0.5, 0.5, w.shape).astype("float32"))
    return model


@keras.saving.register_keras_serializable(package="cut_tests")
class MetricHead(L.Layer):
    """A custom class with weights, as a training graph's metric layer: not Keras's own."""

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1],), name="w")

    def call(self, x):
        return x * self.w


def training_graph():
    """LSTM -> Dense softmax, then a loss Lambda over it and the labels, and a custom metric."""
    features = keras.Input((7, 5), name="features")
    labels = keras.Input((7, 4), name="labels")
    x = L.LSTM(6, return_sequences=True, name="lstm")(features)
    probs = L.Dense(4, activation="softmax", name="softmax")(x)
    loss = L.Lambda(lambda t: keras.ops.sum(t[0] * t[1], axis=-1), name="loss")([probs, labels])
    metric = MetricHead(name="metric")(probs)
    return randomize(keras.Model([features, labels], [probs, loss, metric]), 0)


@pytest.fixture(scope="module", params=[".keras", ".h5"])
def graph_file(request, tmp_path_factory):
    model = training_graph()
    path = tmp_path_factory.mktemp("cut") / f"train{request.param}"
    model.save(path)
    return model, path


X = np.random.default_rng(1).normal(size=(3, 7, 5)).astype("float32")


def test_outputs_cut_after_softmax_matches_keras(graph_file):
    keras_model, path = graph_file
    want = keras.Model(keras_model.inputs[0], keras_model.get_layer("softmax").output)(X)
    model = jaxlstm.load_keras(path, outputs=["softmax"])
    assert model.input_names == ("features",)  # the labels input only fed the heads
    assert set(model.layers) == {"lstm", "softmax"}
    assert_matches_keras(model(X), np.asarray(want))


def test_multi_output_cut_matches_keras(graph_file):
    keras_model, path = graph_file
    lstm, probs = (keras_model.get_layer(n).output for n in ("lstm", "softmax"))
    want = keras.Model(keras_model.inputs[0], [probs, lstm])(X)
    model = jaxlstm.load_keras(path, outputs=["softmax", ["lstm", 0, 0]])
    assert_matches_keras(model(X), [np.asarray(w) for w in want])


def test_refusal_of_a_head_at_the_end_suggests_the_cut(graph_file):
    _, path = graph_file
    with pytest.raises(
        jaxlstm.UnsupportedLayerError,
        match=r"is Lambda: .*load the graph only up to the layers before it.*"
        r"outputs=\['softmax'\]\)",
    ):
        jaxlstm.load_keras(path)


def test_no_suggestion_when_a_supported_layer_needs_the_unsupported_one(tmp_path):
    inp = keras.Input((4, 2))
    x = L.Lambda(lambda t: t * 2.0, name="double")(inp)
    model = keras.Model(inp, L.Dense(1, name="out")(L.LSTM(3, name="lstm")(x)))
    model.save(tmp_path / "m.keras")
    with pytest.raises(jaxlstm.UnsupportedLayerError, match="is Lambda") as err:
        jaxlstm.load_keras(tmp_path / "m.keras")
    assert "outputs=" not in str(err.value)


def test_what_the_cut_leaves_out_is_never_built(graph_file, monkeypatch):
    _, path = graph_file
    from jaxlstm._src.models import graph

    built = []
    real = graph._build_layer
    monkeypatch.setattr(
        graph,
        "_build_layer",
        lambda kf, node, *a: built.append(node.names) or real(kf, node, *a),
    )
    jaxlstm.load_keras(path, outputs=["softmax"])
    assert built == [("lstm",), ("softmax",)]


def test_cut_model_saves_as_a_keras_3_model_of_the_cut_graph(graph_file, tmp_path):
    keras_model, path = graph_file
    want = keras.Model(keras_model.inputs[0], keras_model.get_layer("softmax").output)(X)
    model = jaxlstm.load_keras(path, outputs=["softmax"])
    for name in ("cut.keras", "cut.h5"):
        jaxlstm.save_keras(model, tmp_path / name)
        back = keras.saving.load_model(tmp_path / name)  # safe mode: no Lambda left
        assert [layer.name for layer in back.layers] == ["features", "lstm", "softmax"]
        assert_matches_keras(np.asarray(back(X)), np.asarray(want))


def encoder_decoder():
    enc_in = keras.Input((6, 3), name="encoder_inputs")
    dec_in = keras.Input((5, 2), name="decoder_inputs")
    _, h, c = L.LSTM(4, return_state=True, name="encoder")(enc_in)
    dec = L.LSTM(4, return_sequences=True, name="decoder")(dec_in, initial_state=[h, c])
    out = L.Dense(3, activation="softmax", name="softmax")(dec)
    return randomize(keras.Model([enc_in, dec_in], out), 2)


@pytest.fixture(scope="module")
def seq2seq_file(tmp_path_factory):
    model = encoder_decoder()
    path = tmp_path_factory.mktemp("cut") / "seq2seq.keras"
    model.save(path)
    return model, path


def test_inputs_cut_feeds_the_decoder_alone(seq2seq_file):
    keras_model, path = seq2seq_file
    rng = np.random.default_rng(3)
    enc, dec = rng.normal(size=(2, 6, 3)), rng.normal(size=(2, 5, 2))
    enc, dec = enc.astype("float32"), dec.astype("float32")
    want = np.asarray(keras_model([enc, dec]))
    encoder = keras.Model(keras_model.inputs[0], keras_model.get_layer("encoder").output)
    _, h, c = (np.asarray(t) for t in encoder(enc))
    model = jaxlstm.load_keras(
        path, inputs=["decoder_inputs", "encoder:0:1", "encoder:0:2"], outputs=["softmax"]
    )
    assert "encoder" not in model.layers
    assert model.input_names == ("decoder_inputs", "encoder_0_1", "encoder_0_2")
    assert_matches_keras(model(dec, h, c), want)
    states = jaxlstm.load_keras(path, outputs=["encoder:0:1", "encoder:0:2"])
    assert states.input_names == ("encoder_inputs",)
    assert_matches_keras(states(enc), [h, c])


def test_missing_input_is_named(seq2seq_file):
    _, path = seq2seq_file
    with pytest.raises(
        jaxlstm.JaxLSTMError,
        match=r"output 'softmax' depends on the model input 'encoder_inputs', which "
        r"inputs=\['decoder_inputs'\] does not give",
    ):
        jaxlstm.load_keras(path, inputs=["decoder_inputs"])


def test_unknown_names_list_the_layers(seq2seq_file):
    _, path = seq2seq_file
    with pytest.raises(
        jaxlstm.LayerNotFoundError,
        match=r"outputs='nope': the model has no layer named 'nope'; its layers are "
        r"\['encoder_inputs', 'decoder_inputs', 'encoder', 'decoder', 'softmax'\]",
    ):
        jaxlstm.load_keras(path, outputs=["nope"])
    with pytest.raises(jaxlstm.LayerNotFoundError, match="no layer named 'enc'"):
        jaxlstm.load_keras(path, inputs=["enc:0:1"])


def test_a_bare_name_of_a_layer_with_several_outputs_is_refused(seq2seq_file):
    _, path = seq2seq_file
    with pytest.raises(
        jaxlstm.JaxLSTMError,
        match=r"layer 'encoder' has several outputs .*\['encoder:0:0', 'encoder:0:1', "
        r"'encoder:0:2'\]",
    ):
        jaxlstm.load_keras(path, outputs=["encoder"])
    with pytest.raises(jaxlstm.JaxLSTMError, match=r"expected a layer name"):
        jaxlstm.load_keras(path, outputs=[3])
    with pytest.raises(jaxlstm.JaxLSTMError, match=r"has no call #1; its calls"):
        jaxlstm.load_keras(path, outputs=["softmax:1:0"])


def test_unused_returned_states_are_refused_for_a_bare_name(tmp_path):
    inp = keras.Input((4, 2), name="x")
    seq, _, _ = L.LSTM(3, return_sequences=True, return_state=True, name="lstm")(inp)
    keras.Model(inp, L.Dense(1, name="out")(seq)).save(tmp_path / "m.keras")
    with pytest.raises(jaxlstm.KerasFileError, match=r"outputs= names 'lstm', whose call has"):
        jaxlstm.load_keras(tmp_path / "m.keras", outputs=["lstm"])
    assert jaxlstm.load_keras(tmp_path / "m.keras", outputs=["lstm:0:0"]).layer("lstm")


def test_inputs_cut_skips_an_embedding_and_saves(tmp_path):
    ids = keras.Input((6,), dtype="int32", name="ids")
    emb = L.Embedding(10, 3, name="embedding")(ids)
    out = L.Dense(2, name="out")(L.LSTM(4, name="lstm")(emb))
    keras_model = randomize(keras.Model(ids, out), 4)
    keras_model.save(tmp_path / "m.keras")
    tokens = np.random.default_rng(5).integers(1, 10, size=(3, 6)).astype("int32")
    vectors = np.asarray(keras.Model(ids, emb)(tokens))
    want = np.asarray(keras_model(tokens))
    model = jaxlstm.load_keras(tmp_path / "m.keras", inputs=["embedding"])
    assert model.input_names == ("embedding",)
    assert_matches_keras(model(vectors), want)
    jaxlstm.save_keras(model, tmp_path / "cut.keras")
    back = keras.saving.load_model(tmp_path / "cut.keras")
    assert back.input_shape == (None, 6, 3)
    assert_matches_keras(np.asarray(back(vectors)), want)


def test_inputs_cut_saves_with_the_shapes_keras_3_records(seq2seq_file, tmp_path):
    _, path = seq2seq_file
    model = jaxlstm.load_keras(path, inputs=["decoder_inputs", "encoder:0:1", "encoder:0:2"])
    jaxlstm.save_keras(model, tmp_path / "dec.keras")
    back = keras.saving.load_model(tmp_path / "dec.keras")
    assert [tuple(t.shape) for t in back.inputs] == [(None, 5, 2), (None, 4), (None, 4)]


def test_inputs_cut_without_recorded_shapes_is_not_saved(tmp_path):
    model = jaxlstm.load_keras(FIX / "ctc_head.h5", inputs=["lstm"], outputs=["softmax"])
    with pytest.raises(jaxlstm.JaxLSTMError, match=r"input 'lstm' .* has no known shape"):
        jaxlstm.save_keras(model, tmp_path / "cut.keras")
    assert not (tmp_path / "cut.keras").exists()


def test_sequential_cut(tmp_path):
    keras_model = keras.Sequential(
        [
            keras.Input((5, 2)),
            L.LSTM(4, name="lstm"),
            L.Dense(3, name="dense"),
            L.Lambda(lambda t: t * 2.0, name="scale"),
        ]
    )
    randomize(keras_model, 6)
    keras_model.save(tmp_path / "s.keras")
    x = np.random.default_rng(7).normal(size=(2, 5, 2)).astype("float32")
    with pytest.raises(jaxlstm.UnsupportedLayerError, match=r"outputs=\['dense'\]"):
        jaxlstm.load_keras(tmp_path / "s.keras")
    model = jaxlstm.load_keras(tmp_path / "s.keras", outputs=["dense"])
    want = keras.Model(keras_model.inputs, keras_model.get_layer("dense").output)(x)
    assert_matches_keras(model(x), np.asarray(want))
    head = jaxlstm.load_keras(tmp_path / "s.keras", inputs=["lstm"], outputs=["dense"])
    h = np.asarray(keras.Model(keras_model.inputs, keras_model.get_layer("lstm").output)(x))
    assert_matches_keras(head(h), np.asarray(want))
    with pytest.raises(jaxlstm.JaxLSTMError, match="a Sequential model has one output"):
        jaxlstm.load_keras(tmp_path / "s.keras", outputs=["lstm", "dense"])


def test_inspect_shows_which_layers_feed_each_output(graph_file):
    _, path = graph_file
    text = describe_model(path)
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")}
    assert rows["layer"].rstrip().endswith("feeds")
    assert rows["labels"].rstrip().endswith("  loss")
    assert rows["softmax"].rstrip().endswith("softmax, loss, metric")
    assert "outputs=['softmax']" in text  # the refusal, with its suggestion


def test_tf_keras_ctc_training_graph_loads_up_to_softmax():
    data, inputs, _ = recorded(FIX / "ctc_head.h5")
    with pytest.raises(jaxlstm.UnsupportedLayerError, match=r"outputs=\['softmax'\]"):
        jaxlstm.load_keras(FIX / "ctc_head.h5")
    model = jaxlstm.load_keras(FIX / "ctc_head.h5", outputs=["softmax"])
    assert model.input_names == ("features",)
    assert_matches_keras(model(inputs[0]), data["softmax"])


def test_the_arrays_of_layers_outside_the_cut_are_not_read(graph_file, monkeypatch):
    _, path = graph_file
    from jaxlstm._src.readers import keras_v3, legacy_h5

    read = []
    for module in (keras_v3, legacy_h5):
        real = module.read_dataset
        monkeypatch.setattr(
            module,
            "read_dataset",
            lambda ds, what, *a, r=real: read.append(what) or r(ds, what, *a),
        )
    jaxlstm.load_keras(path, outputs=["lstm:0:0"])
    assert read and all("'lstm'" in what for what in read), read
    read.clear()
    with pytest.raises(jaxlstm.UnsupportedLayerError):
        jaxlstm.load_keras(path)
    assert any("'metric'" in what for what in read), read  # the check sees a real read


def test_inspect_of_a_sequential_model_shows_its_feeds(tmp_path):
    layers = [keras.Input((5, 2), name="x"), L.LSTM(4, name="lstm"), L.Dense(3, name="dense")]
    keras.Sequential(layers).save(tmp_path / "s.keras")
    rows = [line for line in describe_model(tmp_path / "s.keras").splitlines() if "LSTM" in line]
    assert rows[0].rstrip().endswith("dense")
    with pytest.raises(jaxlstm.JaxLSTMError, match="names the input of the Sequential stack"):
        jaxlstm.load_keras(tmp_path / "s.keras", outputs=["x"])


def test_attention_returning_its_scores_needs_the_tensor_named(tmp_path):
    q, v = keras.Input((3, 4), name="q"), keras.Input((5, 4), name="v")
    context, _ = L.Attention(name="att")([q, v], return_attention_scores=True)
    keras_model = keras.Model([q, v], L.Dense(2, name="out")(context))
    keras_model.save(tmp_path / "a.keras")
    with pytest.raises(jaxlstm.JaxLSTMError, match=r"layer 'att' has several outputs"):
        jaxlstm.load_keras(tmp_path / "a.keras", outputs=["att"])
    rng = np.random.default_rng(8)
    xq, xv = rng.normal(size=(2, 3, 4)).astype("float32"), rng.normal(size=(2, 5, 4))
    xv = xv.astype("float32")
    want = keras.Model(keras_model.inputs, keras_model.get_layer("att").output)([xq, xv])
    model = jaxlstm.load_keras(tmp_path / "a.keras", outputs=["att:0:0", "att:0:1"])
    assert_matches_keras(model(xq, xv), [np.asarray(w) for w in want])


def test_tf_keras_cut_saves_as_a_keras_3_model(tmp_path):
    data, inputs, _ = recorded(FIX / "ctc_head.h5")
    model = jaxlstm.load_keras(FIX / "ctc_head.h5", outputs=["softmax"])
    jaxlstm.save_keras(model, tmp_path / "ctc_softmax.keras")
    back = keras.saving.load_model(tmp_path / "ctc_softmax.keras")
    assert_matches_keras(np.asarray(back(inputs[0])), data["softmax"])


def test_a_shared_layer_keeps_only_the_calls_the_cut_needs(tmp_path):
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    dense = L.Dense(2, name="shared")
    keras_model = randomize(keras.Model([a, b], [dense(a), dense(b)]), 9)
    keras_model.save(tmp_path / "s.keras")
    with pytest.raises(jaxlstm.JaxLSTMError, match=r"'shared' is called 2 times"):
        jaxlstm.load_keras(tmp_path / "s.keras", outputs=["shared"])
    xa, xb = np.ones((2, 3), "float32"), np.random.default_rng(10).normal(size=(2, 3))
    xb = xb.astype("float32")
    model = jaxlstm.load_keras(tmp_path / "s.keras", outputs=["shared:1:0"])
    assert model.input_names == ("b",)
    assert_matches_keras(model(xb), np.asarray(keras_model([xa, xb])[1]))
    jaxlstm.save_keras(model, tmp_path / "cut.keras")
    assert_matches_keras(
        np.asarray(keras.saving.load_model(tmp_path / "cut.keras")(xb)),
        np.asarray(keras_model([xa, xb])[1]),
    )
