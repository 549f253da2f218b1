"""Each notebook runs top to bottom (its code cells, in order, in one namespace) and is stored
without outputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, monkeypatch):
    monkeypatch.chdir(path.parent)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    cells = json.loads(path.read_text())["cells"]
    namespace = {"__name__": "__main__"}
    for i, cell in enumerate(c for c in cells if c["cell_type"] == "code"):
        exec(compile("".join(cell["source"]), f"{path.name}[code cell {i}]", "exec"), namespace)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_no_stale_outputs(path):
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


def test_there_are_notebooks():
    assert NOTEBOOKS and all(os.path.getsize(p) < 50_000 for p in NOTEBOOKS)


def test_finetune_notebook_round_trip_runs_keras_for_real(tmp_path):
    """Notebook 02's last cell opens the saved file in Keras 3, as a user's fresh kernel would:
    no KERAS_BACKEND in the environment (the notebook sets it), no ImportError hidden."""
    pytest.importorskip("keras")
    path = next(p for p in NOTEBOOKS if p.stem == "02_finetune")
    cells = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"]]
    wanted = [
        c for c in cells if "import tempfile" in c or "load_keras(" in c or "save_keras(" in c
    ]
    script = tmp_path / "round_trip.py"
    script.write_text("\n\n".join(wanted))
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    run = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**env, "MPLBACKEND": "Agg"},
        cwd=path.parent,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "(jax): max |Keras - JAX| =" in run.stdout, run.stdout
