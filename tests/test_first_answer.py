"""From file to first answer: loading builds modules from the file's arrays and compiles nothing,
the first jitted call compiles the forward once, and ``import jaxlstm`` stays cheap."""

import contextlib
import subprocess
import sys
from pathlib import Path

import jax
import jax.monitoring
import numpy as np
import pytest
from flax import nnx

import jaxlstm

ROOT = Path(__file__).parent.parent
FIX = ROOT / "tests" / "fixtures"
DATA = ROOT / "jaxlstm" / "data"

_COMPILES: list[list[str]] = []


def _on_event(event: str, duration: float, **kwargs) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        for seen in _COMPILES:
            seen.append(event)


jax.monitoring.register_event_duration_secs_listener(_on_event)


@contextlib.contextmanager
def count_compiles(fresh: bool = True):
    """Counts the XLA compilations (backend compiles) inside the block, from empty compile
    caches: what an earlier test compiled does not hide a compilation here."""
    if fresh:
        jax.clear_caches()
    seen: list[str] = []
    _COMPILES.append(seen)
    try:
        yield seen
    finally:
        _COMPILES.remove(seen)


MODEL_FILES = [
    DATA / "airline_forecaster.keras",  # Keras 3: LSTM, Dense
    DATA / "keras3_bidirectional.keras",
    FIX / "keras2_models" / "forecaster.h5",  # Dropout layers
    FIX / "keras2_models" / "masking_layers.h5",  # SpatialDropout1D, GaussianNoise, ...
    FIX / "keras2_models" / "cnn_lstm.h5",
    FIX / "keras2_models" / "nested.h5",
    FIX / "keras2_models" / "seq2seq.h5",
    FIX / "keras2_models" / "gru_refused.h5",  # a GRU (named when GRUs were refused)
]
LAYER_FILES = [
    DATA / "keras1_lstm.h5",  # Keras 1 per-gate arrays, converted
    DATA / "keras2_cudnn.h5",  # CuDNN layout, converted
    FIX / "keras2" / "bidi_concat.h5",
    FIX / "keras2" / "weights_only.h5",
    FIX / "keras2" / "cudnn_gru.h5",  # CuDNNGRU, converted
    FIX / "keras1" / "k1_gru.h5",  # Keras 1's nine GRU arrays
    FIX / "keras2" / "gru_weights_only_keras224.h5",
    FIX / "keras2" / "simple_rnn.h5",
]


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.name)
def test_load_keras_compiles_nothing(path):
    with count_compiles() as compiles:
        jaxlstm.load_keras(path)
    assert compiles == []


@pytest.mark.parametrize("path", LAYER_FILES, ids=lambda p: p.name)
def test_load_keras_layer_compiles_nothing(path):
    kf = jaxlstm.read_keras_file(path)
    name = sorted(kf.layers)[0]
    with count_compiles() as compiles:
        jaxlstm.load_keras_layer(path, name)
        jaxlstm.load_keras_layer(path, name, dropout=0.3, recurrent_dropout=0.2)  # streams
    assert compiles == []


def test_dropout_streams_made_on_the_host_draw_like_flax_streams():
    lstm = jaxlstm.load_keras_layer(DATA / "keras2_bidirectional.h5", dropout=0.5)
    streams = [lstm.forward.rngs, lstm.backward.rngs]
    assert all(isinstance(s, nnx.RngStream) for s in streams)
    keys = [jax.random.key_data(s()) for s in streams]
    assert not np.array_equal(keys[0], keys[1])  # one stream per layer
    expected = jax.random.key_data(jax.random.fold_in(jax.random.key(1), 0))
    np.testing.assert_array_equal(keys[1], expected)  # stream k is key k, count from 0
    x = np.ones((2, 4, lstm.forward.in_features), np.float32)
    lstm.train()
    a, b = lstm(x), lstm(x)
    assert not np.allclose(a, b)  # the counts advance: new masks per call
    forked = lstm.forward.rngs.fork()
    assert isinstance(forked, nnx.RngStream)


def test_given_rngs_are_forked_as_before():
    a = jaxlstm.load_keras_layer(DATA / "keras1_lstm.h5", dropout=0.5, rngs=nnx.Rngs(3))
    b = jaxlstm.load_keras_layer(DATA / "keras1_lstm.h5", dropout=0.5, rngs=nnx.Rngs(3))
    np.testing.assert_array_equal(jax.random.key_data(a.rngs()), jax.random.key_data(b.rngs()))


def test_first_call_compiles_only_the_forward():
    model = jaxlstm.load_keras(DATA / "airline_forecaster.keras")
    x = np.asarray(np.load(DATA / "airline_forecaster.npz")["x"], np.float32)
    with count_compiles() as compiles:
        predict = jaxlstm.predictor(model)
        y = jax.block_until_ready(predict(x))
    assert len(compiles) == 1
    with count_compiles(fresh=False) as compiles:
        jax.block_until_ready(predict(x))
    assert compiles == []
    np.testing.assert_allclose(y, np.load(DATA / "airline_forecaster.npz")["out0"], atol=1e-5)


def test_import_is_cheap():
    """``import jaxlstm`` loads neither the training stack nor Flax/JAX: names load on use."""
    code = (
        "import sys, jaxlstm; heavy = ['optax', 'orbax', 'matplotlib', 'yaml', 'keras', "
        "'tensorflow', 'flax', 'jax']; print([m for m in heavy if m in sys.modules]); "
        "jaxlstm.load_keras; print(sorted(m for m in ('optax', 'orbax', 'matplotlib') "
        "if m in sys.modules and m != 'optax'))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    first, second = run.stdout.split("\n")[:2]
    assert first == "[]"
    assert second == "[]"  # flax itself may bring optax; matplotlib and orbax stay out


CACHED_RUN = """
import sys, jax.monitoring as mon, numpy as np
hits = []
mon.register_event_listener(lambda e, **k: hits.append(e) if "cache_hits" in e else None)
import jaxlstm
print(jaxlstm.enable_compilation_cache(sys.argv[1]))
model = jaxlstm.load_keras(sys.argv[2])
jaxlstm.predictor(model)(np.zeros((2, 12, 1), np.float32))
print(len(hits))
"""


def test_compilation_cache_serves_a_new_process(tmp_path):
    folder = tmp_path / "xla"
    args = [sys.executable, "-c", CACHED_RUN, str(folder), str(DATA / "airline_forecaster.keras")]
    runs = [
        subprocess.run(args, capture_output=True, text=True, timeout=120, check=True).stdout
        for _ in range(2)
    ]
    assert runs[0].split() == [str(folder), "0"]  # compiled, written to the cache
    assert any(folder.iterdir())
    assert runs[1].split()[0] == str(folder) and int(runs[1].split()[1]) >= 1  # read back
