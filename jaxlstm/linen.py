"""Flax Linen twins of :class:`jaxlstm.LSTM`, :class:`jaxlstm.GRU`,
:class:`jaxlstm.SimpleRNN`, :class:`jaxlstm.StackedRNN`, :class:`jaxlstm.ConvLSTM1D` / ``2D`` /
``3D``, :class:`jaxlstm.ProjLSTM`, :class:`jaxlstm.PeepholeLSTM` and
:class:`jaxlstm.Bidirectional`."""

from jaxlstm._src.modules.linen import LSTM, Bidirectional
from jaxlstm._src.modules.linen_conv_lstm import ConvLSTM1D, ConvLSTM2D, ConvLSTM3D
from jaxlstm._src.modules.linen_lstm_variants import PeepholeLSTM, ProjLSTM
from jaxlstm._src.modules.linen_rnn import GRU, SimpleRNN, StackedRNN

__all__ = [
    "GRU",
    "LSTM",
    "Bidirectional",
    "ConvLSTM1D",
    "ConvLSTM2D",
    "ConvLSTM3D",
    "PeepholeLSTM",
    "ProjLSTM",
    "SimpleRNN",
    "StackedRNN",
]
