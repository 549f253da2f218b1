"""Flax Linen twins of the NNX modules: same names, options and numbers, same core."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlstm._src.core.layer import (
    LAYER_OPTIONS,
    check_bidirectional_pair,
    layer_options,
    lstm_layer,
    merge_bidirectional,
    split_bidirectional_state,
)
from jaxlstm._src.core.lstm import LSTMParams
from jaxlstm._src.modules.nnx import (
    in_float32,
    in_param_dtype,
    keras_bias_init,
    needs_dropout_rng,
    zero_output_for_mask,
)


def rnn_params(module: nn.Module, in_features: int, gates: int, bias_init):
    """A Linen recurrent module's ``kernel (in, gates*u)``, ``recurrent_kernel (u, gates*u)``
    and ``bias`` (``bias_init(key, dtype)``; ``None`` without ``use_bias``) params, drawn in
    float32 and cast to ``module.param_dtype``: the same construction for every cell."""
    u, dtype = module.units, module.param_dtype
    kernel = module.param("kernel", in_float32(module.kernel_init), (in_features, gates * u), dtype)
    recurrent = module.param(
        "recurrent_kernel", in_float32(module.recurrent_init), (u, gates * u), dtype
    )
    bias = module.param("bias", bias_init, dtype) if module.use_bias else None
    return kernel, recurrent, bias


def dropout_key(module: nn.Module, deterministic):
    """The ``"dropout"`` stream's key for one call, or ``None`` (eval mode, or no dropout)."""
    deterministic = nn.merge_param("deterministic", module.deterministic, deterministic)
    needs_rng = needs_dropout_rng(module.dropout, module.recurrent_dropout)
    return module.make_rng("dropout") if needs_rng and not deterministic else None


class _KerasRNN(nn.Module):
    """What the Linen LSTM, GRU and SimpleRNN share: params ``kernel``, ``recurrent_kernel``
    and ``bias`` in Keras's layout (:func:`rnn_params`), a dropout key from the ``"dropout"``
    stream in training mode, the cell's layer call (``core/layer.py``), outputs in a 16-bit
    ``param_dtype``. Each cell names its params pytree, its layer call, the options it takes
    and its number of gates (``_params_type``, ``_layer``, ``_options``, ``_gates``: class
    attributes, not annotated, or they would become dataclass fields) and gives
    ``_bias_init(dtype)``, its bias as Keras initialises it (or ``_make_params(x)``, all of its
    params). Its fields (the options) are its
    own, in its own order, as positional arguments take them."""

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        *,
        mask: jax.Array | None = None,
        initial_state: Any = None,
        deterministic: bool | None = None,
        return_state: bool | None = None,
        zero_output_for_mask: bool | None = None,
    ) -> Any:
        out = self._layer(
            self._make_params(x),
            x,
            mask=mask,
            initial_state=initial_state,
            dropout_key=dropout_key(self, deterministic),
            **layer_options(
                self,
                self._options,
                return_state=return_state,
                zero_output_for_mask=zero_output_for_mask,
            ),
        )
        return in_param_dtype(out, self.param_dtype)

    def _make_params(self, x: jax.Array):
        """The cell's params pytree, its arrays created on first call from the input's last
        axis (a ConvLSTM makes convolution kernels instead)."""
        params = rnn_params(self, x.shape[-1], self._gates, lambda _, d: self._bias_init(d))
        return self._params_type(*params)


class LSTM(_KerasRNN):
    """``keras.layers.LSTM`` as a Linen module; see :class:`jaxlstm.LSTM` for the equations.

    Parameters ``kernel (in, 4u)``, ``recurrent_kernel (u, 4u)`` and ``bias (4u,)`` (gate order
    i, f, c, o) are created on first call from the input's last axis. Dropout uses the
    ``"dropout"`` RNG stream when ``deterministic=False``. Low-precision ``param_dtype``
    (``jnp.bfloat16``, ``jnp.float16``): weights drawn in float32 and cast, outputs and states in
    that dtype.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> lstm = LSTM(units=4, return_sequences=True)
      >>> variables = lstm.init(jax.random.key(0), jnp.ones((2, 5, 3)), deterministic=True)
      >>> lstm.apply(variables, jnp.ones((2, 5, 3)), deterministic=True).shape
      (2, 5, 4)
    """

    units: int
    activation: Any = "tanh"
    recurrent_activation: Any = "sigmoid"
    use_bias: bool = True
    unit_forget_bias: bool = True
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    zero_output_for_mask: bool = False
    time_major: bool = False
    unroll: int | bool = 1
    compute_dtype: Any = None
    remat_chunk: int | None = None  # checkpointed backward in chunks (see jaxlstm.lstm_scan)
    impl: str = "auto"  # "auto" | "scan" | "cudnn" (see jaxlstm.lstm_scan)
    param_dtype: Any = jnp.float32
    kernel_init: Any = nn.initializers.glorot_uniform()
    recurrent_init: Any = nn.initializers.orthogonal()
    deterministic: bool | None = None

    state_fields = ("h", "c")  # Keras's state list, as Bidirectional splits initial_state

    _params_type, _layer, _options = LSTMParams, staticmethod(lstm_layer), LAYER_OPTIONS
    _gates = 4

    def _bias_init(self, dtype):
        return keras_bias_init(self.units, self.unit_forget_bias, dtype)


class Bidirectional(nn.Module):
    """``keras.layers.Bidirectional`` over two Linen :class:`LSTM`, :class:`GRU` or
    :class:`SimpleRNN` modules of one kind (parameters under
    ``forward_layer`` and ``backward_layer``, as Keras 3 names them); same call and outputs
    as :class:`jaxlstm.Bidirectional`."""

    forward: nn.Module  # LSTM, GRU, SimpleRNN or ConvLSTM1D/2D/3D
    backward: nn.Module
    merge_mode: str | None = "concat"
    zero_output_for_mask: bool | None = None  # see jaxlstm.Bidirectional

    def __post_init__(self):
        check_bidirectional_pair(self.forward, self.backward, self.merge_mode)
        super().__post_init__()

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        *,
        mask: jax.Array | None = None,
        initial_state: Any = None,
        deterministic: bool | None = None,
        return_state: bool | None = None,
    ) -> Any:
        return_state = self.forward.return_state if return_state is None else return_state
        seq = self.forward.return_sequences
        fw_state, bw_state = split_bidirectional_state(initial_state, self.forward.state_fields)
        fw_layer = self.forward.clone(name="forward_layer", parent=self)
        bw_layer = self.backward.clone(name="backward_layer", parent=self)
        per_call = dict(
            mask=mask,
            deterministic=deterministic,
            return_state=return_state,
            zero_output_for_mask=zero_output_for_mask(self.zero_output_for_mask, seq),
        )
        fw = fw_layer(x, initial_state=fw_state, **per_call)
        bw = bw_layer(x, initial_state=bw_state, **per_call)
        return merge_bidirectional(
            fw,
            bw,
            merge_mode=self.merge_mode,
            return_sequences=seq,
            return_state=return_state,
            time_major=self.forward.time_major,
            step_ndim=getattr(self.forward, "step_ndim", 1),
        )
