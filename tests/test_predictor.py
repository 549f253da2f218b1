"""jaxlstm.predictor: the jitted inference call for hot loops, and eager calls that compile once."""

from importlib import resources
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxlstm
from jaxlstm._src.core import fast

DATA = resources.files("jaxlstm") / "data"
KERAS2_MODELS = Path(__file__).parent / "fixtures" / "keras2_models"


def _forecaster():
    ref = np.load(DATA / "airline_forecaster.npz")
    return jaxlstm.load_keras(str(DATA / "airline_forecaster.keras")), ref["x"], ref["out0"]


def test_predictor_of_a_loaded_model_gives_keras_numbers():
    model, x, keras_out = _forecaster()
    predict = jaxlstm.predictor(model)
    np.testing.assert_allclose(predict(x), keras_out, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(predict(x), model(x))


def test_predictor_is_eval_mode_and_leaves_the_module_mode_alone():
    model, x, keras_out = _forecaster()  # it has a Dropout(0.1) layer
    model.train()
    predict = jaxlstm.predictor(model)
    np.testing.assert_allclose(predict(x), keras_out, atol=1e-5, rtol=0)
    assert model.layers["dropout"].deterministic is False  # still in training mode
    lstm = jaxlstm.LSTM(1, 4, dropout=0.5, rngs=nnx.Rngs(0))  # deterministic=False by default
    x1 = jnp.ones((2, 3, 1))
    np.testing.assert_array_equal(jaxlstm.predictor(lstm)(x1), lstm(x1, deterministic=True))


def test_predictor_follows_weight_updates():
    model, x, _ = _forecaster()
    predict = jaxlstm.predictor(model)
    before = np.asarray(predict(x))
    dense = model.layers["dense"]
    dense.bias[...] = dense.bias[...] + 1.0  # as an optimizer update would
    np.testing.assert_allclose(predict(x), before + 1.0, atol=1e-6, rtol=0)
    params = jax.tree.map(lambda a: a * 0.5, nnx.state(model, nnx.Param))
    nnx.update(model, params)
    np.testing.assert_array_equal(predict(x), model(x))


def test_predictor_passes_keyword_arguments_and_compiles_once_per_shape():
    lstm = jaxlstm.LSTM(3, 5, return_sequences=True, rngs=nnx.Rngs(0))
    predict = jaxlstm.predictor(lstm)
    x = jax.random.normal(jax.random.key(1), (2, 6, 3))
    mask = jnp.array([[1, 1, 0, 1, 1, 0], [0, 1, 1, 1, 1, 1]], bool)
    np.testing.assert_array_equal(predict(x, mask=mask), lstm(x, mask=mask))
    for _ in range(3):
        predict(x, mask=mask)
    assert predict._call._cache_size() == 1
    predict(x[:, :4], mask=mask[:, :4])
    assert predict._call._cache_size() == 2


def test_predictor_streams_a_stateful_model_with_keras_numbers():
    """A stateful tf.keras model streamed chunk by chunk through ``call_with_state``, jitted:
    the outputs Keras computed when it streamed the same chunks, and one compile."""
    data = np.load(KERAS2_MODELS / "stateful.npz")
    model = jaxlstm.load_keras(KERAS2_MODELS / "stateful.h5")
    step = jaxlstm.predictor(model, "call_with_state")
    x, chunk, states, got = data["in0"], int(data["chunk"]), None, []
    for i in range(0, x.shape[1], chunk):
        y, states = step(x[:, i : i + chunk], states=states)
        got.append(np.asarray(y))
    np.testing.assert_allclose(np.concatenate(got, axis=1), data["out0"], atol=1e-5, rtol=0)
    assert step._call._cache_size() == 2  # the first chunk (no states) and the rest
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="has no method 'predict'"):
        jaxlstm.predictor(model, "predict")


def test_eager_calls_compile_the_recurrence_once():
    params = jaxlstm.LSTMParams(jnp.ones((3, 8)) * 0.1, jnp.ones((2, 8)) * 0.1, jnp.zeros(8))
    x = jnp.ones((4, 7, 3))
    jaxlstm.lstm_scan(params, x)  # may be cached by an earlier test: count from here
    size = fast.run._cache_size()
    for _ in range(3):
        jaxlstm.lstm_scan(params, x)
    assert fast.run._cache_size() == size
    jaxlstm.lstm_scan(params, x, unroll=True)  # True == 1 in Python, but a different program
    assert fast.run._cache_size() == size + 1


@pytest.mark.parametrize("steps", [10, 1000])
def test_compiled_program_does_not_grow_with_sequence_length(steps):
    """The scan compiles to one loop body whatever T is: the optimised HLO of the forward and
    of the gradient has the same number of instructions at T=10 and at T=1000."""
    params = jaxlstm.LSTMParams(jnp.ones((3, 8)), jnp.ones((2, 8)), jnp.zeros(8))

    def loss(params, x):
        return jnp.sum(jaxlstm.lstm_scan(params, x)[0])

    def size(t):
        x = jax.ShapeDtypeStruct((4, t, 3), jnp.float32)
        counts = []
        for f in (loss, jax.grad(loss)):
            text = jax.jit(f).lower(params, x).compile().as_text()
            counts.append(sum(" = " in line for line in text.splitlines()))
        return counts

    assert size(steps) == size(3)
