"""The public API is exactly what jaxlstm/__init__.py exports, and every name imports."""

import importlib

import jaxlstm
import jaxlstm.linen


def test_every_public_name_imports():
    for name in jaxlstm.__all__:
        assert getattr(jaxlstm, name) is not None, name
    for name in jaxlstm.linen.__all__:
        assert getattr(jaxlstm.linen, name) is not None, name


def test_public_api_is_explicit():
    public = {n for n in dir(jaxlstm) if not n.startswith("_")} - {"linen", "train"}  # submodules
    assert public == set(jaxlstm.__all__)
    assert set(jaxlstm.linen.__all__) == {"LSTM", "Bidirectional"}


def test_core_imports_no_flax():
    for mod in (
        "jaxlstm._src.core.lstm",
        "jaxlstm._src.core.activations",
        "jaxlstm._src.core.layer",
    ):
        with open(importlib.util.find_spec(mod).origin) as fh:
            imports = [line for line in fh if line.startswith(("import ", "from "))]
        assert not [line for line in imports if "flax" in line], mod
