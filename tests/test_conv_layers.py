"""Convolution, pooling, padding, cropping and upsampling over 1, 2 and 3 spatial axes, alone,
inside TimeDistributed and in an LRCN, against live Keras 3 (JAX backend), and written back
with save_keras into files Keras 3 loads with the same numbers.

Each table is one Keras model with a branch per layer (one save, one load), to keep the run
short; hypothesis draws kernel sizes, strides, dilations, paddings and data formats."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxlstm
from jaxlstm._src.models.conv import CONV_LAYERS
from jaxlstm._src.models.layers import BuildContext

keras = pytest.importorskip("keras")
L = keras.layers
CF = "channels_first"

# input shape (without batch) -> layer factories, each a branch of one model.
TABLE = {
    "1d": (
        (9, 4),
        [
            lambda: L.Conv1D(3, 3, data_format=CF),
            lambda: L.Conv1D(4, 2, strides=2, padding="same", groups=2),
            lambda: L.SeparableConv1D(3, 3, padding="same", strides=2, depth_multiplier=2),
            lambda: L.DepthwiseConv1D(3, depth_multiplier=2, dilation_rate=2),
            lambda: L.Conv1DTranspose(3, 3, strides=2, padding="same"),
            lambda: L.Conv1DTranspose(2, 4, strides=3, output_padding=1),
            lambda: L.MaxPooling1D(2, data_format=CF),
            lambda: L.AveragePooling1D(4, strides=3, padding="same"),
            lambda: L.GlobalAveragePooling1D(data_format=CF, keepdims=True),
            lambda: L.UpSampling1D(3),
            lambda: L.ZeroPadding1D((0, 2)),
            lambda: L.Cropping1D(3),
        ],
    ),
    "2d": (
        (7, 8, 3),
        [
            lambda: L.Conv2D(4, 3, activation="relu"),
            lambda: L.Conv2D(4, (2, 3), strides=2, padding="same"),
            lambda: L.Conv2D(4, 2, dilation_rate=(2, 1), padding="same", use_bias=False),
            lambda: L.Conv2D(6, 3, groups=3, padding="same"),
            lambda: L.Conv2D(4, 4, strides=(2, 3), padding="same", data_format=CF),
            lambda: L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", strides=2),
            lambda: L.DepthwiseConv2D(2, dilation_rate=2, data_format=CF, use_bias=False),
            lambda: L.SeparableConv2D(5, 2, padding="same", depth_multiplier=2),
            lambda: L.SeparableConv2D(2, 3, strides=2, data_format=CF, activation="tanh"),
            lambda: L.Conv2DTranspose(3, 3, strides=2, padding="same"),
            lambda: L.Conv2DTranspose(3, (3, 2), strides=2, output_padding=1),
            lambda: L.Conv2DTranspose(3, 4, strides=2, padding="same", data_format=CF),
            lambda: L.Conv2DTranspose(2, 3, padding="same", dilation_rate=2),
            lambda: L.MaxPooling2D(2),
            lambda: L.MaxPooling2D(3, strides=2, padding="same", data_format=CF),
            lambda: L.AveragePooling2D((2, 3), strides=2, padding="same"),
            lambda: L.AveragePooling2D(2, data_format=CF),
            lambda: L.GlobalAveragePooling2D(keepdims=True),
            lambda: L.GlobalMaxPooling2D(data_format=CF),
            lambda: L.ZeroPadding2D(((1, 2), (0, 1))),
            lambda: L.ZeroPadding2D((1, 2), data_format=CF),
            lambda: L.Cropping2D(((1, 2), (0, 1))),
            lambda: L.Cropping2D(1, data_format=CF),
            lambda: L.UpSampling2D((2, 3)),
            lambda: L.UpSampling2D(2, interpolation="bilinear"),
            lambda: L.UpSampling2D((3, 2), interpolation="bilinear", data_format=CF),
            lambda: L.SpatialDropout2D(0.3),
        ],
    ),
    "3d": (
        (4, 5, 6, 2),
        [
            lambda: L.Conv3D(3, 2, padding="same", strides=(1, 2, 2)),
            lambda: L.Conv3D(2, (2, 3, 2), dilation_rate=(2, 1, 1), data_format=CF),
            lambda: L.Conv3DTranspose(2, 2, strides=2),
            lambda: L.MaxPooling3D(2, padding="same"),
            lambda: L.AveragePooling3D(2, strides=1, data_format=CF),
            lambda: L.AveragePooling3D((2, 2, 3), padding="same"),
            lambda: L.GlobalAveragePooling3D(data_format=CF),
            lambda: L.GlobalMaxPooling3D(keepdims=True),
            lambda: L.ZeroPadding3D(1),
            lambda: L.Cropping3D(((1, 0), (1, 1), (0, 2))),
            lambda: L.UpSampling3D((1, 2, 2), data_format=CF),
            lambda: L.SpatialDropout3D(0.5, data_format=CF),
        ],
    ),
    # (time, height, width, channels): each 2-D layer once per step.
    "time_distributed": (
        (3, 6, 5, 2),
        [
            lambda: L.TimeDistributed(L.Conv2D(3, 3, strides=2, padding="same")),
            lambda: L.TimeDistributed(L.DepthwiseConv2D(2, depth_multiplier=2)),
            lambda: L.TimeDistributed(L.SeparableConv2D(3, 2, padding="same")),
            lambda: L.TimeDistributed(L.Conv2DTranspose(2, 2, strides=2)),
            lambda: L.TimeDistributed(L.MaxPooling2D(2, padding="same")),
            lambda: L.TimeDistributed(L.AveragePooling2D(3, strides=2, padding="same")),
            lambda: L.TimeDistributed(L.GlobalAveragePooling2D()),
            lambda: L.TimeDistributed(L.GlobalMaxPooling2D()),
            lambda: L.TimeDistributed(L.ZeroPadding2D(1)),
            lambda: L.TimeDistributed(L.Cropping2D(((1, 0), (0, 2)))),
            lambda: L.TimeDistributed(L.UpSampling2D(2, interpolation="bilinear")),
            lambda: L.TimeDistributed(L.SpatialDropout2D(0.2)),
            lambda: L.TimeDistributed(L.Flatten()),
        ],
    ),
}


@pytest.fixture(autouse=True)
def cheap_initializers(monkeypatch):
    """Keras's random initializers compile a JAX program per weight shape (seconds each on a
    busy machine); every weight is overwritten by randomize() anyway."""
    from keras.src.initializers import random_initializers

    monkeypatch.setattr(
        random_initializers.VarianceScaling,
        "__call__",
        lambda self, shape, dtype=None: keras.ops.zeros(shape, dtype=dtype),
    )


def keras_outputs(model, x):
    """The model's inference outputs, through one jitted program (faster than eager calls)."""
    out = model.predict(x, verbose=0)
    return [np.asarray(o) for o in (out if isinstance(out, list | tuple) else [out])]


