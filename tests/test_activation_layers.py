"""Keras's activation layers (ReLU, LeakyReLU, PReLU, ELU, Softmax, ThresholdedReLU) and
activations with parameters in every option that takes an activation: against float64 NumPy
references, live Keras 3 (``.keras`` and legacy ``.h5``, and back through ``save_keras``) and
tf.keras 2.21 fixtures for the Keras 2 spellings (tests/fixtures/make_model_fixtures.py)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers import NP_PARAMETERISED, assert_matches_keras, recorded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxlstm

FIX = Path(__file__).parent / "fixtures" / "keras2_models"

# (activation, parameters): each against its float64 reference.
PARAMETERISED = [
    ("relu", {"max_value": 1.5}),
    ("relu", {"negative_slope": 0.1}),
    ("relu", {"threshold": 0.3}),
    ("relu", {"max_value": 6.0, "negative_slope": 0.2}),
    ("relu", {"max_value": 1.5, "negative_slope": 0.1, "threshold": 0.3}),
    ("relu", {"max_value": None, "negative_slope": 0.25, "threshold": 0.5}),
    ("leaky_relu", {"negative_slope": 0.05}),
    ("elu", {"alpha": 0.6}),
    ("celu", {"alpha": 2.0}),
    ("gelu", {"approximate": True}),
    ("gelu", {"approximate": False}),
    ("softmax", {"axis": 1}),
    ("softmax", {"axis": [1, 2]}),
    ("log_softmax", {"axis": 0}),
    ("squareplus", {"b": 1.0}),
    ("soft_shrink", {"threshold": 0.8}),
    ("hard_shrink", {"threshold": 0.2}),
]


@pytest.mark.parametrize("name,params", PARAMETERISED, ids=lambda v: str(v))
def test_parameterised_activation_matches_numpy(name, params):
    x = np.random.default_rng(0).normal(scale=2.0, size=(3, 4, 5))
    x[0, 0, :3] = [0.3, 1.5, 0.0]  # exactly at a threshold, a max_value and zero
    fn = jaxlstm.get_activation(name, **params)
    got = np.asarray(jax.jit(fn)(x.astype(np.float32)))
    ref_params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    want = NP_PARAMETERISED[name](x.astype(np.float32).astype(np.float64), **ref_params)
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=1e-6)


def test_parameterised_activations_are_static_values():
    a = jaxlstm.get_activation("relu", max_value=6)
    assert a == jaxlstm.get_activation("RELU", max_value=6.0) and hash(a) == hash(
        jaxlstm.get_activation("relu", max_value=6.0)
    )
    assert repr(a) == "relu(max_value=6.0)"
    assert jaxlstm.get_activation(a) is a  # a callable passes through
    traces = []

    def apply(x, fn):
        traces.append(fn)
        return fn(x)

    apply = jax.jit(apply, static_argnums=1)
    for _ in range(3):  # equal activations made separately: one compile
        apply(np.ones(3, np.float32), jaxlstm.get_activation("elu", alpha=0.5))
    assert len(traces) == 1


def test_an_lstm_takes_a_parameterised_activation():
    rng = np.random.default_rng(1)
    w = [rng.uniform(-0.6, 0.6, s).astype(np.float32) for s in [(2, 12), (3, 12), (12,)]]
    x = rng.normal(size=(2, 4, 2)).astype(np.float32)
    capped = jaxlstm.get_activation("relu", max_value=0.5)
    got, _ = jaxlstm.lstm_scan(jaxlstm.LSTMParams(*w), x, activation=capped)
    want, _ = jaxlstm.lstm_scan(
        jaxlstm.LSTMParams(*w), x, activation=lambda v: jax.numpy.clip(v, 0.0, 0.5)
    )
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize(
    "call,match",
    [
        (
            lambda: jaxlstm.get_activation("relu", max_val=6),
            r"'relu' has no parameter\(s\) \['max_val'\]; it takes",
        ),
        (
            lambda: jaxlstm.get_activation("tanh", alpha=1.0),
            r"'tanh' takes no parameters; received \['alpha'\]",
        ),
        (
            lambda: jaxlstm.get_activation("elu", alpha="big"),
            r"'elu': alpha='big'; expected a finite number",
        ),
        (
            lambda: jaxlstm.get_activation("relu", max_value=float("nan")),
            r"max_value=nan; expected a finite number or None",
        ),
        (
            lambda: jaxlstm.get_activation("gelu", approximate=1),
            r"approximate=1; expected true or false",
        ),
        (lambda: jaxlstm.get_activation("softmax", axis=1.5), r"axis=1.5; expected an integer"),
        (
            lambda: jaxlstm.get_activation(np.tanh, alpha=1.0),
            r"parameters \['alpha'\] were given with",
        ),
        (lambda: jaxlstm.get_activation("nope", alpha=1.0), r"unknown activation 'nope'"),
    ],
)
def test_bad_activation_parameters_are_refused(call, match):
    with pytest.raises(jaxlstm.UnknownActivationError, match=match):
        call()


# ---------------------------------------------------------------------------------------------
# live Keras 3
# ---------------------------------------------------------------------------------------------
keras = pytest.importorskip("keras")
L = keras.layers


def randomize(model, seed):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.uniform(-1.0, 1.0, w.shape).astype("float32"))
    return model


def outputs(model, *x):
    out = model(list(x) if len(x) > 1 else x[0], training=False)
    return [np.asarray(o) for o in (out if isinstance(out, list | tuple) else [out])]


def branches():
    """Every activation layer, and activation layers as the activations of Dense, Conv1D,
    Activation and LSTM (activation and recurrent_activation)."""
    return [
        L.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.3),
        L.ReLU(max_value=6.0),
        L.ReLU(negative_slope=0.2),
        L.LeakyReLU(),
        L.LeakyReLU(negative_slope=0.05),
        L.PReLU(),
        L.PReLU(shared_axes=[1]),
        L.ELU(alpha=0.6),
        L.Softmax(axis=1),
        L.Softmax(axis=[1, 2]),
        L.Dense(3, activation=L.ReLU(max_value=0.5, threshold=0.1)),
        L.Dense(3, activation=L.LeakyReLU(0.1)),
        L.Dense(3, activation=L.Softmax(axis=1)),
        L.Conv1D(3, 2, activation=L.ELU(alpha=0.5)),
        L.Activation(L.ReLU(negative_slope=0.3, threshold=0.2)),
        L.Activation("leaky_relu"),  # the function's default slope, 0.2 (the layer's is 0.3)
        L.LSTM(3, activation=L.ReLU(max_value=1.0), return_sequences=True),
        L.LSTM(3, recurrent_activation=L.ReLU(max_value=1.0, negative_slope=0.05)),
    ]


def test_activation_layers_match_keras3_in_both_formats_and_save_back(tmp_path):
    inp = keras.Input((5, 4))
    model = randomize(keras.Model(inp, [layer(inp) for layer in branches()]), seed=3)
    x = np.random.default_rng(4).normal(scale=1.5, size=(2, 5, 4)).astype("float32")
    want = outputs(model, x)
    for fname in ("m.keras", "m.h5"):
        model.save(tmp_path / fname)
        jmodel = jaxlstm.load_keras(tmp_path / fname)
        assert_matches_keras(jmodel(x), want)
        back = tmp_path / f"back_{fname}"
        jaxlstm.save_keras(jmodel, back)
        reread = outputs(keras.saving.load_model(back), x)
        if fname.endswith(".h5"):
            # Keras 3's legacy .h5 loader reads Softmax(axis=[1, 2]) back as axis=-1 (its own
            # save/load round trip changes that output too): compare the other outputs.
            keep = [i for i, layer in enumerate(branches()) if not _list_axis(layer)]
            reread, want_back = [reread[i] for i in keep], [want[i] for i in keep]
        else:
            want_back = want
        assert_matches_keras(tuple(reread), want_back)


def _list_axis(layer) -> bool:
    return isinstance(layer, L.Softmax) and isinstance(layer.axis, list | tuple)


def test_softmax_mask_as_keras3(tmp_path):
    """Keras 3 replaces masked entries by -1e9 and zeroes them afterwards: a row masked
    entirely comes out zero. The mask broadcasts from the right: (batch, 1, 5) against
    (batch, 3, 5); a float mask counts above 0.5."""
    scores, m = keras.Input((3, 5)), keras.Input((1, 5))
    outs = [L.Softmax()(scores, mask=m), L.Softmax(axis=[1, 2])(scores, mask=m)]
    model = keras.Model([scores, m], outs)
    x = np.random.default_rng(5).normal(size=(3, 3, 5)).astype("float32")
    mask = np.array([[[1, 0, 0.7, 1, 0.2]], [[1, 1, 1, 1, 1]], [[0, 0, 0, 0, 0]]], "float32")
    want = outputs(model, x, mask)
    assert np.all(want[0][2] == 0.0)  # the row masked entirely
    model.save(tmp_path / "m.keras")
    assert_matches_keras(jaxlstm.load_keras(tmp_path / "m.keras")(x, mask), want)


def test_softmax_mask_that_does_not_broadcast_is_a_shape_error(tmp_path):
    ids = keras.Input((6,), dtype="int32")
    model = keras.Model(ids, L.Softmax()(L.Embedding(20, 5, mask_zero=True)(ids)))
    model.save(tmp_path / "m.keras")
    jmodel = jaxlstm.load_keras(tmp_path / "m.keras")
    with pytest.raises(
        jaxlstm.ShapeError, match=r"mask \(2, 6\) does not broadcast against the input \(2, 6, 5\)"
    ):
        jmodel(np.ones((2, 6), "int32"))


layer_draws = st.fixed_dictionaries(
    {
        "max_value": st.one_of(st.none(), st.floats(0.0, 3.0)),
        "negative_slope": st.one_of(st.just(0.0), st.floats(0.0, 1.0)),
        "threshold": st.one_of(st.just(0.0), st.floats(0.0, 1.5)),
        "leaky": st.floats(0.0, 1.0),
        "alpha": st.floats(0.05, 3.0),
        "axis": st.sampled_from([-1, 1, 2, [1, 2]]),
        "shared_axes": st.sampled_from([None, [1], [2], [1, 2]]),
        "format": st.sampled_from(["m.keras", "m.h5"]),
    }
)


def check_drawn_layers(cfg, tmp):
    relu = dict(
        max_value=cfg["max_value"], negative_slope=cfg["negative_slope"], threshold=cfg["threshold"]
    )
    layers = [
        L.ReLU(**relu),
        L.LeakyReLU(cfg["leaky"]),
        L.ELU(cfg["alpha"]),
        L.Softmax(axis=cfg["axis"]),
        L.PReLU(shared_axes=cfg["shared_axes"]),
        L.Dense(3, activation=L.ReLU(**relu)),
        L.LSTM(2, activation=L.ELU(cfg["alpha"]), return_sequences=True),
    ]
    inp = keras.Input((4, 3))
    model = randomize(keras.Model(inp, [layer(inp) for layer in layers]), seed=7)
    x = np.random.default_rng(8).normal(scale=2.0, size=(2, 4, 3)).astype("float32")
    want = outputs(model, x)
    model.save(tmp / cfg["format"])
    assert_matches_keras(jaxlstm.load_keras(tmp / cfg["format"])(x), want)


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(cfg=layer_draws)
def test_drawn_activation_parameters_match_keras3(cfg, tmp_path_factory):
    check_drawn_layers(cfg, tmp_path_factory.mktemp("act"))


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(cfg=layer_draws)
def test_drawn_activation_parameters_match_keras3_many(cfg, tmp_path_factory):
    check_drawn_layers(cfg, tmp_path_factory.mktemp("act"))


def test_a_prelu_as_an_activation_is_refused(tmp_path):
    inp = keras.Input((3,))
    keras.Model(inp, L.Dense(2, activation=L.PReLU())(inp)).save(tmp_path / "m.keras")
    with pytest.raises(
        jaxlstm.UnsupportedOptionError, match=r"activation is a PReLU layer, whose weights"
    ):
        jaxlstm.load_keras(tmp_path / "m.keras")


def test_a_custom_activation_layer_is_refused_without_importing_it(tmp_path):
    inp = keras.Input((3,))
    keras.Model(inp, L.Dense(2, activation=L.ReLU())(inp)).save(tmp_path / "m.keras")
    rewrite_config(
        tmp_path / "m.keras",
        lambda text: text.replace(
            '"module": "keras.layers", "class_name": "ReLU"', '"module": "os", "class_name": "ReLU"'
        ),
    )
    with pytest.raises(
        jaxlstm.UnsupportedOptionError, match=r"activation is a custom object .*'os'.*runs no code"
    ):
        jaxlstm.load_keras(tmp_path / "m.keras")


def test_the_file_says_relu_options_are_checked(tmp_path):
    inp = keras.Input((3,))
    keras.Model(inp, L.ReLU(max_value=2.0)(inp)).save(tmp_path / "m.keras")
    rewrite_config(
        tmp_path / "m.keras", lambda text: text.replace('"max_value": 2.0', '"max_value": "2"')
    )
    with pytest.raises(
        jaxlstm.KerasFileError,
        match=r"layer 're_lu.*\(ReLU\).*max_value='2'; expected a finite number or None",
    ):
        jaxlstm.load_keras(tmp_path / "m.keras")


# ---------------------------------------------------------------------------------------------
# tf.keras 2.21 (Keras 2 spellings: LeakyReLU(alpha), ThresholdedReLU(theta), Softmax masks)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["activation_layers", "softmax_masked"])
def test_keras2_activation_layers_match_tf_keras(name):
    _, inputs, want = recorded(FIX / f"{name}.h5")
    assert_matches_keras(jaxlstm.load_keras(FIX / f"{name}.h5")(*inputs), want)


def test_keras2_softmax_keeps_a_fully_masked_row_uniform():
    _, (scores, mask), want = recorded(FIX / "softmax_masked.h5")
    hidden = ~mask.any(axis=(1, 2))
    assert hidden.tolist() == [False, False, True]
    for out in want:  # what tf.keras computed (Keras 3 gives zeros there)
        np.testing.assert_allclose(out[hidden], 0.2, atol=1e-6)
    got = jaxlstm.load_keras(FIX / "softmax_masked.h5")(scores, mask)
    assert np.asarray(got[0])[2].min() > 0.19


def test_keras2_activation_layers_save_back_into_keras3(tmp_path):
    _, inputs, want = recorded(FIX / "activation_layers.h5")
    jaxlstm.save_keras(jaxlstm.load_keras(FIX / "activation_layers.h5"), tmp_path / "m.keras")
    assert_matches_keras(outputs(keras.saving.load_model(tmp_path / "m.keras"), *inputs), want)


# ---------------------------------------------------------------------------------------------
# unsupported classes inside wrappers are named as themselves
# ---------------------------------------------------------------------------------------------
def rewrite_config(path, edit):
    """Rewrite a .keras archive's config.json through ``edit(text) -> text``."""
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["config.json"] = edit(members["config.json"].decode()).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    Path(path).write_bytes(buf.getvalue())


