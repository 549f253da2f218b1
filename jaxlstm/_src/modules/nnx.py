"""Flax NNX modules that hold LSTM weights and call the pure core. Keras's names and defaults."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlstm._src.core.activations import Activation, get_activation
from jaxlstm._src.core.layer import (
    MERGE_MODES,
    layer_options,
    lstm_layer,
    merge_bidirectional,
    split_bidirectional_state,
)
from jaxlstm._src.core.lstm import LSTMParams
from jaxlstm._src.errors import UnsupportedOptionError

# Keras's LSTM initialisers (glorot_uniform kernel, orthogonal recurrent kernel).
GLOROT_UNIFORM = nnx.initializers.glorot_uniform()
ORTHOGONAL = nnx.initializers.orthogonal()


def keras_bias_init(units: int, unit_forget_bias: bool, dtype=jnp.float32) -> jax.Array:
    """Keras's LSTM bias: zeros, with the forget slice at one when ``unit_forget_bias``."""
    bias = jnp.zeros((4 * units,), dtype)
    return bias.at[units : 2 * units].set(1.0) if unit_forget_bias else bias


class LSTM(nnx.Module):
    """``keras.layers.LSTM`` as a Flax NNX module.

    The weights are ``nnx.Param``\\ s in Keras's layout (gate order i, f, c, o)::

        kernel            (in_features, 4 * units)
        recurrent_kernel  (units, 4 * units)
        bias              (4 * units,)            absent when use_bias=False

    and each step computes ``z = x_t @ kernel + h @ recurrent_kernel + bias``,
    ``i, f, o = σ(z_i), σ(z_f), σ(z_o)``, ``c = f * c + i * φ(z_c)``, ``h = o * φ(c)`` with
    ``σ = recurrent_activation`` and ``φ = activation``.

    Args:
      in_features: size of the last input axis.
      units: size of the state and of each output.
      activation, recurrent_activation: Keras names (see ``jaxlstm.ACTIVATIONS``; note
        ``"hard_sigmoid"`` is Keras 3's, ``"hard_sigmoid_keras2"`` the Keras 1/2 one) or callables.
      use_bias, unit_forget_bias: as in Keras (forget-gate bias initialised to one).
      return_sequences: return ``(*batch, T, units)`` instead of the last output
        ``(*batch, units)``.
      return_state: also return the final ``h`` and ``c``: the call gives ``(outputs, h, c)``.
      go_backwards: run from the last step to the first; sequences come back in that order.
      dropout, recurrent_dropout: Keras 3 dropout on the inputs and on ``h``, one mask per sequence,
        active only when the module is in training mode (``deterministic=False``).
      zero_output_for_mask: zeros instead of the previous output at masked steps.
      time_major: inputs ``(T, *batch, in_features)``.
      unroll: steps per ``lax.scan`` iteration.
      compute_dtype: e.g. ``jnp.bfloat16`` for bfloat16 matmuls with a float32 carry.
      remat_chunk: checkpoint the backward pass in chunks of this many steps (long sequences:
        memory ~ ``T / remat_chunk + remat_chunk`` steps instead of ``T``); see ``lstm_scan``.
      impl: ``"auto"`` (cuDNN on GPU where it applies, else the scan), ``"scan"`` or ``"cudnn"``
        (raises ``UnsupportedOptionError`` where cuDNN cannot run); see ``jaxlstm.lstm_scan``.
      param_dtype: dtype of the weights.
      deterministic: ``True`` turns dropout off; ``model.eval()`` / ``model.train()`` set it.
      rngs: ``nnx.Rngs`` for the initial weights (``params``) and dropout (``dropout``).

    Call: ``lstm(x, *, mask=None, initial_state=None)`` with ``x`` of shape
    ``(*batch, T, in_features)`` (no batch axes for one sequence), ``mask`` ``(*batch, T)`` and
    ``initial_state`` an ``LSTMState(h, c)`` or ``[h, c]``.

    Example:
      >>> from flax import nnx
      >>> import jax.numpy as jnp
      >>> lstm = LSTM(3, 8, return_sequences=True, rngs=nnx.Rngs(0))
      >>> lstm(jnp.ones((2, 5, 3))).shape
      (2, 5, 8)
    """

    state_fields = ("h", "c")  # Keras's state list, as Bidirectional splits initial_state

    def __init__(
        self,
        in_features: int,
        units: int,
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
        rngs: nnx.Rngs,
    ):
        get_activation(activation), get_activation(recurrent_activation)  # fail early
        self.in_features, self.units = in_features, units
        self.activation, self.recurrent_activation = activation, recurrent_activation
        self.use_bias = use_bias
        self.return_sequences, self.return_state = return_sequences, return_state
        self.go_backwards, self.zero_output_for_mask = go_backwards, zero_output_for_mask
        self.dropout, self.recurrent_dropout = dropout, recurrent_dropout
        self.time_major, self.unroll, self.compute_dtype = time_major, unroll, compute_dtype
        self.remat_chunk, self.impl = remat_chunk, impl
        self.deterministic = deterministic
        self.kernel = nnx.Param(kernel_init(rngs.params(), (in_features, 4 * units), param_dtype))
        self.recurrent_kernel = nnx.Param(
            recurrent_init(rngs.params(), (units, 4 * units), param_dtype)
        )
        self.bias = (
            nnx.Param(keras_bias_init(units, unit_forget_bias, param_dtype)) if use_bias else None
        )
        needs_rng = 0.0 < dropout < 1.0 or 0.0 < recurrent_dropout < 1.0
        self.rngs = rngs.dropout.fork() if needs_rng else nnx.data(None)

    @property
    def params(self) -> LSTMParams:
        """The weights as a plain :class:`LSTMParams` pytree (for the functional core)."""
        bias = None if self.bias is None else self.bias[...]
        return LSTMParams(self.kernel[...], self.recurrent_kernel[...], bias)

    def __call__(self, x, *, mask=None, initial_state=None, deterministic: bool | None = None):
        deterministic = self.deterministic if deterministic is None else deterministic
        key = None
        if not deterministic and self.rngs is not None:
            key = self.rngs()
        return lstm_layer(
            self.params,
            x,
            mask=mask,
            initial_state=initial_state,
            dropout_key=key,
            **layer_options(self),
        )


