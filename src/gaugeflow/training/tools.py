"""Small pieces of the training loop: learning-rate schedules, the weight EMA, the history, its CSV log
(always written) and the optional TensorBoard log (``logger="tensorboard"``, the ``tensorboard`` extra)."""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from .checkpoint import atomic_write_bytes

__all__ = ["lr_factor", "EMA", "History", "write_metrics_csv", "METRICS_NAME", "LOGGERS", "TENSORBOARD_NAME",
           "TensorBoardLog", "require_tensorboard", "plateaued"]

METRICS_NAME = "metrics.csv"
#: values of ``TrainConfig.logger``: metrics.csv alone, or metrics.csv and TensorBoard event files
LOGGERS = ("csv", "tensorboard")
#: folder of a run that holds the TensorBoard event files (``tensorboard --logdir RUN/tensorboard``)
TENSORBOARD_NAME = "tensorboard"
_COLUMNS = ("step", "loss", "grad_norm", "lr", "val_nll")


def lr_factor(step: int, total: int, schedule: str, warmup: int = 0, final: float = 0.0) -> float:
    """Multiplier of the base learning rate for the 0-based optimisation step ``step``.

    Linear warm-up ``(step + 1) / warmup`` for ``step < warmup``; then ``constant`` (1), ``cosine``
    ``f + (1 − f)(1 + cos πp)/2`` or ``linear`` ``1 − (1 − f)p`` with progress
    ``p = (step − warmup) / (total − warmup)`` clipped to [0, 1] and ``f = final``.
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    p = min(1.0, max(0.0, (step - warmup) / max(1, total - warmup)))
    if schedule == "cosine":
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * p))
    if schedule == "linear":
        return 1.0 - (1.0 - final) * p
    raise ValueError(f"unknown schedule {schedule!r}; expected constant, cosine or linear")


def plateaued(values: Sequence[float], tol: float, min_evals: int) -> bool:
    """The plateau criterion of early stopping (``TrainConfig.plateau_tol``): with ``n ≥ min_evals``
    validation values, the best (lowest) of the last ``⌈n/4⌉`` is not below the best before them by more
    than ``tol``. A non-finite value counts as ``+inf`` (it never improves on anything)."""
    vals = [v if math.isfinite(v) else math.inf for v in values]
    n = len(vals)
    if n < max(2, min_evals):
        return False
    tail = math.ceil(n / 4)
    return min(vals[-tail:]) > min(vals[:-tail]) - tol


class EMA:
    """Exponential moving average of a module's floating-point state (parameters and buffers).

    ``θ̄ ← d θ̄ + (1 − d) θ`` with the warm-up ``d = min(decay, (1 + n) / (10 + n))`` after ``n``
    updates, so early averages are not dominated by the random initialisation. ``decay = 0``
    makes ``θ̄`` track ``θ`` exactly.

    The floating-point averages of one dtype and device live in one flat tensor (``shadow``'s entries
    are views into it), so an update is one ``torch.cat`` and one ``lerp_`` instead of one ``lerp_`` per
    tensor: elementwise, hence the per-tensor average bit for bit (``tests/test_trainer_route.py``).
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        state = {k: v.detach() for k, v in model.state_dict().items()}
        self.shadow = {k: v.clone() for k, v in state.items() if not v.is_floating_point()}
        self._other = list(self.shadow)  # integer/bool entries: copied, not averaged
        #: (flat averages, names) per dtype and device of the floating-point entries
        self._flat: list[tuple[torch.Tensor, list[str]]] = []
        kinds: dict[tuple, list[str]] = {}
        for k, v in state.items():
            if v.is_floating_point():
                kinds.setdefault((v.dtype, v.device), []).append(k)
        for names in kinds.values():
            flat = torch.cat([state[k].reshape(-1) for k in names])
            self._flat.append((flat, names))
            for k, view in zip(names, flat.split([state[k].numel() for k in names])):
                self.shadow[k] = view.view_as(state[k])
        self.shadow = {k: self.shadow[k] for k in state}  # the model's order

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        state = model.state_dict()
        for flat, names in self._flat:
            flat.lerp_(torch.cat([state[k].reshape(-1) for k in names]), 1.0 - d)
        for name in self._other:
            self.shadow[name].copy_(state[name])
        self.updates += 1

    def load(self, shadow: dict[str, torch.Tensor], updates: int) -> None:
        """Restore averages (e.g. from a checkpoint); names and shapes must match the model's."""
        for name, value in self.shadow.items():
            value.copy_(shadow[name])
        self.updates = updates


