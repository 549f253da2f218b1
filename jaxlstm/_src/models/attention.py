"""Keras's ``Attention``, ``AdditiveAttention`` and ``MultiHeadAttention`` as
:data:`~jaxlstm._src.models.layers.LAYERS` entries (the math is in
:mod:`jaxlstm._src.core.attention`).

They are called by the graph through ``call_graph(args, arg_masks, kwargs, kwarg_masks)``,
since they read several inputs' masks and call options Keras records on the node
(``use_causal_mask``, ``return_attention_scores``, MultiHeadAttention's ``key=``,
``attention_mask=``). Mask propagation, as Keras: the output carries the query's mask (an
encoder's padding mask reaches the attention as the value mask and stops there); the attention
scores, when returned, carry none.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlstm._src.core import attention as A
from jaxlstm._src.errors import KerasFileError, UnsupportedOptionError
from jaxlstm._src.models.layers import BuildContext, Stochastic, _param, _trainable
from jaxlstm._src.vocabulary import keras_major


def _is_array(x) -> bool:
    return x is not None and hasattr(x, "shape")


class _Attention(Stochastic):
    passes_mask = True

    def __init__(self, ctx: BuildContext, config: dict):
        super().__init__(ctx)
        self.rate = ctx.number(config, "dropout", 0.0, 0.0, 1.0)
        self.where_ = ctx.where

    def _dropout(self):
        if not self.active() or not 0.0 < self.rate < 1.0:
            return None
        rate, key = self.rate, self.rngs()

        def drop(w):
            keep = jax.random.bernoulli(key, 1.0 - rate, w.shape)
            return jnp.where(keep, w / (1.0 - rate), 0.0)

        return drop

    def __call__(self, *args, mask=None):
        out, _ = self.call_graph(args, (mask,), {}, {})
        return out

    def output_mask(self, inputs, mask):
        masks = list(mask) if isinstance(mask, list | tuple) else [mask]
        return masks[0] if masks else None


def _call_options(kwargs, where) -> tuple[bool, bool]:
    unknown = set(kwargs) - {
        "use_causal_mask",
        "return_attention_scores",
        "training",
        "mask",
        "query",
        "value",
        "key",
        "attention_mask",
        "query_mask",
        "value_mask",
        "key_mask",
    }
    if unknown:
        raise UnsupportedOptionError(
            f"{where}: called with {sorted(unknown)}, which jaxlstm does not implement."
        )
    return bool(kwargs.get("use_causal_mask", False)), bool(
        kwargs.get("return_attention_scores", False)
    )


class DenseAttention(_Attention):
    """``Attention`` (``score_mode`` dot/concat, ``use_scale``) and ``AdditiveAttention``."""

    def __init__(self, config, weights, ctx: BuildContext, additive: bool = False):
        super().__init__(ctx, config)
        self.additive = additive
        self.use_scale = ctx.flag(config, "use_scale", additive)
        self.score_mode = "dot" if additive else ctx.text(config, "score_mode", "dot")
        if self.score_mode not in ("dot", "concat"):
            raise KerasFileError(
                f"{ctx.where}: score_mode={self.score_mode!r}; expected 'dot' or 'concat'."
            )
        self.causal = ctx.flag(config, "causal", False)  # tf.keras < 2.11 kept it in the config
        n = int(self.use_scale) + int(self.score_mode == "concat")
        ctx.expect(weights, n, "scale, concat_score_weight")
        arrays = iter(weights)
        self.scale = _param(next(arrays)) if self.use_scale else None
        self.concat_weight = _param(next(arrays)) if self.score_mode == "concat" else None

    def call_graph(self, args, arg_masks, kwargs, kwarg_masks):
        causal, return_scores = _call_options(kwargs, self.where_)
        inputs = list(args[0])
        masks = arg_masks[0] if arg_masks else None
        masks = list(masks) if isinstance(masks, list | tuple) else [None] * len(inputs)
        if isinstance(kwargs.get("mask"), list | tuple):  # an explicit mask=[q_mask, v_mask]
            masks = list(kwargs["mask"])
        if not 2 <= len(inputs) <= 3:
            raise KerasFileError(
                f"{self.where_}: called on {len(inputs)} tensors; expected [query, value] or "
                "[query, value, key]."
            )
        q, v = inputs[0], inputs[1]
        k = inputs[2] if len(inputs) > 2 else v
        scale = None if self.scale is None else self.scale[...]
        if self.additive:
            scores = A.bahdanau_scores(q, k, scale=scale)
        else:
            cw = None if self.concat_weight is None else self.concat_weight[...]
            scores = A.luong_scores(q, k, scale=scale, concat_weight=cw)
        q_mask = masks[0] if masks else None
        v_mask = masks[1] if len(masks) > 1 else None
        out, weights = A.dense_attention(
            scores,
            v,
            query_mask=q_mask,
            value_mask=v_mask,
            causal=causal or self.causal,
            dropout=self._dropout(),
        )
        if return_scores:
            return (out, weights), (q_mask, None)
        return out, q_mask

    def keras_weights(self):
        return _trainable(self.scale, self.concat_weight)


class MultiHeadAttention(_Attention):
    """``MultiHeadAttention`` (``attention_axes``, ``use_bias``, ``output_shape``,
    ``value_dim``; query/value/key masks, ``attention_mask``, ``use_causal_mask``)."""

    PARTS = ("query", "key", "value", "output")

    def __init__(self, config, weights, ctx: BuildContext):
        super().__init__(ctx, config)
        for option in ("use_gate", "sliding_window"):
            if config.get(option):
                raise UnsupportedOptionError(
                    f"{ctx.where}: {option}={config[option]!r} is not supported."
                )
        self.num_heads = ctx.integer(config, "num_heads")
        self.key_dim = ctx.integer(config, "key_dim")
        use_bias = ctx.flag(config, "use_bias", True)
        n = 4 * (1 + int(use_bias))
        ctx.expect(weights, n, "query, key, value, output kernels" + (" and biases" * use_bias))
        arrays = iter(weights)
        params = {}
        for part in self.PARTS:
            params[part] = _param(next(arrays))
            params[f"{part}_bias"] = _param(next(arrays)) if use_bias else None
        self.query_kernel, self.query_bias = params["query"], params["query_bias"]
        self.key_kernel, self.key_bias = params["key"], params["key_bias"]
        self.value_kernel, self.value_bias = params["value"], params["value_bias"]
        self.output_kernel, self.output_bias = params["output"], params["output_bias"]
        if self.query_kernel.ndim != 3 or self.query_kernel.shape[1:] != (
            self.num_heads,
            self.key_dim,
        ):
            raise KerasFileError(
                f"{ctx.where}: query kernel has shape {tuple(self.query_kernel.shape)}; "
                f"expected (dim, num_heads={self.num_heads}, key_dim={self.key_dim})."
            )
        self.attention_axes = ctx.integers(config, "attention_axes", None)
        self.keras3 = keras_major(ctx.keras_version) >= 3

    def _weights(self) -> A.MHAWeights:
        def get(p):
            return None if p is None else p[...]

        return A.MHAWeights(
            *(
                get(getattr(self, f"{part}_{kind}"))
                for part in self.PARTS
                for kind in ("kernel", "bias")
            )
        )

    def call_graph(self, args, arg_masks, kwargs, kwarg_masks):
        causal, return_scores = _call_options(kwargs, self.where_)
        names = ("query", "value", "key")
        tensors = dict(zip(names, args, strict=False))
        masks = dict(zip(names, arg_masks, strict=False))
        for name in names:
            if _is_array(kwargs.get(name)):
                tensors[name], masks[name] = kwargs[name], kwarg_masks.get(name)
        if "query" not in tensors or "value" not in tensors:
            raise KerasFileError(f"{self.where_}: called without query and value tensors.")
        query, value, key = tensors["query"], tensors["value"], tensors.get("key")
        # The query's mask is always its own; value/key masks passed as such win (Keras 3).
        # Keras 3 reads the key's mask only from a key passed as such, Keras 2 from the value
        # when no key is given: the same mask either way.
        q_mask = masks.get("query")
        v_mask, k_mask = masks.get("value"), masks.get("key") if key is not None else None
        if _is_array(kwargs.get("value_mask")):
            v_mask = kwargs["value_mask"]
        if _is_array(kwargs.get("key_mask")):
            k_mask = kwargs["key_mask"]
        attention_mask = kwargs.get("attention_mask")
        attention_mask = attention_mask if _is_array(attention_mask) else None
        mask = A.mha_mask(
            query,
            value,
            query_mask=q_mask,
            value_mask=v_mask,
            key_mask=k_mask,
            attention_mask=attention_mask,
            causal=causal,
        )
        if not self.keras3:
            style = A.SUBTRACT
        elif self.rate > 0 or return_scores or query.ndim != 3:
            style = A.ZERO  # Keras 3's Softmax layer path
        else:
            style = A.FILL  # Keras 3's ops.dot_product_attention path
        out, scores = A.multi_head_attention(
            query,
            value,
            key,
            self._weights(),
            attention_axes=self.attention_axes,
            mask=mask,
            style=style,
            dropout=self._dropout(),
        )
        if return_scores:
            return (out, scores), (q_mask, None)
        return out, q_mask

    def keras_weights(self):
        return _trainable(*self._weights())

    def keras_v3_groups(self) -> list[tuple[str, list]]:
        """Keras 3 keeps each projection's variables in its own group."""
        pairs = [(w, t) for w, t in self.keras_weights()]
        per = len(pairs) // 4
        return [
            (f"{part}_dense", [w for w, _ in pairs[i * per : (i + 1) * per]])
            for i, part in enumerate(self.PARTS)
        ]


def _entry(cls, **kw):
    return lambda config, weights, ctx: cls(config, weights, ctx, **kw)


ATTENTION_LAYERS = {
    "Attention": _entry(DenseAttention),
    "AdditiveAttention": _entry(DenseAttention, additive=True),
    "MultiHeadAttention": MultiHeadAttention,
}
