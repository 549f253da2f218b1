"""``fit`` and ``evaluate`` against live Keras 3 (JAX backend) on the same model file and data:
the propagated mask in a sequence tagger's loss, several outputs with loss weights, sample and
class weights, and one epoch of SGD giving Keras's weights."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import optax
import pytest

import jaxlstm
from jaxlstm.train import evaluate, fit

keras = pytest.importorskip("keras")

DATA = Path(str(resources.files("jaxlstm") / "data"))
RNG = np.random.default_rng(5)


def tokens(n=40, length=9, vocab=20):
    x = RNG.integers(1, vocab, size=(n, length))
    for i, keep in enumerate(RNG.integers(2, length + 1, size=n)):
        x[i, keep:] = 0  # right padding: masked by Embedding(mask_zero=True)
    return x.astype("int32")


@pytest.fixture(scope="module")
def tagger(tmp_path_factory):
    """A Keras 3 sequence tagger whose loss Keras masks at the padded steps."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((9,), dtype="int32"),
            keras.layers.Embedding(20, 6, mask_zero=True),
            keras.layers.LSTM(8, return_sequences=True),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    path = tmp_path_factory.mktemp("tagger") / "tagger.keras"
    model.save(path)
    return path


def _keras(path, **compile_kw):
    model = keras.saving.load_model(path, compile=False)
    model.compile(**compile_kw)
    return model


def test_masked_sequence_loss_and_metrics_equal_keras_evaluate(tagger):
    x, y = tokens(), RNG.integers(0, 3, size=(40, 9))
    sw = RNG.uniform(0.2, 2.0, size=(40, 9)).astype("float32")
    kw = dict(
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        weighted_metrics=["sparse_categorical_crossentropy"],
    )
    ref = _keras(tagger, optimizer="sgd", **kw)
    for weights in (None, sw):
        expected = ref.evaluate(
            x, y, sample_weight=weights, batch_size=16, verbose=0, return_dict=True
        )
        got = evaluate(jaxlstm.load_keras(tagger), x, y, sample_weight=weights, batch_size=16, **kw)
        assert got == pytest.approx(expected, rel=2e-5), (weights is None, got, expected)


def test_one_epoch_of_sgd_equals_keras_fit(tagger):
    x, y = tokens(), RNG.integers(0, 3, size=(40, 9))
    ref = _keras(
        tagger, optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy"
    )
    k_hist = ref.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    model = jaxlstm.load_keras(tagger)
    history = fit(
        model,
        x,
        y,
        batch_size=16,
        epochs=2,
        shuffle=False,
        optimizer=optax.sgd(0.5),
        loss="sparse_categorical_crossentropy",
        progress=False,
    )
    np.testing.assert_allclose(history.column("loss"), k_hist.history["loss"], rtol=2e-5)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(ref(x)), atol=2e-5)


def test_class_weight_equals_keras_fit():
    path = DATA / "text_classifier.keras"
    reviews = np.load(DATA / "text_reviews.npz")
    x, y = reviews["x_train"][:64], reviews["y_train"][:64]
    class_weight = {0: 2.5, 1: 0.5}
    ref = _keras(
        path, optimizer=keras.optimizers.SGD(0.2), loss="binary_crossentropy", metrics=["accuracy"]
    )
    k_hist = ref.fit(
        x, y, batch_size=16, epochs=1, shuffle=False, class_weight=class_weight, verbose=0
    )
    model = jaxlstm.load_keras(path)
    history = fit(
        model,
        x,
        y,
        batch_size=16,
        epochs=1,
        shuffle=False,
        optimizer=optax.sgd(0.2),
        loss="binary_crossentropy",
        metrics=["accuracy"],
        class_weight=class_weight,
        progress=False,
    )
    assert history.epochs[0]["loss"] == pytest.approx(k_hist.history["loss"][0], rel=2e-5)
    assert history.epochs[0]["accuracy"] == pytest.approx(k_hist.history["accuracy"][0], rel=1e-6)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(ref(x)), atol=2e-5)


