"""``fit``: a small, deterministic training loop over an optax optimizer.

Batches are drawn from in-memory arrays with an explicit PRNG key (one permutation per epoch,
``fold_in(key, epoch)``), so a run is a pure function of its seed, and a resumed run continues
exactly where an interrupted one stopped. The last incomplete batch of an epoch is dropped, so
every step has the same shapes (one compilation). With ``mesh`` the batch is sharded over the
mesh's first axis and the model is replicated: plain ``jax.sharding`` data parallelism.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxlstm._src.errors import UnsupportedOptionError
from jaxlstm._src.train.losses import get_loss, get_metric


@dataclass
class Data:
    """In-memory training data: ``inputs`` (one array or a tuple, for several model inputs),
    ``targets``, and an optional ``mask`` ``(n,)`` or ``(n, time)`` of entries the loss counts."""

    inputs: np.ndarray | tuple
    targets: np.ndarray
    mask: np.ndarray | None = None

    def __post_init__(self):
        self.inputs = self.inputs if isinstance(self.inputs, tuple) else (self.inputs,)
        n = {len(a) for a in (*self.inputs, self.targets)}
        if self.mask is not None:
            n.add(len(self.mask))
        if len(n) != 1:
            raise UnsupportedOptionError(
                f"inputs, targets and mask disagree on the number of examples: {sorted(n)}."
            )

    def __len__(self) -> int:
        return len(self.targets)

    def take(self, idx):
        mask = None if self.mask is None else self.mask[idx]
        return tuple(a[idx] for a in self.inputs), self.targets[idx], mask


@dataclass
class History:
    """What ``fit`` measured: one dict per epoch (``epoch``, ``step``, ``loss``, ``val_loss``,
    metrics, ``seconds``), and the best validation loss."""

    epochs: list[dict] = field(default_factory=list)
    best_val_loss: float = math.inf
    stopped_early: bool = False

    def column(self, key: str) -> list[float]:
        return [row[key] for row in self.epochs if key in row]


def trainable_filter(freeze: Sequence[str] = ()):
    """``nnx.Param`` s except those under the named layers (``"dense"``, ``"encoder/lstm"``)."""
    if not freeze:
        return nnx.Param
    frozen = [nnx.PathContains(part) for name in freeze for part in [name.split("/")[-1]]]
    return nnx.All(nnx.Param, nnx.Not(nnx.Any(*frozen)))


def make_steps(loss: str | Callable, metrics: Sequence[str | Callable] = ()):
    """Jitted ``train_step(model, optimizer, x, y, mask) -> loss`` and
    ``eval_step(model, x, y, mask) -> {"loss": ..., metric: ...}``."""
    loss_fn = get_loss(loss)
    metric_fns = {m if isinstance(m, str) else m.__name__: get_metric(m) for m in metrics}

    def outputs(model, x):
        y = model(*x)
        return y[0] if isinstance(y, tuple) else y

    @nnx.jit
    def train_step(model, optimizer, x, y, mask):
        def objective(m):
            return loss_fn(outputs(m, x), y, mask)

        value, grads = nnx.value_and_grad(objective, argnums=nnx.DiffState(0, optimizer.wrt))(model)
        optimizer.update(model, grads)
        return value

    @nnx.jit
    def eval_step(model, x, y, mask):
        pred = outputs(model, x)
        result = {"loss": loss_fn(pred, y, mask)}
        result.update({k: f(pred, y, mask) for k, f in metric_fns.items()})
        return result

    return train_step, eval_step


def _progress(epoch, epochs, step, steps, loss, stream):
    width = 24
    filled = int(width * step / max(steps, 1))
    stream.write(
        f"\repoch {epoch}/{epochs} [{'#' * filled}{'.' * (width - filled)}] "
        f"{step}/{steps} loss {loss:.5f}"
    )
    stream.flush()


def fit(
    model,
    train: Data,
    val: Data | None = None,
    *,
    loss: str | Callable = "mse",
    metrics: Sequence[str | Callable] = (),
    optimizer: optax.GradientTransformation | None = None,
    epochs: int = 10,
    batch_size: int = 32,
    seed: int = 0,
    freeze: Sequence[str] = (),
    clip_norm: float | None = None,
    patience: int | None = None,
    mesh: jax.sharding.Mesh | None = None,
    log_path: str | os.PathLike | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    progress: bool = True,
    stream=None,
) -> History:
    """Train ``model`` (an NNX module, e.g. from ``load_keras``) in place; return its History.

    Args:
      train, val: :class:`Data`. ``val`` enables validation each epoch and early stopping.
      loss, metrics: names (``"mse"``, ``"sparse_categorical_crossentropy"``, ``"accuracy"``...)
        or callables ``(pred, target, mask) -> scalar``; masks are respected.
      optimizer: any optax transformation (schedules included); default ``adam(1e-3)``.
      seed: the PRNG seed of shuffling and of dropout; the same seed gives the same run.
      freeze: layer names whose weights stay fixed (e.g. fine-tune only the head).
      clip_norm: clip gradients by global norm.
      patience: stop after this many epochs without a better validation loss.
      mesh: a ``jax.sharding.Mesh``; the batch is split over its first axis (data parallel).
      log_path: ``.jsonl`` or ``.csv`` file receiving one row per epoch.
      checkpoint_dir: orbax checkpoints, one per epoch; an existing one is resumed from.
      progress: a progress bar with the live loss on ``stream`` (stderr by default).

    Returns:
      :class:`History`. The model ends in eval mode.
    """
    stream = stream or sys.stderr
    tx = optimizer or optax.adam(1e-3)
    if clip_norm is not None:
        tx = optax.chain(optax.clip_by_global_norm(clip_norm), tx)
    model.train()
    opt = nnx.Optimizer(model, tx, wrt=trainable_filter(freeze))
    train_step, eval_step = make_steps(loss, metrics)
    steps = len(train) // batch_size
    if steps == 0:
        raise UnsupportedOptionError(
            f"batch_size={batch_size} is larger than the {len(train)} training examples."
        )
    if mesh is not None:
        _replicate(model, opt, mesh)
    key = jax.random.key(seed)
    history, start_epoch = History(), 0
    ckpt = None
    if checkpoint_dir is not None:
        from jaxlstm._src.train.checkpoint import Checkpoints

        ckpt = Checkpoints(checkpoint_dir)
        restored = ckpt.restore_latest(model, opt)
        if restored is not None:
            start_epoch, history = restored
    stale = 0
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), len(train)))
        _seed_dropout(model, jax.random.fold_in(jax.random.fold_in(key, 1 << 20), epoch))
        total = 0.0
        for step in range(steps):
            x, y, mask = train.take(order[step * batch_size : (step + 1) * batch_size])
            x, y, mask = _place((x, y, mask), mesh)
            value = float(train_step(model, opt, x, y, mask))
            total += value
            if progress:
                _progress(epoch + 1, epochs, step + 1, steps, total / (step + 1), stream)
        row = {"epoch": epoch + 1, "step": (epoch + 1) * steps, "loss": total / steps}
        if val is not None:
            model.eval()
            row.update(
                {
                    f"val_{k}": v
                    for k, v in _evaluate(eval_step, model, val, batch_size, mesh).items()
                }
            )
            model.train()
        row["seconds"] = time.perf_counter() - t0
        history.epochs.append(row)
        if progress:
            extra = f" val_loss {row['val_loss']:.5f}" if "val_loss" in row else ""
            stream.write(f"{extra}\n")
        if log_path is not None:
            _log(log_path, row)
        if val is not None:
            if row["val_loss"] < history.best_val_loss:
                history.best_val_loss, stale = row["val_loss"], 0
            else:
                stale += 1
        if ckpt is not None:
            ckpt.save(epoch + 1, model, opt, history)
        if patience is not None and val is not None and stale >= patience:
            history.stopped_early = True
            break
    model.eval()
    return history


def evaluate(model, data: Data, *, loss="mse", metrics=(), batch_size=256, mesh=None) -> dict:
    """Loss and metrics of ``model`` on ``data`` (eval mode), averaged over examples."""
    model.eval()
    _, eval_step = make_steps(loss, metrics)
    return _evaluate(eval_step, model, data, batch_size, mesh)


def _evaluate(eval_step, model, data: Data, batch_size, mesh) -> dict:
    sums, count = {}, 0
    for start in range(0, len(data), batch_size):
        idx = np.arange(start, min(start + batch_size, len(data)))
        x, y, mask = _place(data.take(idx), mesh if len(idx) % _size(mesh) == 0 else None)
        for k, v in eval_step(model, x, y, mask).items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(idx)
        count += len(idx)
    return {k: v / count for k, v in sums.items()}


def _size(mesh) -> int:
    return 1 if mesh is None else mesh.devices.shape[0]


def _place(batch, mesh):
    if mesh is None:
        return jax.tree.map(jnp.asarray, batch)
    sharding = NamedSharding(mesh, P(mesh.axis_names[0]))
    return jax.tree.map(lambda a: jax.device_put(np.asarray(a), sharding), batch)


def _replicate(model, opt, mesh):
    replicated = NamedSharding(mesh, P())
    for node in (model, opt):
        state = nnx.state(node)
        nnx.update(node, jax.device_put(state, replicated))


def _seed_dropout(model, key):
    """Re-key every dropout stream from the run's seed and the epoch (deterministic, resumable)."""
    for i, (_, stream) in enumerate(nnx.iter_graph(model)):
        if isinstance(stream, nnx.RngStream):
            stream.key[...] = jax.random.fold_in(key, i)
            stream.count[...] = jnp.zeros_like(stream.count[...])


def _log(path, row: dict) -> None:
    path = os.fspath(path)
    if path.endswith(".csv"):
        new = not os.path.exists(path)
        with open(path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
    else:
        with open(path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
