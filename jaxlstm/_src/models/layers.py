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

from jaxlstm._src.core.activations import get_activation, keras_major, resolve_activation_name
from jaxlstm._src.errors import KerasFileError, UnsupportedOptionError
from jaxlstm._src.readers.records import builtin_function_name


@dataclass
class BuildContext:
    """What a layer builder knows besides its own config and arrays."""

    name: str
    class_name: str
    keras_version: str
    path: str
    rngs: nnx.Rngs

    @property
    def where(self) -> str:
        return f"{self.path}: layer {self.name!r} ({self.class_name})"

    def activation(self, value, key="activation") -> str:
        name = builtin_function_name(value)
        if name is None:
            raise UnsupportedOptionError(
                f"{self.where}: {key} is a custom object {value!r}; jaxlstm runs no code from "
                "files. Supply the layer yourself: load_keras(path, custom_layers={"
                f"{self.class_name!r}: factory}})."
            )
        name = resolve_activation_name(name, self.keras_version)
        get_activation(name)
        return name

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
    return nnx.Param(jnp.asarray(np.asarray(a), jnp.float32))


class Stochastic(KerasLayer):
    """A layer that is random in training mode only (``model.train()`` / ``model.eval()``)."""

    def __init__(self, ctx: BuildContext):
        self.deterministic = True
        self.rngs = ctx.rngs.dropout.fork()

    def active(self) -> bool:
        return not self.deterministic


class Identity(KerasLayer):
    def __call__(self, x, mask=None):
        return x


class Dense(KerasLayer):
    def __init__(self, config, weights, ctx: BuildContext):
        use_bias = config.get("use_bias", True)
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


class Embedding(KerasLayer):
    def __init__(self, config, weights, ctx: BuildContext):
        ctx.expect(weights, 1, "embeddings")
        self.embeddings = _param(weights[0])
        self.mask_zero = bool(config.get("mask_zero", False))

    def __call__(self, ids, mask=None):
        return jnp.take(self.embeddings[...], jnp.asarray(ids).astype(jnp.int32), axis=0)

    def keras_weights(self):
        return _trainable(self.embeddings)

    def output_mask(self, inputs, mask):
        return (jnp.asarray(inputs[0]) != 0) if self.mask_zero else None


class Masking(KerasLayer):
    def __init__(self, config, weights, ctx: BuildContext):
        self.mask_value = float(config.get("mask_value", 0.0))

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
        self.rate, self.spatial = float(config.get("rate", 0.0)), spatial
        self.channels_first = config.get("data_format") == "channels_first"
        noise_shape = config.get("noise_shape")
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)

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
            rate = float(config.get("rate", 0.0))
            self.stddev = math.sqrt(rate / (1.0 - rate)) if rate > 0 else 0.0
        else:
            self.stddev = float(config.get("stddev", 0.0))

    def __call__(self, x, mask=None):
        if not self.active() or self.stddev <= 0:
            return x
        noise = self.stddev * jax.random.normal(self.rngs(), x.shape, x.dtype)
        return x * (1.0 + noise) if self.multiplicative else x + noise


class RepeatVector(KerasLayer):
    passes_mask = False

    def __init__(self, config, weights, ctx: BuildContext):
        self.n = int(config["n"])

    def __call__(self, x, mask=None):
        return jnp.repeat(x[:, None, :], self.n, axis=1)


class Flatten(KerasLayer):
    passes_mask = False

    def __call__(self, x, mask=None):
        return x.reshape(x.shape[0], -1)


class Reshape(KerasLayer):
    passes_mask = False

    def __init__(self, config, weights, ctx: BuildContext):
        self.target_shape = tuple(int(s) for s in config["target_shape"])

    def __call__(self, x, mask=None):
        return x.reshape(x.shape[0], *self.target_shape)


class Permute(KerasLayer):
    passes_mask = False

    def __init__(self, config, weights, ctx: BuildContext):
        self.dims = tuple(int(d) for d in config["dims"])

    def __call__(self, x, mask=None):
        return jnp.transpose(x, (0, *self.dims))


class LayerNormalization(KerasLayer):
    def __init__(self, config, weights, ctx: BuildContext):
        self.center, self.scale = config.get("center", True), config.get("scale", True)
        if config.get("rms_scaling", False):
            raise UnsupportedOptionError(f"{ctx.where}: rms_scaling=True is not supported.")
        ctx.expect(weights, int(self.center) + int(self.scale), "gamma, beta")
        arrays = iter(weights)
        self.gamma = _param(next(arrays)) if self.scale else None
        self.beta = _param(next(arrays)) if self.center else None
        axis = config.get("axis", -1)
        self.axis = tuple(axis) if isinstance(axis, list | tuple) else (axis,)
        self.epsilon = float(config.get("epsilon", 1e-3))

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
        self.center, self.scale = config.get("center", True), config.get("scale", True)
        n = int(self.center) + int(self.scale) + 2
        ctx.expect(weights, n, "gamma, beta, moving_mean, moving_variance")
        arrays = iter(weights)
        self.gamma = _param(next(arrays)) if self.scale else None
        self.beta = _param(next(arrays)) if self.center else None
        self.moving_mean = nnx.BatchStat(jnp.asarray(next(arrays), jnp.float32))
        self.moving_variance = nnx.BatchStat(jnp.asarray(next(arrays), jnp.float32))
        axis = config.get("axis", -1)
        self.axis = axis[0] if isinstance(axis, list | tuple) else int(axis)
        self.epsilon = float(config.get("epsilon", 1e-3))
        self.momentum = float(config.get("momentum", 0.99))
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
        self.axis = int(config.get("axis", -1))

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
        axes = config.get("axes", -1)
        self.axes = tuple(axes) if isinstance(axes, list | tuple) else (axes, axes)
        self.normalize = bool(config.get("normalize", False))

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
        self.kwargs = tuple(
            sorted(
                (k, v if not isinstance(v, list) else tuple(v))
                for k, v in config.items()
                if k in OPS[self.op][1]
            )
        )

    def __call__(self, *args, mask=None):
        kwargs = {k: v for k, v in self.kwargs}
        return OPS[self.op][0](*args, **kwargs)


def _axis(axis):
    return tuple(axis) if isinstance(axis, list | tuple) else axis


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