@dataclass
class History:
    """Per-step training record. ``val`` holds ``(step, nll)`` pairs; ``skipped`` counts non-finite steps."""

    loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    val: list[tuple[int, float]] = field(default_factory=list)
    skipped: int = 0

    @property
    def steps(self) -> int:
        return len(self.loss)

    def tensors(self) -> dict[str, torch.Tensor]:
        """Float64 tensors for a checkpoint (python floats round-trip exactly)."""
        t = lambda xs: torch.tensor(xs, dtype=torch.float64)  # noqa: E731
        return {"history/loss": t(self.loss), "history/grad_norm": t(self.grad_norm), "history/lr": t(self.lr),
                "history/val": t(self.val).reshape(-1, 2)}

    @classmethod
    def from_tensors(cls, group: dict[str, torch.Tensor], skipped: int) -> "History":
        val = [(int(s), float(v)) for s, v in group["val"].tolist()]
        return cls(group["loss"].tolist(), group["grad_norm"].tolist(), group["lr"].tolist(), val, skipped)

    def as_dict(self) -> dict:
        return {"loss": self.loss, "grad_norm": self.grad_norm, "lr": self.lr,
                "val": [list(p) for p in self.val], "skipped": self.skipped}


def _row(step: int, history: History, val: dict[int, float]) -> list[str]:
    i = step - 1
    return [str(step), repr(history.loss[i]), repr(history.grad_norm[i]), repr(history.lr[i]),
            repr(val[step]) if step in val else ""]


def write_metrics_csv(path: Path, history: History, log_every: int, total: int, start: int = 0,
                      handle: Optional[io.TextIOBase] = None) -> None:
    """Write CSV rows ``step,loss,grad_norm,lr,val_nll``: every ``log_every``-th step (``0``: none),
    each validation and the last step ``total``.

    With ``handle`` the rows for steps ``> start`` are appended to an open file; otherwise the whole
    file is rewritten atomically from ``history`` (used when a run resumes). Floats are written with
    ``repr`` so they read back bit-for-bit.
    """
    val = dict(history.val)
    keep = [s for s in range(start + 1, history.steps + 1)
            if (log_every and s % log_every == 0) or s in val or s == total]
    buf = io.StringIO() if handle is None else handle
    writer = csv.writer(buf, lineterminator="\n")
    if handle is None:
        writer.writerow(_COLUMNS)
    for step in keep:
        writer.writerow(_row(step, history, val))
    if handle is None:
        atomic_write_bytes(path, buf.getvalue().encode())
    else:
        handle.flush()


def require_tensorboard():
    """``torch.utils.tensorboard.SummaryWriter``, or a one-line ``MissingExtraError`` naming the extra."""
    from ..data.real import MissingExtraError

    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:  # torch.utils.tensorboard imports the tensorboard package
        raise MissingExtraError(
            "logger 'tensorboard' needs the optional package 'tensorboard', which could not be imported "
            f"({err}); install it with: pip install 'gaugeflow[tensorboard]' (or use --logger csv)") from None
    return SummaryWriter


class TensorBoardLog:
    """TensorBoard event files of a run in ``folder`` (``RUN/tensorboard``), beside ``metrics.csv``.

    Scalars: ``train/loss``, ``train/grad_norm``, ``train/lr`` per step (the values of the
    :class:`History`, already on the host: no extra device sync), ``train/steps_per_s`` per window of
    steps, ``val/nll`` (nats) per validation; and, when ``figure`` is given, its image
    (``figure(model) -> uint8 [H, W, 3]`` or ``None``) as ``density`` at each validation.

    Args:
        folder: the event-file folder (created).
        purge_step: the first step this writer logs after a resume: TensorBoard drops the events of a
            killed run from this step on (``None``: a new run).
        figure: picture of the (EMA) model at a validation, e.g. from :mod:`gaugeflow.viz`.
    """

    def __init__(self, folder: Path, purge_step: Optional[int] = None,
                 figure: Optional[Callable[[torch.nn.Module], Any]] = None):
        writer = require_tensorboard()
        self.writer = writer(log_dir=str(folder), purge_step=purge_step)
        self.figure = figure

    def steps(self, history: History, start: int, seconds: float) -> None:
        """Scalars of the steps ``start + 1 .. history.steps`` that took ``seconds`` of wall time."""
        for step in range(start + 1, history.steps + 1):
            self.writer.add_scalar("train/loss", history.loss[step - 1], step)
            self.writer.add_scalar("train/grad_norm", history.grad_norm[step - 1], step)
            self.writer.add_scalar("train/lr", history.lr[step - 1], step)
        if history.steps > start and seconds > 0:
            self.writer.add_scalar("train/steps_per_s", (history.steps - start) / seconds, history.steps)

    def validation(self, step: int, nll: float, model: Optional[torch.nn.Module] = None) -> None:
        """The validation NLL at ``step`` and, with a ``figure`` and a ``model``, the model's picture."""
        self.writer.add_scalar("val/nll", nll, step)
        image = self.figure(model) if self.figure is not None and model is not None else None
        if image is not None:
            self.writer.add_image("density", image, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
