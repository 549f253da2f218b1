"""Keras's convolution, pooling, padding, cropping and upsampling layers over 1, 2 or 3 spatial
axes, as :data:`~jaxlstm._src.models.layers.LAYERS` entries (the arithmetic is in
:mod:`jaxlstm._src.core.conv`).

Every layer takes ``data_format`` ``"channels_last"`` or ``"channels_first"`` where Keras has it;
none of them passes a mask on (Keras's convolutions, poolings and reshapings do not support
masking), except GlobalAveragePooling1D, which averages over the unmasked steps. Keras 1's
convolution layers (``nb_filter``, ``border_mode``, Theano kernel layouts) are refused.
"""

from __future__ import annotations

from jaxlstm._src.core import conv as C
from jaxlstm._src.core.activations import get_activation
from jaxlstm._src.errors import KerasFileError, UnsupportedOptionError
from jaxlstm._src.models.layers import BuildContext, KerasLayer, _param, _trainable
from jaxlstm._src.vocabulary import is_int

_FORMATS = ("channels_last", "channels_first")


def ntuple(value, n: int, what: str, ctx: BuildContext) -> tuple[int, ...]:
    """An int or a list of ``n`` ints (Keras's ``standardize_tuple``) as ``n`` ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * n
    if (
        isinstance(value, list | tuple)
        and len(value) == n
        and all(isinstance(v, int) for v in value)
    ):
        return tuple(int(v) for v in value)
    raise KerasFileError(f"{ctx.where}: {what}={value!r}; expected an int or {n} ints.")


def pairs(value, n: int, what: str, ctx: BuildContext) -> tuple[tuple[int, int], ...]:
    """Keras's padding/cropping argument: an int (everywhere), ``n`` ints (symmetric per axis)
    or ``n`` pairs ``(before, after)``; 1-D layers take one int or one pair."""
    given = value
    if n == 1 and isinstance(value, list | tuple) and len(value) == 2:
        value = [value]
    if isinstance(value, int) and not isinstance(value, bool):
        return ((value, value),) * n
    if isinstance(value, list | tuple) and len(value) == n:
        out = []
        for v in value:
            if isinstance(v, int):
                out.append((v, v))
            elif isinstance(v, list | tuple) and len(v) == 2 and all(is_int(e) for e in v):
                out.append((int(v[0]), int(v[1])))
            else:
                break
        else:
            return tuple(out)
    raise KerasFileError(
        f"{ctx.where}: {what}={given!r}; expected an int, {n} ints or {n} (before, after) pairs."
    )


def data_format(config, ctx: BuildContext) -> str:
    value = config.get("data_format") or "channels_last"
    if value not in _FORMATS:
        raise KerasFileError(f"{ctx.where}: data_format={value!r}; expected one of {_FORMATS}.")
    return value


def _padding(config, ctx: BuildContext, allowed=("valid", "same")) -> str:
    value = str(config.get("padding", "valid")).lower()
    if value not in allowed:
        raise UnsupportedOptionError(
            f"{ctx.where}: padding={value!r}; this layer takes one of {allowed}."
        )
    return value


def _refuse_keras1(config, ctx: BuildContext) -> None:
    if "nb_filter" in config or "border_mode" in config or "subsample" in config:
        raise UnsupportedOptionError(
            f"{ctx.where}: a Keras 1 convolution config (nb_filter/border_mode/subsample); "
            "jaxlstm reads Keras 2 and 3 convolution layers only. Re-save the model with "
            "Keras 2 or 3, or supply the layer with custom_layers=."
        )


def _kernel(weights, index, rank, what, ctx: BuildContext):
    kernel = weights[index]
    if kernel.ndim != rank + 2:
        raise KerasFileError(
            f"{ctx.where}: {what} has shape {tuple(kernel.shape)}; expected {rank + 2} axes "
            f"({rank} kernel axes, then input and output channels)."
        )
    return _param(kernel)


class Conv(KerasLayer):
    """Conv1D/2D/3D, DepthwiseConv1D/2D, SeparableConv1D/2D and Conv1D/2D/3DTranspose.

    ``kind`` is ``"conv"`` (kernel ``(*size, in / groups, filters)``), ``"depthwise"``
    (``(*size, in, depth_multiplier)``), ``"separable"`` (depthwise then pointwise
    ``(1, ..., in * depth_multiplier, filters)``) or ``"transpose"`` (``(*size, filters, in)``)."""

    passes_mask = False

    def __init__(self, config, weights, ctx: BuildContext, rank: int, kind: str = "conv"):
        _refuse_keras1(config, ctx)
        self.rank, self.kind = rank, kind
        n_kernels = 2 if kind == "separable" else 1
        use_bias = ctx.flag(config, "use_bias", True)
        names = ["depthwise_kernel", "pointwise_kernel"] if kind == "separable" else ["kernel"]
        ctx.expect(weights, n_kernels + int(use_bias), ", ".join(names + ["bias"] * use_bias))
        self.kernel = _kernel(weights, 0, rank, names[0], ctx)
        self.pointwise = _kernel(weights, 1, rank, names[1], ctx) if n_kernels == 2 else None
        self.bias = _param(weights[n_kernels]) if use_bias else None
        self.strides = ntuple(config.get("strides", 1), rank, "strides", ctx)
        self.dilation = ntuple(config.get("dilation_rate", 1), rank, "dilation_rate", ctx)
        causal = ("causal",) if kind == "conv" and rank == 1 else ()
        self.padding = _padding(config, ctx, ("valid", "same", *causal))
        self.data_format = data_format(config, ctx)
        self.groups = ctx.integer(config, "groups", 1)
        if kind != "conv" and self.groups != 1:
            raise UnsupportedOptionError(f"{ctx.where}: groups={self.groups} on a {kind} conv.")
        self.activation = ctx.activation(config.get("activation", "linear"))
        self.output_padding = None
        if kind == "transpose" and config.get("output_padding") is not None:
            self.output_padding = ntuple(config["output_padding"], rank, "output_padding", ctx)

    def __call__(self, x, mask=None):
        opts = dict(
            strides=self.strides,
            padding=self.padding,
            dilation=self.dilation,
            data_format=self.data_format,
        )
        kernel = self.kernel[...]
        if self.kind == "conv":
            y = C.conv(x, kernel, groups=self.groups, **opts)
        elif self.kind == "depthwise":
            y = C.depthwise_conv(x, kernel, **opts)
        elif self.kind == "separable":
            y = C.separable_conv(x, kernel, self.pointwise[...], **opts)
        else:
            y = C.conv_transpose(x, kernel, output_padding=self.output_padding, **opts)
        if self.bias is not None:
            shape = [1] * y.ndim
            shape[C.channel_axis(y.ndim, self.data_format)] = -1
            y = y + self.bias[...].reshape(shape)
        return get_activation(self.activation)(y)

    def keras_weights(self):
        return _trainable(self.kernel, self.pointwise, self.bias)


class Pooling(KerasLayer):
    """MaxPooling1D/2D/3D and AveragePooling1D/2D/3D (``"same"`` averages the real elements)."""

    passes_mask = False

    def __init__(self, config, weights, ctx: BuildContext, rank: int, kind: str):
        self.kind = kind
        self.pool = ntuple(config.get("pool_size", 2), rank, "pool_size", ctx)
        strides = config.get("strides")
        self.strides = self.pool if strides is None else ntuple(strides, rank, "strides", ctx)
        self.padding = _padding(config, ctx)
        self.data_format = data_format(config, ctx)

    def __call__(self, x, mask=None):
        return C.pool(
            x,
            self.kind,
            pool_size=self.pool,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
        )


class GlobalPooling(KerasLayer):
    """GlobalAverage/GlobalMaxPooling1D/2D/3D; GlobalAveragePooling1D averages over unmasked
    steps, GlobalMaxPooling1D ignores masks (as Keras)."""

    passes_mask = False

    def __init__(self, config, weights, ctx: BuildContext, kind: str):
        self.kind, self.keepdims = kind, ctx.flag(config, "keepdims", False)
        self.data_format = data_format(config, ctx)

    def __call__(self, x, mask=None):
        if mask is not None and (self.kind == "max" or x.ndim != 3):
            mask = None
        return C.global_pool(
            x, self.kind, data_format=self.data_format, keepdims=self.keepdims, mask=mask
        )


class ZeroPadding(KerasLayer):
    passes_mask = False

    def __init__(self, config, weights, ctx: BuildContext, rank: int):
        self.pads = pairs(config.get("padding", 1), rank, "padding", ctx)
        self.data_format = data_format(config, ctx)

    def __call__(self, x, mask=None):
        return C.pad_spatial(x, self.pads, self.data_format)


class Cropping(KerasLayer):
    passes_mask = False

    def __init__(self, config, weights, ctx: BuildContext, rank: int):
        self.crops = pairs(config.get("cropping", 1), rank, "cropping", ctx)
        self.data_format = data_format(config, ctx)

    def __call__(self, x, mask=None):
        return C.crop_spatial(x, self.crops, self.data_format)


class UpSampling(KerasLayer):
    """UpSampling1D/2D/3D: nearest (repeat) everywhere, bilinear for 2-D."""

    passes_mask = False

    def __init__(self, config, weights, ctx: BuildContext, rank: int):
        self.size = ntuple(config.get("size", 2), rank, "size", ctx)
        self.data_format = data_format(config, ctx) if rank > 1 else "channels_last"
        self.interpolation = str(config.get("interpolation", "nearest"))
        if self.interpolation not in ("nearest", "bilinear"):
            raise UnsupportedOptionError(
                f"{ctx.where}: interpolation={self.interpolation!r}; jaxlstm has 'nearest' and "
                "'bilinear' (whose numbers it checks against Keras), not the others."
            )

    def __call__(self, x, mask=None):
        return C.upsample(
            x, self.size, data_format=self.data_format, interpolation=self.interpolation
        )


def _entry(cls, **kw):
    return lambda config, weights, ctx: cls(config, weights, ctx, **kw)


CONV_LAYERS = {
    **{f"Conv{r}D": _entry(Conv, rank=r) for r in (1, 2, 3)},
    **{f"Conv{r}DTranspose": _entry(Conv, rank=r, kind="transpose") for r in (1, 2, 3)},
    **{f"DepthwiseConv{r}D": _entry(Conv, rank=r, kind="depthwise") for r in (1, 2)},
    **{f"SeparableConv{r}D": _entry(Conv, rank=r, kind="separable") for r in (1, 2)},
    **{f"MaxPooling{r}D": _entry(Pooling, rank=r, kind="max") for r in (1, 2, 3)},
    **{f"AveragePooling{r}D": _entry(Pooling, rank=r, kind="avg") for r in (1, 2, 3)},
    **{f"GlobalMaxPooling{r}D": _entry(GlobalPooling, kind="max") for r in (1, 2, 3)},
    **{f"GlobalAveragePooling{r}D": _entry(GlobalPooling, kind="avg") for r in (1, 2, 3)},
    **{f"ZeroPadding{r}D": _entry(ZeroPadding, rank=r) for r in (1, 2, 3)},
    **{f"Cropping{r}D": _entry(Cropping, rank=r) for r in (1, 2, 3)},
    **{f"UpSampling{r}D": _entry(UpSampling, rank=r) for r in (1, 2, 3)},
}
# Other spellings Keras 2 and 3 accept for the same classes.
CONV_ALIASES = {
    **{f"Convolution{r}D": f"Conv{r}D" for r in (1, 2, 3)},
    **{f"Convolution{r}DTranspose": f"Conv{r}DTranspose" for r in (2, 3)},
    **{f"SeparableConvolution{r}D": f"SeparableConv{r}D" for r in (1, 2)},
    **{f"MaxPool{r}D": f"MaxPooling{r}D" for r in (1, 2, 3)},
    **{f"AvgPool{r}D": f"AveragePooling{r}D" for r in (1, 2, 3)},
    **{f"GlobalMaxPool{r}D": f"GlobalMaxPooling{r}D" for r in (1, 2, 3)},
    **{f"GlobalAvgPool{r}D": f"GlobalAveragePooling{r}D" for r in (1, 2, 3)},
}
