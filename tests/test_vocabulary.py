"""Keras's vocabulary (``jaxlstm._src.vocabulary``): the one parser of the ``keras_version`` a file
carries, and every default decided by it, against what each Keras release does."""

import pytest

from jaxlstm._src import vocabulary as v

# (version as written, major, tf.keras wrote it, GRU reset_after default, recurrent activation
# default, what a config's "hard_sigmoid" means), each row backed by a file that version wrote or
# by the writing Keras's own source (None: the version does not decide; see AMBIGUOUS_VERSIONS).
VERSIONS = [
    # Keras 1 writes no keras_version; keras/layers/recurrent.py 1.2.2: LSTM(inner_activation=
    # 'hard_sigmoid'), GRU has no reset_after (resets before the matmul): keras1/*.h5 fixtures
    ("1", 1, False, False, "hard_sigmoid_keras2", "hard_sigmoid_keras2"),
    ("1.2.2", 1, False, False, "hard_sigmoid_keras2", "hard_sigmoid_keras2"),  # k1_lstm_122.h5
    # standalone Keras 2.0-2.2, keras/layers/recurrent.py: recurrent_activation='hard_sigmoid',
    # GRU(reset_after=False) (the option arrived in 2.1.0 with that default)
    ("2.0.8", 2, False, False, "hard_sigmoid_keras2", "hard_sigmoid_keras2"),
    ("2.2.4", 2, False, False, "hard_sigmoid_keras2", "hard_sigmoid_keras2"),  # *_keras224.h5
    # tf.keras in TF 1.9-1.12 (__version__ '2.1.6-tf'): the v1 layers of layers/recurrent.py
    ("2.1.6-tf", 2, True, False, "hard_sigmoid_keras2", "hard_sigmoid_keras2"),
    # TF 1.13-2.1 all wrote '2.2.4-tf': v1 layers (hard_sigmoid, reset_after=False) until TF
    # 1.15, v2 layers (layers/recurrent_v2.py: sigmoid, reset_after=True) from TF 2.0
    ("2.2.4-tf", 2, True, None, None, "hard_sigmoid_keras2"),
    # Keras 2.3.0 took tf.keras 2.0's defaults (sigmoid, reset_after=True); TF 2.2 '2.3.0-tf'
    ("2.3.1", 2, False, True, "sigmoid", "hard_sigmoid_keras2"),
    ("2.3.0-tf", 2, True, True, "sigmoid", "hard_sigmoid_keras2"),
    # TF 2.3+ writes plain '2.x.y' (tf_keras/src/layers/rnn/lstm.py: 'sigmoid'); hard_sigmoid
    # stays clip(0.2x + 0.5) (tf_keras/src/activations.py): keras2/*.h5 fixtures, tf-keras 2.21
    ("2.4.0", 2, True, True, "sigmoid", "hard_sigmoid_keras2"),
    ("2.21.0", 2, True, True, "sigmoid", "hard_sigmoid_keras2"),  # keras2/lstm_hard_sigmoid.h5
    # Keras 3 (keras/src/layers/rnn/lstm.py, activations.py: relu6(x + 3) / 6), live in tests
    ("3.0.0", 3, False, True, "sigmoid", "hard_sigmoid"),
    ("3.15.1", 3, False, True, "sigmoid", "hard_sigmoid"),  # jaxlstm/data/*.keras
]


@pytest.mark.parametrize("version,major,tf_keras,reset_after,recurrent,hard", VERSIONS)
def test_each_keras_version_gets_its_own_defaults(
    version, major, tf_keras, reset_after, recurrent, hard
):
    assert v.keras_major(version) == major
    assert v.is_tf_keras(version) is tf_keras
    assert v.carried_state_wins(version) is tf_keras
    assert v.default_reset_after(version) is reset_after
    assert (version in v.AMBIGUOUS_VERSIONS) is (recurrent is None)
    assert v.default_recurrent_activation(version) == recurrent
    assert v.resolve_activation_name("hard_sigmoid", version) == hard
    assert v.resolve_activation_name("Tanh", version) == "tanh"


def test_versions_are_compared_as_numbers_not_text():
    assert v.keras_version_tuple("2.10.0") > v.keras_version_tuple("2.4.0")
    assert v.keras_version_tuple("2.2.4-tf") == (2, 2, 4)
    assert v.default_recurrent_activation("2.10.0") == "sigmoid"  # not "2.10" < "2.3"


@pytest.mark.parametrize("bad", ["2.4.0; rm -rf /", "x" * 65, "2.4\n0"])
def test_a_version_keras_never_writes_is_refused(bad):
    with pytest.raises(
        v.KerasFileError, match="is not a Keras version number; the file is damaged"
    ):
        v.clean_version(bad, "model.h5")


