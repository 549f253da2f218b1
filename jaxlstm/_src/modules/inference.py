"""A jitted, eval-mode call of any Flax NNX module, for hot loops.

``nnx.jit(lambda m, x: m(x))`` walks the module graph on every call (1.3-1.9 ms for the
demo's two-layer forecaster on 2 CPU cores), which dwarfs a small model's compute.
:func:`predictor` walks it once: it keeps the module's ``nnx.Variable`` objects and a
``jax.jit`` of a pure function of their values, so a call costs one read per variable and one
jitted dispatch (about 0.08 ms a call for the same model, its compute included).
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxlstm._src.errors import UnsupportedOptionError


class Predictor:
    """``module(*args, **kwargs)`` (or another method) in eval mode, jitted; made by
    :func:`predictor`.

    Each call reads the module's current weights, so fine-tuning the module (optimizer
    updates, ``nnx.update``) shows in the next call without rebuilding. Replacing a whole
    sub-module (``model.layers["dense"] = ...``) changes the module's structure: make a new
    predictor then. Compiles once per input shape and dtype.
    """

    def __init__(self, module: nnx.Module, method: str = "__call__"):
        if not callable(getattr(module, method, None)):
            raise UnsupportedOptionError(
                f"predictor: {type(module).__name__} has no method {method!r}; expected the name "
                "of one of its methods, e.g. '__call__' or, for a KerasModel, 'call_with_state'."
            )
        frozen = nnx.clone(module)
        frozen.eval()  # dropout and noise off, BatchNormalization on its moving statistics
        graphdef, state = nnx.split(frozen)
        paths = [path for path, _ in nnx.to_flat_state(state)]
        live = {path: v for path, v in nnx.iter_graph(module) if isinstance(v, nnx.Variable)}
        self._variables = [live[path] for path in paths]
        treedef = jax.tree.structure(state)
        if treedef.num_leaves != len(self._variables):  # a Variable with several leaves
            raise UnsupportedOptionError(
                f"predictor: the module's state has {treedef.num_leaves} arrays in "
                f"{len(self._variables)} variables; expected one array per nnx.Variable. Call "
                "the module inside your own jax.jit instead."
            )

        def pure(values, *args, **kwargs):
            merged = nnx.merge(graphdef, jax.tree.unflatten(treedef, values))
            return getattr(merged, method)(*args, **kwargs)

        self.module, self.method, self._call = module, method, jax.jit(pure)

    def weights(self) -> list[jax.Array]:
        """The module's current variable values, in the order the jitted function takes them."""
        return [_value(v) for v in self._variables]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(self.weights(), *args, **kwargs)

    def __repr__(self) -> str:
        call = "" if self.method == "__call__" else f".{self.method}"
        return f"predictor({type(self.module).__name__}{call}, {len(self._variables)} variables)"


def _value(v: nnx.Variable):
    get = getattr(v, "get_raw_value", None)  # Flax >= 0.12: no per-access hooks
    return get() if get is not None else v.value


def predictor(module: nnx.Module, method: str = "__call__") -> Predictor:
    """A fast, jitted inference function of ``module``: the one call to use in a hot loop.

    ``predict = jaxlstm.predictor(model)`` then ``predict(x)`` returns what ``model(x)``
    returns in eval mode (dropout off, BatchNormalization on moving statistics; the module
    itself is left in whatever mode it is in), computed by one compiled XLA program. Works for
    any NNX module: a :class:`~jaxlstm.KerasModel` from ``load_keras``, ``jaxlstm.LSTM``,
    ``jaxlstm.Bidirectional``, or your own. Keyword arguments are passed through
    (``predict(x, mask=m)``). The weights are read at each call, so the predictor follows
    training; it compiles once per input shape.

    ``method`` picks another method of the module, e.g. a stateful model streamed chunk by
    chunk: ``step = jaxlstm.predictor(model, "call_with_state")``, then
    ``y, states = step(chunk, states=states)``.

    Example:
      >>> from flax import nnx
      >>> import jax.numpy as jnp, jaxlstm
      >>> lstm = jaxlstm.LSTM(3, 8, rngs=nnx.Rngs(0))
      >>> predict = jaxlstm.predictor(lstm)
      >>> predict(jnp.ones((2, 5, 3))).shape
      (2, 8)
    """
    return Predictor(module, method)
