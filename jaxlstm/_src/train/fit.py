"""``fit`` and ``evaluate``: Keras's ``model.fit`` / ``model.evaluate`` for imported models.

The train and eval steps are pure functions of ``(graphdef, state, optimizer state, batch)``
under one ``jax.jit`` each, cached per model structure, loss/metrics and optimizer: a second
``fit`` or ``evaluate`` on the same model compiles nothing (a new batch shape, such as the
smaller last batch of an epoch, compiles once). Losses and metrics accumulate on the device
as Keras's running ``(total, count)`` pairs and are read back once per epoch (and a few
times a second for a live progress bar). Batches go to the device ahead of their step.

Shuffling draws one permutation per epoch from ``fold_in(key(seed), epoch)`` and dropout is
re-keyed the same way, so a run is a pure function of its seed and a resumed run continues
exactly as the uninterrupted one would have. With ``mesh`` the batch is sharded over the
mesh's first axis and the model replicated (plain ``jax.sharding`` data parallelism). After
``jax.distributed.initialize`` the same program runs on every process over a mesh of every
process's devices (see ``distributed.py`` for what each process must hold).
"""

from __future__ import annotations

import collections
import functools
import hashlib
import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxlstm._src.errors import ShapeError, UnsupportedOptionError
from jaxlstm._src.train import checkpoint as ckpt_lib
from jaxlstm._src.train import distributed as dist
from jaxlstm._src.train.data import (
    Batches,
    Data,
    array_batches,
    as_data,
    batch_size_of,
    prefetch,
    with_class_weight,
)
from jaxlstm._src.train.losses import (
    CustomMetric,
    Metric,
    from_compile_config,
    get_loss,
    get_metric,
)
from jaxlstm._src.train.progress import Log, Progress

# ---- compile accounting (jax.monitoring): the compile time reported apart, and counted -----

_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


class CompileClock:
    """Seconds spent tracing, lowering and compiling, and the number of XLA compilations,
    since the process started (read differences around a block of work)."""

    seconds = 0.0
    compiles = 0
    _lock = threading.Lock()
    _registered = False

    @classmethod
    def install(cls) -> None:
        if cls._registered:
            return

        def listen(event, duration, **_):
            if event in _COMPILE_EVENTS:
                with cls._lock:
                    cls.seconds += duration
                    cls.compiles += event == _COMPILE_EVENTS[-1]

        jax.monitoring.register_event_duration_secs_listener(listen)
        cls._registered = True


# ---- what a run trains on: outputs, losses, metrics ---------------------------------------


@dataclass(frozen=True)
class Objective:
    """Per output: its name, loss (or None), loss weight and metrics ``(log name, metric,
    weighted)``: as in Keras, ``metrics`` ignore sample and class weights (the output mask
    still applies) and ``weighted_metrics`` use them.
    Hashable: it is part of the compiled steps' cache key."""

    names: tuple
    losses: tuple
    weights: tuple
    metrics: tuple

    def keys(self) -> list[str]:
        """The accumulated values, in log order (Keras's names)."""
        keys = ["loss"]
        many = len(self.names) > 1
        if many:
            keys += [f"{n}_loss" for n, loss in zip(self.names, self.losses, strict=True) if loss]
        for name, metrics in zip(self.names, self.metrics, strict=True):
            keys += [f"{name}_{m}" if many else m for m, _, _ in metrics]
        return keys


def _per_output(value, names, what, default=None):
    """Keras's forms: one value for every output, a list in output order, or a dict by name."""
    n = len(names)
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise UnsupportedOptionError(
                f"{what} names output(s) {unknown}; the model's outputs are {list(names)}."
            )
        return [value.get(name, default) for name in names]
    if isinstance(value, list | tuple) and n > 1:
        if len(value) != n:
            raise UnsupportedOptionError(
                f"{what} has {len(value)} entries for a model with {n} outputs {list(names)}."
            )
        return list(value)
    return [value] * n


def _metrics_per_output(metrics, names, what, weighted) -> list[list]:
    nested = isinstance(metrics, dict) or (
        isinstance(metrics, list | tuple) and any(isinstance(m, list | tuple) for m in metrics)
    )
    per = _per_output(metrics or [], names, what, []) if nested else [metrics or []] * len(names)
    return [
        [
            (_metric_name(m), get_metric(m), weighted)
            for m in (ms if isinstance(ms, list | tuple) else [ms])
        ]
        for ms in per
    ]


