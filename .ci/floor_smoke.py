"""Smoke test at the dependency floors (.ci/floors.txt): what pyproject.toml promises works there.

Run by .ci/run in a second, small virtual environment holding jaxlstm with its dependencies
at the lowest versions pyproject.toml allows. Not the whole suite (that runs at the newest
versions): it loads every demo file that ships in the package, calls it jitted and eagerly
against the outputs Keras recorded, takes a jax.grad through a whole model, saves it as
.keras and .h5 and reads both back. Prints the versions it ran with; exits non-zero on any
failure. Takes well under a minute on 2 cores.
"""

from __future__ import annotations

import sys
import tempfile
from importlib import metadata
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import jaxlstm
from jaxlstm._src.demo import keras_outputs, shipped_files

TOLERANCE = 1e-5


def check_demo_files() -> int:
    import json

    checked = 0
    for path in shipped_files():
        expected = np.load(path.with_suffix(".npz"))
        name = str(expected["layer"])
        options = json.loads(str(expected["options"]))
        if name:
            module = jaxlstm.load_keras_layer(path, name, **options)
        else:
            module = jaxlstm.load_keras(path)
        kwargs = {"mask": expected["mask"]} if "mask" in expected.files else {}
        for how, call in (("jitted", jaxlstm.predictor(module)), ("eager", module)):
            outs = call(expected["x"], **kwargs)
            outs = outs if isinstance(outs, tuple) else (outs,)
            err = max(
                float(np.max(np.abs(np.asarray(o) - e)))
                for o, e in zip(outs, keras_outputs(expected), strict=True)
            )
            print(f"  {path.name:<28} {how:<7} max |JAX-Keras| = {err:.2e}")
            assert err < TOLERANCE, (path.name, how, err)
            checked += 1
    return checked


def check_grad_and_save(folder: Path) -> int:
    path = next(p for p in shipped_files() if p.name == "airline_forecaster.keras")
    expected = np.load(path.with_suffix(".npz"))
    model = jaxlstm.load_keras(path)
    x, y = jnp.asarray(expected["x"]), jnp.asarray(expected["out0"]) + 0.1
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(p):
        return jnp.mean((nnx.merge(graphdef, p, rest)(x) - y) ** 2)

    grads = jax.grad(loss)(params)
    leaves = jax.tree.leaves(grads)
    assert leaves and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert any(float(jnp.max(jnp.abs(g))) > 0 for g in leaves)
    stepped = jax.tree.map(lambda p, g: p - 0.05 * g, params, grads)
    before, after = float(loss(params)), float(loss(stepped))
    assert after < before, (before, after)
    nnx.update(model, stepped)
    tuned = np.asarray(model(x))
    print(
        f"  jax.grad through the forecaster: {len(leaves)} arrays, loss {before:.4e} -> {after:.4e}"
    )
    for suffix in (".keras", ".h5"):
        out = folder / f"tuned{suffix}"
        jaxlstm.save_keras(model, out)
        back = np.asarray(jaxlstm.load_keras(out)(x))
        err = float(np.max(np.abs(back - tuned)))
        print(f"  save_keras -> {out.name:<12} reloaded, max |diff| = {err:.2e}")
        assert err < 1e-6, (suffix, err)
    return 3


def check_modules() -> int:
    """Dropout streams made on the host draw and advance; bfloat16 weights build on CPU."""
    path = next(p for p in shipped_files() if p.name == "keras2_bidirectional.h5")
    lstm = jaxlstm.load_keras_layer(path, dropout=0.5)
    lstm.train()
    x = np.ones((2, 5, lstm.forward.in_features), np.float32)
    assert not np.allclose(lstm(x), lstm(x)), "dropout masks did not change between calls"
    assert isinstance(lstm.forward.rngs.fork(), nnx.RngStream)
    small = jaxlstm.LSTM(3, 4, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    assert small(np.ones((2, 5, 3), np.float32)).dtype == jnp.bfloat16
    print("  host dropout streams draw and fork; bfloat16 LSTM builds and runs")
    return 2


def check_savedmodel() -> int:
    """A tf.keras SavedModel fixture read with the protobuf and google-crc32c floors."""
    folder = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "savedmodel"
    expected = np.load(folder / "lstm_seq.npz")
    err = float(np.max(np.abs(jaxlstm.load_keras(folder / "lstm_seq")(expected["x0"]) -
                              expected["out0"])))  # fmt: skip
    print(f"  SavedModel lstm_seq/            max |JAX-Keras| = {err:.2e}")
    assert err < TOLERANCE, err
    return 1


def main() -> int:
    names = ("jax", "jaxlib", "flax", "numpy", "h5py", "protobuf", "google-crc32c")
    versions = {p: metadata.version(p) for p in names}
    print("floor smoke test with " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    jax.config.update("jax_default_matmul_precision", "highest")
    n = check_demo_files() + check_modules() + check_savedmodel()
    with tempfile.TemporaryDirectory() as folder:
        n += check_grad_and_save(Path(folder))
    print(f"floor: {n} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
