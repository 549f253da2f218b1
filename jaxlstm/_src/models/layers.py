"""The Keras layers a whole-model import supports, as small NNX modules, and their registry.

Each entry of :data:`LAYERS` builds a module from a layer's Keras config and its arrays (in the
order Keras saves them). A module is called as ``module(*inputs, mask=mask)`` and says what mask
its output carries with ``module.output_mask(inputs, mask)``, following Keras's mask propagation:
layers that support masking pass the mask on, RNNs consume it (and pass it on with
``return_sequences``), ``Embedding(mask_zero)`` and ``Masking`` create one, the others drop it.
Adding a layer is adding one class and one registry line.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from jaxlstm._src.core.activations import get_activation, layer_activation
from jaxlstm._src.errors import KerasFileError, ShapeError, UnsupportedOptionError
from jaxlstm._src.modules.nnx import DropoutStreams, host_array, host_param
from jaxlstm._src.readers.records import resolve_activation
from jaxlstm._src.vocabulary import is_int, keras_major

_REQUIRED = object()


@dataclass
class BuildContext:
    """What a layer builder knows besides its own config and arrays, and the readers of config
    values: each checks the value's type and raises a :class:`KerasFileError` naming the layer
    and the option when the file holds something Keras never writes there (so that no builder
    needs to catch anything, and a bug of ours surfaces as itself)."""

    name: str
    class_name: str
    keras_version: str
    path: str
    streams: DropoutStreams  # dropout streams for the layers that draw random numbers

    @property
    def where(self) -> str:
        return f"{self.path}: layer {self.name!r} ({self.class_name})"

    def activation(self, value, key="activation"):
        """A name or a :class:`KerasActivation` (see :func:`resolve_activation`)."""
        found = resolve_activation(value, self.keras_version, f"{self.where}: {key}")
        if found is None:
            raise UnsupportedOptionError(
                f"{self.where}: {key} is a custom object {value!r:.200}; jaxlstm runs no code "
                "from files. Supply the layer yourself: load_keras(path, custom_layers={"
                f"{self.class_name!r}: factory}})."
            )
        get_activation(found)  # an unknown name fails here, naming the choices
        return found

    def _value(self, config, key, default):
        if key in config and config[key] is not None:
            return config[key]
        if default is _REQUIRED:
            raise KerasFileError(f"{self.where}: the config has no {key!r}; the file is damaged.")
        return default

    def _bad(self, key, value, expected: str) -> KerasFileError:
        return KerasFileError(
            f"{self.where}: option {key}={value!r:.80}; expected {expected}. The file is damaged "
            "or was not written by Keras."
        )

    def flag(self, config, key, default=_REQUIRED) -> bool:
        value = self._value(config, key, default)
        if isinstance(value, bool) or (is_int(value) and value in (0, 1)):
            return bool(value)
        raise self._bad(key, value, "true or false")

    def integer(self, config, key, default=_REQUIRED) -> int:
        value = self._value(config, key, default)
        if is_int(value):
            return value
        raise self._bad(key, value, "an integer")

    def number(self, config, key, default=_REQUIRED, low=-math.inf, high=math.inf) -> float:
        value = self._value(config, key, default)
        if ((is_int(value) and abs(value) < 2**1000) or isinstance(value, float)) and (
            low <= value <= high
        ):
            return float(value)
        bounded = math.isfinite(low) or math.isfinite(high)
        raise self._bad(key, value, f"a number in [{low}, {high}]" if bounded else "a number")

    def text(self, config, key, default=_REQUIRED) -> str:
        value = self._value(config, key, default)
        if isinstance(value, str):
            return value
        raise self._bad(key, value, "a string")

    def integers(self, config, key, default=_REQUIRED, none_ok=False) -> tuple:
        """An int or a list of ints (``None`` entries too, with ``none_ok``), as a tuple."""
        value = self._value(config, key, default)
        if value is None:  # the default of an optional option
            return None
        items = list(value) if isinstance(value, list | tuple) else [value]
        if items and all(is_int(v) or (none_ok and v is None) for v in items):
            return tuple(items)
        raise self._bad(key, value, "an integer or a list of integers")

    def expect(self, weights, n: int | tuple[int, ...], what: str):
        counts = (n,) if isinstance(n, int) else n
        if len(weights) not in counts:
            raise KerasFileError(
                f"{self.where}: expected {' or '.join(map(str, counts))} arrays ({what}); found "
                f"{len(weights)}: {[tuple(np.shape(w)) for w in weights]}."
            )


class KerasLayer(nnx.Module):
    """Base: passes the mask through (Keras's ``supports_masking = True`` default here)."""

    passes_mask = True

    def output_mask(self, inputs, mask):
        return mask if self.passes_mask else None

    def keras_weights(self) -> list[tuple[jax.Array, bool]]:
        """The current weights in the order Keras saves them, each with whether it is trainable."""
        return []


def _param(a) -> nnx.Param:
    return host_param(a, np.float32)  # from the file's array as it is: nothing compiled


class Stochastic(KerasLayer):
    """A layer that is random in training mode only (``model.train()`` / ``model.eval()``)."""

    def __init__(self, ctx: BuildContext):
        self.deterministic = True
        self.rngs = ctx.streams()

    def active(self) -> bool:
        return not self.deterministic


class Identity(KerasLayer):
    def __call__(self, x, mask=None):
        return x


class Dense(KerasLayer):
    def __init__(self, config, weights, ctx: BuildContext):
        use_bias = ctx.flag(config, "use_bias", True)
        ctx.expect(weights, 2 if use_bias else 1, "kernel, bias" if use_bias else "kernel")
        self.kernel = _param(weights[0])
        self.bias = _param(weights[1]) if use_bias else None
        self.activation = ctx.activation(config.get("activation", "linear"))

    def __call__(self, x, mask=None):
        y = x @ self.kernel[...]
        if self.bias is not None:
            y = y + self.bias[...]
        return get_activation(self.activation)(y)

    def keras_weights(self):
        return _trainable(self.kernel, self.bias)


def _trainable(*params) -> list[tuple[jax.Array, bool]]:
    return [(p[...], True) for p in params if p is not None]


class Activation(KerasLayer):
    def __init__(self, config, weights, ctx: BuildContext):
        self.activation = ctx.activation(config.get("activation", "linear"))

    def __call__(self, x, mask=None):
        return get_activation(self.activation)(x)


class ActivationLayer(KerasLayer):
    """ReLU, LeakyReLU, ELU and ThresholdedReLU: one parameterised activation, read from the
    layer's options as Keras 1, 2 or 3 spelled them (:data:`ACTIVATION_LAYERS`)."""

    def __init__(self, config, weights, ctx: BuildContext):
        ctx.expect(weights, 0, "none: the layer has no weights")
        self.activation = layer_activation(ctx.class_name, config, ctx.where)

    def __call__(self, x, mask=None):
        return self.activation(x)


class Softmax(KerasLayer):
    """Softmax over ``axis`` (an int or a list of axes). A mask (right-aligned against the
    input, as NumPy broadcasts) hides entries as the writing Keras did: Keras 3 replaces them by
    -1e9 before and zeroes them after the softmax; tf.keras adds -1e9 to them (or, with
    ``robust_masking``, replaces them) and leaves the result as it is, so a row masked entirely
    comes out (near) uniform there and zero in Keras 3."""

    def __init__(self, config, weights, ctx: BuildContext):
        ctx.expect(weights, 0, "none: the layer has no weights")
        self.activation = layer_activation("Softmax", config, ctx.where)
        self.keras3 = keras_major(ctx.keras_version) >= 3
        self.robust = ctx.flag(config, "robust_masking", False)
        self.where = ctx.where

    def __call__(self, x, mask=None):
        if mask is None:
            return self.activation(x)
        mask = jnp.asarray(mask)
        fits = mask.ndim <= x.ndim and all(
            m in (1, n) for m, n in zip(mask.shape[::-1], x.shape[::-1], strict=False)
        )
        if not fits:
            raise ShapeError(
                f"{self.where}: the mask {tuple(mask.shape)} does not broadcast against the "
                f"input {tuple(x.shape)} (each mask axis, from the right, must be 1 or match); "
                "Keras refuses this call too."
            )
        f16 = x.dtype == jnp.float16
        if not self.keras3 and not self.robust:  # tf.keras adds (1 - mask) * -1e9
            big = float(jnp.finfo(jnp.float16).min) / 2 if f16 else -1e9
            return self.activation(x + (1.0 - mask.astype(x.dtype)) * big)
        mask = mask if mask.dtype == jnp.bool_ else mask > 0.5
        if not self.keras3:  # robust_masking: replaced, not zeroed afterwards
            big = float(jnp.finfo(jnp.float16).min) / 2 if f16 else -1e9
            return self.activation(jnp.where(mask, x, big))
        x = jnp.where(mask, x, -3e4 if f16 else -1e9)
        return jnp.where(mask, self.activation(x), 0.0)


class PReLU(KerasLayer):
    """``relu(x) - alpha * relu(-x)`` with a learned ``alpha`` of the input's shape (without
    the batch axis; size 1 along ``shared_axes``)."""

    def __init__(self, config, weights, ctx: BuildContext):
        ctx.expect(weights, 1, "alpha")
        self.alpha = _param(weights[0])

    def __call__(self, x, mask=None):
        return jax.nn.relu(x) + (-self.alpha[...]) * jax.nn.relu(-x)

    def keras_weights(self):
        return _trainable(self.alpha)


class Embedding(KerasLayer):
    def __init__(self, config, weights, ctx: BuildContext):
        ctx.expect(weights, 1, "embeddings")
        self.embeddings = _param(weights[0])
        self.mask_zero = ctx.flag(config, "mask_zero", False)

    def __call__(self, ids, mask=None):
        return jnp.take(self.embeddings[...], jnp.asarray(ids).astype(jnp.int32), axis=0)

    def keras_weights(self):
        return _trainable(self.embeddings)

    def output_mask(self, inputs, mask):
        return (jnp.asarray(inputs[0]) != 0) if self.mask_zero else None


class Masking(KerasLayer):
    def __init__(self, config, weights, ctx: BuildContext):
        self.mask_value = ctx.number(config, "mask_value", 0.0)

    def _mask(self, x):
        return jnp.any(x != self.mask_value, axis=-1)

    def __call__(self, x, mask=None):
        return x * self._mask(x)[..., None].astype(x.dtype)

    def output_mask(self, inputs, mask):
        return self._mask(inputs[0])


class Dropout(Stochastic):
    """Dropout and SpatialDropout1D/2D/3D (one draw per (sample, channel), shared over the
    time or spatial axes; ``data_format`` says where the channels are)."""

    def __init__(self, config, weights, ctx: BuildContext, spatial: bool = False):
        super().__init__(ctx)
        self.rate, self.spatial = ctx.number(config, "rate", 0.0, 0.0, 1.0), spatial
        self.noise_shape = ctx.integers(config, "noise_shape", None, none_ok=True)
        self.channels_first = ctx.text(config, "data_format", "channels_last") == "channels_first"

    def __call__(self, x, mask=None):
        if not self.active() or not 0.0 < self.rate < 1.0:
            return x
        shape = list(x.shape)
        if self.spatial:
            channels = 1 if self.channels_first else x.ndim - 1
            shape = [s if i in (0, channels) else 1 for i, s in enumerate(shape)]
        elif self.noise_shape is not None:
            shape = [s if n is None else n for s, n in zip(shape, self.noise_shape, strict=True)]
        keep = jax.random.bernoulli(self.rngs(), 1.0 - self.rate, tuple(shape))
        return jnp.where(keep, x / (1.0 - self.rate), 0.0)


class GaussianNoise(Stochastic):
    def __init__(self, config, weights, ctx: BuildContext, multiplicative: bool = False):
        super().__init__(ctx)
        self.multiplicative = multiplicative
        if multiplicative:
            rate = ctx.number(config, "rate", 0.0, 0.0, 1.0)
            self.stddev = math.sqrt(rate / (1.0 - rate)) if 0 < rate < 1 else 0.0
        else:
            self.stddev = ctx.number(config, "stddev", 0.0)

    def __call__(self, x, mask=None):
        if not self.active() or self.stddev <= 0:
            return x
        noise = self.stddev * jax.random.normal(self.rngs(), x.shape, x.dtype)
        return x * (1.0 + noise) if self.multiplicative else x + noise


class RepeatVector(KerasLayer):
    passes_mask = False

    def __init__(self, config, weights, ctx: BuildContext):
        self.n = ctx.integer(config, "n")

    def __call__(self, x, mask=None):
        return jnp.repeat(x[:, None, :], self.n, axis=1)


class Flatten(KerasLayer):
    passes_mask = False

    def __call__(self, x, mask=None):
        return x.reshape(x.shape[0], -1)


class Reshape(KerasLayer):
    passes_mask = False

    def __init__(self, config, weights, ctx: BuildContext):
        self.target_shape = ctx.integers(config, "target_shape")

    def __call__(self, x, mask=None):
        return x.reshape(x.shape[0], *self.target_shape)


class Permute(KerasLayer):
    passes_mask = False

    def __init__(self, config, weights, ctx: BuildContext):
        self.dims = ctx.integers(config, "dims")

    def __call__(self, x, mask=None):
        return jnp.transpose(x, (0, *self.dims))


class LayerNormalization(KerasLayer):
    def __init__(self, config, weights, ctx: BuildContext):
        self.center, self.scale = ctx.flag(config, "center", True), ctx.flag(config, "scale", True)
        if ctx.flag(config, "rms_scaling", False):
            raise UnsupportedOptionError(f"{ctx.where}: rms_scaling=True is not supported.")
        ctx.expect(weights, int(self.center) + int(self.scale), "gamma, beta")
        arrays = iter(weights)
        self.gamma = _param(next(arrays)) if self.scale else None
        self.beta = _param(next(arrays)) if self.center else None
        self.axis = ctx.integers(config, "axis", -1)
        self.epsilon = ctx.number(config, "epsilon", 1e-3)

    def __call__(self, x, mask=None):
        mean = jnp.mean(x, axis=self.axis, keepdims=True)
        var = jnp.var(x, axis=self.axis, keepdims=True)
        y = (x - mean) * lax.rsqrt(var + self.epsilon)
        if self.gamma is not None:
            y = y * self.gamma[...]
        return y + self.beta[...] if self.beta is not None else y

    def keras_weights(self):
        return _trainable(self.gamma, self.beta)


class BatchNormalization(KerasLayer):
    """Inference uses the moving statistics; training uses batch statistics and updates them."""

    def __init__(self, config, weights, ctx: BuildContext):
        self.center, self.scale = ctx.flag(config, "center", True), ctx.flag(config, "scale", True)
        n = int(self.center) + int(self.scale) + 2
        ctx.expect(weights, n, "gamma, beta, moving_mean, moving_variance")
        arrays = iter(weights)
        self.gamma = _param(next(arrays)) if self.scale else None
        self.beta = _param(next(arrays)) if self.center else None
        self.moving_mean = nnx.BatchStat(host_array(next(arrays)))
        self.moving_variance = nnx.BatchStat(host_array(next(arrays)))
        self.axis = ctx.integers(config, "axis", -1)[0]
        self.epsilon = ctx.number(config, "epsilon", 1e-3)
        self.momentum = ctx.number(config, "momentum", 0.99)
        self.use_running_average = True

    def __call__(self, x, mask=None):
        axis = self.axis % x.ndim
        shape = [1] * x.ndim
        shape[axis] = x.shape[axis]
        if self.use_running_average:
            mean, var = self.moving_mean[...], self.moving_variance[...]
        else:
            reduce = tuple(i for i in range(x.ndim) if i != axis)
            mean, var = jnp.mean(x, axis=reduce), jnp.var(x, axis=reduce)
            m = self.momentum
            self.moving_mean[...] = m * self.moving_mean[...] + (1 - m) * mean
            self.moving_variance[...] = m * self.moving_variance[...] + (1 - m) * var
        inv = lax.rsqrt(var + self.epsilon)
        if self.gamma is not None:
            inv = inv * self.gamma[...]
        offset = -mean * inv + (self.beta[...] if self.beta is not None else 0.0)
        return x * inv.reshape(shape) + offset.reshape(shape)

    def keras_weights(self):
        stats = [(self.moving_mean[...], False), (self.moving_variance[...], False)]
        return _trainable(self.gamma, self.beta) + stats


class Merge(KerasLayer):
    """Add, Subtract, Multiply, Average, Maximum, Minimum.

    Output mask: Keras 3 ORs the input masks (none if any input has none); Keras 1/2 ANDed the
    masks that exist. The version that wrote the file decides."""

    OPS: ClassVar[dict[str, Callable]] = {
        "Add": lambda xs: sum(xs[1:], xs[0]),
        "Subtract": lambda xs: xs[0] - xs[1],
        "Multiply": lambda xs: math.prod(xs[1:], start=xs[0]),
        "Average": lambda xs: sum(xs[1:], xs[0]) / len(xs),
        "Maximum": lambda xs: jnp.max(jnp.stack(jnp.broadcast_arrays(*xs)), axis=0),
        "Minimum": lambda xs: jnp.min(jnp.stack(jnp.broadcast_arrays(*xs)), axis=0),
    }

    def __init__(self, config, weights, ctx: BuildContext):
        self.op, self.keras3 = ctx.class_name, keras_major(ctx.keras_version) >= 3

    def __call__(self, xs, mask=None):
        return self.OPS[self.op](list(xs))

    def output_mask(self, inputs, mask):
        masks = list(mask) if isinstance(mask, list | tuple) else [mask]
        if self.keras3:
            if any(m is None for m in masks):
                return None
            out = masks[0]
            for m in masks[1:]:
                out = jnp.logical_or(out, m)
            return out
        present = [m for m in masks if m is not None]
        return jnp.all(jnp.stack(present), axis=0) if present else None


class Concatenate(KerasLayer):
    def __init__(self, config, weights, ctx: BuildContext):
        self.axis = ctx.integer(config, "axis", -1)

    def __call__(self, xs, mask=None):
        return jnp.concatenate(list(xs), axis=self.axis)

    def output_mask(self, inputs, mask):
        xs = list(inputs[0])
        masks = list(mask) if isinstance(mask, list | tuple) else [mask] * len(xs)
        if all(m is None for m in masks):
            return None
        full = []
        for x, m in zip(xs, masks, strict=True):
            m = jnp.ones(x.shape, bool) if m is None else m
            full.append(jnp.broadcast_to(m[..., None], x.shape) if m.ndim < x.ndim else m)
        return jnp.all(jnp.concatenate(full, axis=self.axis), axis=-1)


class Dot(KerasLayer):
    passes_mask = False

    def __init__(self, config, weights, ctx: BuildContext):
        axes = ctx.integers(config, "axes", -1)
        if len(axes) not in (1, 2):
            raise KerasFileError(f"{ctx.where}: axes={axes}; expected an int or a pair of ints.")
        self.axes = (axes[0], axes[-1])
        self.normalize = ctx.flag(config, "normalize", False)

    def __call__(self, xs, mask=None):
        x, y = xs
        ax, ay = self.axes[0] % x.ndim, self.axes[1] % y.ndim
        if self.normalize:
            x = x / jnp.maximum(jnp.linalg.norm(x, axis=ax, keepdims=True), 1e-12)
            y = y / jnp.maximum(jnp.linalg.norm(y, axis=ay, keepdims=True), 1e-12)
        out = lax.dot_general(x, y, (((ax,), (ay,)), ((0,), (0,))), precision=lax.Precision.HIGHEST)
        return out[:, None] if out.ndim == 1 else out


class TimeDistributed(KerasLayer):
    """Applies the wrapped layer to every step: folds time into the batch axis."""

    def __init__(self, inner: nnx.Module):
        self.inner = inner

    def __call__(self, x, mask=None):
        b, t = x.shape[:2]
        y = self.inner(x.reshape(b * t, *x.shape[2:]))
        return y.reshape(b, t, *y.shape[1:])

    def keras_weights(self):
        return self.inner.keras_weights()


class Op(KerasLayer):
    """A Keras 3 operation recorded in a functional graph (``module: keras.src.ops.*``), e.g.
    the ``NotEqual(ids, 0)`` that carries ``Embedding(mask_zero=True)``'s mask to later layers.
    Only the side-effect-free tensor ops in :data:`OPS` are run, from plain config data."""

    passes_mask = False

    def __init__(self, config, weights, ctx: BuildContext):
        self.op = ctx.class_name
        readers = {"axis": ctx.integers, "keepdims": ctx.flag, "dtype": ctx.text}
        kwargs = {}
        for key in OPS[self.op][1]:
            if config.get(key) is not None:
                value = readers[key](config, key)
                single = key == "axis" and not isinstance(config[key], list | tuple)
                kwargs[key] = value[0] if single else value
        if kwargs.get("dtype", "float32") not in _CAST_DTYPES:
            raise KerasFileError(
                f"{ctx.where}: dtype={kwargs['dtype']!r:.80}; expected one of {_CAST_DTYPES}."
            )
        self.kwargs = tuple(sorted(kwargs.items()))

    def __call__(self, *args, mask=None):
        kwargs = {k: v for k, v in self.kwargs}
        return OPS[self.op][0](*args, **kwargs)


def _axis(axis):
    return tuple(axis) if isinstance(axis, list | tuple) else axis


_CAST_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "float16", "bfloat16")
_CAST_DTYPES += ("float32", "float64")