def with_file_defaults(model, names, loss, loss_weights, metrics, weighted_metrics) -> tuple:
    """``(loss, loss_weights, metrics, weighted_metrics)``: as given when ``loss`` is, else
    the file's compile settings (``model.compile_config``, as Keras's ``load_model`` compiles
    with them) for each of the four the caller left ``None``."""
    settings = getattr(model, "compile_config", None) if loss is None else None
    if not isinstance(settings, dict):
        return loss, loss_weights, metrics, weighted_metrics
    where = f"{getattr(model, 'where', 'the model')}: its file's compile_config"
    file = from_compile_config(settings, names, where)
    given = {"loss_weights": loss_weights, "metrics": metrics, "weighted_metrics": weighted_metrics}
    given = {k: file[k] if v is None else v for k, v in given.items()}
    return file["loss"], given["loss_weights"], given["metrics"], given["weighted_metrics"]


def make_objective(
    names, loss, loss_weights=None, metrics=None, weighted_metrics=None
) -> Objective:
    names = tuple(names)
    losses = [None if v is None else get_loss(v) for v in _per_output(loss, names, "loss")]
    if all(v is None for v in losses):
        raise UnsupportedOptionError(
            "fit needs a loss and the model's file has no compile_config giving one: pass "
            "loss='mse', loss='sparse_categorical_crossentropy', a jaxlstm.train.Loss, a "
            "callable fn(y_true, y_pred), or one per output."
        )
    weights = _per_output(1.0 if loss_weights is None else loss_weights, names, "loss_weights", 1.0)
    plain = _metrics_per_output(metrics, names, "metrics", False)
    weighted = _metrics_per_output(weighted_metrics, names, "weighted_metrics", True)
    per_metrics = tuple(tuple(a + b) for a, b in zip(plain, weighted, strict=True))
    return Objective(names, tuple(losses), tuple(float(w) for w in weights), per_metrics)


def _metric_name(m) -> str:
    if isinstance(m, str):
        return m
    if isinstance(m, Metric):
        return m.name
    return getattr(m, "name", None) or getattr(m, "__name__", "metric")


def output_names(model) -> tuple | None:
    """The Keras names of a KerasModel's outputs (None for other modules)."""
    refs = getattr(model, "outputs", None)
    if not isinstance(refs, tuple) or not refs or not hasattr(refs[0], "layer"):
        return None
    names = [r.layer for r in refs]
    return tuple(
        n if names.count(n) == 1 else f"{n}_{r.index}" for n, r in zip(names, refs, strict=True)
    )


def _forward(model, x):
    """The outputs as a tuple, with the Keras mask each carries (None where there is none)."""
    if hasattr(model, "call_with_masks"):
        return model.call_with_masks(*x)
    out = model(*x)
    outs = out if isinstance(out, tuple) else (out,)
    return outs, (None,) * len(outs)


def _terms(obj: Objective, outs, masks, y, sw):
    """The batch's total loss and each output's unweighted loss (Keras's CompileLoss)."""
    if len(outs) != len(obj.names) or len(y) != len(obj.names):
        raise ShapeError(
            f"the model returns {len(outs)} output(s) {list(obj.names)}; received "
            f"{len(y)} target array(s). Give one target per output, in the model's order."
        )
    if sw is not None and len(sw) not in (1, len(y)):
        raise ShapeError(
            f"received {len(sw)} sample_weight arrays for {len(y)} outputs; give one for all "
            "outputs or one per output."
        )
    total, parts = 0.0, {}
    for i, (name, loss, weight) in enumerate(zip(obj.names, obj.losses, obj.weights, strict=True)):
        if loss is None:
            continue
        w = None if sw is None else sw[i if len(sw) > 1 else 0]
        value = loss(y[i], outs[i], w, masks[i])
        parts[name] = value
        total = total + weight * value
    return total, parts


def _accumulate(obj: Objective, acc, total, parts, outs, masks, y, sw):
    n = jnp.asarray(jnp.shape(y[0])[0], jnp.float32)
    new = dict(acc)

    def add(key, t, c):
        new[key] = (acc[key][0] + t, acc[key][1] + c)

    add("loss", total * n, n)
    many = len(obj.names) > 1
    if many:
        for name, value in parts.items():
            add(f"{name}_loss", value * n, n)
    for i, (name, metrics) in enumerate(zip(obj.names, obj.metrics, strict=True)):
        w = None if sw is None else sw[i if len(sw) > 1 else 0]
        for log_name, metric, weighted in metrics:
            t, c = metric.update(y[i], outs[i], w if weighted else None, masks[i])
            add(f"{name}_{log_name}" if many else log_name, t, c)
    return new


def _results(obj: Objective, acc) -> dict:
    acc = jax.device_get(acc)
    metric_of = {}
    many = len(obj.names) > 1
    for name, metrics in zip(obj.names, obj.metrics, strict=True):
        for log_name, metric, _ in metrics:
            metric_of[f"{name}_{log_name}" if many else log_name] = metric
    out = {}
    for key in obj.keys():
        total, count = (float(v) for v in acc[key])
        m = metric_of.get(key)
        if isinstance(m, Metric | CustomMetric):
            out[key] = float(m.result(jnp.float32(total), jnp.float32(count)))
        else:
            out[key] = total / count if count else 0.0
    return out


