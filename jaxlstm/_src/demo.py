"""The main job on shipped data: load Keras files that ship in ``jaxlstm/data``, run them in JAX
and compare with the outputs Keras recorded when it wrote them. Needs no Keras and no network."""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path

import jax
import numpy as np

from jaxlstm._src.converters import params_from_arrays
from jaxlstm._src.load import load_keras_layer
from jaxlstm._src.models.graph import load_keras
from jaxlstm._src.modules.inference import predictor
from jaxlstm._src.readers import read_keras_file

TOLERANCE = 1e-5


def shipped_files() -> list[Path]:
    """The demo's Keras files (each has a ``.npz`` of inputs and Keras's outputs beside it)."""
    data = Path(str(resources.files("jaxlstm") / "data"))
    return sorted(p for p in data.iterdir() if p.suffix in (".h5", ".keras"))


_LAYOUT_NOTES = {"keras1": "12 per-gate arrays (i,c,f,o)", "cudnn": "CuDNN 8u bias, transposed"}


def _lstms(module):
    if hasattr(module, "layers"):
        return []
    return [module.forward, module.backward] if hasattr(module, "forward") else [module]


def keras_outputs(npz) -> list[np.ndarray]:
    return [npz[f"out{i}"] for i in range(len([k for k in npz.files if k.startswith("out")]))]


def run_case(path: Path, repeat: int = 20) -> dict:
    """Load one shipped file's layer, run it jitted, and measure it against Keras's outputs."""
    expected = np.load(path.with_suffix(".npz"))
    name = str(expected["layer"])
    overrides = json.loads(str(expected["options"]))
    # An empty layer name means the whole model (load_keras), else one layer (load_keras_layer).
    module = load_keras(path) if not name else load_keras_layer(path, name, **overrides)
    kwargs = {"mask": expected["mask"]} if "mask" in expected.files else {}
    forward = predictor(module)  # jitted, eval mode

    with jax.default_matmul_precision("highest"):
        outs = jax.block_until_ready(forward(expected["x"], **kwargs))
        start = time.perf_counter()
        for _ in range(repeat):
            jax.block_until_ready(forward(expected["x"], **kwargs))
        per_call = (time.perf_counter() - start) / repeat
    outs = outs if isinstance(outs, tuple) else (outs,)
    err = max(
        float(np.max(np.abs(np.asarray(o) - e)))
        for o, e in zip(outs, keras_outputs(expected), strict=True)
    )
    kf = read_keras_file(path)
    notes = []
    if name:
        record = kf.layers[name]
        parts = (
            [record.forward, record.backward] if record.class_name == "Bidirectional" else [record]
        )
        layouts = {params_from_arrays(r.weights, name)[1] for r in parts}
        notes = [_LAYOUT_NOTES[x] for x in sorted(layouts) if x in _LAYOUT_NOTES]
    else:
        notes.append(f"whole model, {len(module.layers)} layers")
    if any(getattr(m, "recurrent_activation", "") == "hard_sigmoid_keras2" for m in _lstms(module)):
        notes.append("hard_sigmoid = clip(0.2x+0.5)")
    if "mask" in kwargs:
        notes.append("masked")
    return {
        "notes": ", ".join(notes),
        "file": path.name,
        "written_by": f"Keras {kf.keras_version}",
        "format": kf.format,
        "layer": name or "(model)",
        "kind": type(module).__name__,
        "max_abs_err": err,
        "ms_per_call": per_call * 1e3,
    }


def demo(repeat: int = 20, print_fn=print, out_dir=None, finetune: bool = True) -> bool:
    """The main job: parity of every shipped Keras file, then (with the ``train`` extra) the
    shipped forecaster fine-tuned on later data, written back as ``.keras`` with a loss plot
    under ``out_dir`` (default ``./jaxlstm-demo``). True when every file matches Keras."""
    print_fn(
        f"jaxlstm demo: Keras files shipped with the package, run in JAX on "
        f"{jax.devices()[0].platform}, against the outputs Keras itself computed."
    )
    rows = [run_case(p, repeat) for p in shipped_files()]
    header = (
        f"{'file':<27} {'written by':<13} {'module':<14} {'max |JAX-Keras|':>15} {'ms/call':>8}"
        "  what it exercises"
    )
    print_fn(header)
    print_fn("-" * len(header))
    for r in rows:
        print_fn(
            f"{r['file']:<27} {r['written_by']:<13} {r['kind']:<14} "
            f"{r['max_abs_err']:>15.2e} {r['ms_per_call']:>8.3f}  {r['notes']}"
        )
    ok = all(r["max_abs_err"] <= TOLERANCE for r in rows)
    verdict = "match" if ok else "DO NOT all match"
    print_fn(
        f"\n{len(rows)} files: {verdict} Keras within {TOLERANCE:g} "
        "(jitted, time per call after compile)."
    )
    if finetune:
        _finetune_story(out_dir, print_fn)
    return ok


def _finetune_story(out_dir, print_fn) -> None:
    try:
        import matplotlib  # noqa: F401
        import optax  # noqa: F401
        import orbax.checkpoint  # noqa: F401
        import pydantic  # noqa: F401
        import rich  # noqa: F401
        import yaml  # noqa: F401
    except ImportError as err:
        from jaxlstm._src.cli import missing_package

        print_fn(
            f"\n(fine-tuning part skipped: {missing_package(err)} is missing; "
            'pip install "jaxlstm[train]" to run it)'
        )
        return
    from jaxlstm._src.train.config import find_config
    from jaxlstm._src.train.run import run_finetune

    config = find_config("airline_finetune")
    out = Path(out_dir) if out_dir is not None else Path.cwd() / "jaxlstm-demo"
    print_fn(
        "\nFine-tuning: the Keras forecaster above was trained on 1949-1956 airline passengers;"
        "\nits head is fine-tuned in JAX on 1957-1959 and checked on 1960; the best epoch by "
        f"validation loss is kept ({config.name}: jaxlstm finetune --config {config.stem})."
    )
    if (out / "checkpoints").is_dir():  # the previous demo run's: the demo starts over
        import shutil

        shutil.rmtree(out / "checkpoints")
    run_finetune(config, out, print_fn=print_fn)
