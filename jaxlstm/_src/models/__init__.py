"""Whole Keras models as Flax NNX modules: a layer registry and a graph runner."""

# The registry (layers.LAYERS) is completed by the modules that build on its base classes
# (conv.py, attention.py), which layers.py imports at its end: importing layers.py first, whatever
# module of this package is asked for, keeps that order.
from jaxlstm._src.models import layers as _layers  # noqa: F401
