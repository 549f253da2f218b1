"""Every loss and metric against the value live Keras 3 computes (JAX backend), ours under
``jax.jit``: Keras's shape rule, ``from_logits``, sample weights, the propagated mask."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlstm
from jaxlstm._src.train.losses import LOSSES, Loss, Metric, metric_sums, reduce_loss
from jaxlstm.train import mse

keras = pytest.importorskip("keras")
from keras.src.backend.common.masking import set_keras_mask  # noqa: E402

RNG = np.random.default_rng(11)


def _probs(shape):
    p = RNG.uniform(0.05, 1.0, shape).astype("float32")
    return p / p.sum(-1, keepdims=True)


def case(kind, pred_shape, true_shape):
    """``(y_true, y_pred)`` fitting the function kind."""
    k = pred_shape[-1]
    if kind == "regression":
        return (
            RNG.uniform(0.1, 2.0, true_shape).astype("float32"),
            RNG.uniform(0.1, 2.0, pred_shape).astype("float32"),
        )
    if kind == "binary":
        return (
            RNG.integers(0, 2, true_shape).astype("float32"),
            RNG.uniform(0.02, 0.98, pred_shape).astype("float32"),
        )
    if kind == "categorical":
        return np.eye(k, dtype="float32")[RNG.integers(0, k, pred_shape[:-1])], _probs(pred_shape)
    return RNG.integers(0, k, true_shape), _probs(pred_shape)  # sparse


KIND = {
    "mean_squared_error": "regression",
    "mean_absolute_error": "regression",
    "mean_absolute_percentage_error": "regression",
    "mean_squared_logarithmic_error": "regression",
    "huber": "regression",
    "root_mean_squared_error": "regression",
    "binary_crossentropy": "binary",
    "binary_accuracy": "binary",
    "categorical_crossentropy": "categorical",
    "categorical_accuracy": "categorical",
    "sparse_categorical_crossentropy": "sparse",
    "sparse_categorical_accuracy": "sparse",
}
# (y_pred shape, y_true shape, sample_weight shape or None, mask shape or None)
SHAPES = {
    "regression": [
        ((6, 1), (6,), None, None),  # what every Keras user passes: targets (n,), outputs (n, 1)
        ((6, 3), (6, 3), (6,), None),
        ((4, 5, 2), (4, 5, 2), None, (4, 5)),  # a sequence output with its Keras mask
        ((4, 5, 1), (4, 5, 1), (4, 5), (4, 5)),
    ],
    "binary": [((6, 1), (6,), (6,), None), ((4, 5, 1), (4, 5, 1), None, (4, 5))],
    "categorical": [((6, 4), (6, 4), (6,), None), ((4, 5, 3), (4, 5, 3), (4, 5), (4, 5))],
    "sparse": [
        ((6, 4), (6,), None, None),
        ((6, 4), (6, 1), (6,), None),
        ((4, 5, 3), (4, 5), None, (4, 5)),
    ],
}


def _weights_and_mask(sw_shape, mask_shape):
    sw = None if sw_shape is None else RNG.uniform(0.0, 2.0, sw_shape).astype("float32")
    mask = None
    if mask_shape is not None:
        mask = RNG.uniform(size=mask_shape) > 0.3
        mask[0] = False  # one fully masked sequence
    return sw, mask


def _keras_pred(y_pred, mask):
    pred = jnp.asarray(y_pred)
    if mask is not None:
        set_keras_mask(pred, jnp.asarray(mask))
    return pred


LOSS_CLASSES = {
    "mean_squared_error": "MeanSquaredError",
    "mean_absolute_error": "MeanAbsoluteError",
    "mean_absolute_percentage_error": "MeanAbsolutePercentageError",
    "mean_squared_logarithmic_error": "MeanSquaredLogarithmicError",
    "huber": "Huber",
    "binary_crossentropy": "BinaryCrossentropy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
}
LOSS_CASES = [
    (name, opts, shapes)
    for name in LOSSES
    for opts in ([{}, {"from_logits": True}] if "crossentropy" in name else [{}])
    for shapes in SHAPES[KIND[name]]
]


@pytest.mark.parametrize("name,opts,shapes", LOSS_CASES, ids=str)
def test_loss_equals_keras(name, opts, shapes):
    pred_shape, true_shape, sw_shape, mask_shape = shapes
    y_true, y_pred = case(KIND[name], pred_shape, true_shape)
    if opts.get("from_logits"):
        y_pred = RNG.normal(size=pred_shape).astype("float32")
    sw, mask = _weights_and_mask(sw_shape, mask_shape)
    keras_loss = getattr(keras.losses, LOSS_CLASSES[name])(**opts)
    expected = keras_loss(y_true, _keras_pred(y_pred, mask), sample_weight=sw)
    loss = Loss(name, **opts)
    got = jax.jit(lambda t, p, w, m: loss(t, p, w, m))(y_true, y_pred, sw, mask)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=2e-6, atol=1e-6)


METRIC_CLASSES = {
    "mean_squared_error": "MeanSquaredError",
    "mean_absolute_error": "MeanAbsoluteError",
    "mean_absolute_percentage_error": "MeanAbsolutePercentageError",
    "mean_squared_logarithmic_error": "MeanSquaredLogarithmicError",
    "root_mean_squared_error": "RootMeanSquaredError",
    "binary_accuracy": "BinaryAccuracy",
    "categorical_accuracy": "CategoricalAccuracy",
    "sparse_categorical_accuracy": "SparseCategoricalAccuracy",
    "binary_crossentropy": "BinaryCrossentropy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
}
METRIC_CASES = [
    (name, s)
    for name in METRIC_CLASSES
    for s in SHAPES[KIND[name]]
    # Keras's binary_crossentropy *metric* (unlike the loss) refuses (n,) against (n, 1)
    if not (name == "binary_crossentropy" and len(s[0]) != len(s[1]))
]


@pytest.mark.parametrize("name,shapes", METRIC_CASES, ids=str)
def test_metric_over_two_batches_equals_keras(name, shapes):
    """Keras's running state over two batches (total, count), then its result."""
    pred_shape, true_shape, sw_shape, mask_shape = shapes
    keras_metric = getattr(keras.metrics, METRIC_CLASSES[name])()
    metric = Metric(name)
    update = jax.jit(lambda t, p, w, m: metric.update(t, p, w, m))
    total = count = 0.0
    for _ in range(2):
        y_true, y_pred = case(KIND[name], pred_shape, true_shape)
        sw, mask = _weights_and_mask(sw_shape, mask_shape)
        keras_metric.update_state(y_true, _keras_pred(y_pred, mask), sample_weight=sw)
        t, c = update(y_true, y_pred, sw, mask)
        total, count = total + t, count + c
    np.testing.assert_allclose(
        np.asarray(metric.result(total, count)), np.asarray(keras_metric.result()), rtol=2e-6
    )


