"""``jaxlstm.train.fit`` against Keras 3's ``model.fit`` (JAX backend) on the same model, data
and batch size: a Keras 3 text classifier, Embedding(mask_zero=True) + Bidirectional(LSTM) +
Dense(sigmoid), binary cross-entropy, Adam. The first epoch (which compiles) and the later
epochs are timed apart, wall clock, each framework in its own fresh process; the processes
alternate (Keras, jaxlstm, Keras, ...) for ``--rounds`` rounds and each number is the best
round's, so that a busy shared machine penalises neither side more.

    KERAS_BACKEND=jax python benchmarks/bench_fit.py [--epochs 4] [--rounds 3] [--out FILE.md]

Prints a markdown table (and writes it to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "jax")


def data(n: int, length: int, vocab: int):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.integers(1, vocab, size=(n, length)).astype("int32")
    for i, keep in enumerate(rng.integers(length // 4, length + 1, size=n)):
        x[i, keep:] = 0
    y = (np.sum(x < vocab // 2, axis=1) > np.sum(x > 0, axis=1) / 2).astype("float32")
    return x, y


def build(path: str, length: int, vocab: int, units: int) -> None:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((length,), dtype="int32"),
            keras.layers.Embedding(vocab, 32, mask_zero=True),
            keras.layers.Bidirectional(keras.layers.LSTM(units)),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.save(path)


def run_keras(args) -> list[float]:
    import keras

    x, y = data(args.n, args.length, args.vocab)
    model = keras.saving.load_model(args.model, compile=False)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    times = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    model.fit(x, y, batch_size=args.batch, epochs=args.epochs, verbose=0, callbacks=[Clock()])
    return times


def run_jaxlstm(args) -> list[float]:
    import optax

    import jaxlstm
    from jaxlstm.train import fit

    x, y = data(args.n, args.length, args.vocab)
    model = jaxlstm.load_keras(args.model)
    tx = optax.adam(1e-3)
    times = []
    for _ in range(args.epochs):  # one fit per epoch: also shows that later fits compile nothing
        t0 = time.perf_counter()
        fit(
            model,
            x,
            y,
            batch_size=args.batch,
            epochs=1,
            optimizer=tx,
            loss="binary_crossentropy",
            progress=False,
        )
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--vocab", type=int, default=2000)
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out")
    p.add_argument("--worker", choices=["keras", "jaxlstm"])
    p.add_argument("--model")
    args = p.parse_args()
    if args.worker:
        fn = run_keras if args.worker == "keras" else run_jaxlstm
        print(json.dumps(fn(args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "text_classifier.keras")
        build(model, args.length, args.vocab, args.units)
        common = [f"--{k}={getattr(args, k)}" for k in ("n", "length", "vocab", "batch", "epochs")]
        runs = {"keras": [], "jaxlstm": []}
        for _ in range(args.rounds):
            for worker in runs:
                cmd = [sys.executable, __file__, "--worker", worker, "--model", model, *common]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True)
                runs[worker].append(json.loads(out.stdout.strip().splitlines()[-1]))

    def best(times):
        return min(t[0] for t in times), min(sum(t[1:]) / len(t[1:]) for t in times)

    (k_first, k_later), (j_first, j_later) = best(runs["keras"]), best(runs["jaxlstm"])
    steps = -(-args.n // args.batch)
    table = "\n".join(
        [
            f"Text classifier: Embedding({args.vocab}, 32, mask_zero) + Bidirectional(LSTM "
            f"{args.units}) + Dense; {args.n} sequences of {args.length}, batch {args.batch} "
            f"({steps} steps/epoch), Adam, binary cross-entropy; CPU, {os.cpu_count()} cores; "
            f"best of {args.rounds} alternating rounds.",
            "",
            "| | first epoch (compiles) | later epochs (mean) |",
            "| --- | ---: | ---: |",
            f"| Keras 3 `model.fit` (JAX) | {k_first:.2f} s | {k_later:.3f} s |",
            f"| jaxlstm `fit` | {j_first:.2f} s | {j_later:.3f} s |",
            f"| jaxlstm / Keras | {j_first / k_first:.2f}x | {j_later / k_later:.2f}x |",
        ]
    )
    print(table)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(table + "\n")


if __name__ == "__main__":
    main()