def _zeros(obj: Objective):
    return {k: (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32)) for k in obj.keys()}


# ---- the compiled steps, cached per model structure --------------------------------------


def _train_step(graphdef, tx, obj, wrt, trainable, rest, opt_state, acc, batch):
    x, y, sw = batch

    model = nnx.merge(graphdef, trainable, rest)

    def objective(model):
        outs, masks = _forward(model, x)
        total, parts = _terms(obj, outs, masks, y, sw)
        return total, (parts, outs, masks)

    grad_fn = nnx.value_and_grad(objective, argnums=nnx.DiffState(0, wrt), has_aux=True)
    (total, (parts, outs, masks)), grads = grad_fn(model)
    new_rest = nnx.state(model, nnx.Not(wrt))
    updates, opt_state = tx.update(grads, opt_state, trainable)
    trainable = optax.apply_updates(trainable, updates)
    acc = _accumulate(obj, acc, total, parts, outs, masks, y, sw)
    return trainable, new_rest, opt_state, acc


def _eval_step(graphdef, obj, state, acc, batch):
    x, y, sw = batch
    model = nnx.merge(graphdef, state)
    outs, masks = _forward(model, x)
    total, parts = _terms(obj, outs, masks, y, sw)
    return _accumulate(obj, acc, total, parts, outs, masks, y, sw)


_CACHE: collections.OrderedDict = collections.OrderedDict()
_CACHE_SIZE = 32


def _cached(key, make):
    fn = _CACHE.get(key)
    if fn is None:
        fn = _CACHE[key] = make()
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return fn


def train_step_fn(graphdef, tx, obj, wrt):
    """The jitted ``(trainable, rest, opt_state, acc, batch) -> same``, one per structure."""
    return _cached(
        ("train", graphdef, tx, obj, wrt),
        lambda: jax.jit(
            functools.partial(_train_step, graphdef, tx, obj, wrt), donate_argnums=(2, 3)
        ),
    )


def eval_step_fn(graphdef, obj):
    """The jitted ``(state, acc, batch) -> acc``, one per model structure and objective."""
    return _cached(
        ("eval", graphdef, obj),
        lambda: jax.jit(functools.partial(_eval_step, graphdef, obj), donate_argnums=(1,)),
    )


@functools.lru_cache(maxsize=16)
def default_optimizer(learning_rate: float = 1e-3) -> optax.GradientTransformation:
    """``adam(learning_rate)`` (Keras's default optimizer), one object per rate so that runs
    using it share compiled steps; the rate is logged from its state."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)


@functools.lru_cache(maxsize=16)
def _clipped(tx, clip_norm: float):
    return optax.chain(optax.clip_by_global_norm(clip_norm), tx)


def learning_rate(opt_state) -> float | None:
    """The current learning rate of an ``optax.inject_hyperparams`` optimizer, else None."""
    for node in jax.tree.leaves(opt_state, is_leaf=lambda n: hasattr(n, "hyperparams")):
        if hasattr(node, "hyperparams") and "learning_rate" in node.hyperparams:
            return float(node.hyperparams["learning_rate"])
    return None


# ---- freezing ------------------------------------------------------------------------------


def layer_paths(model) -> list[str]:
    """Every layer of a KerasModel as ``"name"`` or ``"outer/inner"`` (nested models)."""
    layers = getattr(model, "layers", None)
    if layers is None:
        return []
    paths = []
    for name, layer in layers.items():
        paths.append(name)
        paths += [f"{name}/{p}" for p in layer_paths(layer) if hasattr(layer, "layers")]
    return paths


@dataclass(frozen=True)
class _Under:
    """An nnx filter: variables under one of the ``prefixes`` (paths of graph keys). A value
    (hashable), so equal ``freeze=`` lists share compiled steps."""

    prefixes: tuple

    def __call__(self, path, value) -> bool:
        keys = tuple(str(k) for k in path)
        return any(keys[: len(p)] == p for p in self.prefixes)


def trainable_filter(model, freeze: Sequence[str] = ()):
    """``nnx.Param`` s except those of the named layers. A name is a whole layer path
    (``"dense"``, ``"encoder/lstm"`` for a layer of a nested model); an unknown one is an
    error listing the model's layers."""
    freeze = tuple(freeze)
    if not freeze:
        return nnx.Param
    known = layer_paths(model)
    unknown = [name for name in freeze if name not in known]
    if unknown:
        raise UnsupportedOptionError(
            f"freeze names {unknown}, which are not layers of the model; its layers: {known}."
        )

    def prefix(name):
        parts = []
        for part in name.split("/"):
            parts += ["layers", part]
        return tuple(parts)

    frozen = _Under(tuple(prefix(n) for n in freeze))
    return nnx.All(nnx.Param, nnx.Not(frozen))


