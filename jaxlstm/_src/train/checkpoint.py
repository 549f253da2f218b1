"""Orbax checkpoints of a training run, in two folders of ``checkpoint_dir``:

* ``latest/``: the newest epoch's whole state (weights, BatchNorm statistics, optimizer state)
  and the run's record (history, early-stopping state, the run's fingerprint), for resuming;
* ``best/``: the weights of the best epoch by the monitored value, kept by orbax's ``best_fn``.

A checkpoint is restored only into the same model and run settings: the fingerprint written
with it (model config and weight shapes, trainable weights, optimizer state layout, loss,
batch size, seed...) is compared first, and a difference is an error naming it, never a raw
orbax error. This module knows nothing of ``fit``: it stores arrays and a JSON record.

Over several processes every process calls the same methods on the same (shared) folder and
orbax does the multi-process work: each array's shards are written once, by the process
holding them, the metadata by process 0, with orbax's barriers between. A restore places the
arrays replicated on the run's mesh, whatever mesh or process count wrote them (orbax reads
each process's part from the saved arrays).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding, SingleDeviceSharding
from jax.sharding import PartitionSpec as P

from jaxlstm._src.errors import JaxLSTMError


class CheckpointError(JaxLSTMError, ValueError):
    """A checkpoint folder that cannot be used as asked (resume without ``resume=True``, a
    checkpoint of another model or run)."""


def _is_key(leaf) -> bool:
    return hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def saved_leaves(tree) -> list:
    """The leaves a checkpoint keeps: every array except PRNG keys (dropout is re-keyed from the
    seed and the epoch at each epoch's start, so keys need no saving)."""
    return [leaf for leaf in jax.tree.leaves(tree) if not _is_key(leaf)]


def layout(tree) -> str:
    """A digest of a tree's structure, shapes and dtypes: equal layouts restore into each other."""
    parts = [str(jax.tree.structure(tree))]
    parts += [f"{np.shape(x)}:{np.dtype(x.dtype).name}" for x in saved_leaves(tree)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _barriers(name: str):
    """Orbax's multi-process options with barriers of their own: the two managers save the
    same step, and equal barrier names would collide across processes."""
    return ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=f"jaxlstm_{name}")


class Checkpoints:
    """The checkpoint folder of one run (see the module docstring)."""

    def __init__(
        self, directory: str | os.PathLike, monitor: str | None, maximize: bool, mesh=None
    ):
        self.directory = Path(os.path.abspath(os.fspath(directory)))
        self.mesh = mesh
        self.monitor = monitor
        self._latest = None
        self._best = None
        self._maximize = maximize

    def is_empty(self) -> bool:
        return not self.directory.exists() or not any(self.directory.iterdir())

    def _managers(self):
        if self._latest is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._latest = ocp.CheckpointManager(
                self.directory / "latest",
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=1, create=True, multiprocessing_options=_barriers("latest")
                ),
            )
            monitor = self.monitor
            self._best = ocp.CheckpointManager(
                self.directory / "best",
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=1,
                    create=True,
                    best_fn=(lambda metrics: metrics[monitor]) if monitor else None,
                    best_mode="max" if self._maximize else "min",
                    multiprocessing_options=_barriers("best"),
                ),
            )
        return self._latest, self._best

    def record(self) -> dict | None:
        """The JSON record of the newest checkpoint, or None when there is none."""
        if self.is_empty():
            return None
        latest, _ = self._managers()
        step = latest.latest_step()
        if step is None:
            raise CheckpointError(
                f"{self.directory} is not empty but holds no jaxlstm checkpoint (no latest/ "
                "step); choose an empty folder for checkpoint_dir, or delete this one."
            )
        try:
            return dict(
                latest.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
            )
        except Exception as err:  # orbax raises many types for damaged folders
            raise CheckpointError(
                f"{self.directory}: cannot read the checkpoint record of epoch {step} "
                f"({type(err).__name__}: {err}); the folder is damaged: delete it to start over."
            ) from None

    def save(self, epoch: int, state, meta: dict, weights=None, value: float | None = None):
        """Write epoch ``epoch``: ``state`` (any pytree of arrays) and ``meta`` (JSON) to
        ``latest/``; with ``weights``, also to ``best/`` scored by ``value``."""
        latest, best = self._managers()
        leaves = {str(i): self._host(a) for i, a in enumerate(saved_leaves(state))}
        latest.save(
            epoch,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(leaves), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )
        if weights is not None:
            w = {str(i): self._host(a) for i, a in enumerate(saved_leaves(weights))}
            best.save(
                epoch,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(w), meta=ocp.args.JsonSave(meta)
                ),
                metrics={self.monitor: float(value)} if self.monitor else None,
                force=True,
            )
        latest.wait_until_finished()
        best.wait_until_finished()

    @staticmethod
    def _host(a):
        """One process's arrays as numpy; a global array as it is, for orbax to write its
        shards from the processes that hold them."""
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            return a
        return np.asarray(a)

    def _restore(self, manager, step, like):
        target = saved_leaves(like)
        if self.mesh is None:
            sharding = SingleDeviceSharding(jax.local_devices()[0])
        else:
            sharding = NamedSharding(self.mesh, P())
        abstract = {
            str(i): jax.ShapeDtypeStruct(np.shape(a), a.dtype, sharding=sharding)
            for i, a in enumerate(target)
        }
        try:
            restored = manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
            ).state
        except Exception as err:
            raise CheckpointError(
                f"{manager.directory}: cannot restore epoch {step} ({type(err).__name__}: {err}); "
                "the folder is damaged or from another run: delete it to start over."
            ) from None
        values = iter(restored[str(i)] for i in range(len(target)))
        leaves, treedef = jax.tree.flatten(like)
        return jax.tree.unflatten(
            treedef, [leaf if _is_key(leaf) else next(values) for leaf in leaves]
        )

    def restore_latest(self, like):
        """The newest state, in the structure of ``like`` (whose layout the caller checked)."""
        latest, _ = self._managers()
        return self._restore(latest, latest.latest_step(), like)

    def restore_best(self, like):
        """The best epoch's weights, in the structure of ``like``; None when none was saved."""
        _, best = self._managers()
        step = best.best_step() if self.monitor else best.latest_step()
        return None if step is None else self._restore(best, step, like)


def check_fingerprint(directory, saved: dict, current: dict) -> None:
    """A clear error naming the first setting the checkpoint was written with that differs."""
    labels = {
        "model": "another model (its config or weight shapes differ)",
        "trainable": "other trainable weights (freeze= differs)",
        "optimizer": "another optimizer (its state has another layout)",
    }
    for key in current:
        if saved.get(key) != current[key]:
            what = labels.get(key, f"{key}={saved.get(key)!r} (this run: {current[key]!r})")
            raise CheckpointError(
                f"{directory} holds a checkpoint written for {what}; resume it with the same "
                "model and settings, or start over with an empty checkpoint_dir."
            )
