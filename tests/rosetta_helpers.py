"""Modules for the PyTorch and ONNX tests built from NumPy weights (``weights=``): nothing is
drawn or compiled while building them, which keeps those tests fast."""

from __future__ import annotations

import numpy as np

import jaxlstm

_GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1, "ProjLSTM": 4, "PeepholeLSTM": 4}


def make(cls, in_features: int, units: int, *args, seed: int = 0, **options):
    """``cls(in_features, units, *args, weights=..., **options)`` with random NumPy weights
    (``args``: a ProjLSTM's ``proj_size``)."""
    rng = np.random.default_rng(seed)
    name = cls.__name__
    g = _GATES[name]
    out = args[0] if args else units
    normal = lambda *shape: rng.normal(0, 0.5, shape).astype(np.float32)
    kernel, recurrent = normal(in_features, g * units), normal(out, g * units)
    bias = normal(g * units)
    if name == "GRU" and options.get("reset_after", True):
        bias = normal(2, g * units)
    if name == "ProjLSTM":
        weights = jaxlstm.ProjLSTMParams(kernel, recurrent, bias, normal(units, out))
    elif name == "PeepholeLSTM":
        weights = jaxlstm.PeepholeLSTMParams(kernel, recurrent, bias, normal(3, units))
    else:
        params = {"LSTM": jaxlstm.LSTMParams, "GRU": jaxlstm.GRUParams}.get(
            name, jaxlstm.SimpleRNNParams
        )
        weights = params(kernel, recurrent, bias)
    return cls(in_features, units, *args, weights=weights, **options)
