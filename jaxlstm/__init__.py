"""jaxlstm: Keras LSTM layers in JAX, with Keras's numbers.

The whole public API::

    # the pure functional core (no Flax)
    LSTMParams, LSTMState, lstm_step, lstm_scan, which_impl, zeros_state, ACTIVATIONS,
    get_activation, GRUParams, GRUState, gru_step, gru_scan, SimpleRNNParams, SimpleRNNState,
    simple_rnn_step, simple_rnn_scan
    # Flax NNX modules (Linen twins in jaxlstm.linen), and their jitted inference call
    LSTM, GRU, SimpleRNN, Bidirectional, predictor
    # Keras files
    load_keras, KerasModel, save_keras, load_keras_layer, read_keras_file, describe_keras_file
    # errors
    JaxLSTMError, KerasFileError, LayerNotFoundError, UnsupportedOptionError,
    UnsupportedLayerError, UnknownActivationError, ShapeError, ChecksumError,
    UnsafeFileError, NonFiniteWeightsError
"""

from jaxlstm._src.core.activations import ACTIVATIONS, get_activation
from jaxlstm._src.core.gru import GRUParams, GRUState, gru_scan, gru_step
from jaxlstm._src.core.lstm import (
    LSTMParams,
    LSTMState,
    lstm_scan,
    lstm_step,
    which_impl,
    zeros_state,
)
from jaxlstm._src.core.simple_rnn import (
    SimpleRNNParams,
    SimpleRNNState,
    simple_rnn_scan,
    simple_rnn_step,
)
from jaxlstm._src.errors import (
    ChecksumError,
    JaxLSTMError,
    KerasFileError,
    LayerNotFoundError,
    NonFiniteWeightsError,
    ShapeError,
    UnknownActivationError,
    UnsafeFileError,
    UnsupportedLayerError,
    UnsupportedOptionError,
)
from jaxlstm._src.inspect import describe_keras_file
from jaxlstm._src.load import load_keras_layer
from jaxlstm._src.models.graph import KerasModel, load_keras
from jaxlstm._src.modules.inference import predictor
from jaxlstm._src.modules.nnx import LSTM, Bidirectional
from jaxlstm._src.modules.nnx_rnn import GRU, SimpleRNN
from jaxlstm._src.readers import read_keras_file
from jaxlstm._src.save import save_keras

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "GRU",
    "LSTM",
    "Bidirectional",
    "ChecksumError",
    "GRUParams",
    "GRUState",
    "JaxLSTMError",
    "KerasFileError",
    "KerasModel",
    "LSTMParams",
    "LSTMState",
    "LayerNotFoundError",
    "NonFiniteWeightsError",
    "ShapeError",
    "SimpleRNN",
    "SimpleRNNParams",
    "SimpleRNNState",
    "UnknownActivationError",
    "UnsafeFileError",
    "UnsupportedLayerError",
    "UnsupportedOptionError",
    "describe_keras_file",
    "get_activation",
    "gru_scan",
    "gru_step",
    "load_keras",
    "load_keras_layer",
    "lstm_scan",
    "lstm_step",
    "predictor",
    "read_keras_file",
    "save_keras",
    "simple_rnn_scan",
    "simple_rnn_step",
    "which_impl",
    "zeros_state",
]
