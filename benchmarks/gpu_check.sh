#!/usr/bin/env bash
# GPU check for jaxlstm, in one go (under 5 minutes on one H100/H200), installing nothing:
#   1. parity: the scan and the cuDNN path on the GPU against the scan on the CPU, values and
#      gradients, with and without a right-padded mask;
#   2. tests/test_fast_paths.py (its cuDNN-vs-scan tests run only on a GPU);
#   3. the benchmark: jaxlstm (auto = cuDNN, and the scan), Flax Linen, Keras 3 (JAX backend,
#      which uses cuDNN on GPU) and PyTorch nn.LSTM (cuDNN) when importable.
# Results go to $OUT (default: ./gpu_check_out). Run from the repository root:
#   OUT=/some/dir bash benchmarks/gpu_check.sh
# PYTHON picks the interpreter (default: python3); it must have jax with CUDA, flax, pytest.
set -u -o pipefail

cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_check_out}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false TF_CPP_MIN_LOG_LEVEL=3
status=0

echo "== environment" | tee "$OUT/summary.txt"
timeout 60 "$PYTHON" - <<'EOF' 2>&1 | tee -a "$OUT/summary.txt"
import jax
print("jax", jax.__version__, "backend", jax.default_backend(), jax.devices())
for mod in ("flax", "keras", "torch"):
    try:
        m = __import__(mod)
        extra = f" cuda={m.cuda.is_available()}" if mod == "torch" else ""
        print(mod, m.__version__ + extra)
    except Exception as e:  # report, do not install
        print(mod, "not importable:", type(e).__name__, e)
EOF
if ! timeout 60 "$PYTHON" -c 'import jax, sys; sys.exit(jax.default_backend() != "gpu")'; then
    echo "no GPU backend in JAX: nothing to check" | tee -a "$OUT/summary.txt"
    exit 2
fi

echo "== parity: cuDNN (GPU) and scan (GPU) against scan (CPU)" | tee -a "$OUT/summary.txt"
timeout 120 "$PYTHON" - "$OUT/parity.json" <<'EOF' 2>&1 | tee -a "$OUT/summary.txt" || status=1
import json, sys
import jax, jax.numpy as jnp
from jaxlstm import LSTMParams, LSTMState, lstm_scan
from jaxlstm._src.core.lstm import which_impl

cpu = jax.devices("cpu")[0]
b, t, f, u = 16, 50, 24, 64
k = jax.random.split(jax.random.key(0), 6)
p = LSTMParams(0.3 * jax.random.normal(k[0], (f, 4 * u)), 0.3 * jax.random.normal(k[1], (u, 4 * u)),
               0.1 * jax.random.normal(k[2], (4 * u,)))
x = jax.random.normal(k[3], (b, t, f))
s0 = LSTMState(0.2 * jax.random.normal(k[4], (b, u)), 0.2 * jax.random.normal(k[5], (b, u)))
lengths = jnp.arange(b) % t + 1
mask = jnp.arange(t)[None] < lengths[:, None]  # right-padded

def value_and_grads(impl, mask, device):
    args = jax.device_put((p, x, s0, mask), device)
    def loss(p, x, s0, mask):
        y, s = lstm_scan(p, x, initial_state=s0, mask=mask, impl=impl)
        return jnp.sum(jnp.sin(y)) + jnp.sum(s.h * s.c)
    with jax.default_matmul_precision("highest"):
        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(*args)

report, worst = {"auto_picks": which_impl(p, x)}, 0.0
for masked in (False, True):
    m = mask if masked else None
    ref = value_and_grads("scan", m, cpu)
    for impl in ("scan", "cudnn"):
        got = value_and_grads(impl, m, jax.devices()[0])
        err = max(float(jnp.max(jnp.abs(jax.device_put(a, cpu) - r)) / (jnp.max(jnp.abs(r)) + 1e-30))
                  for a, r in zip(jax.tree.leaves(got), jax.tree.leaves(ref)))
        report[f"{impl}{'+mask' if masked else ''} vs cpu scan, max rel err"] = err
        worst = max(worst, err)
for key, val in report.items():
    print(f"  {key}: {val}")
json.dump(report, open(sys.argv[1], "w"), indent=2)
sys.exit(0 if worst < 1e-4 else 1)
EOF

echo "== tests/test_fast_paths.py" | tee -a "$OUT/summary.txt"
timeout 120 "$PYTHON" -m pytest -q -p no:warnings -p no:cacheprovider tests/test_fast_paths.py \
    2>&1 | tail -n 15 | tee "$OUT/test_fast_paths.txt" | tee -a "$OUT/summary.txt" || status=1

echo "== benchmark" | tee -a "$OUT/summary.txt"
timeout 240 "$PYTHON" benchmarks/bench.py --shapes medium,long,large --reps 5 \
    --impls jaxlstm,jaxlstm-scan,flax-linen,keras,torch --out "$OUT/bench" \
    2>&1 | grep -v -i warning | tee -a "$OUT/summary.txt" || status=1

echo "== done (status $status); results in $OUT" | tee -a "$OUT/summary.txt"
exit "$status"