def randomize(model, seed):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.uniform(-0.5, 0.5, w.shape).astype("float32"))
    return model


def branches(shape, factories, seed):
    inp = keras.Input(shape)
    model = keras.Model(inp, [f()(inp) for f in factories])
    randomize(model, seed)
    x = np.random.default_rng(seed + 1).normal(size=(2, *shape)).astype("float32")
    return model, x


def assert_outputs(got, want, names):
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(want)
    for name, g, w in zip(names, got, want, strict=True):
        w = np.asarray(w)
        assert g.shape == w.shape, name
        np.testing.assert_allclose(np.asarray(g), w, atol=1e-5, rtol=0, err_msg=name)


@pytest.mark.parametrize("table", sorted(TABLE))
def test_layers_match_keras3_and_save_back(table, tmp_path):
    shape, factories = TABLE[table]
    model, x = branches(shape, factories, seed=len(table))
    want = keras_outputs(model, x)
    names = [layer.name for layer in model.layers[1:]]
    model.save(tmp_path / "m.keras")
    jmodel = jaxlstm.load_keras(tmp_path / "m.keras")
    assert_outputs(jmodel(x), want, names)
    # save_keras writes every weight in Keras's order: Keras 3 reloads them bit for bit.
    for ext in (".keras", ".h5"):
        jaxlstm.save_keras(jmodel, tmp_path / f"back{ext}")
        back = keras.saving.load_model(tmp_path / f"back{ext}")
        for b, w in zip(back.get_weights(), model.get_weights(), strict=True):
            np.testing.assert_array_equal(b, w)


@st.composite
def conv_configs(draw):
    rank = draw(st.sampled_from([1, 2, 3]))
    spatial = tuple(draw(st.integers(3, 7)) for _ in range(rank))
    channels = draw(st.sampled_from([1, 2, 4]))
    fmt = draw(st.sampled_from(["channels_last", CF]))
    padding = draw(st.sampled_from(["valid", "same"]))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    if draw(st.booleans()):  # strides, or dilation (Keras refuses both > 1)
        strides, dilation = tuple(draw(st.integers(1, 3)) for _ in range(rank)), 1
    else:
        strides, dilation = 1, tuple(draw(st.integers(1, 2)) for _ in range(rank))
    pool = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    pool_strides = draw(st.one_of(st.none(), st.tuples(*[st.integers(1, 3)] * rank)))
    return dict(
        rank=rank,
        spatial=spatial,
        channels=channels,
        data_format=fmt,
        padding=padding,
        kernel=kernel,
        strides=strides,
        dilation=dilation,
        pool=pool,
        pool_strides=pool_strides,
    )


