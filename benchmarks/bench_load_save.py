"""From file to first answer, and saving, against Keras 3 (JAX backend), in fresh processes.

The model (made here with Keras 3, not committed: 32 MB) is a text classifier:
``Embedding(20000, 128, mask_zero) -> Bidirectional(LSTM(512, return_sequences)) -> LSTM(512)
-> Dense(10)``, 8.3 M parameters, saved as ``.keras``. One batch is 8 sequences of 100 ids.

First answer (each run a fresh Python process; parts timed inside it, ``total`` from the
process's start to the outputs on the host, interpreter start-up included):

- jaxlstm: ``import jaxlstm`` (and JAX/Flax), ``read`` (parse the file), ``build`` (the NNX
  modules, from the file's arrays), ``compile`` (one XLA program for the forward, through
  ``jaxlstm.predictor``), ``run`` (the first call). Also with the persistent compilation cache
  warm (``jaxlstm.enable_compilation_cache``, a second process).
- Keras 3: ``import keras``, ``keras.saving.load_model``, the first ``model.predict`` (compile
  and run) and a second one (run only).

Saving: ``jaxlstm.save_keras(model, "x.keras")`` against Keras's ``model.save("x.keras")`` on
the same model, each in its own process after loading, best of 3.

SavedModel (``--savedmodel PYTHON``, a Python with ``tensorflow-cpu`` and ``tf-keras``): the same
architecture written by tf-keras's ``model.save(dir)`` (a SavedModel directory, 32 MB of
variables), then, each in fresh processes, jaxlstm's read + build of that directory against
``tf_keras.models.load_model`` (TensorFlow import timed apart), and the outputs compared.

Usage: ``python benchmarks/bench_load_save.py [--repeat 3] [--dir DIR] [--savedmodel PYTHON]``
(needs Keras 3: ``pip install ".[bench]"``). Prints a table; ``--json FILE`` also writes the
numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MAKE_MODEL = """
import keras
keras.utils.set_random_seed(0)
inp = keras.Input((None,), dtype="int32")
x = keras.layers.Embedding(20000, 128, mask_zero=True)(inp)
x = keras.layers.Bidirectional(keras.layers.LSTM(512, return_sequences=True))(x)
x = keras.layers.LSTM(512)(x)
model = keras.Model(inp, keras.layers.Dense(10)(x))
model.save({path!r})
print('{{"params": %d}}' % model.count_params())
"""

BATCH = "np.random.default_rng(0).integers(1, 20000, (8, 100)).astype(np.int32)"

JAXLSTM_FIRST = """
import time, json, sys
t0 = time.perf_counter()
import numpy as np
import jaxlstm
if {cache!r}:
    jaxlstm.enable_compilation_cache({cache!r})
jaxlstm.load_keras  # loads JAX and Flax
from jaxlstm._src.models.graph import KerasModel
t1 = time.perf_counter()
kf = jaxlstm.read_keras_file({path!r})
t2 = time.perf_counter()
model = KerasModel(kf, kf.config)  # what load_keras does after reading
t3 = time.perf_counter()
x = {batch}
predict = jaxlstm.predictor(model)
compiled = predict._call.lower(predict.weights(), x).compile()
t4 = time.perf_counter()
y = np.asarray(compiled(predict.weights(), x))
t5 = time.perf_counter()
np.save({out!r}, y)
print(json.dumps(dict(start=t0, import_=t1 - t0, read=t2 - t1, build=t3 - t2, compile=t4 - t3,
                      run=t5 - t4, inside=t5 - t0)))
"""

KERAS_FIRST = """
import time, json
t0 = time.perf_counter()
import numpy as np
import keras
t1 = time.perf_counter()
model = keras.saving.load_model({path!r})
t2 = time.perf_counter()
x = {batch}
y = model.predict(x, verbose=0)
t3 = time.perf_counter()
model.predict(x, verbose=0)
t4 = time.perf_counter()
np.save({out!r}, y)
print(json.dumps(dict(start=t0, import_=t1 - t0, load=t2 - t1, predict1=t3 - t2,
                      predict2=t4 - t3, inside=t3 - t0)))
