"""save_keras and `jaxlstm convert`: files Keras 3 opens, with the same numbers; atomic writes."""

from __future__ import annotations

import ctypes
import gc
import json
import os
import stat
import tracemalloc
import zipfile
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxlstm
from jaxlstm._src import save as save_module
from jaxlstm._src.cli import main
from jaxlstm._src.writers import keras_v3 as keras_v3_writer

keras = pytest.importorskip("keras")
optax = pytest.importorskip("optax")
FIX = Path(__file__).parent / "fixtures" / "keras2_models"


def npz(name):
    data = np.load(FIX / f"{name}.npz")
    ins = [data[f"in{i}"] for i in range(sum(k.startswith("in") for k in data.files))]
    outs = [data[f"out{i}"] for i in range(sum(k.startswith("out") for k in data.files))]
    return data, ins, outs


def keras_call(model, ins):
    """Inference outputs through one jitted program (Keras's eager calls compile every op)."""
    out = model.predict(ins if len(ins) > 1 else ins[0], verbose=0)
    return [np.asarray(o) for o in (out if isinstance(out, list | tuple) else [out])]


def test_keras3_refuses_the_keras2_files():
    with pytest.raises(Exception, match="time_major"):
        keras.saving.load_model(FIX / "forecaster.h5", compile=False)


def test_convert_gives_files_keras3_loads_with_keras2_numbers(tmp_path):
    """The CLI over save_keras (test_save_fixtures.py takes every fixture through save_keras)."""
    out = tmp_path / "forecaster.keras"
    assert main(["convert", str(FIX / "forecaster.h5"), str(out)]) == 0
    _, ins, want = npz("forecaster")
    got = keras_call(keras.saving.load_model(out, compile=False), ins)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=0)


def _sequential():
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((6, 2)),
            L.LSTM(5, return_sequences=True, name="zz_lstm"),
            L.Dropout(0.1, name="dropout"),
            L.LSTM(3, name="b_lstm"),
            L.Dense(1, name="a_dense"),
        ],
        name="seq",
    )


def _functional():
    L = keras.layers
    x = keras.Input((6, 2), name="x")
    h = L.Bidirectional(L.LSTM(4, return_sequences=True), name="z_bidi")(x)
    h = L.BatchNormalization(name="m_norm")(h)  # non-trainable weights, updated in training
    h = L.LSTM(3, name="b_lstm")(h)
    return keras.Model(x, L.Dense(1, name="a_dense")(h), name="func")


def _nested():
    L = keras.layers
    inner = keras.Sequential(
        [
            keras.Input((6, 2)),
            L.LSTM(5, return_sequences=True, name="zz_lstm"),
            # frozen: Keras's legacy .h5 order puts its weights after mm_dense's
            L.Dense(3, name="aa_dense", trainable=False),
            L.Dense(3, name="mm_dense"),
        ],
        name="inner",
    )
    x = keras.Input((6, 2), name="x")
    h = L.LSTM(4, name="b_lstm")(inner(x))
    return keras.Model(x, L.Dense(1, name="a_out")(h), name="nest")


def _two_inputs():
    L = keras.layers
    a, b = keras.Input((6, 2), name="a"), keras.Input((4, 3), name="b")
    ha = L.LSTM(4, name="z_lstm")(a)
    hb = L.LSTM(2, name="c_lstm")(b)
    h = L.Concatenate(name="m_cat")([ha, hb])
    return keras.Model([a, b], L.Dense(1, name="a_dense")(h), name="two")


def _stacked():
    """Stacked cells (RNN([cell, cell]), RNN(StackedRNNCells), in Bidirectional): each cell's
    weights in Keras's order, per cell under cell/cells in the .weights.h5 (two cells of one
    class: lstm_cell, lstm_cell_1)."""
    L = keras.layers
    x = keras.Input((6, 2), name="x")
    h = L.RNN([L.LSTMCell(4), L.LSTMCell(3)], return_sequences=True, name="z_stk")(x)
    h = L.Bidirectional(
        L.RNN(L.StackedRNNCells([L.SimpleRNNCell(3), L.GRUCell(2, reset_after=False)])),
        name="a_bi",
    )(h)
    return keras.Model(x, L.Dense(1, name="m_dense")(h), name="stk")


