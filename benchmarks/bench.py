"""LSTM (or GRU) speed on this machine: jaxlstm against Flax (Linen and NNX), Keras 3 and
PyTorch.

Usage::

    python benchmarks/bench.py                          # all shapes, every installed library
    python benchmarks/bench.py --cell gru --shapes small,medium   # the GRU (reset_after=True)
    python benchmarks/bench.py --shapes medium,large --reps 9 --out results/
    python benchmarks/bench.py --long-memory            # T=100,000 fwd+bwd, checkpointed

Every implementation runs the same single-layer LSTM (``--cell gru``: GRU, Keras 3's
``reset_after=True``, Flax's ``GRUCell``, PyTorch's ``nn.GRU``: the same convention), float32,
``return_sequences=True``, on inputs ``(batch, time, input)``; "fwd" is one call, "fwd+bwd"
is the value and gradient of ``sum(outputs)`` with respect to all weights *and* the inputs.
JAX functions are jitted pure functions of the weights (``nnx.split`` / ``nnx.merge`` inside
``jax.jit`` with the weights passed as plain dicts, Linen ``apply``, Keras ``stateless_call``);
PyTorch is eager ``nn.LSTM`` (oneDNN on CPU, cuDNN on GPU), forward under ``torch.no_grad()``,
in a worker process of its own with PyTorch's default threading (in one process, its spinning
OpenMP threads and XLA's thread pool slow each other down several times over).

All implementations of one shape are timed interleaved in one process: each repetition times
every implementation once, in rotating order, so that a noisy neighbour slows them all alike;
the table gives medians. GFLOP/s counts the matmul work only (forward ``2*B*T*(I+H)*4H``,
``3H`` for the GRU; fwd+bwd three times that) and is compared with a large float32 matmul
measured in the same run.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone

import jaxlstm
from jaxlstm._src.core.lstm import LSTMParams, lstm_scan

SHAPES = {  # name: (batch, time, input, hidden)
    "small": (1, 100, 1, 3),
    "medium": (32, 100, 32, 128),
    "long": (8, 2000, 16, 64),
    "large": (64, 200, 128, 512),
}
ALL_IMPLS = ("jaxlstm", "flax-linen", "flax-nnx", "keras", "torch")
# Also available: "jaxlstm-scan" (impl="scan", the same as "jaxlstm" off GPU).


def block(tree):
    return jax.block_until_ready(tree)


GATES = {"lstm": 4, "gru": 3}


def matmul_flops(b, t, i, h, cell="lstm"):
    """Forward matmul FLOPs of one layer: x @ kernel and h @ recurrent_kernel per step."""
    return 2 * b * t * (i + h) * GATES[cell] * h


# ----------------------------------------------------------------------------------------------
# Implementations. Each factory returns (fwd, fwd_bwd): functions of no arguments that run one
# call to completion.


def make_jaxlstm(b, t, i, h, cell="lstm", **options):
    from flax import nnx

    layer = {"lstm": jaxlstm.LSTM, "gru": jaxlstm.GRU}[cell]
    lstm = layer(i, h, return_sequences=True, rngs=nnx.Rngs(0), **options)
    graphdef, state = nnx.split(lstm)
    weights = state.to_pure_dict()  # plain dicts: cheaper to flatten per call than nnx.State
    x = jax.random.normal(jax.random.key(1), (b, t, i))

    def apply(w, x):
        nnx.replace_by_pure_dict(state, w)
        return nnx.merge(graphdef, state)(x)

    fwd = jaxlstm.predictor(lstm)  # the documented inference call, its overhead included
    grad = jax.jit(jax.value_and_grad(lambda w, x: apply(w, x).sum(), argnums=(0, 1)))
    return (lambda: block(fwd(x))), (lambda: block(grad(weights, x)))


def make_flax_linen(b, t, i, h, cell="lstm"):
    import flax.linen as nn

    model = nn.RNN({"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell}[cell](h))
    x = jax.random.normal(jax.random.key(1), (b, t, i))
    variables = model.init(jax.random.key(0), x)
    fwd = jax.jit(model.apply)
    grad = jax.jit(jax.value_and_grad(lambda v, x: model.apply(v, x).sum(), argnums=(0, 1)))
    return (lambda: block(fwd(variables, x))), (lambda: block(grad(variables, x)))


def make_flax_nnx(b, t, i, h, cell="lstm"):
    from flax import nnx

    cell_cls = {"lstm": nnx.OptimizedLSTMCell, "gru": nnx.GRUCell}[cell]
    model = nnx.RNN(cell_cls(i, h, rngs=nnx.Rngs(0)))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)  # rest: the carry RNG
    state = params.to_pure_dict()  # as for jaxlstm: plain dicts through jit
    x = jax.random.normal(jax.random.key(1), (b, t, i))
    zeros = jnp.zeros((b, h))

    def apply(s, x):  # an explicit zero carry, as the others start from (no RNG use inside grad)
        nnx.replace_by_pure_dict(params, s)
        carry = (zeros, zeros) if cell == "lstm" else zeros
        return nnx.merge(graphdef, params, rest)(x, initial_carry=carry)

    fwd = jax.jit(apply)
    grad = jax.jit(jax.value_and_grad(lambda s, x: apply(s, x).sum(), argnums=(0, 1)))
    return (lambda: block(fwd(state, x))), (lambda: block(grad(state, x)))


def make_keras(b, t, i, h, cell="lstm"):
    import keras

    layer = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell](h, return_sequences=True)
    layer.build((b, t, i))
    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]  # the dropout seed
    x = jax.random.normal(jax.random.key(1), (b, t, i))

    def apply(tv, x):
        return layer.stateless_call(tv, non_trainable, x)[0]

    fwd = jax.jit(apply)
    grad = jax.jit(jax.value_and_grad(lambda tv, x: apply(tv, x).sum(), argnums=(0, 1)))
    return (lambda: block(fwd(trainable, x))), (lambda: block(grad(trainable, x)))


def torch_model(b, t, i, h, device, cell="lstm"):
    """``(fwd, fwd_bwd)`` of ``nn.LSTM`` (``nn.GRU``): run inside the PyTorch worker process."""
    import torch

    layer = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    lstm = layer(i, h, batch_first=True).to(device)
    x = torch.randn(b, t, i, device=device)
    xg = x.clone().requires_grad_(True)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def fwd():
        with torch.no_grad():
            lstm(x)
        sync()

    def fwd_bwd():
        lstm.zero_grad(set_to_none=True)
        xg.grad = None
        y, _ = lstm(xg)
        y.sum().backward()
        sync()

    return fwd, fwd_bwd


def torch_worker(device):
    """The PyTorch side: reads one JSON request a line on stdin, answers one JSON line."""
    fns = {}
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "peak":
            reply = torch_peak_gflops(device)
        elif req["op"] == "build":
            model = torch_model(*req["shape"], device, req.get("cell", "lstm"))
            fns = dict(zip(("fwd", "fwd+bwd"), model, strict=True))
            reply = None
        else:  # {"op": "time", "kind": ..., "n": ...}: seconds per call over n calls
            reply = sample(fns[req["kind"]], req["n"])
        print(json.dumps(reply), flush=True)


class TorchWorker:
    """A PyTorch process driven over pipes, so that its samples interleave with JAX's."""

    def __init__(self, device, cell="lstm"):
        self.cell = cell
        cmd = [sys.executable, __file__, "--_torch-worker", device]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, **request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the PyTorch worker died (exit code {self.proc.wait()})")
        return json.loads(line)

    def __call__(self, b, t, i, h):  # a factory, like make_jaxlstm and the others
        self.ask(op="build", shape=[b, t, i, h], cell=self.cell)
        return RemoteFn(self, "fwd"), RemoteFn(self, "fwd+bwd")


