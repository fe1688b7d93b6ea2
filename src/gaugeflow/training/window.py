"""Host syncs off the training loop: steps run with their losses left on the device, read once per window.

Reading a loss (``float(loss)``) or testing it for finiteness on the host stalls an accelerator until
the step has finished. :meth:`Trainer.fit <gaugeflow.training.Trainer.fit>` therefore runs *windows*
of steps: every step of a window is applied (optimiser step and EMA update) with its loss and
gradient norm kept as device tensors, and at the end of the window all of them are read in one
transfer. A window ends after :data:`CHECK_EVERY` steps (``Trainer.check_every``), or earlier at the
next step where something needs the numbers (a validation, a checkpoint, the last step); the
metrics CSV and the progress bar are updated at window ends.

Non-finite steps keep their meaning exactly: if any step of a window had a non-finite loss or
gradient norm, the trainer returns to the state saved at the start of the window (weights,
optimiser, EMA, random streams) and replays the window one checked step at a time
(:meth:`Trainer.train_step <gaugeflow.training.Trainer.train_step>`), which skips the non-finite
steps and raises ``NonFiniteLossError`` at the very step the old per-step check did. On the CPU the
replayed finite steps are bit-for-bit the steps of the window; on CUDA they are the same up to the
device's own run-to-run nondeterminism (atomic adds).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import torch

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

__all__ = ["CHECK_EVERY", "StepWindow", "next_stop"]

#: default number of training steps between two reads of the losses (finiteness checks) in ``fit``
CHECK_EVERY = 32


@dataclass
class _Snapshot:
    """Everything a window's steps change, as it was at the window's start."""

    model: dict
    optimizer: dict
    ema: dict
    ema_updates: int
    stream: torch.Tensor
    rng: torch.Tensor
    cuda_rng: Optional[torch.Tensor]

    @classmethod
    def take(cls, tr: "Trainer") -> "_Snapshot":
        dev = tr.env.device
        return cls({k: v.detach().clone() for k, v in tr.model.state_dict().items()},
                   copy.deepcopy(tr.optimizer.state_dict()), {k: v.clone() for k, v in tr.ema.shadow.items()},
                   tr.ema.updates, tr.stream_state(), torch.get_rng_state(),
                   torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None)

    def restore(self, tr: "Trainer") -> None:
        tr.model.load_state_dict(self.model)
        tr.optimizer.load_state_dict(self.optimizer)
        tr.ema.load(self.ema, self.ema_updates)
        tr.set_stream_state(self.stream)  # steps built ahead are dropped and rebuilt from here
        torch.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state(self.cuda_rng, tr.env.device)


class StepWindow:
    """The applied steps whose losses have not been read yet, and the state to return to.

    Attributes:
        records: ``(loss, grad_norm, lr)`` per pending step; ``loss`` and ``grad_norm`` are 0-d device tensors.
    """

    def __init__(self):
        self.records: list[tuple[torch.Tensor, torch.Tensor, float]] = []
        self._snapshot: Optional[_Snapshot] = None

    @property
    def pending(self) -> int:
        """Steps applied but not yet in the trainer's history."""
        return len(self.records)

    def run(self, tr: "Trainer", end: int) -> float:
        """Advance ``tr`` to step ``end`` with one host read of the losses; returns the last step's loss."""
        if end - tr.step <= 1:
            return tr.train_step()
        self._snapshot = _Snapshot.take(tr)
        while tr.step < end:
            self.records.append(tr.unchecked_step())
        return self.settle(tr)

    def settle(self, tr: "Trainer") -> Optional[float]:
        """Read the pending losses (one host sync) into ``tr.history``; replay the window if one was not finite.

        Returns the last loss, or ``None`` when nothing was pending.
        """
        if not self.records:
            return None
        records, snapshot = self.records, self._snapshot
        self.records, self._snapshot = [], None
        values = torch.stack([torch.stack([loss.double(), gnorm.double()]) for loss, gnorm, _ in records]).tolist()
        if all(math.isfinite(loss) and math.isfinite(gnorm) for loss, gnorm in values):
            history = tr.history
            for (loss, gnorm), (_, _, lr) in zip(values, records):
                history.loss.append(loss)
                history.grad_norm.append(gnorm)
                history.lr.append(lr)
            tr.consecutive_nonfinite = 0
            return values[-1][0]
        snapshot.restore(tr)
        loss = None
        for _ in records:
            loss = tr.train_step()
        return loss


def next_stop(tr: "Trainer", check_every: int) -> int:
    """Where ``fit``'s next window ends: after ``check_every`` steps, at the last step, or at the first
    step before that where a validation or a checkpoint is due (``fit`` acts there on settled numbers)."""
    cfg = tr.config
    limit = min(cfg.steps, tr.step + max(1, int(check_every)))
    for s in range(tr.step + 1, limit):
        if tr._val_due(s) or (tr.out is not None and cfg.checkpoint_every and s % cfg.checkpoint_every == 0):
            return s
    return limit