def test_model_tree_finds_every_layer_where_keras_3_keeps_its_weights(tmp_path):
    """``model_tree`` is the one walk of a config: its nodes' ``v3_path`` s are the groups
    Keras 3 itself wrote (numbered per class and per container), nested models, wrappers and
    cells included."""
    import json
    import zipfile

    import h5py
    import keras

    from jaxlstm._src.readers.records import model_tree

    inner = keras.Sequential(
        [
            keras.Input((5, 3), name="inp"),
            keras.layers.LSTM(4, return_sequences=True, name="l1"),
            keras.layers.LSTM(4, name="l2"),
        ],
        name="inner",
    )
    x = keras.Input((5, 3), name="x")
    a = keras.layers.TimeDistributed(keras.layers.Dense(3, name="tdd"), name="td")(x)
    b = keras.layers.Bidirectional(keras.layers.GRU(2, return_sequences=True), name="bi")(a)
    c = keras.layers.LSTM(3, name="last")(keras.layers.Dense(3, name="d1")(b))
    model = keras.Model(x, [inner(x), c, keras.layers.Dense(2, name="d2")(c)])
    path = tmp_path / "m.keras"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
        (tmp_path / "w.h5").write_bytes(z.read("model.weights.h5"))
    tree = model_tree(config, str(path))
    nodes = list(tree.descendants())
    assert [n.key for n in nodes] == [
        "x", "td", "bi", "d1", "last", "inner", "inner/inp", "inner/l1", "inner/l2", "d2",
    ]  # fmt: skip
    bi = next(n for n in nodes if n.name == "bi")
    with h5py.File(tmp_path / "w.h5") as f:
        for node in nodes:  # (a Sequential's InputLayer has no group: it holds nothing)
            assert node.v3_path in f or node.class_name == "InputLayer", node.key
        assert f[bi.v3_path]["forward_layer/cell/vars/0"].shape == (3, 6)
    assert bi.inner.class_name == "GRU" and bi.nested["backward_layer"].class_name == "GRU"
    assert tree.class_name == "Functional" and tree.names == ()


def test_model_tree_refuses_a_damaged_config_naming_the_layer():
    from jaxlstm._src.readers.records import model_tree

    twice = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Dense", "config": {"name": "d"}},
        {"class_name": "Dense", "config": {"name": "d"}},
    ]}}  # fmt: skip
    with pytest.raises(v.KerasFileError, match=r"has two layers named 'd' \(#0 and #1\)"):
        model_tree(twice, "m.h5")
    bad_cell = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "RNN", "config": {"name": "rnn", "cell": {"class_name": 7}}},
    ]}}  # fmt: skip
    with pytest.raises(v.KerasFileError, match="layer 'rnn': cell has class_name 7"):
        model_tree(bad_cell, "m.h5")


def test_layer_calls_read_keras_2_and_keras_3_inbound_nodes_alike():
    """The one parser of a layer's calls: Keras 1/2's ``[[name, node, index, kwargs], ...]``
    (an RNN's extra tensors are its initial_state, stacked cells' states nested per cell) and
    Keras 3's ``{"args", "kwargs"}`` with ``__keras_tensor__`` references give the same calls."""

    def tensor(name, node=0, index=0):
        history = [name, node, index]
        return {"class_name": "__keras_tensor__", "config": {"keras_history": history}}

    keras2 = [[["x", 0, 0, {}], [["h0", 0, 0, {}], ["c0", 0, 0, {}]], ["h1", 1, 2, {}]]]
    keras3 = [{"args": [tensor("x")], "kwargs": {"initial_state": [
        [tensor("h0"), tensor("c0")], tensor("h1", 1, 2)
    ]}}]  # fmt: skip
    want = v.Node(
        "rnn",
        0,
        (v.Ref("x", 0, 0),),
        (("initial_state", (v.Ref("h0", 0, 0), v.Ref("c0", 0, 0), v.Ref("h1", 1, 2))),),
    )
    for inbound in (keras2, keras3):
        assert v.layer_calls("rnn", "RNN", inbound, "m.h5") == [want]
    with pytest.raises(v.KerasFileError, match=r"layer 'rnn': inbound_nodes: a tensor reference"):
        v.layer_calls("rnn", "RNN", [[["x", "0", 0]]], "m.h5")
    with pytest.raises(v.UnsupportedOptionError, match="is called with constants"):
        v.layer_calls("rnn", "LSTM", [[["x", 0, 0, {"constants": [["k", 0, 0]]}]]], "m.h5")


@pytest.mark.parametrize(
    "version,want",
    [("2.2.4", "hard_sigmoid_keras2"), ("2.21.0", "hard_sigmoid_keras2"), ("3.0.0", "sigmoid")],
)
def test_convlstm_kept_hard_sigmoid_through_tf_keras(version, want):
    """tf-keras's ConvLSTM defaults to hard_sigmoid in every version (the tf-keras fixture
    conv_lstm2d_weights_only pins the numbers); only Keras 3 made it sigmoid."""
    assert v.default_recurrent_activation(version, "ConvLSTM") == want