def _video():
    """A ConvLSTM video classifier (two ConvLSTM2D, BatchNormalization, MaxPooling3D)."""
    L = keras.layers
    x = keras.Input((3, 5, 5, 2), name="x")
    h = L.ConvLSTM2D(3, 3, padding="same", return_sequences=True, name="z_clstm")(x)
    h = L.BatchNormalization(name="m_norm")(h)
    h = L.MaxPooling3D((1, 2, 2), name="pool")(h)
    h = L.ConvLSTM2D(2, 2, name="b_clstm")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    return keras.Model(x, L.Dense(1, name="a_dense")(h), name="video")


def _inputs(model, rng):
    shapes = [tuple(i.shape[1:]) for i in model.inputs]
    return [rng.normal(size=(16, *s)).astype("float32") for s in shapes]


@pytest.mark.parametrize(
    "build, source",
    [
        (_sequential, ".h5"),
        (_functional, ".keras"),
        (_nested, ".keras"),
        (_two_inputs, ".h5"),
        pytest.param(_stacked, ".keras", marks=pytest.mark.slow),  # ~15 s: Keras compiles
        (_video, ".keras"),
    ],
    ids=["sequential", "functional", "nested", "two_inputs", "stacked", "conv_lstm_video"],
)
def test_finetune_in_jax_then_back_to_keras(build, source, tmp_path):
    """nnx.jit training reorders the module's layer dicts (by name); every writer must follow
    the model's own order, or weights land in the wrong layers. Layer names here sort in
    another order than the model's. (The .h5 sources are Keras 3's legacy saver's output.)"""
    src = build()
    rng = np.random.default_rng(0)
    ins = _inputs(src, rng)
    y = sum(x.sum(axis=tuple(range(1, x.ndim))) for x in ins)[:, None].astype("float32")
    src.save(tmp_path / f"src{source}")

    model = jaxlstm.load_keras(tmp_path / f"src{source}")
    before = np.asarray(model(*ins))
    model.train()
    opt = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt, ins, y):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(*ins) - y) ** 2))(model)
        opt.update(model, grads)
        return loss

    losses = [float(step(model, opt, ins, y)) for _ in range(3)]
    assert losses[-1] < losses[0]
    model.eval()
    tuned = np.asarray(model(*ins))
    assert np.max(np.abs(tuned - before)) > 1e-3
    feed = ins if len(ins) > 1 else ins[0]
    for ext in (".keras", ".h5"):
        jaxlstm.save_keras(model, tmp_path / f"tuned{ext}")
        back = keras.saving.load_model(tmp_path / f"tuned{ext}", compile=False)
        np.testing.assert_allclose(np.asarray(back(feed, training=False)), tuned, atol=1e-5)
        again = jaxlstm.load_keras(tmp_path / f"tuned{ext}")
        np.testing.assert_allclose(np.asarray(again(*ins)), tuned, atol=1e-6)
    # Keras 3's weights-only file: what load_weights reads into the model built from the config
    jaxlstm.save_keras(model, tmp_path / "tuned.weights.h5")
    fresh = keras.Model.from_config(src.get_config()) if build is not _sequential else None
    fresh = fresh if fresh is not None else keras.Sequential.from_config(src.get_config())
    fresh.load_weights(tmp_path / "tuned.weights.h5")
    np.testing.assert_allclose(np.asarray(fresh(feed, training=False)), tuned, atol=1e-5)


def test_cudnn_model_becomes_a_keras3_lstm(tmp_path):
    src = Path(__file__).parent / "fixtures" / "keras2" / "cudnn.h5"
    jaxlstm.save_keras(jaxlstm.load_keras(src), tmp_path / "c.keras")
    expected = np.load(src.with_suffix(".npz"))
    model = keras.saving.load_model(tmp_path / "c.keras", compile=False)
    classes = json.dumps(json.loads(model.to_json()))
    assert "CuDNNLSTM" not in classes
    np.testing.assert_allclose(np.asarray(model(expected["x"])), expected["out0"], atol=1e-5)


