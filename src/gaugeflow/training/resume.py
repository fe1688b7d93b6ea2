"""The trainer's front door and its resume: inputs checked before anything is touched, checkpoint
metadata checked field by field before anything is restored.

Both raise one-line errors that say what was expected and what arrived: ``ValueError``/``TypeError``
for the caller's arguments, :class:`~gaugeflow.data.base.DataError` for unusable data,
:class:`~gaugeflow.training.checkpoint.CheckpointError` (naming the file) for a checkpoint.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import torch

from ..data.base import DataError, ManifoldData
from .checkpoint import Checkpoint, CheckpointError, meta_bytes, meta_int
from .config import TrainConfig
from .tools import History

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["check_fit_inputs", "restore_state", "TRAJECTORY_KEYS"]

#: settings that change the sequence of updates; a resumed run must keep them
TRAJECTORY_KEYS = ("seed", "batch_size", "lr", "optimizer", "weight_decay", "schedule", "warmup_steps",
                   "final_lr_fraction", "ema_decay", "grad_clip", "data", "n_data", "dtype",
                   "coupling", "ot_batch", "ot_exact_max", "path", "path_chunk")
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed accepts [0, 2**64)


def check_fit_inputs(model: Any, data: Any, cfg: TrainConfig, out: Optional[str | Path], resume: Any,
                     overwrite: Any) -> tuple[TrainConfig, Any]:
    """Validate ``fit``'s arguments; returns ``(config in the model's precision, manifold)``.

    Raises:
        TypeError: wrong argument types; a model that is not float32/float64.
        ValueError: inconsistent arguments (``resume`` without a run folder, seed out of range, ...).
        DataError: an empty training split, or no validation points while ``val_size > 0``.
    """
    if not isinstance(data, ManifoldData):
        raise TypeError(f"fit: data must be a gaugeflow ManifoldData, got {type(data).__name__}")
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"fit: model must be a torch.nn.Module, got {type(model).__name__}")
    manifold = getattr(model, "manifold", None)
    if manifold is None or manifold != data.manifold:
        raise ValueError(f"fit: the model lives on {manifold} but the data on {data.manifold}")
    if out is not None and not isinstance(out, (str, Path)):
        raise TypeError(f"fit: out must be a folder path or None, got {type(out).__name__}")
    if not isinstance(resume, (bool, str, Path)) or not isinstance(overwrite, bool):
        raise TypeError(f"fit: resume must be a bool or a checkpoint path and overwrite a bool, got "
                        f"resume={resume!r}, overwrite={overwrite!r}")
    if resume is True and out is None:
        raise ValueError("fit: resume=True continues the run in `out`, but out is None; pass out=<run folder> "
                         "or resume=<checkpoint path>")
    if resume is not False and overwrite:
        raise ValueError("fit: resume and overwrite exclude each other")
    floats = [p.dtype for p in model.parameters() if p.is_floating_point()]
    bad = sorted({str(d) for d in floats} - {"torch.float32", "torch.float64"})
    if bad:
        raise TypeError(f"fit: the model's parameters are {', '.join(bad)}; gaugeflow trains in float32 or float64 "
                        f"(convert with model.float() or model.double())")
    if floats and floats[0] != cfg.torch_dtype:
        cfg = cfg.replace(dtype=str(floats[0]).removeprefix("torch."))  # train in the model's own precision
    if cfg.seed > MAX_SEED:
        raise ValueError(f"fit: seed must be in [0, 2**64 - 1], got {cfg.seed}")
    if len(data.train) == 0:
        raise DataError(f"fit: data set {data.name!r} has no training points (train split of shape "
                        f"{tuple(data.train.shape)})")
    if cfg.val_size and len(data.val) == 0:
        raise DataError(f"fit: val_size={cfg.val_size} but data set {data.name!r} has no validation points; "
                        f"pass val_size=0 to train without validation")
    return cfg, manifold


def _history(ckpt: Checkpoint, skipped: int) -> History:
    group = ckpt.group("history")
    try:
        history = History.from_tensors(group, skipped)
    except (KeyError, ValueError, TypeError, RuntimeError):
        raise CheckpointError(f"{ckpt.path}: history tensors missing or malformed (expected history/loss, "
                              f"grad_norm, lr, val; got {', '.join(sorted(group)) or 'none'})") from None
    n = ckpt.step
    if not (len(history.loss) == len(history.grad_norm) == len(history.lr) == n):
        raise CheckpointError(f"{ckpt.path}: history does not match the step: expected {n} entries per series, "
                              f"got loss {len(history.loss)}, grad_norm {len(history.grad_norm)}, lr {len(history.lr)}")
    return history


def restore_state(trainer: "Trainer", ckpt: Checkpoint) -> None:
    """Check ``ckpt``'s metadata against ``trainer`` and restore EMA, streams, counters and history.

    Raises:
        CheckpointError: different trajectory settings, or a missing / mistyped / cut metadata field.
        ValueError: ``trainer.config.steps`` is below the steps the checkpoint has already done.
    """
    cfg = trainer.config
    stored = ckpt.meta.get("config", {})
    if not isinstance(stored, dict):
        raise CheckpointError(f"{ckpt.path}: metadata field 'config': expected a mapping, got {type(stored).__name__}")
    diff = [f"{k}={stored.get(k)!r} in checkpoint vs {getattr(cfg, k)!r}"
            for k in TRAJECTORY_KEYS if k in stored and stored[k] != getattr(cfg, k)]
    if diff:
        raise CheckpointError(f"{ckpt.path}: cannot resume with different training settings ({'; '.join(diff)})")
    if cfg.steps < ckpt.step:
        raise ValueError(f"resume: the run has already done {ckpt.step} steps, more than steps={cfg.steps}; "
                         f"give steps >= {ckpt.step} to continue it")
    skipped = meta_int(ckpt, "skipped", maximum=ckpt.step)
    nonfinite = meta_int(ckpt, "consecutive_nonfinite", maximum=ckpt.step)
    updates = meta_int(ckpt, "ema_updates", maximum=ckpt.step)
    stream = meta_bytes(ckpt, "rng.stream", trainer.generator.get_state())
    global_rng = meta_bytes(ckpt, "rng.torch", torch.get_rng_state())
    history = _history(ckpt, skipped)
    ema = ckpt.weights(trainer.model, "ema")
    own = trainer.ema.shadow
    if sorted(ema) != sorted(own) or any(ema[k].shape != own[k].shape for k in own):
        raise CheckpointError(f"{ckpt.path}: EMA weights missing, or named or shaped differently from the model's")
    try:
        trainer.generator.set_state(stream)
        torch.set_rng_state(global_rng)
    except RuntimeError as err:
        raise CheckpointError(f"{ckpt.path}: metadata field 'rng': not a valid generator state "
                              f"({str(err).splitlines()[0]})") from None
    trainer.ema.load(ema, updates)
    trainer.history, trainer.consecutive_nonfinite = history, nonfinite