def check_conv_config(cfg, tmp):
    r, fmt = cfg["rank"], cfg["data_format"]
    shape = (*cfg["spatial"], cfg["channels"])
    if fmt == CF:
        shape = (cfg["channels"], *cfg["spatial"])
    conv_kw = dict(
        padding=cfg["padding"],
        strides=cfg["strides"],
        dilation_rate=cfg["dilation"],
        data_format=fmt,
    )
    pool_kw = dict(strides=cfg["pool_strides"], padding=cfg["padding"], data_format=fmt)
    factories = [
        lambda: getattr(L, f"Conv{r}D")(2, cfg["kernel"], **conv_kw),
        lambda: getattr(L, f"MaxPooling{r}D")(cfg["pool"], **pool_kw),
        lambda: getattr(L, f"AveragePooling{r}D")(cfg["pool"], **pool_kw),
    ]
    if r < 3:
        factories.append(lambda: getattr(L, f"DepthwiseConv{r}D")(cfg["kernel"], **conv_kw))
    factories.append(lambda: getattr(L, f"Conv{r}DTranspose")(2, cfg["kernel"], **conv_kw))
    inp = keras.Input(shape)
    outs = []
    for f in factories:
        try:
            outs.append(f()(inp))
        except ValueError:  # a combination Keras itself refuses (e.g. an empty output)
            continue
    if not outs:
        return
    model = randomize(keras.Model(inp, outs), seed=sum(shape))
    x = np.random.default_rng(0).normal(size=(2, *shape)).astype("float32")
    want = keras_outputs(model, x)
    if any(w.size == 0 for w in want):
        return
    model.save(tmp / "c.keras")
    assert_outputs(jaxlstm.load_keras(tmp / "c.keras")(x), want, [str(cfg)] * len(want))


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(cfg=conv_configs())
def test_random_conv_and_pool_configs_match_keras3(cfg, tmp_path_factory):
    check_conv_config(cfg, tmp_path_factory.mktemp("conv"))


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(cfg=conv_configs())
def test_random_conv_and_pool_configs_match_keras3_many(cfg, tmp_path_factory):
    check_conv_config(cfg, tmp_path_factory.mktemp("conv"))


def lrcn():
    """Long-term recurrent convolutional network: a per-frame CNN feeding an LSTM."""
    return keras.Sequential(
        [
            keras.Input((4, 10, 9, 1)),
            L.TimeDistributed(L.Conv2D(4, 3, padding="same", activation="relu")),
            L.TimeDistributed(L.MaxPooling2D(2)),
            L.TimeDistributed(L.Conv2D(3, 3, strides=2, activation="relu")),
            L.TimeDistributed(L.Flatten()),
            L.LSTM(5),
            L.Dense(3, activation="softmax"),
        ]
    )


def test_lrcn_matches_keras3_and_saves_back(tmp_path):
    model = randomize(lrcn(), seed=5)
    x = np.random.default_rng(6).normal(size=(2, 4, 10, 9, 1)).astype("float32")
    want = keras_outputs(model, x)[0]
    model.save(tmp_path / "lrcn.keras")
    jmodel = jaxlstm.load_keras(tmp_path / "lrcn.keras")
    np.testing.assert_allclose(np.asarray(jmodel(x)), want, atol=1e-5, rtol=0)
    jaxlstm.save_keras(jmodel, tmp_path / "back.keras")
    back = keras.saving.load_model(tmp_path / "back.keras")
    np.testing.assert_allclose(np.asarray(back(x)), want, atol=1e-5, rtol=0)


def ctx(class_name):
    import flax.nnx as nnx

    return BuildContext("layer", class_name, "2.21.0", "f.h5", nnx.Rngs(0))


def test_keras1_convolution_is_refused():
    config = {"nb_filter": 4, "filter_length": 3, "border_mode": "same", "subsample_length": 2}
    w = np.zeros((3, 1, 2, 4), np.float32)
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="Keras 1 convolution config"):
        CONV_LAYERS["Conv1D"](config, [w, np.zeros(4, np.float32)], ctx("Convolution1D"))


def test_kernel_of_the_wrong_rank_is_a_file_error():
    w = np.zeros((3, 2, 4), np.float32)  # a Conv1D kernel under a Conv2D config
    with pytest.raises(jaxlstm.KerasFileError, match=r"kernel has shape \(3, 2, 4\); expected 4"):
        CONV_LAYERS["Conv2D"]({"kernel_size": [3, 3]}, [w, np.zeros(4, np.float32)], ctx("Conv2D"))


def test_unchecked_interpolation_is_refused():
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="interpolation='bicubic'"):
        CONV_LAYERS["UpSampling2D"]({"size": [2, 2], "interpolation": "bicubic"}, [], ctx("U"))


def test_groups_on_a_transposed_conv_is_refused():
    w = np.zeros((3, 3, 2, 4), np.float32)
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="groups=2 on a transpose conv"):
        CONV_LAYERS["Conv2DTranspose"](
            {"kernel_size": [3, 3], "groups": 2}, [w, np.zeros(2, np.float32)], ctx("Conv2DT")
        )