"""

JAXLSTM_SAVE = """
import time, json
import jaxlstm
model = jaxlstm.load_keras({path!r})
times = []
for i in range(3):
    t = time.perf_counter()
    jaxlstm.save_keras(model, {dst!r})
    times.append(time.perf_counter() - t)
print(json.dumps(dict(save=min(times))))
"""

KERAS_SAVE = """
import time, json
import keras
model = keras.saving.load_model({path!r})
times = []
for i in range(3):
    t = time.perf_counter()
    model.save({dst!r})
    times.append(time.perf_counter() - t)
print(json.dumps(dict(save=min(times))))
"""


MAKE_SAVEDMODEL = """
import os
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np
import tf_keras as keras
keras.utils.set_random_seed(0)
inp = keras.Input((None,), dtype="int32")
x = keras.layers.Embedding(20000, 128, mask_zero=True)(inp)
x = keras.layers.Bidirectional(keras.layers.LSTM(512, return_sequences=True))(x)
x = keras.layers.LSTM(512)(x)
model = keras.Model(inp, keras.layers.Dense(10)(x))
model.save({path!r}, save_format="tf")
print('{{"params": %d}}' % model.count_params())
"""

JAXLSTM_SAVEDMODEL = """
import time, json
import numpy as np
import jaxlstm
jaxlstm.load_keras  # loads JAX and Flax
from jaxlstm._src.models.graph import KerasModel
t1 = time.perf_counter()
kf = jaxlstm.read_keras_file({path!r})
t2 = time.perf_counter()
model = KerasModel(kf, kf.config)
t3 = time.perf_counter()
np.save({out!r}, np.asarray(jaxlstm.predictor(model)({batch})))
print(json.dumps(dict(read=t2 - t1, build=t3 - t2)))
"""

TF_KERAS_LOAD = """
import os, time, json
os.environ["TF_USE_LEGACY_KERAS"] = "1"
t0 = time.perf_counter()
import numpy as np
import tensorflow as tf
import tf_keras as keras
t1 = time.perf_counter()
model = keras.models.load_model({path!r})
t2 = time.perf_counter()
np.save({out!r}, model.predict({batch}, verbose=0))
print(json.dumps(dict(import_=t1 - t0, load=t2 - t1)))
"""


def _child(code: str, python: str = sys.executable) -> dict:
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    run = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if run.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{run.stderr[-3000:]}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    result["total"] = wall  # process start to outputs (and exit), interpreter start-up included
    return result


def _median(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "start"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per measurement")
    parser.add_argument("--dir", help="working folder (default: a temporary one)")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    parser.add_argument(
        "--savedmodel",
        metavar="PYTHON",
        help="a Python with tensorflow-cpu + tf-keras: also time a tf-keras SavedModel's read",
    )
    parser.add_argument("--only-savedmodel", action="store_true", help="skip the Keras 3 part")
    args = parser.parse_args()
    if args.only_savedmodel and not args.savedmodel:
        parser.error("--only-savedmodel needs --savedmodel PYTHON")
    folder = Path(args.dir or tempfile.mkdtemp(prefix="jaxlstm-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    if args.savedmodel:
        bench_savedmodel(folder, args.savedmodel, args.repeat)
        if args.only_savedmodel:
            return
    path = str(folder / "classifier.keras")
    if not os.path.exists(path):
        _child(MAKE_MODEL.format(path=path))
    size = os.path.getsize(path) / 2**20
    fmt = dict(path=path, batch=BATCH)
    jx = [
        _child(JAXLSTM_FIRST.format(cache="", out=str(folder / "y_jax.npy"), **fmt))
        for _ in range(args.repeat)
    ]
    cache = str(folder / "xla-cache")
    _child(JAXLSTM_FIRST.format(cache=cache, out=str(folder / "y_jax.npy"), **fmt))  # fill it
    warm = [
        _child(JAXLSTM_FIRST.format(cache=cache, out=str(folder / "y_jax.npy"), **fmt))
        for _ in range(args.repeat)
    ]
    ks = [
        _child(KERAS_FIRST.format(out=str(folder / "y_keras.npy"), **fmt))
        for _ in range(args.repeat)
    ]
    import numpy as np

    err = float(np.max(np.abs(np.load(folder / "y_jax.npy") - np.load(folder / "y_keras.npy"))))
    save_j = _child(JAXLSTM_SAVE.format(path=path, dst=str(folder / "saved_jax.keras")))
    save_k = _child(KERAS_SAVE.format(path=path, dst=str(folder / "saved_keras.keras")))
    j, w, k = _median(jx), _median(warm), _median(ks)

    print(
        f"{Path(path).name}: {size:.1f} MiB, Embedding + Bidirectional(LSTM 512) + LSTM 512 + "
        f"Dense; batch (8, 100); median of {args.repeat} fresh processes each; "
        f"max |jaxlstm - Keras| = {err:.2e}\n"
    )
    rows = [
        ("import (jaxlstm + JAX + Flax | keras)", j["import_"], w["import_"], k["import_"]),
        ("read + build | load_model", j["read"] + j["build"], w["read"] + w["build"], k["load"]),
        ("  read the file", j["read"], w["read"], None),
        ("  build the modules", j["build"], w["build"], None),
        (
            "compile + first run | first predict",
            j["compile"] + j["run"],
            w["compile"] + w["run"],
            k["predict1"],
        ),
        ("  compile", j["compile"], w["compile"], None),
        ("  run", j["run"], w["run"], k["predict2"]),
        ("first answer, process start to outputs", j["total"], w["total"], k["total"]),
        ("save .keras (best of 3)", save_j["save"], None, save_k["save"]),
    ]
    head = f"{'seconds':<42}{'jaxlstm':>9}{'(cache)':>9}{'Keras 3':>9}{'Keras/jaxlstm':>15}"
    print(head + "\n" + "-" * len(head))
    for label, a, b, c in rows:
        cells = [f"{v:9.3f}" if v is not None else " " * 9 for v in (a, b, c)]
        ratio = f"{c / a:14.2f}x" if a and c else ""
        print(f"{label:<42}{''.join(cells)}{ratio}")
    print("\n(cache): jaxlstm.enable_compilation_cache() warm, as the jaxlstm command runs.")
    print("Keras's 'run' row is its second predict (compiled); jaxlstm's is the first call.")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                dict(
                    jaxlstm=j,
                    jaxlstm_cache=w,
                    keras=k,
                    save_jaxlstm=save_j["save"],
                    save_keras=save_k["save"],
                    max_abs_err=err,
                    mib=size,
                ),
                fh,
                indent=1,
            )


def bench_savedmodel(folder: Path, python: str, repeat: int) -> None:
    """jaxlstm's read + build of a tf-keras SavedModel against tf-keras's load_model."""
    import numpy as np

    path = str(folder / "classifier_savedmodel")
    if not os.path.exists(path):
        _child(MAKE_SAVEDMODEL.format(path=path), python)
    size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20
    fmt = dict(path=path, batch=BATCH)
    jx = [
        _child(JAXLSTM_SAVEDMODEL.format(out=str(folder / "y_sm_jax.npy"), **fmt))
        for _ in range(repeat)
    ]
    tk = [
        _child(TF_KERAS_LOAD.format(out=str(folder / "y_sm_tf.npy"), **fmt), python)
        for _ in range(repeat)
    ]
    err = float(np.max(np.abs(np.load(folder / "y_sm_jax.npy") - np.load(folder / "y_sm_tf.npy"))))
    j, k = _median(jx), _median(tk)
    print(
        f"SavedModel {Path(path).name}/: {size:.1f} MiB; median of {repeat} fresh processes "
        f"each; max |jaxlstm - tf-keras| = {err:.2e}"
    )
    ours = j["read"] + j["build"]
    print(f"  jaxlstm read {j['read']:.3f} s + build {j['build']:.3f} s = {ours:.3f} s")
    print(
        f"  tf-keras load_model {k['load']:.3f} s (after importing TensorFlow + tf-keras, "
        f"{k['import_']:.3f} s): {k['load'] / ours:.1f}x jaxlstm's\n"
    )


if __name__ == "__main__":
    main()
