"""``RNNLayers``: recurrent layers run one after another, each over the whole sequence, as
PyTorch's ``num_layers`` (and ONNX exports of it) stack them.

This is not Keras's stacked cells (:class:`jaxlstm.StackedRNN`, where the cells run in turn at
every step): here layer ``k + 1`` reads layer ``k``'s whole output sequence, which for a
:class:`jaxlstm.Bidirectional` layer is both directions concatenated (PyTorch's
``bidirectional=True`` with ``num_layers > 1``). For forward-only layers the two compute the
same numbers; each layer here keeps its own fast backward pass.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxlstm._src.errors import UnsupportedOptionError


def cell_module(family: str, params, **options):
    """A :class:`jaxlstm.LSTM`, :class:`jaxlstm.GRU`, :class:`jaxlstm.SimpleRNN` or
    :class:`jaxlstm.ProjLSTM` (``family`` ``"LSTM"``, ``"GRU"``, ``"SimpleRNN"``,
    ``"ProjLSTM"``) built from ``params`` in Keras's layout, in eval mode, its sizes and
    ``use_bias`` from the arrays; ``options`` are the module's keyword arguments
    (``reset_after`` is used by a GRU only, ``recurrent_activation`` not by a SimpleRNN).
    How the PyTorch and ONNX loaders build theirs."""
    from jaxlstm._src.modules.nnx import LSTM
    from jaxlstm._src.modules.nnx_rnn import GRU, SimpleRNN

    in_features, units = params.kernel.shape[0], params.recurrent_kernel.shape[0]
    options = dict(use_bias=params.bias is not None, weights=params, deterministic=True, **options)
    reset_after = options.pop("reset_after", True)
    if family == "PeepholeLSTM":  # ONNX's peepholes, clip, input_forget
        from jaxlstm._src.modules.nnx_peephole import PeepholeLSTM

        return PeepholeLSTM(in_features, units, **options)
    if family == "ProjLSTM":  # an LSTM with projection: params.projection (units, proj_size)
        from jaxlstm._src.modules.nnx_proj import ProjLSTM

        units, proj = params.projection.shape
        return ProjLSTM(in_features, units, proj, **options)
    if family == "LSTM":
        return LSTM(in_features, units, **options)
    if family == "GRU":
        return GRU(in_features, units, reset_after=reset_after, **options)
    options.pop("recurrent_activation", None)
    return SimpleRNN(in_features, units, **options)


def _time_major(layer) -> bool:
    forward = getattr(layer, "forward", None)  # a Bidirectional
    return bool((forward if forward is not None else layer).time_major)


def layer_state_count(layer) -> int:
    """How many state arrays ``layer`` takes and returns (2 for an LSTM, 4 for a
    Bidirectional of LSTMs, 1 for a GRU or SimpleRNN)."""
    forward = getattr(layer, "forward", None)
    if forward is not None:
        return 2 * len(forward.state_fields)
    return len(layer.state_fields)


class RNNLayers(nnx.Module):
    """Recurrent layers applied in sequence: layer ``k + 1``'s input is layer ``k``'s output
    sequence (PyTorch's ``nn.LSTM(num_layers=L)``).

    Args:
      layers: a list of :class:`jaxlstm.LSTM`, :class:`jaxlstm.GRU`, :class:`jaxlstm.SimpleRNN`
        or :class:`jaxlstm.Bidirectional` modules, each built with ``return_sequences=True``
        and the same ``time_major``; layer ``k + 1``'s ``in_features`` is layer ``k``'s output
        width (``2 * units`` for a Bidirectional with ``merge_mode="concat"``).
      return_state: also return every layer's final states.

    Call: ``rnn(x, *, mask=None, initial_state=None)``; the mask goes to every layer;
    ``initial_state`` is every layer's states flat, layer 0 first, each as the layer takes them
    (``[h, c]`` for an LSTM, ``[h_fw, c_fw, h_bw, c_bw]`` for a Bidirectional of LSTMs).
    Returns the last layer's output sequence, or with ``return_state`` ``(output, *states)``,
    every layer's final states flat in that same order.

    Example:
      >>> from flax import nnx
      >>> import jax.numpy as jnp
      >>> from jaxlstm import GRU
      >>> rngs = nnx.Rngs(0)
      >>> rnn = RNNLayers([GRU(3, 4, return_sequences=True, rngs=rngs),
      ...                  GRU(4, 4, return_sequences=True, rngs=rngs)])
      >>> rnn(jnp.ones((2, 5, 3))).shape
      (2, 5, 4)
    """

    def __init__(self, layers, *, return_state: bool = False):
        layers = list(layers)
        if not layers:
            raise UnsupportedOptionError("RNNLayers received no layers; expected at least one.")
        for k, layer in enumerate(layers):
            if not getattr(layer, "return_sequences", False):
                raise UnsupportedOptionError(
                    f"RNNLayers' layer {k} ({type(layer).__name__}) has return_sequences=False; "
                    "expected every layer built with return_sequences=True (the next layer "
                    "reads its whole output sequence)."
                )
        majors = {_time_major(layer) for layer in layers}
        if len(majors) > 1:
            raise UnsupportedOptionError(
                "RNNLayers' layers disagree on time_major; expected every layer built with the "
                "same (the next layer reads the previous one's output as it is)."
            )
        self.layers = nnx.List(layers)
        self.return_state = return_state
        self.return_sequences = True

    @property
    def state_count(self) -> int:
        return sum(layer_state_count(layer) for layer in self.layers)

    def __call__(
        self,
        x: jax.Array,
        *,
        mask: jax.Array | None = None,
        initial_state: Any = None,
        deterministic: bool | None = None,
        return_state: bool | None = None,
    ) -> Any:
        return_state = self.return_state if return_state is None else return_state
        flat = None if initial_state is None else list(initial_state)
        if flat is not None and len(flat) != self.state_count:
            raise UnsupportedOptionError(
                f"RNNLayers initial_state has {len(flat)} arrays; expected {self.state_count}: "
                "each layer's states flat, layer 0 first."
            )
        states, i = [], 0
        y = x
        for layer in self.layers:
            n = layer_state_count(layer)
            given = None if flat is None else flat[i : i + n]
            i += n
            out = layer(
                y, mask=mask, initial_state=given, deterministic=deterministic, return_state=True
            )
            y, *own = out
            states.extend(own)
        return (y, *states) if return_state else y