@pytest.mark.parametrize(
    "pred_shape,true_shape,expected",
    [
        ((6, 1), (6,), "binary_accuracy"),
        ((6, 4), (6,), "sparse_categorical_accuracy"),
        ((6, 4), (6, 1), "sparse_categorical_accuracy"),
        ((6, 4), (6, 4), "categorical_accuracy"),
    ],
)
def test_accuracy_resolves_as_keras_compile_does(pred_shape, true_shape, expected):
    from keras.src.trainers.compile_utils import get_metric

    keras_metric = get_metric("accuracy", np.zeros(true_shape), np.zeros(pred_shape))
    assert Metric("accuracy").resolved(true_shape, pred_shape) == expected
    assert type(keras_metric).__name__.lower() == expected.replace("_", "")


def test_targets_n_against_outputs_n_1_do_not_broadcast():
    """The bug of issue 11: (n,) targets vs (n, 1) outputs gave an (n, n) loss (2.5, not 0)."""
    pred = jnp.arange(4.0).reshape(4, 1)
    assert float(jax.jit(mse)(jnp.arange(4.0), pred)) == 0.0


@pytest.mark.parametrize(
    "name,true_shape,pred_shape",
    [
        ("mse", (6, 3), (6, 2)),
        ("mse", (6, 2), (6, 1)),
        ("sparse_categorical_crossentropy", (6, 2), (6, 4)),
    ],
)
def test_shapes_that_do_not_match_are_a_shape_error(name, true_shape, pred_shape):
    with pytest.raises(
        jaxlstm.ShapeError,
        match=rf"y_true has shape \({true_shape[0]}, {true_shape[1]}\) and y_pred has shape",
    ):
        Loss(name)(np.zeros(true_shape), np.ones(pred_shape))


