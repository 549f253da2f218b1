"""Flax Linen twins of :class:`jaxlstm.LSTM` and :class:`jaxlstm.Bidirectional`."""

from jaxlstm._src.modules.linen import LSTM, Bidirectional

__all__ = ["LSTM", "Bidirectional"]
