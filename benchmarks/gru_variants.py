"""Which GRU path pays: jaxlstm's fast JVP against plain autodiff of the same cell, the
``reset_after=False`` GRU (plain autodiff) and Flax Linen's ``GRUCell``, with jaxlstm's LSTM for
scale. Minima of interleaved repetitions (robust on a shared machine).

Usage::

    python benchmarks/gru_variants.py 32 100 32 128     # B T in H
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone

from jaxlstm import GRUParams, LSTMParams, gru_scan, lstm_scan
from jaxlstm._src.core import fast
from jaxlstm._src.core.activations import get_activation
from jaxlstm._src.core.gru import GRUCell


def main(b, t, i, h, reps=15, calls=5):
    import flax.linen as nn

    k = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(k[3], (b, t, i))

    def params(reset_after):
        bias_shape = (2, 3 * h) if reset_after else (3 * h,)
        return GRUParams(
            0.1 * jax.random.normal(k[0], (i, 3 * h)),
            0.1 * jax.random.normal(k[1], (h, 3 * h)),
            0.1 * jax.random.normal(k[2], bias_shape),
        )

    cell = GRUCell(get_activation("tanh"), get_activation("sigmoid"), True)

    def plain_autodiff(p, x):  # reset_after=True through the plain scan of GRUCell.step
        cfg = fast.Config(cell, False, False, True, None, 1)
        state0 = (jnp.zeros((b, h)),)
        return fast._plain_recurrence(cfg, p, jnp.swapaxes(x, 0, 1), state0, None, None, None)[0]

    lin = nn.RNN(nn.GRUCell(h))
    lstm = LSTMParams(
        0.1 * jax.random.normal(k[0], (i, 4 * h)),
        0.1 * jax.random.normal(k[1], (h, 4 * h)),
        jnp.zeros(4 * h),
    )
    variants = {
        "jaxlstm GRU (fast JVP)": (params(True), lambda p, x: gru_scan(p, x)[0]),
        "same forward, plain autodiff": (params(True), plain_autodiff),
        "reset_after=False (autodiff)": (
            params(False),
            lambda p, x: gru_scan(p, x, reset_after=False)[0],
        ),
        "flax linen GRUCell": (lin.init(jax.random.key(0), x), lin.apply),
        "jaxlstm LSTM": (lstm, lambda p, x: lstm_scan(p, x)[0]),
    }
    fns = {}
    for name, (p, f) in variants.items():
        fwd = jax.jit(f)
        grad = jax.jit(jax.value_and_grad(lambda p, x, f=f: f(p, x).sum(), argnums=(0, 1)))
        fns[name] = [
            lambda fwd=fwd, p=p: jax.block_until_ready(fwd(p, x)),
            lambda grad=grad, p=p: jax.block_until_ready(grad(p, x)),
        ]
        for fn in fns[name]:
            fn()
    best = {name: [float("inf"), float("inf")] for name in fns}
    for _ in range(reps):
        for name, pair in fns.items():
            for j, fn in enumerate(pair):
                t0 = time.perf_counter()
                for _ in range(calls):
                    fn()
                best[name][j] = min(best[name][j], (time.perf_counter() - t0) / calls * 1e3)
    ref = best["jaxlstm GRU (fast JVP)"]
    print(f"(B, T, in, H) = {(b, t, i, h)}; minima of {reps} interleaved repetitions")
    for name, (f, g) in best.items():
        rel_f, rel_g = f / ref[0], g / ref[1]
        print(f"{name:30s} fwd {f:8.3f} ms ({rel_f:.2f}x)  fwd+bwd {g:8.3f} ms ({rel_g:.2f}x)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:5]))
