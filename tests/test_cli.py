"""The commands a user runs: ``jaxlstm demo`` (offline, shipped files) and ``jaxlstm inspect``."""

import subprocess
import sys
from pathlib import Path

from jaxlstm._src.cli import main

FIX = Path(__file__).parent / "fixtures"


def test_demo_runs_offline_and_matches_keras(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "jaxlstm", "demo", "--repeat", "2", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PATH": "", "JAX_PLATFORMS": "cpu", "KERAS_BACKEND": "none-installed"},
    )
    assert run.returncode == 0, run.stderr
    assert "7 files: match Keras within 1e-05" in run.stdout
    for name in ("keras1_lstm.h5", "keras2_cudnn.h5", "keras3_bidirectional.keras"):
        assert name in run.stdout
    assert "after fine-tuning" in run.stdout
    assert (tmp_path / "airline_finetuned.keras").exists() and (tmp_path / "loss.png").exists()


def test_demo_does_not_import_keras():
    code = (
        "import sys; from jaxlstm._src.demo import demo; "
        "demo(repeat=1, print_fn=lambda *a: None, finetune=False); "
        "print('keras' in sys.modules)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert run.stdout.strip() == "False"


def test_inspect_shows_gate_slices(capsys):
    assert main(["inspect", str(FIX / "keras2" / "cudnn.h5")]) == 0
    out = capsys.readouterr().out
    assert "CuDNNLSTM" in out and "i (input)            kernel[:, 0:3]" in out
    assert "bias[0:3] + bias[12:15]" in out


def test_inspect_keras1_explains_the_order(capsys):
    assert main(["inspect", str(FIX / "keras1" / "k1_lstm.h5")]) == 0
    out = capsys.readouterr().out
    assert "saved in order i, c, f, o" in out and "hard_sigmoid_keras2" in out


def test_inspect_model_table_shows_shapes_masks_and_support(capsys):
    models = FIX / "keras2_models"
    assert main(["inspect", str(models / "classifier_left_pad.h5")]) == 0
    out = capsys.readouterr().out
    assert "embedding        Embedding      (2, 7, 5)     100     -→out   yes" in out
    assert "bidirectional_1  Bidirectional  (2, 3)        192     in→-    yes" in out
    assert main(["inspect", str(models / "lambda_refused.h5")]) == 0
    out = capsys.readouterr().out
    assert "NO: a Lambda layer holds Python code" in out and "cannot be loaded as it is" in out
