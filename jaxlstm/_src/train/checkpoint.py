"""Orbax checkpoints of a training run: weights, BatchNorm statistics, optimizer state and the
epoch history, one per epoch, so ``fit(..., checkpoint_dir=...)`` resumes exactly."""

from __future__ import annotations

import os

import orbax.checkpoint as ocp
from flax import nnx

_WEIGHTS = (nnx.Param, nnx.BatchStat)


class Checkpoints:
    """A folder of per-epoch checkpoints (the newest three are kept)."""

    def __init__(self, directory: str | os.PathLike, keep: int = 3):
        self.directory = os.path.abspath(os.fspath(directory))
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        )

    @staticmethod
    def _state(model, opt) -> dict:
        return {
            "model": nnx.to_pure_dict(nnx.state(model, nnx.Any(*_WEIGHTS))),
            "optimizer": nnx.to_pure_dict(nnx.state(opt, nnx.Not(nnx.RngState))),
        }

    def save(self, epoch: int, model, opt, history) -> None:
        meta = {
            "epochs": history.epochs,
            "best_val_loss": history.best_val_loss,
            "stopped_early": history.stopped_early,
        }
        self.manager.save(
            epoch,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(self._state(model, opt)), meta=ocp.args.JsonSave(meta)
            ),
        )
        self.manager.wait_until_finished()

    def restore_latest(self, model, opt):
        """Load the newest checkpoint into ``model`` and ``opt``; ``(epoch, History)`` or None."""
        from jaxlstm._src.train.fit import History

        epoch = self.manager.latest_step()
        if epoch is None:
            return None
        restored = self.manager.restore(
            epoch,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(self._state(model, opt)), meta=ocp.args.JsonRestore()
            ),
        )
        for node, key, kinds in (
            (model, "model", nnx.Any(*_WEIGHTS)),
            (opt, "optimizer", nnx.Not(nnx.RngState)),
        ):
            state = nnx.state(node, kinds)
            nnx.replace_by_pure_dict(state, restored.state[key])
            nnx.update(node, state)
        meta = restored.meta
        history = History(
            list(meta["epochs"]), float(meta["best_val_loss"]), bool(meta["stopped_early"])
        )
        return epoch, history