class RemoteFn:
    """One call (for compiling and calibrating), or ``sample(n)`` timed in the worker."""

    def __init__(self, worker, kind):
        self.worker, self.kind = worker, kind

    def __call__(self):
        self.worker.ask(op="time", kind=self.kind, n=1)

    def sample(self, n):
        per_call = self.worker.ask(op="time", kind=self.kind, n=n)
        time.sleep(0.05)  # let its OpenMP threads stop spinning before JAX runs again
        return per_call


def factories(impls, device, cell="lstm"):
    table = {
        "jaxlstm": make_jaxlstm,
        "jaxlstm-scan": functools.partial(make_jaxlstm, impl="scan"),
        "flax-linen": make_flax_linen,
        "flax-nnx": make_flax_nnx,
        "keras": make_keras,
    }
    out = {}
    for name in impls:
        if name == "torch":
            if importlib.util.find_spec("torch") is None:
                print("  (torch not installed: skipped)")
                continue
            out[name] = TorchWorker(torch_device(device), cell)
        else:
            out[name] = functools.partial(table[name], cell=cell)
    return out


def torch_device(jax_backend):
    return "cuda" if jax_backend == "gpu" else "cpu"


# ----------------------------------------------------------------------------------------------
# Timing


def calls_per_sample(fn, target_s):
    """How many back-to-back calls make one sample of about ``target_s`` seconds."""
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    return max(1, min(1000, int(target_s / max(dt, 1e-6))))