def test_sample_weight_of_the_wrong_shape_is_a_shape_error():
    with pytest.raises(jaxlstm.ShapeError, match=r"sample_weight has shape \(5,\)"):
        reduce_loss(jnp.ones((6,)), jnp.ones((5,)))
    with pytest.raises(jaxlstm.ShapeError, match=r"sample_weight has shape \(4,\)"):
        metric_sums(jnp.ones((6, 3)), jnp.ones((4,)))


def test_a_fully_masked_batch_counts_zero_not_nan():
    value = reduce_loss(jnp.ones((2, 3)), mask=jnp.zeros((2, 3), bool))
    assert float(value) == 0.0


def test_unknown_names_and_options_are_refused():
    with pytest.raises(
        jaxlstm.UnsupportedOptionError, match=r"unknown loss 'hinge'; expected one of"
    ):
        Loss("hinge")
    with pytest.raises(
        jaxlstm.UnsupportedOptionError, match=r"received option\(s\) \['from_logits'\]"
    ):
        Loss("mse", from_logits=True)


def test_compile_config_entries_map_onto_keras_losses_or_are_refused():
    """A file's compile settings as data: Keras 3 and tf.keras serialized built-ins become
    Loss/Metric with their options; what would compute something else is refused (nothing a
    config names is imported)."""
    from jaxlstm._src.train.losses import from_compile_config

    settings = {
        "loss": {
            "module": "keras.losses",
            "class_name": "SparseCategoricalCrossentropy",
            "config": {
                "name": "scc",
                "reduction": "sum_over_batch_size",
                "from_logits": True,
                "ignore_class": None,
            },
            "registered_name": None,
        },
        "metrics": [{"class_name": "BinaryAccuracy", "config": {"name": "ba", "threshold": 0.3}}],
    }
    got = from_compile_config(settings, ["out"])
    assert got["loss"] == Loss("sparse_categorical_crossentropy", from_logits=True)
    assert got["metrics"] == [Metric("binary_accuracy", threshold=0.3)]
    assert got["loss_weights"] is None and got["weighted_metrics"] is None
    refused = {
        "ignore_class": ("SparseCategoricalCrossentropy", {"ignore_class": 0}),
        "reduction='sum'": ("MeanSquaredError", {"reduction": "sum"}),
        "KLDivergence is not a Keras built-in jaxlstm implements": ("KLDivergence", {}),
    }
    for why, (cls, cfg) in refused.items():
        with pytest.raises(jaxlstm.UnsupportedOptionError, match=rf"{why}.*pass loss="):
            from_compile_config({"loss": {"class_name": cls, "config": cfg}}, ["out"])
    custom = {"module": "my_pkg.losses", "class_name": "MeanSquaredError", "config": {}}
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"a custom class \(my_pkg"):
        from_compile_config({"loss": custom}, ["out"])
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"gives metric 'auc'.*metrics="):
        from_compile_config({"loss": "mse", "metrics": ["auc"]}, ["out"])
