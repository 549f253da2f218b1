"""One process of tests/test_distributed.py (run as a script, never collected by pytest):

    python dist_worker.py SCENARIO OUT_DIR [PORT PROCESS_ID NUM_PROCESSES]

With a port it joins a multi-process run on 127.0.0.1 (``jaxlstm.train.initialize``);
without, it is the one-process reference on its own devices. Each scenario writes its
numbers as ``OUT_DIR/<scenario>_<process id>.json``.

* ``tune``: 2 epochs of ``fit`` with checkpoints (``ckpt_a``), ``evaluate``, ``predict`` (in
  memory and from an iterable of this process's rows), ``save_keras``; then a resumed run on
  which process 1 dies in its third epoch (``DIE_AT`` batches in).
* ``tune_only``: the same 2 epochs etc. on any number of processes, nothing dying.
* ``resume``: ``fit(resume=True)`` from ``ckpt_a`` to epoch 3.
* ``reference``: the same as ``tune`` (without the death) and ``resume`` in one process,
  in ``ckpt_b``; then, once ``ckpt_a_copy.ready`` appears, a resume from ``ckpt_a_copy``
  (written by two processes), in its own ``OUT_DIR``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

HEARTBEAT = 5  # seconds: the bound on noticing a dead peer in these tests
DIE_AT = 2


def main() -> None:
    scenario, out = sys.argv[1], Path(sys.argv[2])
    multi = len(sys.argv) > 3
    from jaxlstm.train import initialize

    if multi:
        port, pid, n = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        initialize(
            f"127.0.0.1:{port}", n, pid, initialization_timeout=60, heartbeat_timeout=HEARTBEAT
        )
    import jax
    import numpy as np
    from flax import nnx

    import jaxlstm
    from jaxlstm.train import DistributedError, evaluate, fit, predict, process_rows

    jax.config.update("jax_default_matmul_precision", "highest")  # as tests/conftest.py

    jaxlstm.enable_compilation_cache(out.parent / "xla_cache")  # shared by the runs
    pid = jax.process_index()
    fix = Path(__file__).parent / "fixtures" / "keras2_models" / "forecaster.h5"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 8, 3)).astype("float32")
    y = x[:, -3:, 0].mean(axis=1).astype("float32")
    xt, yt, xv, yv = x[:64], y[:64], x[64:], y[64:]
    kw = dict(batch_size=16, loss="mse", metrics=["mae"], seed=3, validation_data=(xv, yv))
    ekw = dict(loss="mse", metrics=["mae"], batch_size=16)
    from jaxlstm.train import global_mesh, is_primary

    result: dict = {
        "devices": jax.device_count(),
        "processes": jax.process_count(),
        "mesh": global_mesh().devices.size,  # every process's devices, on one axis
        "primary": is_primary(),  # process 0 only
    }

    def numbers(model, history):
        leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
        weights = [np.asarray(v).ravel().tolist() for v in leaves]
        return {"weights": weights, "history": history.epochs}

    def tune(ckpt):
        model = jaxlstm.load_keras(fix)
        stream = open(out / f"progress_{pid}.txt", "w")
        with stream:
            history = fit(
                model,
                xt,
                yt,
                epochs=2,
                checkpoint_dir=out / ckpt,
                log_path=out / f"log_{pid}.jsonl",
                stream=stream,
                **kw,
            )
        result["tune"] = numbers(model, history)
        # 78 = 4 batches of 16 sharded over the 4 devices, then 14 rows (replicated)
        result["evaluate"] = evaluate(model, x[:78], y[:78], **ekw)
        result["predict"] = predict(model, x, batch_size=16).tolist()
        rows = process_rows(16)
        own = predict(model, (x[i : i + 16][rows] for i in range(0, 80, 16)))
        result["predict_rows"] = [rows.start, rows.stop, own.tolist()]
        try:
            process_rows(6)
        except DistributedError as err:
            result["uneven"] = str(err)
        jaxlstm.save_keras(model, out / "tuned.keras")
        result["saved_seen"] = (out / "tuned.keras").exists()  # on every process, on return

    def resume(ckpt, key="resume"):
        model = jaxlstm.load_keras(fix)
        history = fit(
            model, xt, yt, epochs=3, checkpoint_dir=out / ckpt, resume=True, progress=False, **kw
        )
        result[key] = numbers(model, history)

    if scenario == "tune":
        refused = []
        for bad in (
            dict(x=xt, y=yt, mesh=jax.sharding.Mesh(np.array(jax.local_devices()), ("data",))),
            dict(x=xt[: 64 - 16 * pid], y=yt[: 64 - 16 * pid]),  # process 1 holds less
        ):
            try:
                fit(jaxlstm.load_keras(fix), epochs=1, progress=False, **bad, **kw)
            except DistributedError as err:
                refused.append(str(err))
        result["refused"] = refused
        tune("ckpt_a")
        try:  # a checkpoint folder that only process 0 sees
            elsewhere = out / ("ckpt_a" if pid == 0 else "ckpt_elsewhere")
            fit(jaxlstm.load_keras(fix), xt, yt, epochs=3, checkpoint_dir=elsewhere,
                resume=True, progress=False, **kw)  # fmt: skip
        except DistributedError as err:
            result["refused"].append(str(err))
        (out / f"{scenario}_{pid}.json").write_text(json.dumps(result))
        rows = process_rows(16)

        def batches():  # this process's rows of each global batch; process 1 dies in epoch 3
            for step, i in enumerate(range(0, 64, 16)):
                if pid == 1 and step == DIE_AT:
                    (out / "died_at").write_text(repr(time.time()))
                    os._exit(17)
                yield xt[i : i + 16][rows], yt[i : i + 16][rows]

        model = jaxlstm.load_keras(fix)
        fit(model, batches(), epochs=3, checkpoint_dir=out / "ckpt_a", resume=True,
            progress=False, **kw)  # fmt: skip
        (out / f"survived_{pid}").write_text("the run went on without its peer")
    elif scenario == "tune_only":  # any number of processes: no refusals, no death
        tune("ckpt_a")
        (out / f"tune_{pid}.json").write_text(json.dumps(result))
    elif scenario == "resume":
        resume("ckpt_a")
        (out / f"{scenario}_{pid}.json").write_text(json.dumps(result))
    else:
        tune("ckpt_b")
        resume("ckpt_b")
        ready = out / "ckpt_a_copy.ready"  # written by the test once the pair has ended
        deadline = time.monotonic() + 200
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        resume("ckpt_a_copy", "resharded")
        (out / f"{scenario}_{pid}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
