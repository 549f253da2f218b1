"""Package polish: KerasModel.summary() is Keras's table, repr is short, and the distributions
ship LICENSE and py.typed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import jaxlstm

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def keras_classifier(tmp_path_factory):
    keras = pytest.importorskip("keras")
    L = keras.layers
    inp = keras.Input((None,), dtype="int32", name="ids")
    x = L.Embedding(50, 6, mask_zero=True, name="emb")(inp)
    x = L.Bidirectional(L.LSTM(5, return_sequences=True), name="bi")(x)
    x = L.LSTM(4, name="last")(x)
    out = L.Dense(3, name="head")(x)
    model = keras.Model(inp, out, name="classifier")
    path = tmp_path_factory.mktemp("summary") / "classifier.keras"
    model.save(path)
    return model, path


def test_summary_is_keras_table(keras_classifier):
    keras_model, path = keras_classifier
    lines = []
    jaxlstm.load_keras(path).summary(print_fn=lines.append)
    text = "\n".join(lines)
    rows = {line.split()[0]: line for line in text.splitlines()[1:] if line.startswith("  ")}
    for layer in keras_model.layers:
        row = rows[layer.name]
        shape = "(" + ", ".join(str(d) for d in layer.output.shape) + ")"  # Keras: (None, ...)
        assert layer.__class__.__name__ in row and shape in row, (row, shape)
        assert f" {layer.count_params():,} " in row + " ", (row, layer.count_params())
    assert "(None, None, 10)" in rows["bi"]
    assert rows["emb"].rstrip().endswith("-→out") and "in→-" in rows["last"]
    assert f"Total params: {keras_model.count_params():,}" in text


def test_inspect_feeds_inputs_in_the_models_order(tmp_path):
    """A two-input model whose layer list (seq, side) is not its input order (side, seq):
    ``inspect`` and ``summary()`` trace the shapes Keras gives, with the inputs in
    ``input_layers`` order."""
    keras = pytest.importorskip("keras")
    from jaxlstm._src.inspect import describe_model

    L = keras.layers
    seq, side = keras.Input((5, 3), name="seq"), keras.Input((2,), name="side")
    out = L.Concatenate(name="cat")([L.LSTM(4, name="lstm")(seq), L.Dense(4, name="dense")(side)])
    keras_model = keras.Model([side, seq], out)
    config = keras_model.get_config()
    assert [e["name"] for e in config["layers"]][:2] == ["seq", "side"]
    assert [r[0] for r in config["input_layers"]] == ["side", "seq"]
    path = tmp_path / "two_inputs.keras"
    keras_model.save(path)
    lines = []
    jaxlstm.load_keras(path).summary(print_fn=lines.append)
    for text in (describe_model(path), "\n".join(lines)):
        assert "cannot be" not in text, text
        rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")}
        for layer in keras_model.layers:
            shape = "(" + ", ".join(str(d) for d in layer.output.shape) + ")"
            assert shape in rows[layer.name], (rows[layer.name], shape)
        assert "-→-" in rows["cat"].split(), rows["cat"]  # two inputs, neither masked


def test_inspect_mask_flow_of_a_layer_with_several_inputs(tmp_path):
    """The mask column says ``in`` when a mask reaches any of a layer's inputs (Keras's
    ``Concatenate`` then propagates one), and ``-`` when none of them carries one."""
    keras = pytest.importorskip("keras")
    from jaxlstm._src.inspect import describe_model

    L = keras.layers
    a, b = keras.Input((5,), name="a"), keras.Input((5, 3), name="b")
    masked = L.Embedding(9, 3, mask_zero=True, name="emb")(a)
    out = L.LSTM(2, name="lstm")(L.Concatenate(name="cat")([masked, b]))
    keras.Model([a, b], out).save(tmp_path / "m.keras")
    rows = {
        line.split()[0]: line.split()
        for line in describe_model(tmp_path / "m.keras").splitlines()
        if line.startswith("  ")
    }
    assert "in→out" in rows["cat"] and "in→-" in rows["lstm"], rows


def test_repr_is_one_short_line(keras_classifier):
    _, path = keras_classifier
    text = repr(jaxlstm.load_keras(path))
    assert "\n" not in text and len(text) < 120
    assert text.startswith("KerasModel('classifier', Functional, ") and "params" in text


def _built(tmp_path: Path) -> tuple[list[str], list[str]]:
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns(
        ".git", ".venv*", "__pycache__", "build", "*.egg-info", ".hypothesis", ".*cache"
    )
    shutil.copytree(ROOT, src, ignore=ignore)
    dist = tmp_path / "dist"
    sdist_code = (
        "from setuptools import build_meta as b; import sys; print(b.build_sdist(sys.argv[1]))"
    )
    run = subprocess.run(
        [sys.executable, "-c", sdist_code, str(dist)],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    subprocess.run(  # the wheel as pip builds it on install (isolated, pyproject's backend)
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(dist)],
        cwd=src,
        capture_output=True,
        timeout=600,
        check=True,
    )
    sdist = run.stdout.split()[-1]
    wheel = next(p.name for p in dist.iterdir() if p.suffix == ".whl")
    with tarfile.open(dist / sdist) as tar:
        sdist_names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
    with zipfile.ZipFile(dist / wheel) as whl:
        wheel_names = whl.namelist()
    return sdist_names, wheel_names


@pytest.mark.slow
def test_distributions_ship_license_py_typed_every_module_and_the_configs(tmp_path):
    sdist, wheel = _built(tmp_path)
    assert "LICENSE" in sdist and "jaxlstm/py.typed" in sdist
    assert "jaxlstm/py.typed" in wheel
    assert any(n.endswith(".dist-info/LICENSE") or "/licenses/LICENSE" in n for n in wheel)
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "jaxlstm").rglob("*.py")}
    assert modules <= set(wheel), sorted(modules - set(wheel))
    configs = {f"jaxlstm/configs/{p.name}" for p in (ROOT / "configs").glob("*.yaml")}
    assert configs and configs <= set(wheel), sorted(configs - set(wheel))
    assert {f"configs/{p.name}" for p in (ROOT / "configs").glob("*.yaml")} <= set(sdist)


def test_pyproject_lists_every_package_of_the_tree():
    """Packages are listed by hand (so that configs/ maps into the wheel): a new package must
    be added there, or the wheel would silently lack it."""
    import tomllib

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    tree = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "jaxlstm").rglob("__init__.py")
    }
    assert set(tool["packages"]) == tree | {"jaxlstm.configs"}
    assert tool["package-dir"] == {"jaxlstm.configs": "configs"}


def test_license_is_the_apache_2_text_pyproject_names():
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in text
    assert 'license = { text = "Apache-2.0" }' in (ROOT / "pyproject.toml").read_text()
    assert (ROOT / "jaxlstm" / "py.typed").exists()


def test_dependency_floors_are_the_ones_ci_proves():
    """pyproject.toml's floors are exactly the versions .ci/run installs for its floor smoke
    test (.ci/floors.txt)."""
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = dict(d.split(">=") for d in deps)
    lines = (ROOT / ".ci" / "floors.txt").read_text().splitlines()
    proven = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert declared == proven
    assert "floor_smoke.py" in (ROOT / ".ci" / "run").read_text()