def test_what_keras3_cannot_express_is_refused(tmp_path):
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="time_major=True, which Keras 3"):
        jaxlstm.save_keras(jaxlstm.load_keras(FIX / "time_major.h5"), tmp_path / "t.keras")
    hs = Path(__file__).parent / "fixtures" / "keras2" / "lstm_hard_sigmoid.h5"
    with pytest.raises(jaxlstm.UnsupportedOptionError, match=r"hard_sigmoid.*clip\(0\.2x \+ 0\.5"):
        jaxlstm.save_keras(jaxlstm.load_keras(hs), tmp_path / "h.keras")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_masked_decoder_with_initial_state_is_not_written_for_keras3(tmp_path):
    """tf.keras masks a decoder LSTM called with initial_state; Keras 3 does not (it fills in
    masks only for one-tensor calls), so converting would change the numbers."""
    model = jaxlstm.load_keras(FIX / "attention_seq2seq.h5")
    with pytest.raises(jaxlstm.UnsupportedOptionError, match="initial_state in a model with masks"):
        jaxlstm.save_keras(model, tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()


def test_save_keras_wants_a_whole_model(tmp_path):
    layer = jaxlstm.load_keras_layer(FIX / "forecaster.h5", "lstm")
    with pytest.raises(jaxlstm.JaxLSTMError, match="save_keras writes whole models; received LSTM"):
        jaxlstm.save_keras(layer, tmp_path / "x.keras")


@pytest.fixture(scope="module")
def forecaster():
    return jaxlstm.load_keras(FIX / "forecaster.h5")


EXTS = [".keras", ".h5", ".weights.h5"]


@pytest.mark.parametrize("ext", EXTS)
def test_a_failed_write_leaves_the_old_file_and_no_debris(ext, forecaster, tmp_path, monkeypatch):
    target = tmp_path / f"model{ext}"
    target.write_bytes(b"the previous model")

    def crash(fd):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(save_module.os, "fsync", crash)
    with pytest.raises(OSError, match="simulated"):
        jaxlstm.save_keras(forecaster, target)
    assert target.read_bytes() == b"the previous model"
    assert os.listdir(tmp_path) == [target.name]


def test_a_write_failing_halfway_leaves_no_debris(forecaster, tmp_path, monkeypatch):
    def crash(src, dst, length=0):
        dst.write(src.read(100))
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(keras_v3_writer.shutil, "copyfileobj", crash)
    with pytest.raises(OSError, match="simulated"):
        jaxlstm.save_keras(forecaster, tmp_path / "model.keras")  # the weights file and archive
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["model.pkl", "model", "model.H5", "model.weights"])
def test_a_name_with_no_keras_ending_is_refused(name, forecaster, tmp_path):
    with pytest.raises(
        jaxlstm.JaxLSTMError,
        match=r"from the name .*; expected a name ending in \.keras .*\.weights\.h5 .*\.hdf5",
    ):
        jaxlstm.save_keras(forecaster, tmp_path / name)
    assert os.listdir(tmp_path) == []


def test_a_missing_folder_is_named(forecaster, tmp_path):
    folder = tmp_path / "runs" / "today"
    with pytest.raises(jaxlstm.JaxLSTMError, match=f"the folder '{folder}' does not exist"):
        jaxlstm.save_keras(forecaster, folder / "m.keras")
    (tmp_path / "m.keras").mkdir()
    with pytest.raises(jaxlstm.JaxLSTMError, match="it is a folder"):
        jaxlstm.save_keras(forecaster, tmp_path / "m.keras")


def test_a_folder_we_cannot_write_to_is_named(forecaster, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(save_module.os, "open", refuse)  # (root ignores a read-only folder)
    with pytest.raises(
        jaxlstm.JaxLSTMError,
        match=f"cannot create a file in the folder '{tmp_path}' \\(PermissionError: Permission",
    ):
        jaxlstm.save_keras(forecaster, tmp_path / "m.keras")


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["022", "027"])
def test_written_files_get_the_mode_the_umask_gives(umask, forecaster, tmp_path):
    old = os.umask(umask)
    try:
        for ext in (*EXTS, ".hdf5"):
            jaxlstm.save_keras(forecaster, tmp_path / f"m{ext}")
            assert stat.S_IMODE(os.stat(tmp_path / f"m{ext}").st_mode) == 0o666 & ~umask, ext
    finally:
        os.umask(old)


