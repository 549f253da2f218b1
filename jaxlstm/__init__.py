"""jaxlstm: Keras recurrent layers in JAX, with Keras's numbers.

The whole public API::

    # the pure functional core (no Flax)
    LSTMParams, LSTMState, lstm_step, lstm_scan, which_impl, zeros_state, ACTIVATIONS,
    get_activation, GRUParams, GRUState, gru_step, gru_scan, SimpleRNNParams, SimpleRNNState,
    simple_rnn_step, simple_rnn_scan, ConvLSTMParams, ConvLSTMState, conv_lstm_step,
    conv_lstm_scan
    # Flax NNX modules (Linen twins in jaxlstm.linen), and their jitted inference call
    LSTM, GRU, SimpleRNN, StackedRNN, ConvLSTM1D, ConvLSTM2D, ConvLSTM3D, Bidirectional,
    predictor
    # Keras files
    load_keras, KerasModel, save_keras, load_keras_layer, read_keras_file, describe_keras_file
    # PyTorch weights (nn.LSTM/GRU/RNN, Linear, Embedding) in, and back out
    load_torch, torch_state_dict, save_torch, TorchConfig, describe_torch_file, RNNLayers,
    ProjLSTM, ProjLSTMParams, proj_lstm_scan
    # ONNX LSTM/GRU/RNN nodes in, and back out
    load_onnx, onnx_model, save_onnx, describe_onnx_file, PeepholeLSTM, PeepholeLSTMParams,
    peephole_lstm_scan
    # JAX's persistent compilation cache, opt-in
    enable_compilation_cache
    # errors
    JaxLSTMError, KerasFileError, LayerNotFoundError, UnsupportedOptionError,
    UnsupportedLayerError, UnknownActivationError, ShapeError, ChecksumError,
    UnsafeFileError, NonFiniteWeightsError, MissingDependencyError
"""

import importlib as _importlib
import typing as _typing

from jaxlstm._src.errors import (
    ChecksumError,
    JaxLSTMError,
    KerasFileError,
    LayerNotFoundError,
    MissingDependencyError,
    NonFiniteWeightsError,
    ShapeError,
    UnknownActivationError,
    UnsafeFileError,
    UnsupportedLayerError,
    UnsupportedOptionError,
)

# Everything else loads on first use (PEP 562), so that ``import jaxlstm`` costs no JAX or Flax
# import: ``jaxlstm --help`` answers at once and a script pays for what it touches.
_LAZY = {
    "ACTIVATIONS": "jaxlstm._src.core.activations",
    "get_activation": "jaxlstm._src.core.activations",
    "LSTMParams": "jaxlstm._src.core.lstm",
    "LSTMState": "jaxlstm._src.core.lstm",
    "lstm_scan": "jaxlstm._src.core.lstm",
    "lstm_step": "jaxlstm._src.core.lstm",
    "which_impl": "jaxlstm._src.core.lstm",
    "zeros_state": "jaxlstm._src.core.lstm",
    "GRUParams": "jaxlstm._src.core.gru",
    "GRUState": "jaxlstm._src.core.gru",
    "gru_scan": "jaxlstm._src.core.gru",
    "gru_step": "jaxlstm._src.core.gru",
    "SimpleRNNParams": "jaxlstm._src.core.simple_rnn",
    "SimpleRNNState": "jaxlstm._src.core.simple_rnn",
    "simple_rnn_scan": "jaxlstm._src.core.simple_rnn",
    "simple_rnn_step": "jaxlstm._src.core.simple_rnn",
    "ConvLSTMParams": "jaxlstm._src.core.conv_lstm",
    "ConvLSTMState": "jaxlstm._src.core.conv_lstm",
    "conv_lstm_scan": "jaxlstm._src.core.conv_lstm",
    "conv_lstm_step": "jaxlstm._src.core.conv_lstm",
    "enable_compilation_cache": "jaxlstm._src.cache",
    "describe_keras_file": "jaxlstm._src.inspect",
    "load_keras_layer": "jaxlstm._src.load",
    "KerasModel": "jaxlstm._src.models.graph",
    "load_keras": "jaxlstm._src.models.graph",
    "predictor": "jaxlstm._src.modules.inference",
    "LSTM": "jaxlstm._src.modules.nnx",
    "Bidirectional": "jaxlstm._src.modules.nnx",
    "GRU": "jaxlstm._src.modules.nnx_rnn",
    "SimpleRNN": "jaxlstm._src.modules.nnx_rnn",
    "StackedRNN": "jaxlstm._src.modules.nnx_rnn",
    "ConvLSTM1D": "jaxlstm._src.modules.nnx_conv_lstm",
    "ConvLSTM2D": "jaxlstm._src.modules.nnx_conv_lstm",
    "ConvLSTM3D": "jaxlstm._src.modules.nnx_conv_lstm",
    "read_keras_file": "jaxlstm._src.readers",
    "save_keras": "jaxlstm._src.save",
    "RNNLayers": "jaxlstm._src.modules.nnx_layers",
    "ProjLSTM": "jaxlstm._src.modules.nnx_proj",
    "PeepholeLSTM": "jaxlstm._src.modules.nnx_peephole",
    "PeepholeLSTMParams": "jaxlstm._src.core.lstm_peephole",
    "peephole_lstm_scan": "jaxlstm._src.core.lstm_peephole",
    "ProjLSTMParams": "jaxlstm._src.core.lstm_proj",
    "proj_lstm_scan": "jaxlstm._src.core.lstm_proj",
    "describe_onnx_file": "jaxlstm._src.onnx",
    "load_onnx": "jaxlstm._src.onnx",
    "onnx_model": "jaxlstm._src.onnx",
    "save_onnx": "jaxlstm._src.onnx",
    "TorchConfig": "jaxlstm._src.torch",
    "describe_torch_file": "jaxlstm._src.torch",
    "load_torch": "jaxlstm._src.torch",
    "save_torch": "jaxlstm._src.torch",
    "torch_state_dict": "jaxlstm._src.torch",
}

