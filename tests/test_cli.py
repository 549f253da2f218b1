"""The commands a user runs: ``jaxlstm demo`` (offline, shipped files) and ``jaxlstm inspect``."""

import subprocess
import sys
from pathlib import Path

from jaxlstm._src.cli import build_parser, main, missing_package

FIX = Path(__file__).parent / "fixtures"


def test_demo_runs_offline_and_matches_keras(tmp_path):
    cache = tmp_path / "xla-cache"
    run = subprocess.run(
        [sys.executable, "-m", "jaxlstm", "demo", "--repeat", "2", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={
            "PATH": "",
            "JAX_PLATFORMS": "cpu",
            "KERAS_BACKEND": "none-installed",
            "JAXLSTM_CACHE_DIR": str(cache),
        },
    )
    assert run.returncode == 0, run.stderr
    assert "7 files: match Keras within 1e-05" in run.stdout
    for name in ("keras1_lstm.h5", "keras2_cudnn.h5", "keras3_bidirectional.keras"):
        assert name in run.stdout
    assert "after fine-tuning" in run.stdout
    assert (tmp_path / "airline_finetuned.keras").exists() and (tmp_path / "loss.png").exists()
    assert any(cache.iterdir())  # the CLI keeps its compiled programs in the cache


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
    assert "embedding        Embedding      (None, 7, 5)  100     -→out   yes" in out
    assert "bidirectional_1  Bidirectional  (None, 3)     192     in→-    yes" in out
    assert main(["inspect", str(models / "lambda_refused.h5")]) == 0
    out = capsys.readouterr().out
    assert "NO: a Lambda layer holds Python code" in out and "cannot be loaded as it is" in out


def _cli(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "jaxlstm", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kw,
    )


def test_help_imports_no_jax():
    code = (
        "import sys, contextlib, io; from jaxlstm._src.cli import build_parser\n"
        "p = build_parser()\n"
        "for args in (['--help'], ['inspect', '--help'], ['finetune', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try: p.parse_args(args)\n"
        "        except SystemExit: pass\n"
        "print(sorted(m for m in ('jax', 'flax', 'numpy', 'h5py') if m in sys.modules))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert run.stdout.strip() == "[]"


def test_help_names_every_command_and_argument():
    run = _cli("--help")
    assert run.returncode == 0
    for command in ("demo", "inspect", "convert", "finetune"):
        assert command in run.stdout
    assert ":class:" not in run.stdout and "``" not in run.stdout  # no RST markup
    parser = build_parser()
    for action in parser._actions:
        assert action.help, action.dest
    for sub in parser._subparsers._group_actions[0].choices.values():
        for action in sub._actions:
            assert action.help, (sub.prog, action.dest)


def test_bare_command_prints_help_and_version_prints_version(capsys):
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out
    run = _cli("--version")
    assert run.returncode == 0 and run.stdout.startswith("jaxlstm ")


def test_inspect_into_a_closed_pipe_ends_quietly():
    """``jaxlstm inspect f | head -1``: the reader is gone before the output is written."""
    code = (
        "import os, sys; r, w = os.pipe(); os.close(r); sys.stdout = os.fdopen(w, 'w'); "
        "from jaxlstm._src.cli import main; rc = main(['inspect', sys.argv[1]]); "
        "sys.stderr.write(f'rc={rc}')"
    )
    path = str(FIX / "keras2_models" / "merges.h5")
    run = subprocess.run(
        [sys.executable, "-c", code, path], capture_output=True, text=True, timeout=120
    )
    assert run.stderr == "rc=1", run.stderr  # no BrokenPipeError traceback, no noise at exit
    assert run.returncode == 0


def test_inspect_shows_none_where_the_model_leaves_a_size_open(capsys):
    forecaster = Path(__file__).parent.parent / "jaxlstm" / "data" / "airline_forecaster.keras"
    assert main(["inspect", str(forecaster)]) == 0
    out = capsys.readouterr().out
    assert "(None, 1)" in out and "(2, " not in out


def test_missing_package_hint_names_the_package_to_install():
    assert missing_package(ModuleNotFoundError("No module named 'yaml'", name="yaml")) == "PyYAML"
    orbax = ModuleNotFoundError("x", name="orbax.checkpoint")
    assert missing_package(orbax) == "orbax-checkpoint"
    assert missing_package(ModuleNotFoundError("x", name="optax")) == "optax"
