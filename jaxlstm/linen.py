"""Flax Linen twins of :class:`jaxlstm.LSTM`, :class:`jaxlstm.GRU`,
:class:`jaxlstm.SimpleRNN`, :class:`jaxlstm.StackedRNN` and :class:`jaxlstm.Bidirectional`."""

from jaxlstm._src.modules.linen import LSTM, Bidirectional
from jaxlstm._src.modules.linen_rnn import GRU, SimpleRNN, StackedRNN

__all__ = ["GRU", "LSTM", "Bidirectional", "SimpleRNN", "StackedRNN"]