def test_two_outputs_with_loss_weights_equal_keras_evaluate(tmp_path):
    keras.utils.set_random_seed(2)
    inp = keras.Input((6, 3))
    seq = keras.layers.LSTM(5, return_sequences=True)(inp)
    reg = keras.layers.Dense(1, name="reg")(keras.layers.LSTM(4)(seq))
    cls = keras.layers.Dense(3, activation="softmax", name="cls")(
        keras.layers.GlobalAveragePooling1D()(seq)
    )
    keras.Model(inp, [reg, cls]).save(tmp_path / "two.keras")
    x = RNG.normal(size=(20, 6, 3)).astype("float32")
    y_reg, y_cls = RNG.normal(size=(20,)).astype("float32"), RNG.integers(0, 3, size=(20,))
    kw = dict(
        loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
        loss_weights={"reg": 0.3, "cls": 2.0},
        metrics={"reg": ["mae"], "cls": ["accuracy"]},
    )
    ref = _keras(tmp_path / "two.keras", optimizer="sgd", **kw)
    expected = ref.evaluate(x, [y_reg, y_cls], batch_size=8, verbose=0, return_dict=True)
    got = evaluate(
        jaxlstm.load_keras(tmp_path / "two.keras"), x, [y_reg, y_cls], batch_size=8, **kw
    )
    assert set(got) == set(expected)
    assert got == pytest.approx(expected, rel=2e-5)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """A Keras 3 model compiled with a loss option (from_logits) and three kinds of metric,
    saved as .keras and as legacy .h5 (compile_config / training_config)."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input((6, 3)), keras.layers.LSTM(5), keras.layers.Dense(1, name="logit")]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.3),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[
            "mae",
            keras.metrics.RootMeanSquaredError(),
            keras.metrics.BinaryAccuracy(threshold=0.3),
        ],
    )
    folder = tmp_path_factory.mktemp("compiled")
    for ext in (".keras", ".h5"):
        model.save(folder / f"m{ext}")
    return folder


@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_the_files_compile_config_is_fits_default(compiled, ext):
    path = compiled / f"m{ext}"
    x = RNG.normal(size=(24, 6, 3)).astype("float32")
    y = RNG.integers(0, 2, size=(24,)).astype("float32")
    ref = keras.saving.load_model(path)  # compiled from the file, as Keras does
    expected = ref.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    # (Keras 3 logs a legacy .h5's "mae" under the function's name; jaxlstm keeps "mae")
    expected = {"mae" if k == "mean_absolute_error" else k: v for k, v in expected.items()}
    # Keras 3 cannot fit a model load_model compiled from a legacy .h5 (its optimizer state
    # "built with 0 variables"): train the .keras copy, the same model and compile settings.
    trainer = ref if ext == ".keras" else keras.saving.load_model(compiled / "m.keras")
    k_hist = trainer.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)

    model = jaxlstm.load_keras(path)
    settings = model.compile_config
    assert set(settings) == {"loss", "loss_weights", "metrics", "weighted_metrics"}  # no optimizer
    settings["loss"] = "mse"
    assert model.compile_config["loss"] != "mse"  # a copy: the model keeps the file's
    got = evaluate(model, x, y, batch_size=8)  # no loss=, no metrics=
    assert set(got) == set(expected)
    assert got == pytest.approx(expected, rel=2e-5), (got, expected)
    history = fit(
        model, x, y, batch_size=8, epochs=2, shuffle=False, optimizer=optax.sgd(0.3), progress=False
    )
    for key, values in k_hist.history.items():
        np.testing.assert_allclose(history.column(key), values, rtol=2e-5, err_msg=key)
    # arguments given win over the file's
    mse = evaluate(model, x, y, batch_size=8, loss="mse")
    assert set(mse) == {"loss"}


def test_a_custom_loss_in_the_compile_config_asks_for_loss(tmp_path):
    @keras.saving.register_keras_serializable(package="fix2_tests")
    def scaled_mse(y_true, y_pred):
        return 2.0 * keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)

    model = keras.Sequential([keras.Input((4, 2)), keras.layers.LSTM(3), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss=scaled_mse, metrics=["mae"])
    model.save(tmp_path / "custom.keras")
    x = RNG.normal(size=(8, 4, 2)).astype("float32")
    y = RNG.normal(size=(8,)).astype("float32")
    loaded = jaxlstm.load_keras(tmp_path / "custom.keras")
    for run in (evaluate, lambda *a: fit(*a, epochs=1, progress=False)):
        with pytest.raises(
            jaxlstm.UnsupportedOptionError,
            match=r"compile_config gives loss .*scaled_mse.*never imports what a config names: "
            r"pass loss= to fit / evaluate",
        ):
            run(loaded, x, y)
    got = evaluate(loaded, x, y, loss="mse")  # given: the file's loss is not read
    assert set(got) == {"loss"}


def test_a_tf_keras_training_config_is_evaluates_default():
    """tf.keras 2.21's training_config (per-output dicts, Huber(delta=0.5), MeanMetricWrapper
    metrics listed per output): evaluate without loss= gives what tf.keras's model.evaluate
    recorded (tests/fixtures/make_model_fixtures.py, compiled_two_outputs)."""
    path = Path(__file__).parent / "fixtures" / "keras2_models" / "compiled_two_outputs.h5"
    data = np.load(path.with_suffix(".npz"))
    expected = {k[len("eval_") :]: float(data[k]) for k in data.files if k.startswith("eval_")}
    model = jaxlstm.load_keras(path)
    assert model.compile_config["loss_weights"] == {"reg": 0.3, "cls": 2.0}
    got = evaluate(model, data["in0"], [data["y0"], data["y1"]], batch_size=4)
    assert got == pytest.approx(expected, rel=2e-5, abs=1e-6), (got, expected)