# Keras 3 op class -> (function, config keys it takes).
OPS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "NotEqual": (lambda a, b: jnp.not_equal(a, b), ()),
    "Equal": (lambda a, b: jnp.equal(a, b), ()),
    "Greater": (lambda a, b: jnp.greater(a, b), ()),
    "Less": (lambda a, b: jnp.less(a, b), ()),
    "LogicalAnd": (lambda a, b: jnp.logical_and(a, b), ()),
    "LogicalOr": (lambda a, b: jnp.logical_or(a, b), ()),
    "LogicalNot": (lambda a: jnp.logical_not(a), ()),
    "Any": (
        lambda a, axis=None, keepdims=False: jnp.any(a, _axis(axis), keepdims=keepdims),
        ("axis", "keepdims"),
    ),
    "All": (
        lambda a, axis=None, keepdims=False: jnp.all(a, _axis(axis), keepdims=keepdims),
        ("axis", "keepdims"),
    ),
    "Cast": (lambda a, dtype="float32": jnp.asarray(a).astype(dtype), ("dtype",)),
    "ConvertToTensor": (  # recorded by Attention's compute_mask on the query mask
        lambda a, dtype=None: jnp.asarray(a) if dtype is None else jnp.asarray(a).astype(dtype),
        ("dtype",),
    ),
    "Concatenate": (lambda xs, axis=0: jnp.concatenate(list(xs), axis=axis), ("axis",)),
    "ZerosLike": (lambda a, dtype=None: jnp.zeros_like(a, dtype=dtype), ("dtype",)),
    "OnesLike": (lambda a, dtype=None: jnp.ones_like(a, dtype=dtype), ("dtype",)),
    "ExpandDims": (lambda a, axis=-1: jnp.expand_dims(a, _axis(axis)), ("axis",)),
    "Squeeze": (lambda a, axis=None: jnp.squeeze(a, _axis(axis)), ("axis",)),
}