# ---- the run --------------------------------------------------------------------------------


@dataclass
class History:
    """What ``fit`` measured: one row per epoch (``epoch``, ``loss``, metrics, ``val_*``,
    ``learning_rate`` when known, ``seconds`` of training excluding compilation), the best
    epoch by the monitored value, and whether early stopping ended the run."""

    epochs: list[dict] = field(default_factory=list)
    monitor: str | None = None
    best: float | None = None
    best_epoch: int | None = None
    stopped_early: bool = False
    restored_best: bool = False
    compile_seconds: float = 0.0

    def column(self, key: str) -> list[float]:
        return [row[key] for row in self.epochs if key in row]

    @property
    def best_val_loss(self) -> float:
        """The lowest ``val_loss`` of the run (inf without validation)."""
        values = self.column("val_loss")
        return min(values) if values else math.inf


class EarlyStopping:
    """Keras's ``EarlyStopping`` rule (``keras/src/callbacks/early_stopping.py``): an epoch
    improves when ``monitor`` beats the best by more than ``min_delta``; after ``patience``
    epochs without improvement training stops."""

    def __init__(self, monitor, patience, min_delta, mode, metric_names):
        self.monitor, self.patience = monitor, patience
        self.maximize = _maximize(monitor, mode, metric_names)
        self.min_delta = abs(min_delta) if self.maximize else -abs(min_delta)
        self.wait, self.best, self.best_epoch = 0, None, None

    def improved(self, value) -> bool:
        if self.best is None:
            return True
        if self.maximize:
            return value - self.min_delta > self.best
        return value - self.min_delta < self.best

    def update(self, epoch: int, value: float) -> tuple[bool, bool]:
        """``(improved, stop)`` after epoch ``epoch`` (0-based, as Keras counts)."""
        self.wait += 1
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, epoch + 1, 0
            return True, False
        stop = self.patience is not None and self.wait >= self.patience and epoch > 0
        return False, stop

    def state(self) -> dict:
        return {"wait": self.wait, "best": self.best, "best_epoch": self.best_epoch}

    def load(self, state: dict) -> None:
        self.wait, self.best, self.best_epoch = state["wait"], state["best"], state["best_epoch"]


_UP = ("accuracy", "acc")


def _maximize(monitor: str, mode: str, metric_names) -> bool:
    if mode == "max":
        return True
    if mode == "min":
        return False
    if mode != "auto":
        raise UnsupportedOptionError(f"mode={mode!r}; expected 'auto', 'min' or 'max'.")
    base = monitor.removeprefix("val_")
    if base == "loss" or base.endswith("_loss"):
        return False
    if base in metric_names:
        return any(base == u or base.endswith(f"_{u}") or base.endswith("accuracy") for u in _UP)
    raise UnsupportedOptionError(
        f"monitor={monitor!r} is not a value this run logs; it logs "
        f"{['loss', *metric_names]} (and val_ of each with validation data)."
    )


def _model_digest(model, state) -> str:
    text = getattr(model, "config_json", type(model).__name__)
    return hashlib.sha256(text.encode()).hexdigest()[:16] + ckpt_lib.layout(state)


def _place(batch, mesh, local=False):
    """A batch on the devices: sharded over ``mesh`` 's first axis when it splits evenly.
    Over several processes each places its own rows: of a global batch it holds whole
    (in-memory arrays), or of its ``local`` part of one (an iterable of batches)."""
    if dist.is_multiprocess():
        return dist.place_local(batch, mesh) if local else dist.place_global(batch, mesh)
    if mesh is not None and batch_size_of(batch) % mesh.devices.shape[0] == 0:
        sharding = NamedSharding(mesh, P(mesh.axis_names[0]))
        return jax.device_put(batch, sharding)
    return jax.device_put(batch)


def _replicated(tree, mesh):
    if dist.is_multiprocess():
        return dist.replicate(tree, mesh)
    return tree if mesh is None else jax.device_put(tree, NamedSharding(mesh, P()))


def _run_mesh(mesh):
    """``mesh``, or over several processes the mesh of every process's devices by default;
    a mesh of one process's devices there would run N separate trainings, and is refused."""
    if not dist.is_multiprocess():
        return mesh
    if mesh is None:
        return dist.global_mesh()
    if mesh.devices.size != jax.device_count():
        raise dist.DistributedError(
            f"mesh has {mesh.devices.size} devices but the {jax.process_count()} processes "
            f"have {jax.device_count()}; over several processes the mesh spans every "
            "process's devices: pass mesh=None (jaxlstm.train.global_mesh())."
        )
    return mesh


