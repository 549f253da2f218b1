"""``PeepholeLSTM``: the ONNX LSTM's extras (peepholes, cell clip, coupled input and forget
gates) as a Flax NNX module over ``core/lstm_peephole.py``; the options and call of
:class:`jaxlstm.LSTM` besides."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from jaxlstm._src.core.activations import Activation
from jaxlstm._src.core.layer import LAYER_OPTIONS
from jaxlstm._src.core.lstm_peephole import PeepholeLSTMParams, peephole_lstm_layer
from jaxlstm._src.errors import ShapeError, UnsupportedOptionError
from jaxlstm._src.modules.nnx import (
    GLOROT_UNIFORM,
    ORTHOGONAL,
    _KerasRNN,
    build_rnn,
    host_param,
    in_float32,
    keras_bias_init,
)

PEEPHOLE_OPTIONS = (*LAYER_OPTIONS, "clip", "input_forget")


class PeepholeLSTM(_KerasRNN):
    """An LSTM with peephole connections, an optional cell clip and optionally coupled input
    and forget gates (ONNX's ``LSTM`` operator with ``P``, ``clip``, ``input_forget``), as a
    Flax NNX module.

    Weights (``nnx.Param``\\ s): Keras's LSTM layout (``kernel (in, 4u)``, ``recurrent_kernel
    (u, 4u)``, ``bias (4u,)``, gates i, f, c, o) and ``peephole (3, u)``, rows i, f, o (ONNX's
    ``P`` is i, o, f). The step (``jaxlstm._src.core.lstm_peephole``): ``i = σ(κ(z_i + p_i *
    c))``, ``f = 1 - i`` (``input_forget``) or ``σ(κ(z_f + p_f * c))``, ``c' = f * c + i *
    φ(κ(z_c))``, ``o = σ(κ(z_o + p_o * c'))``, ``h = o * φ(c')``, ``κ`` the clip to ``[-clip,
    clip]`` (none when ``clip=None``).

    Args:
      in_features, units: input and state sizes.
      clip: the cell clip, or ``None``. input_forget: couple the input and forget gates.
      weights: a :class:`~jaxlstm._src.core.lstm_peephole.PeepholeLSTMParams` (how
        ``load_onnx`` builds it); without, random weights from ``rngs``.
      every other option: as for :class:`jaxlstm.LSTM` (``impl="cudnn"`` is refused).

    Example:
      >>> from flax import nnx
      >>> import jax.numpy as jnp
      >>> lstm = PeepholeLSTM(3, 4, clip=2.0, return_sequences=True, rngs=nnx.Rngs(0))
      >>> lstm(jnp.ones((2, 5, 3))).shape
      (2, 5, 4)
    """

    state_fields = ("h", "c")
    _params_type, _layer = PeepholeLSTMParams, staticmethod(peephole_lstm_layer)
    _options = PEEPHOLE_OPTIONS

    def __init__(
        self,
        in_features: int,
        units: int,
        *,
        clip: float | None = None,
        input_forget: bool = False,
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
        weights: PeepholeLSTMParams | None = None,
        rngs: nnx.Rngs | nnx.RngStream | None = None,
    ):
        if clip is not None and not clip > 0:
            raise UnsupportedOptionError(f"clip={clip!r}; expected a positive number or None.")
        options = dict(locals())
        options = {name: options[name] for name in (*PEEPHOLE_OPTIONS, "use_bias")}
        options["clip"] = None if clip is None else float(clip)
        options["input_forget"] = bool(input_forget)
        build_rnn(
            self, "PeepholeLSTM", in_features, units, gates=4, bias_shape=(4 * units,),
            bias_init=lambda dtype: keras_bias_init(units, unit_forget_bias, dtype),
            layout="[i|f|c|o]", options=options, weights=weights,
            params_type=PeepholeLSTMParams, param_dtype=param_dtype, kernel_init=kernel_init,
            recurrent_init=recurrent_init, deterministic=deterministic, rngs=rngs,
        )  # fmt: skip
        if weights is not None:
            shape = None if weights.peephole is None else tuple(weights.peephole.shape)
            if shape != (3, units):
                raise ShapeError(
                    f"weights.peephole has shape {shape}; expected (3, {units}): rows i, f, o."
                )
            self.peephole = host_param(weights.peephole, param_dtype)
        else:
            key = rngs.params()
            self.peephole = nnx.Param(in_float32(GLOROT_UNIFORM)(key, (3, units), param_dtype))

    @property
    def params(self) -> PeepholeLSTMParams:
        bias = None if self.bias is None else self.bias[...]
        return PeepholeLSTMParams(
            self.kernel[...], self.recurrent_kernel[...], bias, self.peephole[...]
        )