def _simple(cls, **kw):
    return lambda config, weights, ctx: cls(config, weights, ctx, **kw)


# class_name -> builder(config, arrays, ctx). LSTM, Bidirectional and TimeDistributed are built
# in graph.py, since they wrap other layers or the LSTM loader.
LAYERS: dict[str, Callable] = {
    "Dense": Dense,
    "Activation": Activation,
    **{name: ActivationLayer for name in ("ReLU", "LeakyReLU", "ELU", "ThresholdedReLU")},
    "Softmax": Softmax,
    "PReLU": PReLU,
    "Embedding": Embedding,
    "Masking": Masking,
    "Dropout": _simple(Dropout),
    **{f"SpatialDropout{r}D": _simple(Dropout, spatial=True) for r in (1, 2, 3)},
    "GaussianNoise": _simple(GaussianNoise),
    "GaussianDropout": _simple(GaussianNoise, multiplicative=True),
    "RepeatVector": RepeatVector,
    "Flatten": lambda config, weights, ctx: Flatten(),
    "Reshape": Reshape,
    "Permute": Permute,
    "LayerNormalization": LayerNormalization,
    "BatchNormalization": BatchNormalization,
    "Concatenate": Concatenate,
    "Dot": Dot,
    **{name: Merge for name in Merge.OPS},
}
OP_MODULE_PREFIX = "keras.src.ops"
# Keras 1/2 spellings of the same layers.
ALIASES: dict[str, str] = {}

# The convolution/pooling and attention layers live in their own modules, which build on the
# classes above (hence imported last); they register here, in the one registry.
from jaxlstm._src.models.attention import ATTENTION_LAYERS  # noqa: E402
from jaxlstm._src.models.conv import CONV_ALIASES, CONV_LAYERS  # noqa: E402

LAYERS.update(CONV_LAYERS)
LAYERS.update(ATTENTION_LAYERS)
ALIASES.update(CONV_ALIASES)