class Bidirectional(nnx.Module):
    """``keras.layers.Bidirectional`` around two :class:`LSTM`, :class:`GRU` or
    :class:`SimpleRNN` modules.

    ``backward`` must run the other way (``go_backwards`` differs, as Keras requires) and both must
    agree on ``return_sequences`` and ``return_state``. As in Keras, inside Bidirectional an LSTM
    returning sequences outputs zeros at masked steps (``zero_output_for_mask``), and the backward
    sequence is flipped back to input order before merging.

    Call: ``bi(x, *, mask=None, initial_state=None)``; ``initial_state`` is Keras's
    ``[h_fw, c_fw, h_bw, c_bw]`` (``[h_fw, h_bw]`` for GRUs and SimpleRNNs). Returns the merged
    output, or with ``return_state`` ``(output, h_fw, c_fw, h_bw, c_bw)`` (``(output, h_fw,
    h_bw)``); with ``merge_mode=None`` the output is ``(y_fw, y_bw)``.

    Example:
      >>> from flax import nnx
      >>> import jax.numpy as jnp
      >>> rngs = nnx.Rngs(0)
      >>> bi = Bidirectional(LSTM(3, 4, rngs=rngs), LSTM(3, 4, go_backwards=True, rngs=rngs))
      >>> bi(jnp.ones((2, 5, 3))).shape
      (2, 8)
    """

    def __init__(
        self, forward: nnx.Module, backward: nnx.Module, merge_mode: str | None = "concat"
    ):
        if merge_mode not in MERGE_MODES:
            raise UnsupportedOptionError(
                f"merge_mode={merge_mode!r}; expected one of {MERGE_MODES}."
            )
        if forward.go_backwards == backward.go_backwards:
            raise UnsupportedOptionError(
                f"forward and backward layers both have go_backwards={forward.go_backwards}; "
                "the backward layer must run the other way: build it with "
                f"go_backwards={not forward.go_backwards}."
            )
        for attr in ("return_sequences", "return_state"):
            if getattr(forward, attr) != getattr(backward, attr):
                raise UnsupportedOptionError(
                    f"forward has {attr}={getattr(forward, attr)} but backward has "
                    f"{attr}={getattr(backward, attr)}; Keras requires them equal."
                )
        if forward.time_major != backward.time_major:
            raise UnsupportedOptionError("forward and backward layers must agree on time_major.")
        if forward.state_fields != backward.state_fields:
            raise UnsupportedOptionError(
                f"forward is a {type(forward).__name__} with states {forward.state_fields} but "
                f"backward is a {type(backward).__name__} with states {backward.state_fields}; "
                "expected two layers with the same states (e.g. two GRUs)."
            )
        self.forward, self.backward, self.merge_mode = forward, backward, merge_mode
        self.return_sequences = forward.return_sequences
        self.return_state = forward.return_state
        forward.zero_output_for_mask = backward.zero_output_for_mask = forward.return_sequences

    def __call__(self, x, *, mask=None, initial_state=None, deterministic: bool | None = None):
        fw_state, bw_state = split_bidirectional_state(initial_state, self.forward.state_fields)
        fw = self.forward(x, mask=mask, initial_state=fw_state, deterministic=deterministic)
        bw = self.backward(x, mask=mask, initial_state=bw_state, deterministic=deterministic)
        return merge_bidirectional(
            fw,
            bw,
            merge_mode=self.merge_mode,
            return_sequences=self.return_sequences,
            return_state=self.return_state,
            time_major=self.forward.time_major,
        )
