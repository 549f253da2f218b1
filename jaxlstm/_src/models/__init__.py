"""Whole Keras models as Flax NNX modules: a layer registry and a graph runner."""