if _typing.TYPE_CHECKING:  # what type checkers and IDEs see: the real objects
    from jaxlstm._src.cache import enable_compilation_cache
    from jaxlstm._src.core.activations import ACTIVATIONS, get_activation
    from jaxlstm._src.core.conv_lstm import (
        ConvLSTMParams,
        ConvLSTMState,
        conv_lstm_scan,
        conv_lstm_step,
    )
    from jaxlstm._src.core.gru import GRUParams, GRUState, gru_scan, gru_step
    from jaxlstm._src.core.lstm import (
        LSTMParams,
        LSTMState,
        lstm_scan,
        lstm_step,
        which_impl,
        zeros_state,
    )
    from jaxlstm._src.core.lstm_peephole import PeepholeLSTMParams, peephole_lstm_scan
    from jaxlstm._src.core.lstm_proj import ProjLSTMParams, proj_lstm_scan
    from jaxlstm._src.core.simple_rnn import (
        SimpleRNNParams,
        SimpleRNNState,
        simple_rnn_scan,
        simple_rnn_step,
    )
    from jaxlstm._src.inspect import describe_keras_file
    from jaxlstm._src.load import load_keras_layer
    from jaxlstm._src.models.graph import KerasModel, load_keras
    from jaxlstm._src.modules.inference import predictor
    from jaxlstm._src.modules.nnx import LSTM, Bidirectional
    from jaxlstm._src.modules.nnx_conv_lstm import ConvLSTM1D, ConvLSTM2D, ConvLSTM3D
    from jaxlstm._src.modules.nnx_layers import RNNLayers
    from jaxlstm._src.modules.nnx_peephole import PeepholeLSTM
    from jaxlstm._src.modules.nnx_proj import ProjLSTM
    from jaxlstm._src.modules.nnx_rnn import GRU, SimpleRNN, StackedRNN
    from jaxlstm._src.onnx import describe_onnx_file, load_onnx, onnx_model, save_onnx
    from jaxlstm._src.readers import read_keras_file
    from jaxlstm._src.save import save_keras
    from jaxlstm._src.torch import (
        TorchConfig,
        describe_torch_file,
        load_torch,
        save_torch,
        torch_state_dict,
    )


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups are plain attribute reads
        return value
    if name in ("linen", "train"):
        return _importlib.import_module(f"jaxlstm.{name}")
    raise AttributeError(f"module 'jaxlstm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, "linen", "train", "__version__"})


__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "GRU",
    "LSTM",
    "Bidirectional",
    "ChecksumError",
    "ConvLSTM1D",
    "ConvLSTM2D",
    "ConvLSTM3D",
    "ConvLSTMParams",
    "ConvLSTMState",
    "GRUParams",
    "GRUState",
    "JaxLSTMError",
    "KerasFileError",
    "KerasModel",
    "LSTMParams",
    "LSTMState",
    "LayerNotFoundError",
    "MissingDependencyError",
    "NonFiniteWeightsError",
    "PeepholeLSTM",
    "PeepholeLSTMParams",
    "ProjLSTM",
    "ProjLSTMParams",
    "RNNLayers",
    "ShapeError",
    "SimpleRNN",
    "SimpleRNNParams",
    "SimpleRNNState",
    "StackedRNN",
    "TorchConfig",
    "UnknownActivationError",
    "UnsafeFileError",
    "UnsupportedLayerError",
    "UnsupportedOptionError",
    "conv_lstm_scan",
    "conv_lstm_step",
    "describe_keras_file",
    "describe_onnx_file",
    "describe_torch_file",
    "enable_compilation_cache",
    "get_activation",
    "gru_scan",
    "gru_step",
    "load_keras",
    "load_keras_layer",
    "load_onnx",
    "load_torch",
    "lstm_scan",
    "lstm_step",
    "onnx_model",
    "peephole_lstm_scan",
    "predictor",
    "proj_lstm_scan",
    "read_keras_file",
    "save_keras",
    "save_onnx",
    "save_torch",
    "simple_rnn_scan",
    "simple_rnn_step",
    "torch_state_dict",
    "which_impl",
    "zeros_state",
]