def test_unsupported_class_inside_bidirectional_is_named(tmp_path):
    inp = keras.Input((4, 2))
    keras.Model(inp, L.Bidirectional(L.LSTM(3), name="bi")(inp)).save(tmp_path / "m.keras")

    def edit(text):
        config = json.loads(text)
        bi = config["config"]["layers"][1]["config"]
        for key in ("layer", "backward_layer"):
            bi[key]["class_name"] = "SomeCustomLayer"
        return json.dumps(config)

    rewrite_config(tmp_path / "m.keras", edit)
    with pytest.raises(
        jaxlstm.UnsupportedLayerError,
        match=r"layer 'bi' is Bidirectional\(SomeCustomLayer\): SomeCustomLayer is a layer class "
        r"jaxlstm does not implement \(inside Bidirectional\)",
    ):
        jaxlstm.load_keras(tmp_path / "m.keras")
    from jaxlstm._src.inspect import describe_model  # what `jaxlstm inspect` prints

    assert "wraps SomeCustomLayer, not implemented" in describe_model(tmp_path / "m.keras")


def test_custom_class_inside_a_wrapper_is_named(tmp_path):
    inp = keras.Input((4, 2))
    keras.Model(inp, L.TimeDistributed(L.Dense(3), name="td")(inp)).save(tmp_path / "m.keras")
    rewrite_config(
        tmp_path / "m.keras",
        lambda text: text.replace(
            '"module": "keras.layers", "class_name": "Dense"',
            '"module": "mypkg", "class_name": "MyDense"',
        ),
    )
    with pytest.raises(
        jaxlstm.UnsupportedLayerError,
        match=r"layer 'td' is TimeDistributed\(MyDense\) from module 'mypkg': a custom class",
    ):
        jaxlstm.load_keras(tmp_path / "m.keras")


def test_lambda_inside_time_distributed_is_named():
    config = {
        "class_name": "Sequential",
        "config": {
            "name": "s",
            "layers": [
                {
                    "class_name": "InputLayer",
                    "config": {"name": "in", "batch_input_shape": [None, 3, 2]},
                },
                {
                    "class_name": "TimeDistributed",
                    "config": {
                        "name": "td",
                        "layer": {
                            "class_name": "Lambda",
                            "config": {"name": "lam", "function": "x"},
                        },
                    },
                },
            ],
        },
    }
    from jaxlstm._src.models.graph import KerasModel
    from jaxlstm._src.readers.records import KerasFile

    kf = KerasFile("f.h5", "test", "2.21.0", config=config)
    with pytest.raises(
        jaxlstm.UnsupportedLayerError,
        match=r"layer 'td' is TimeDistributed\(Lambda\): a Lambda layer holds Python code .*"
        r"\(inside TimeDistributed\).*custom_layers=\{'Lambda': factory\}",
    ):
        KerasModel(kf, config)
