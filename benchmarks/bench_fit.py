"""``jaxlstm.train.fit`` against Keras 3's ``model.fit`` (JAX backend) on the same model, data
and batch size: a Keras 3 text classifier, Embedding(mask_zero=True) + Bidirectional(LSTM) +
Dense(sigmoid), binary cross-entropy, Adam. The first epoch (which compiles) and the later
epochs are timed apart, wall clock, each framework in its own fresh process; the processes
alternate (Keras, jaxlstm, Keras, ...) for ``--rounds`` rounds and each number is the best
round's, so that a busy shared machine penalises neither side more.

    KERAS_BACKEND=jax python benchmarks/bench_fit.py [--epochs 4] [--rounds 3] [--out FILE.md]

Prints a markdown table (and writes it to ``--out``).

``--processes`` measures instead the distributed runtime's own overhead on the same model:
jaxlstm ``fit`` steps per second (later epochs, compilation excluded) on 1 process x 1 device,
1 process x 2 devices (one mesh) and 2 processes x 1 device (``jax.distributed`` on
127.0.0.1, the same global batches), each in fresh processes, best of ``--rounds``:

    python benchmarks/bench_fit.py --processes [--n 512] [--batch 32] [--epochs 3]
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


def run_spmd(args) -> list[float]:
    """Later epochs' seconds of ``fit`` in this process (one of ``args.num_processes``)."""
    import optax

    import jaxlstm
    from jaxlstm.train import fit, initialize

    if args.num_processes > 1:
        initialize(f"127.0.0.1:{args.port}", args.num_processes, args.process_id)
    import jax

    x, y = data(args.n, args.length, args.vocab)
    model = jaxlstm.load_keras(args.model)
    mesh = jax.sharding.Mesh(jax.devices(), ("data",))
    history = fit(
        model,
        x,
        y,
        batch_size=args.batch,
        epochs=args.epochs,
        optimizer=optax.adam(1e-3),
        loss="binary_crossentropy",
        mesh=mesh,
        progress=False,
    )
    return [row["seconds"] for row in history.epochs]


def processes_table(args, model: str) -> str:
    import socket

    common = [f"--{k}={getattr(args, k)}" for k in ("n", "length", "vocab", "batch", "epochs")]
    layouts = {"1 process x 1 device": (1, 1), "1 process x 2 devices": (1, 2)}
    layouts["2 processes x 1 device"] = (2, 1)
    best = {}
    for _ in range(args.rounds):
        for name, (procs, devices) in layouts.items():
            env = {
                **os.environ,
                "JAX_PLATFORMS": "cpu",
                "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
            }
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            cmd = [sys.executable, __file__, "--worker", "spmd", "--model", model, *common]
            cmd += [f"--num-processes={procs}", f"--port={port}"]
            running = [
                subprocess.Popen(
                    [*cmd, f"--process-id={k}"], stdout=subprocess.PIPE, text=True, env=env
                )
                for k in range(procs)
            ]
            try:
                outs = [p.communicate(timeout=600)[0] for p in running]
            finally:
                for p in running:
                    if p.poll() is None:
                        p.kill()
            if any(p.returncode for p in running):
                raise SystemExit(f"{name}: a worker failed")
            later = json.loads(outs[0].strip().splitlines()[-1])[1:]
            rate = -(-args.n // args.batch) / (sum(later) / len(later))
            best[name] = max(best.get(name, 0.0), rate)
    one = best["1 process x 1 device"]
    mesh = best["1 process x 2 devices"]
    lines = [
        f"jaxlstm `fit` steps/s (later epochs; compilation excluded), text classifier "
        f"Embedding({args.vocab}, 32, mask_zero) + Bidirectional(LSTM {args.units}) + Dense, "
        f"{args.n} sequences of {args.length}, global batch {args.batch}; CPU, "
        f"{os.cpu_count()} cores, virtual CPU devices; best of {args.rounds} rounds.",
        "",
        "| layout | steps/s | vs 1 x 1 | vs 1 process x 2 devices |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, rate in best.items():
        lines.append(f"| {name} | {rate:.1f} | {rate / one:.2f}x | {rate / mesh:.2f}x |")
    return "\n".join(lines)


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
    p.add_argument("--processes", action="store_true", help="1 vs 2 processes (see above)")
    p.add_argument("--worker", choices=["keras", "jaxlstm", "spmd"])
    p.add_argument("--model")
    p.add_argument("--num-processes", type=int, default=1)
    p.add_argument("--process-id", type=int, default=0)
    p.add_argument("--port", type=int)
    args = p.parse_args()
    if args.worker:
        fn = {"keras": run_keras, "jaxlstm": run_jaxlstm, "spmd": run_spmd}[args.worker]
        print(json.dumps(fn(args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "text_classifier.keras")
        build(model, args.length, args.vocab, args.units)
        if args.processes:
            table = processes_table(args, model)
            print(table)
            if args.out:
                with open(args.out, "w") as fh:
                    fh.write(table + "\n")
            return
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
