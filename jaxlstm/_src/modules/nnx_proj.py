"""``ProjLSTM``: an LSTM whose output is projected (PyTorch's ``nn.LSTM(proj_size=p)``), as a
Flax NNX module over ``core/lstm_proj.py``; the options and call of :class:`jaxlstm.LSTM`."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from jaxlstm._src.core.activations import Activation
from jaxlstm._src.core.layer import LAYER_OPTIONS
from jaxlstm._src.core.lstm_proj import ProjLSTMParams, proj_lstm_layer
from jaxlstm._src.errors import ShapeError
from jaxlstm._src.modules.nnx import (
    GLOROT_UNIFORM,
    ORTHOGONAL,
    _KerasRNN,
    build_rnn,
    host_param,
    in_float32,
    keras_bias_init,
)


class ProjLSTM(_KerasRNN):
    """An LSTM with a projected output (PyTorch's ``nn.LSTM(..., proj_size=p)``) as a Flax NNX
    module.

    Weights (``nnx.Param``\\ s): ``kernel (in_features, 4 * units)``, ``recurrent_kernel
    (proj_size, 4 * units)``, ``bias (4 * units,)`` (gates i, f, c, o, Keras's layout) and
    ``projection (units, proj_size)``. Each step is the LSTM's, then ``h = (o * φ(c)) @
    projection``: outputs and ``h`` have ``proj_size`` entries, ``c`` has ``units``.

    Args:
      in_features, units, proj_size: input, cell and output sizes.
      weights: a :class:`~jaxlstm._src.core.lstm_proj.ProjLSTMParams` to start from (how
        ``load_torch`` builds it); without, random weights from ``rngs``.
      every other option: as for :class:`jaxlstm.LSTM` (``impl="cudnn"`` is refused).

    Call: as :class:`jaxlstm.LSTM`; ``initial_state`` ``[h (proj_size), c (units)]``.
    Works inside :class:`jaxlstm.Bidirectional` and :class:`jaxlstm.RNNLayers`.

    Example:
      >>> from flax import nnx
      >>> import jax.numpy as jnp
      >>> lstm = ProjLSTM(3, 8, 2, return_sequences=True, rngs=nnx.Rngs(0))
      >>> lstm(jnp.ones((4, 5, 3))).shape
      (4, 5, 2)
    """

    state_fields = ("h", "c")
    _params_type, _layer, _options = ProjLSTMParams, staticmethod(proj_lstm_layer), LAYER_OPTIONS

    def __init__(
        self,
        in_features: int,
        units: int,
        proj_size: int,
        *,
        activation: str | Activation = "tanh",
        recurrent_activation: str | Activation = "sigmoid",
        use_bias: bool = True,
        unit_forget_bias: bool = True,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        zero_output_for_mask: bool = False,
        time_major: bool = False,
        unroll: int | bool = 1,
        compute_dtype=None,
        remat_chunk: int | None = None,
        impl: str = "auto",
        param_dtype=jnp.float32,
        kernel_init=GLOROT_UNIFORM,
        recurrent_init=ORTHOGONAL,
        deterministic: bool = False,
        weights: ProjLSTMParams | None = None,
        rngs: nnx.Rngs | nnx.RngStream | None = None,
    ):
        options = dict(locals())
        options = {name: options[name] for name in (*LAYER_OPTIONS, "use_bias")}
        build_rnn(
            self, "ProjLSTM", in_features, units, gates=4, bias_shape=(4 * units,),
            bias_init=lambda dtype: keras_bias_init(units, unit_forget_bias, dtype),
            layout="[i|f|c|o]", options=options, weights=weights,
            params_type=ProjLSTMParams, param_dtype=param_dtype, kernel_init=kernel_init,
            recurrent_init=recurrent_init, deterministic=deterministic, rngs=rngs,
            kernel_shapes=((in_features, 4 * units), (proj_size, 4 * units)),
        )  # fmt: skip
        self.proj_size = proj_size
        if weights is not None:
            shape = None if weights.projection is None else tuple(weights.projection.shape)
            if shape != (units, proj_size):
                raise ShapeError(
                    f"weights.projection has shape {shape}; expected ({units}, {proj_size}) "
                    f"for units={units}, proj_size={proj_size}."
                )
            self.projection = host_param(weights.projection, param_dtype)
        else:
            key = rngs.params()
            self.projection = nnx.Param(
                in_float32(GLOROT_UNIFORM)(key, (units, proj_size), param_dtype)
            )

    @property
    def params(self) -> ProjLSTMParams:
        bias = None if self.bias is None else self.bias[...]
        return ProjLSTMParams(
            self.kernel[...], self.recurrent_kernel[...], bias, self.projection[...]
        )
