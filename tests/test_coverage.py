"""Coverage guards: a fixture, a layer class of the registry, a public name, a loss or a metric
added without a test fails here, in the default run (the checks are read off the sources and
the fixtures, nothing is run)."""

from __future__ import annotations

import json
import re
import sys
import zipfile
from pathlib import Path

import h5py

import jaxlstm
import jaxlstm.linen
import jaxlstm.train

ROOT = Path(__file__).parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
# the test files and the scripts and helpers they run (a worker process's checks count)
TESTS = {p.name: p.read_text() for p in (ROOT / "tests").glob("*.py") if p.name != "conftest.py"}
ELSEWHERE = "\n".join(
    text for name, text in TESTS.items() if name not in ("test_api.py", "test_coverage.py")
)


def _named(word: str, text: str = ELSEWHERE) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(word)}\b|\.{re.escape(word)}\b", text) is not None


def test_every_public_name_is_used_by_a_test_beyond_the_import_check():
    for module in (jaxlstm, jaxlstm.linen, jaxlstm.train):
        missing = [name for name in module.__all__ if not _named(name)]
        assert not missing, f"{module.__name__}: no test uses {missing}"


def _config_classes(config, found: set[str]) -> set[str]:
    if isinstance(config, dict):
        if isinstance(config.get("class_name"), str):
            found.add(config["class_name"])
        for value in config.values():
            _config_classes(value, found)
    elif isinstance(config, list):
        for value in config:
            _config_classes(value, found)
    return found


def _model_files() -> list[Path]:
    """Every Keras model file the tests read (the hostile corpus has its own guard)."""
    files = [
        *FIXTURES.rglob("*.h5"),
        *FIXTURES.rglob("*.keras"),
        *(ROOT / "jaxlstm" / "data").iterdir(),
    ]
    return sorted(p for p in files if "hostile" not in p.parts and p.suffix in (".h5", ".keras"))


def _fixture_classes() -> set[str]:
    found: set[str] = set()
    for path in _model_files():
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as z:
                _config_classes(json.loads(z.read("config.json")), found)
            continue
        with h5py.File(path) as f:
            if "model_config" in f.attrs:
                raw = f.attrs["model_config"]
                _config_classes(json.loads(raw if isinstance(raw, str) else raw.decode()), found)
    return found


def test_every_layer_class_of_the_registry_is_loaded_from_a_real_keras_file():
    """Each class load_keras builds is in a fixture written by real Keras, or a test builds it
    in live Keras 3 (``layers.Name(`` / ``L.Name(``) and compares the numbers."""
    from jaxlstm._src.models.layers import LAYERS

    in_fixtures = _fixture_classes()
    built_live = {c for c in LAYERS if re.search(rf"\b(?:L|layers)\.{c}\(", ELSEWHERE)}
    missing = sorted(set(LAYERS) - in_fixtures - built_live)
    assert not missing, f"no real Keras file or live Keras test has {missing}"


def test_every_fixture_has_keras_recorded_outputs_and_a_test_that_reads_it():
    """Each fixture model file has the outputs Keras computed beside it (``.npz``), and a test
    reads it: by its name, or through the save round trip that takes every fixture."""
    sys.path.insert(0, str(ROOT / "tests"))
    import test_save_fixtures

    everything = set(test_save_fixtures.FILES)
    for path in _model_files():
        rel = path.relative_to(ROOT).as_posix()
        assert path.with_suffix(".npz").exists(), f"{rel} has no recorded outputs"
        assert rel in everything or _named(path.name, "\n".join(TESTS.values())), rel


def test_every_savedmodel_and_checkpoint_fixture_is_read_by_a_test():
    """SavedModel directories and TF checkpoints (folders, not files): each is named by a test,
    and each that loads has tf-keras's recorded outputs beside it."""
    text = "\n".join(TESTS.values())
    folders = {
        p.parent if p.parent.name != "variables" else p.parent.parent
        for pattern in ("saved_model.pb", "*.index")
        for p in FIXTURES.rglob(pattern)
        if "hostile" not in p.parts
    }
    assert folders
    for folder in sorted(folders):
        assert _named(folder.name, text), f"no test reads {folder.relative_to(ROOT)}"
        refused = (folder / "saved_model.pb").exists() and not (
            folder / "keras_metadata.pb"
        ).exists()
        assert folder.with_suffix(".npz").exists() or refused, folder.relative_to(ROOT)


def test_every_loss_and_metric_is_compared_with_keras():
    from jaxlstm._src.train.losses import LOSSES, METRICS

    text = TESTS["test_losses.py"]
    for name in {*LOSSES, *METRICS} - {"accuracy"}:  # accuracy: resolved to one of the others
        assert f'"{name}":' in text, f"{name} has no Keras class in test_losses"
    assert "accuracy" in TESTS["test_losses.py"]