def sample(fn, n):
    if hasattr(fn, "sample"):  # timed in another process
        return fn.sample(n)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


PEAK_N = 2048


def measure_peak_gflops(device, impls):
    """The best of a few 2048^3 float32 matmuls, in JAX (and PyTorch when benchmarked)."""
    a = jax.random.normal(jax.random.key(0), (PEAK_N, PEAK_N))
    mm = jax.jit(lambda a, b: a @ b)
    block(mm(a, a))
    best = {"jax": 2 * PEAK_N**3 / min(sample(lambda: block(mm(a, a)), 3) for _ in range(5)) / 1e9}
    worker = impls.get("torch")
    if isinstance(worker, TorchWorker):
        best["torch"] = worker.ask(op="peak")
    return best


def torch_peak_gflops(device):
    import torch

    ta = torch.randn(PEAK_N, PEAK_N, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def tmm():
        ta @ ta
        sync()

    tmm()
    return 2 * PEAK_N**3 / min(sample(tmm, 3) for _ in range(5)) / 1e9


def bench_shape(name, shape, impls, reps, target_s):
    b, t, i, h = shape
    fns, compile_s = {}, {}
    for impl, make in impls.items():
        t0 = time.perf_counter()
        fwd, fwd_bwd = make(b, t, i, h)
        fwd()
        t1 = time.perf_counter()
        fwd_bwd()
        t2 = time.perf_counter()
        compile_s[impl] = (t1 - t0, t2 - t1)
        fns[impl] = {
            "fwd": (fwd, calls_per_sample(fwd, target_s)),
            "fwd+bwd": (fwd_bwd, calls_per_sample(fwd_bwd, target_s)),
        }
    times = {impl: {"fwd": [], "fwd+bwd": []} for impl in fns}
    names = list(fns)
    for r in range(reps):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate the order
        for impl in order:
            for kind in ("fwd", "fwd+bwd"):
                fn, n = fns[impl][kind]
                times[impl][kind].append(sample(fn, n))
    med = {
        impl: {kind: statistics.median(v) * 1e3 for kind, v in kinds.items()}
        for impl, kinds in times.items()
    }
    return {"shape": shape, "ms": med, "samples_ms": times, "first_call_s": compile_s}


# ----------------------------------------------------------------------------------------------
# Reporting


def table_rows(results, peak, cell="lstm"):
    rows = []
    for name, res in results.items():
        b, t, i, h = res["shape"]
        flops = matmul_flops(b, t, i, h, cell)
        ref = res["ms"].get("jaxlstm")
        for impl, ms in res["ms"].items():
            row = {"shape": name, "impl": impl}
            for kind, mult in (("fwd", 1), ("fwd+bwd", 3)):
                gflops = mult * flops / (ms[kind] / 1e3) / 1e9
                row[kind] = ms[kind]
                row[kind + " x"] = ms[kind] / ref[kind] if ref else float("nan")
                row[kind + " GF/s"] = gflops
                row[kind + " %peak"] = 100 * gflops / peak
            row["compile s"] = sum(res["first_call_s"][impl])
            rows.append(row)
    return rows


class MsFormat(str):
    """Milliseconds with three significant digits below 100 (0.0312, 11.4), whole above."""

    def format(self, v):
        return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


COLUMNS = (
    ("shape", "{}"),
    ("impl", "{}"),
    ("fwd", MsFormat()),
    ("fwd x", "{:.2f}"),
    ("fwd GF/s", "{:.0f}"),
    ("fwd %peak", "{:.0f}"),
    ("fwd+bwd", MsFormat()),
    ("fwd+bwd x", "{:.2f}"),
    ("fwd+bwd GF/s", "{:.0f}"),
    ("fwd+bwd %peak", "{:.0f}"),
    ("compile s", "{:.1f}"),
)
HEADERS = {
    "fwd": "fwd ms",
    "fwd x": "fwd / jaxlstm",
    "fwd+bwd": "fwd+bwd ms",
    "fwd+bwd x": "fwd+bwd / jaxlstm",
    "compile s": "first calls s",
}


def markdown(rows):
    head = [HEADERS.get(c, c) for c, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lines.append("| " + " | ".join(f.format(row[c]) for c, f in COLUMNS) + " |")
    return "\n".join(lines)


def plain_table(rows):
    head = [HEADERS.get(c, c) for c, _ in COLUMNS]
    cells = [[f.format(row[c]) for c, f in COLUMNS] for row in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *cells, strict=True)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join(fmt.format(*r) for r in [head, *cells])


def bar_chart(results, path, cell="lstm"):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (matplotlib not installed: no chart; pip install '.[bench]')")
        return
    shapes = list(results)
    impls = list(next(iter(results.values()))["ms"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(impls)
    for ax, kind in zip(axes, ("fwd", "fwd+bwd"), strict=True):
        for k, impl in enumerate(impls):
            rel = [results[s]["ms"][impl][kind] / results[s]["ms"]["jaxlstm"][kind] for s in shapes]
            ax.bar(np.arange(len(shapes)) + k * width, rel, width, label=impl)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(np.arange(len(shapes)) + width * (len(impls) - 1) / 2)
        ax.set_xticklabels([f"{s}\n{results[s]['shape']}" for s in shapes], fontsize=8)
        ax.set_ylabel("time / jaxlstm time (lower is faster)")
        ax.set_title(f"{kind}, median ms relative to jaxlstm")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{cell.upper()} float32, {describe_machine()}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def describe_machine():
    dev = jax.devices()[0]
    cpus = os.cpu_count()
    return f"{platform.machine()}, {cpus} CPUs, JAX {jax.__version__} on {dev.device_kind}"


# ----------------------------------------------------------------------------------------------
# Long sequences: checkpointed backward, peak memory


class PeakRSS:
    """Samples this process's resident memory every few ms (``ru_maxrss`` is a lifetime peak,
    so the sampler gives the peak of one phase)."""

    def __init__(self, interval=0.005):
        import psutil

        self.proc, self.interval, self.peak = psutil.Process(), interval, 0
        self._stop = threading.Event()

    def __enter__(self):
        self.peak = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def long_memory_child(t, b, i, h, remat_chunk, reps):
    """Run in a fresh process: fwd+bwd of sum(final h) at (b, t, i, h); print JSON."""
    k = jax.random.split(jax.random.key(0), 4)
    params = LSTMParams(
        jax.random.normal(k[0], (i, 4 * h)) / np.sqrt(i),
        jax.random.normal(k[1], (h, 4 * h)) / np.sqrt(h),
        jnp.zeros(4 * h),
    )
    x = jax.random.normal(k[2], (b, t, i))

    def loss(p, x):
        y, _ = lstm_scan(p, x, return_sequences=False, remat_chunk=remat_chunk)
        return jnp.sum(y)

    grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    block((params, x))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        block(grad(params, x))
        first = time.perf_counter() - t0
        runs = []
        for _ in range(reps):
            t0 = time.perf_counter()
            block(grad(params, x))
            runs.append(time.perf_counter() - t0)
    peak = max(mem.peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(
        json.dumps(
            {
                "remat_chunk": remat_chunk,
                "rss_before_GiB": base / 2**30,
                "peak_rss_GiB": peak / 2**30,
                "first_call_s": first,
                "median_s": statistics.median(runs) if runs else first,
            }
        )
    )


def long_memory(args):
    """T=100,000 fwd+bwd with and without checkpointing, each in a fresh process, and the
    gradients of the two paths compared on a shorter sequence."""
    t, b, i, h = args.long_t, 8, 32, 256
    chunk = args.remat_chunk or round(np.sqrt(t))
    print(f"long-memory: T={t}, B={b}, input={i}, H={h}, fwd+bwd of sum(h_T), float32")
    results = {}
    runs = [("checkpointed", chunk)] + ([("plain", 0)] if not args.skip_plain else [])
    for label, rc in runs:
        cmd = [sys.executable, __file__, "--_long-child", f"{t},{b},{i},{h},{rc},{args.long_reps}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            results[label] = {"error": proc.stderr.strip().splitlines()[-1:]}
        else:
            results[label] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"  {label:13s} {results[label]}")

    # Gradients of the checkpointed path against the plain one, on a sequence short enough for
    # the plain path, in float64 accumulation-free float32: relative max error.
    ts = 3000
    k = jax.random.split(jax.random.key(1), 4)
    p = LSTMParams(
        jax.random.normal(k[0], (i, 4 * h)) / np.sqrt(i),
        jax.random.normal(k[1], (h, 4 * h)) / np.sqrt(h),
        0.1 * jax.random.normal(k[3], (4 * h,)),
    )
    x = jax.random.normal(k[2], (b, ts, i))

    def grads(rc):
        def loss(p, x):
            y, s = lstm_scan(p, x, remat_chunk=rc)
            return jnp.sum(y * y) + jnp.sum(s.c)

        return jax.jit(jax.grad(loss, argnums=(0, 1)))(p, x)

    g_plain, g_ckpt = grads(None), grads(int(np.sqrt(ts)))
    rel = max(
        float(jnp.max(jnp.abs(a - c)) / (jnp.max(jnp.abs(a)) + 1e-30))
        for a, c in zip(jax.tree.leaves(g_plain), jax.tree.leaves(g_ckpt), strict=True)
    )
    results["grad_check"] = {"T": ts, "max_rel_err": rel}
    print(f"  gradients, checkpointed vs plain at T={ts}: max relative error {rel:.2e}")
    return results


# ----------------------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="small,medium,long,large")
    ap.add_argument("--impls", default=",".join(ALL_IMPLS))
    ap.add_argument("--cell", default="lstm", choices=sorted(GATES), help="the recurrent layer")
    ap.add_argument("--reps", type=int, default=7, help="interleaved repetitions (median)")
    ap.add_argument("--target", type=float, default=0.05, help="seconds per sample")
    ap.add_argument("--out", default=None, help="folder for results.md/.json and bench.png")
    ap.add_argument("--long-memory", action="store_true")
    ap.add_argument("--long-t", type=int, default=100_000)
    ap.add_argument("--long-reps", type=int, default=2)
    ap.add_argument("--remat-chunk", type=int, default=0)
    ap.add_argument("--skip-plain", action="store_true", help="long-memory: skip the plain path")
    ap.add_argument("--_long-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_torch-worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args._torch_worker:
        torch_worker(args._torch_worker)
        return

    if args._long_child:
        t, b, i, h, rc, reps = (int(v) for v in args._long_child.split(","))
        long_memory_child(t, b, i, h, rc or None, reps)
        return
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    device = jax.default_backend()
    print(f"machine: {describe_machine()}, {time.strftime('%Y-%m-%d')}")
    if args.long_memory:
        res = long_memory(args)
        if out:
            (out / "long_memory.json").write_text(json.dumps(res, indent=2))
        return

    impls = factories(args.impls.split(","), device, args.cell)
    peak = measure_peak_gflops(device, impls)
    peak_best = max(peak.values())
    print("float32 2048^3 matmul GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in peak.items()))
    results = {}
    for name in args.shapes.split(","):
        print(f"{name} {SHAPES[name]} ...", flush=True)
        results[name] = bench_shape(name, SHAPES[name], impls, args.reps, args.target)
    print(f"cell: {args.cell}")
    rows = table_rows(results, peak_best, args.cell)
    print(plain_table(rows))
    if out:
        head = (
            f"{describe_machine()}, {time.strftime('%Y-%m-%d')}; medians of {args.reps} "
            f"interleaved repetitions; float32 matmul peak {peak_best:.0f} GFLOP/s "
            f"({', '.join(f'{k} {v:.0f}' for k, v in peak.items())}).\n\n"
        )
        (out / "results.md").write_text(head + markdown(rows) + "\n")
        (out / "results.json").write_text(
            json.dumps({"peak_gflops": peak, "results": results}, indent=1, default=list)
        )
        bar_chart(results, out / "bench.png", args.cell)
        print(f"wrote {out}/results.md, results.json, bench.png")


if __name__ == "__main__":
    main()