def _seed_dropout(model, key):
    """Re-key every dropout stream from the run's seed and the epoch (deterministic, resumable)."""
    for i, (_, stream) in enumerate(nnx.iter_graph(model)):
        if isinstance(stream, nnx.RngStream):
            stream.key[...] = jax.random.fold_in(key, i)
            stream.count[...] = jnp.zeros_like(stream.count[...])


def fit(
    model,
    x=None,
    y=None,
    *,
    batch_size: int | None = None,
    epochs: int = 1,
    validation_data=None,
    validation_split: float = 0.0,
    sample_weight=None,
    class_weight: dict | None = None,
    shuffle: bool = True,
    steps_per_epoch: int | None = None,
    loss=None,
    loss_weights=None,
    metrics=None,
    weighted_metrics=None,
    optimizer: optax.GradientTransformation | None = None,
    freeze: Sequence[str] = (),
    clip_norm: float | None = None,
    monitor: str = "val_loss",
    patience: int | None = None,
    min_delta: float = 0.0,
    mode: str = "auto",
    restore_best_weights: bool = False,
    seed: int = 0,
    mesh: jax.sharding.Mesh | None = None,
    log_path: str | os.PathLike | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    stream=None,
    run_settings: dict | None = None,
) -> History:
    """Train ``model`` (e.g. from ``load_keras``) in place, as Keras's ``model.fit`` would.

    Args:
      x, y: arrays (``x`` a list/tuple for several inputs, ``y`` one per output); or ``x`` a
        tuple ``(x, y[, sample_weight])``, a :class:`Data`, or an iterable of such batches
        (``steps_per_epoch`` for a one-shot iterator).
      batch_size: 32 by default; the last batch of an epoch may be smaller (as in Keras).
      epochs: the epoch to train up to (with ``resume``, the total including earlier epochs).
      validation_data: ``(x, y[, sample_weight])``, a :class:`Data` or an iterable of batches.
      validation_split: the last fraction of in-memory ``x``/``y`` held out for validation.
      sample_weight, class_weight: Keras's per-example (or per-timestep) and per-class weights.
      loss: a Keras loss name, :class:`Loss`, callable ``fn(y_true, y_pred)``, or one per
        output (list or dict by output name); ``loss_weights`` weigh them. The model's Keras
        output masks are applied as Keras applies them. Without ``loss``, the file's compile
        settings (``model.compile_config``: loss, loss_weights, metrics, weighted_metrics) are
        the default, as Keras's ``load_model`` compiles with them; arguments given win. A
        custom loss or metric there is an error asking for ``loss=`` / ``metrics=``.
      metrics: Keras metric names (``"mae"``, ``"accuracy"``...), :class:`Metric` s or callables;
        a list of lists or a dict for several outputs. As in Keras, ``metrics`` ignore
        ``sample_weight``/``class_weight`` (the output mask applies); ``weighted_metrics`` use them.
      optimizer: an optax transformation (default ``adam(1e-3)``); pass the same object to
        later ``fit`` calls to reuse the compiled steps.
      freeze: whole layer paths (``"dense"``, ``"encoder/lstm"``) whose weights stay fixed.
      clip_norm: clip gradients by their global norm.
      monitor, patience, min_delta, mode, restore_best_weights: Keras's EarlyStopping; the best
        epoch by ``monitor`` is always tracked (and checkpointed under ``checkpoint_dir/best``);
        ``patience`` stops the run after that many epochs without improvement;
        ``restore_best_weights`` ends the run on the best epoch's weights whether or not it
        stopped early (Keras 3's rule; its default, False, keeps the last epoch's weights).
      seed: shuffling and dropout; the same seed gives the same run.
      mesh: a ``jax.sharding.Mesh``: the batch is split over its first axis (data parallel).
        After ``jaxlstm.train.initialize`` (several processes) the default is the mesh of
        every process's devices, and each process passes all the in-memory data (or, as an
        iterable, its own rows of every global batch: ``jaxlstm.train.process_rows``);
        ``batch_size`` is the global batch. Only process 0 writes ``log_path``, progress and
        prints; every process returns the same History.
      log_path: ``.jsonl`` or ``.csv`` receiving one row per epoch.
      checkpoint_dir: orbax checkpoints (``latest/`` each epoch, ``best/``). A folder with a
        checkpoint is refused unless ``resume=True``, which continues that run.
      progress: a progress bar (terminal/Jupyter) or one line per epoch on ``stream``.

    Returns:
      :class:`History`. The model ends in eval mode.
    """
    CompileClock.install()
    batch_size = 32 if batch_size is None else int(batch_size)
    if batch_size < 1:
        raise UnsupportedOptionError(f"batch_size={batch_size}; expected a positive integer.")
    train = as_data(x, y, sample_weight)
    if isinstance(train, Batches) and steps_per_epoch is not None:
        train.steps_per_epoch = steps_per_epoch
    if validation_split:
        if validation_data is not None:
            raise UnsupportedOptionError("pass validation_data or validation_split, not both.")
        if not isinstance(train, Data):
            raise UnsupportedOptionError(
                "validation_split needs in-memory arrays; pass validation_data for batches."
            )
        train, val = train.split(validation_split)
    else:
        val = None if validation_data is None else as_data(validation_data, what="validation_data")
    mesh = _run_mesh(mesh)
    _check_same_data(train, "training")
    _check_same_data(val, "validation")
    if isinstance(train, Data):
        train = with_class_weight(train, class_weight)
    elif class_weight is not None:
        raise UnsupportedOptionError("class_weight needs in-memory arrays; weight the batches.")
    names = output_names(model) or tuple(f"output_{i}" for i in range(_n_targets(train)))
    compiled = with_file_defaults(model, names, loss, loss_weights, metrics, weighted_metrics)
    obj = make_objective(names, *compiled)
    metric_names = [k for k in obj.keys()]
    if patience is not None and monitor.startswith("val_") and val is None:
        raise UnsupportedOptionError(
            f"patience={patience} monitors {monitor!r}, which needs validation data; pass "
            "validation_data= or validation_split=, or monitor='loss'."
        )
    tracks = monitor.startswith("val_") <= (val is not None)
    stopper = EarlyStopping(monitor, patience, min_delta, mode, metric_names) if tracks else None

    tx = optimizer if optimizer is not None else default_optimizer()
    if clip_norm is not None:
        tx = _clipped(tx, float(clip_norm))
    wrt = trainable_filter(model, freeze)
    model.train()
    try:  # a refused checkpoint leaves the model as it was (eval mode)
        graphdef, trainable, rest = nnx.split(model, wrt, nnx.Not(wrt))
        opt_state = tx.init(trainable)
        history = History(monitor=monitor if tracks else None)

        ckpt, start = None, 0
        if checkpoint_dir is not None:
            ckpt = ckpt_lib.Checkpoints(
                checkpoint_dir,
                monitor if tracks else None,
                bool(stopper and stopper.maximize),
                mesh=mesh,
            )
            fingerprint = {
                "model": _model_digest(model, nnx.state(model)),
                "trainable": ckpt_lib.layout(trainable),
                "optimizer": ckpt_lib.layout(opt_state),
                "loss": repr(obj.losses),
                "batch_size": batch_size,
                "seed": seed,
                **(run_settings or {}),
            }
            dist.check_same(  # before orbax, whose barriers would wait for the others
                int(not ckpt.is_empty()),
                f"whether {ckpt.directory} holds a checkpoint (1) or not (0)",
                "checkpoint_dir must be one folder every process sees (a shared file system).",
            )
            record = ckpt.record()
            dist.barrier("jaxlstm.fit.record")  # all have read it before any writes
            if record is not None:
                if not resume:
                    raise ckpt_lib.CheckpointError(
                        f"{ckpt.directory} already holds a checkpoint (epoch {record['epoch']}) "
                        "of a run; pass resume=True (jaxlstm finetune --resume) to continue "
                        "it, or give an empty checkpoint_dir (or delete this one) to start over."
                    )
                ckpt_lib.check_fingerprint(ckpt.directory, record["fingerprint"], fingerprint)
                if record.get("stopped_early"):
                    raise ckpt_lib.CheckpointError(
                        f"{ckpt.directory}: that run stopped early at epoch {record['epoch']} "
                        f"(patience); there is nothing to resume. Start over in an empty folder."
                    )
                if record["epoch"] >= epochs:
                    raise ckpt_lib.CheckpointError(
                        f"{ckpt.directory} holds a run already trained for {record['epoch']} "
                        f"epochs; epochs={epochs} asks for no more (as in Keras, epochs is the "
                        f"epoch to train up to). Pass epochs > {record['epoch']} to train on."
                    )
                trainable, rest, opt_state = ckpt.restore_latest((trainable, rest, opt_state))
                start = record["epoch"]
                history.epochs = list(record["history"])
                history.best, history.best_epoch = record.get("best"), record.get("best_epoch")
                if stopper is not None and record.get("early_stopping"):
                    stopper.load(record["early_stopping"])
                nnx.update(model, trainable, rest)
        log = Log(log_path if dist.is_primary() else None, history.epochs)
        trainable, rest, opt_state = _replicated((trainable, rest, opt_state), mesh)
        best_state = None
        if restore_best_weights and ckpt is not None and start:
            best_state = ckpt.restore_best((trainable, rest))

    except BaseException:
        model.eval()
        raise

    key = jax.random.key(seed)
    show = Progress(epochs, progress and dist.is_primary(), stream)
    local = isinstance(train, Batches)  # over processes: each yields its rows of a batch
    step_fn = train_step_fn(graphdef, tx, obj, wrt)
    eval_fn = None
    try:
        for epoch in range(start, epochs):
            t0, c0 = time.perf_counter(), CompileClock.seconds
            _seed_dropout(model, jax.random.fold_in(jax.random.fold_in(key, 1 << 20), epoch))
            _, _, rest = nnx.split(model, wrt, nnx.Not(wrt))
            rest = _replicated(rest, mesh)
            if isinstance(train, Data):
                order = (
                    np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), len(train)))
                    if shuffle
                    else None
                )
                batches, steps = (
                    array_batches(train, batch_size, order),
                    -(-len(train) // batch_size),
                )
            else:
                batches, steps = train.epoch(), train.steps_per_epoch
            acc = _zeros(obj)
            show.start_epoch(epoch + 1, steps)
            done = 0
            for batch in prefetch(batches, lambda b: _place(b, mesh, local)):
                trainable, rest, opt_state, acc = step_fn(trainable, rest, opt_state, acc, batch)
                done += 1
                show.step(done, functools.partial(_results, obj, acc))
            if done == 0:
                raise UnsupportedOptionError(
                    f"the training data gave no batch in epoch {epoch + 1}; a one-shot iterator "
                    "is spent after one pass: pass steps_per_epoch= (and enough batches for "
                    "every epoch), or an iterable that can be iterated again."
                )
            row = {"epoch": epoch + 1, **_results(obj, acc)}
            nnx.update(model, trainable, rest)
            if val is not None:
                model.eval()
                eval_graph, state = nnx.split(model)
                eval_fn = eval_step_fn(eval_graph, obj)
                row.update(
                    {
                        f"val_{k}": v
                        for k, v in _run_eval(eval_fn, obj, state, val, batch_size, mesh).items()
                    }
                )
                model.train()
            lr = learning_rate(opt_state)
            if lr is not None:
                row["learning_rate"] = lr
            compile_s = CompileClock.seconds - c0
            seconds = max(time.perf_counter() - t0 - compile_s, 0.0)
            row["seconds"], compile_s = dist.broadcast([seconds, compile_s])  # process 0's
            history.compile_seconds += compile_s
            history.epochs.append(row)
            log.write(row)
            show.end_epoch(row, done, compile_s)
            improved, stop = (False, False)
            if stopper is not None:
                if monitor not in row:
                    raise UnsupportedOptionError(
                        f"monitor={monitor!r} is not logged; this run logs {sorted(row)}."
                    )
                improved, stop = stopper.update(epoch, row[monitor])
                history.best, history.best_epoch = stopper.best, stopper.best_epoch
                if improved and restore_best_weights:
                    best_state = (trainable, rest)
            if ckpt is not None:
                ckpt.save(
                    epoch + 1,
                    (trainable, rest, opt_state),
                    {
                        "epoch": epoch + 1,
                        "fingerprint": fingerprint,
                        "history": history.epochs,
                        "best": history.best,
                        "best_epoch": history.best_epoch,
                        "early_stopping": stopper.state() if stopper else None,
                        "stopped_early": bool(stop),
                    },
                    weights=(trainable, rest) if improved or stopper is None else None,
                    value=row.get(monitor),
                )
            if stop:
                history.stopped_early = True
                show.note(
                    f"early stopping: no {monitor} improvement for {patience} epoch(s); best "
                    f"{history.best:.5f} at epoch {history.best_epoch}"
                )
                break
        if restore_best_weights and best_state is not None:  # Keras: at the end of training
            trainable, rest = best_state
            history.restored_best = True
            show.note(
                f"restored the weights of the best epoch ({history.best_epoch}, "
                f"{monitor} {history.best:.5f})"
            )
    finally:
        nnx.update(model, *dist.to_local((trainable, rest)))  # this process's own copy
        model.eval()
    return history


def _check_same_data(data, what) -> None:
    if isinstance(data, Data):
        dist.check_same(len(data), f"the number of {what} examples")


def _n_targets(train) -> int:
    if isinstance(train, Data):
        return len(train.targets)
    return 1


def _run_eval(eval_fn, obj, state, data, batch_size, mesh) -> dict:
    acc = _zeros(obj)
    batches = array_batches(data, batch_size) if isinstance(data, Data) else data.epoch()
    local = isinstance(data, Batches)
    for batch in prefetch(batches, lambda b: _place(b, mesh, local)):
        acc = eval_fn(state, acc, batch)
    return _results(obj, acc)


def evaluate(
    model,
    x=None,
    y=None,
    *,
    batch_size: int | None = None,
    sample_weight=None,
    loss=None,
    loss_weights=None,
    metrics=None,
    weighted_metrics=None,
    mesh=None,
) -> dict:
    """Keras's ``model.evaluate``: the loss and metrics of ``model`` on the data, in eval mode,
    averaged over examples as Keras averages them. Data forms and loss/metrics as in :func:`fit`;
    the step is compiled once per model and shapes and shared with ``fit``'s validation. Over
    several processes (``mesh`` as in :func:`fit`) every process gets the results of the whole
    data, counted once."""
    CompileClock.install()
    data = as_data(x, y, sample_weight)
    mesh = _run_mesh(mesh)
    _check_same_data(data, "evaluation")
    names = output_names(model) or tuple(f"output_{i}" for i in range(_n_targets(data)))
    compiled = with_file_defaults(model, names, loss, loss_weights, metrics, weighted_metrics)
    obj = make_objective(names, *compiled)
    model.eval()
    graphdef, state = nnx.split(model)
    return _run_eval(
        eval_step_fn(graphdef, obj),
        obj,
        _replicated(state, mesh),
        data,
        32 if batch_size is None else batch_size,
        mesh,
    )


# ---- batch prediction ----------------------------------------------------------------------


def _predict_step(graphdef, state, x):
    outs, _ = _forward(nnx.merge(graphdef, state), x)
    return outs


def predict_step_fn(graphdef):
    """The jitted ``(state, x) -> outputs``, one per model structure."""
    return _cached(
        ("predict", graphdef), lambda: jax.jit(functools.partial(_predict_step, graphdef))
    )


def _local_rows(out) -> np.ndarray:
    """The rows of a batch-sharded global array that this process's devices hold, in order."""
    if out.is_fully_addressable or out.is_fully_replicated:
        return np.asarray(out)
    shards = sorted(
        (s for s in out.addressable_shards if s.replica_id == 0),
        key=lambda s: s.index[0].indices(out.shape[0])[0],
    )
    return np.concatenate([np.asarray(s.data) for s in shards])


def predict(model, x, *, batch_size: int | None = None, mesh=None):
    """Keras's ``model.predict``: the model's outputs on ``x``, in eval mode, batch by batch.

    Args:
      x: the inputs, the batch on the first axis of every array: one array, or a list/tuple
        of arrays for several model inputs; or, for data that does not fit in memory, any
        other iterable (a generator, a loader) of such input batches.
      batch_size: rows per step for in-memory ``x`` (32 by default).
      mesh: as in :func:`fit`: the batch is split over its first axis. After
        ``jaxlstm.train.initialize`` (several processes) the default mesh spans every process;
        each process passes all of in-memory ``x`` and gets all the outputs, or, with an
        iterable, yields its own rows of each global batch (``jaxlstm.train.process_rows``)
        and gets the outputs of those rows.

    Returns:
      numpy outputs over every example in order: one array, or a tuple for several outputs.
    """
    mesh = _run_mesh(mesh)
    model.eval()
    graphdef, state = nnx.split(model)
    state = _replicated(state, mesh)
    step = predict_step_fn(graphdef)
    in_memory = isinstance(x, np.ndarray | jax.Array) or (
        isinstance(x, list | tuple) and all(isinstance(a, np.ndarray | jax.Array) for a in x)
    )
    if in_memory:
        inputs = tuple(np.asarray(a) for a in (x if isinstance(x, list | tuple) else (x,)))
        n = len(inputs[0])
        if any(len(a) != n for a in inputs):
            raise ShapeError(
                f"predict's inputs disagree on the number of examples: "
                f"{[len(a) for a in inputs]}; the first axis of every array is the batch."
            )
        dist.check_same(n, "the number of examples to predict")
        size = 32 if batch_size is None else int(batch_size)
        batches = (tuple(a[i : i + size] for a in inputs) for i in range(0, n, size))
    else:
        batches = (tuple(b) if isinstance(b, list | tuple) else (b,) for b in x)
    parts = []
    for batch in prefetch(batches, lambda b: _place(b, mesh, not in_memory)):
        outs = step(state, batch)
        rows = [np.asarray(o) for o in _gathered(outs)] if in_memory else map(_local_rows, outs)
        parts.append(list(rows))
    if not parts:
        raise UnsupportedOptionError("predict received no batch; x is empty.")
    outs = tuple(np.concatenate(p) for p in zip(*parts, strict=True))
    return outs[0] if len(outs) == 1 else outs


def _gathered(outs):
    """Over several processes, a batch's outputs of in-memory data, whole, on every process."""
    if not dist.is_multiprocess():
        return outs
    from jax.experimental import multihost_utils

    return [
        o if o.is_fully_replicated else multihost_utils.process_allgather(o, True) for o in outs
    ]
