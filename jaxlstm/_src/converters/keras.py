"""Keras 2/3 layout (and Keras 1 with ``consume_less='gpu'``): already ours.

``kernel (in, 4u)``, ``recurrent_kernel (u, 4u)``, ``bias (4u,)``, gates i, f, c, o.
"""

from __future__ import annotations

import numpy as np

from jaxlstm._src.core.lstm import LSTMParams


def from_keras(kernel: np.ndarray, recurrent_kernel: np.ndarray, bias=None) -> LSTMParams:
    """Keras 2/3 arrays as they are in the file."""
    return LSTMParams(kernel, recurrent_kernel, bias)
