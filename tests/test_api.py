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
    assert set(jaxlstm.linen.__all__) == {
        "LSTM",
        "GRU",
        "SimpleRNN",
        "StackedRNN",
        "ConvLSTM1D",
        "ConvLSTM2D",
        "ConvLSTM3D",
        "ProjLSTM",
        "PeepholeLSTM",
        "Bidirectional",
    }


def test_core_imports_no_flax():
    for mod in (
        "jaxlstm._src.core.lstm",
        "jaxlstm._src.core.gru",
        "jaxlstm._src.core.simple_rnn",
        "jaxlstm._src.core.rnn",
        "jaxlstm._src.core.conv_lstm",
        "jaxlstm._src.core.fast",
        "jaxlstm._src.core.activations",
        "jaxlstm._src.core.layer",
        "jaxlstm._src.core.stacked",
        "jaxlstm._src.core.lstm_proj",
        "jaxlstm._src.core.lstm_peephole",
    ):
        with open(importlib.util.find_spec(mod).origin) as fh:
            imports = [line for line in fh if line.startswith(("import ", "from "))]
        assert not [line for line in imports if "flax" in line], mod


def test_docstring_examples_run():
    """Every ``>>>`` example in the package's docstrings runs and prints what it says."""
    import doctest
    import importlib
    import pkgutil

    attempted, flags = 0, doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    for info in pkgutil.walk_packages(jaxlstm.__path__, "jaxlstm."):
        if info.name.endswith("__main__"):  # importing it runs the CLI
            continue
        module = importlib.import_module(info.name)
        result = doctest.testmod(module, optionflags=flags)
        assert result.failed == 0, f"{info.name}: {result.failed} docstring example(s) failed"
        attempted += result.attempted
    assert attempted >= 30  # the examples are found at all