def test_each_name_gets_its_format(forecaster, tmp_path):
    for ext in (*EXTS, ".hdf5"):
        jaxlstm.save_keras(forecaster, tmp_path / f"m{ext}")
    assert zipfile.is_zipfile(tmp_path / "m.keras")
    with h5py.File(tmp_path / "m.weights.h5") as f:  # Keras 3's weights file: no config
        assert "layers" in f and "model_weights" not in f and "model_config" not in f.attrs
    for ext in (".h5", ".hdf5"):
        with h5py.File(tmp_path / f"m{ext}") as f:
            assert "model_weights" in f and "model_config" in f.attrs
    x = npz("forecaster")[1][0]
    want = np.asarray(forecaster(x))
    for ext in (".keras", ".h5", ".hdf5"):
        np.testing.assert_array_equal(np.asarray(jaxlstm.load_keras(tmp_path / f"m{ext}")(x)), want)


def test_archive_members_are_stored_like_keras(forecaster, tmp_path):
    jaxlstm.save_keras(forecaster, tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        infos = z.infolist()
        assert [i.filename for i in infos] == ["metadata.json", "config.json", "model.weights.h5"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        assert z.testzip() is None  # CRCs right
        with z.open("model.weights.h5") as member, h5py.File(member) as h5:
            assert "layers" in h5


def _peak_rss_reset() -> int | None:
    """Reset this process's peak RSS (Linux) to its current RSS, with free heap memory handed
    back first so that reusing it counts; the current RSS, or None where that is impossible."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _status("VmRSS")
    except (OSError, AttributeError):
        return None


def _status(key: str) -> int:
    with open("/proc/self/status") as fh:
        line = next(line for line in fh if line.startswith(key + ":"))
    return int(line.split()[1]) * 1024


def test_saving_holds_one_array_at_a_time(tmp_path):
    """Memory while saving stays near the largest array, not the file: measured by tracemalloc
    (Python objects and NumPy buffers) and, where Linux lets a process reset its peak RSS, by
    the whole process's peak (libhdf5's own allocations included)."""
    L = keras.layers
    src = keras.Sequential(
        [keras.Input((3, 1024)), *[L.Dense(1024) for _ in range(5)], L.LSTM(8)]
    )  # Dense rather than big LSTMs: their random initialisers make loading slow
    src.save(tmp_path / "big.keras")
    model = jaxlstm.load_keras(tmp_path / "big.keras")
    arrays = jax.tree.leaves(nnx.state(model, nnx.Param))
    total, largest = sum(a.nbytes for a in arrays), max(a.nbytes for a in arrays)
    assert total > 20 * 2**20 and largest == 4 * 2**20
    bound = largest + 4 * 2**20  # plus the 1 MiB copy buffer and small change
    for ext in EXTS:
        out = tmp_path / f"out{ext}"
        jaxlstm.save_keras(model, out)  # first use: imports, caches
        gc.collect()
        tracemalloc.start()
        try:
            jaxlstm.save_keras(model, out)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < bound, (ext, peak)
        gc.collect()
        base = _peak_rss_reset()
        if base is not None:
            jaxlstm.save_keras(model, out)
            assert _status("VmHWM") - base < bound, (ext, _status("VmHWM") - base)


def test_convert_will_not_overwrite_unless_asked(tmp_path, capsys):
    out = tmp_path / "m.keras"
    out.write_text("keep me")
    assert main(["convert", str(FIX / "forecaster.h5"), str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_text() == "keep me"
    assert main(["convert", str(FIX / "forecaster.h5"), str(out), "--overwrite"]) == 0
    assert jax.tree.leaves(nnx.state(jaxlstm.load_keras(out), nnx.Param))
