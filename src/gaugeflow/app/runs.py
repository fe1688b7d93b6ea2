"""Reopen a finished (or interrupted) training run from its directory (application layer).

It lives beside the name tables of :mod:`gaugeflow.app.registry` because reopening a run means
turning the names its checkpoint stores back into a manifold, a data set and a model.

A run directory holds ``checkpoint.safetensors`` (weights, EMA, optimiser, config, history),
``config.json`` and ``metrics.csv``. :func:`load_run` rebuilds manifold, data set and model from the
stored config and loads the (EMA) weights, so evaluation, sampling and plotting need nothing else.

Examples:
    >>> run = load_run("runs/sphere")           # doctest: +SKIP
    >>> run.model(run.data.test[:5], 0.5).shape  # doctest: +SKIP
    torch.Size([5, 3])
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ..data.base import ManifoldData
from ..geometry.manifold import Manifold
from ..training.checkpoint import BEST_NAME, CHECKPOINT_NAME, Checkpoint, CheckpointError, check_compatible, meta_int
from ..training.checkpoint import read_checkpoint
from ..training.config import TrainConfig
from ..training.tools import History
from .registry import build_data, build_manifold, build_model, check_names

__all__ = ["Run", "load_run"]


@dataclass
class Run:
    """A reopened run: its config, manifold, data, model (weights loaded, eval mode) and history."""

    path: Path
    config: TrainConfig
    manifold: Manifold
    data: ManifoldData
    model: torch.nn.Module
    history: History
    checkpoint: Checkpoint


def load_run(path: str | Path, ema: bool = True, device: Optional[str | torch.device] = None,
             weights: str = "last") -> Run:
    """Rebuild the run stored in directory ``path``.

    Args:
        path: a run directory (or the checkpoint file inside it).
        ema: load the EMA weights when the checkpoint has them (the default), else the raw weights.
        device: where to put the model and data (default: CPU).
        weights: ``"last"``: the checkpoint's (``checkpoint.safetensors``); ``"best"``: the EMA weights of
            the lowest validation NLL (``best.safetensors``, kept by the trainer; ``Run.checkpoint.step``
            is then that validation's step and ``Run.history`` ends there).

    Raises:
        FileNotFoundError: no such directory / no checkpoint in it / no best weights in it.
        CheckpointError: the checkpoint is truncated, corrupt (digest), foreign, lacks a usable config,
            or holds non-finite weights.
        DataError: the run's data set no longer passes its checks.
    """
    path = Path(path)
    if weights not in ("last", "best"):
        raise ValueError(f"load_run: weights must be 'last' or 'best', got {weights!r}")
    if not path.exists():
        raise FileNotFoundError(f"run directory not found: {path}")
    if path.is_dir() and not (path / CHECKPOINT_NAME).is_file():
        raise FileNotFoundError(f"no {CHECKPOINT_NAME} in {path} (is it a gaugeflow run directory?)")
    if weights == "best":
        path = (path if path.is_dir() else path.parent) / BEST_NAME
        if not path.is_file():
            raise FileNotFoundError(f"no {BEST_NAME} in {path.parent}: the run has not validated yet (train with "
                                    f"--val-every N and --val-size > 0)")
    ckpt = read_checkpoint(path)
    if "config" not in ckpt.meta:
        raise CheckpointError(f"{ckpt.path}: checkpoint has no training config (saved outside a gaugeflow run?)")
    try:
        config = check_names(TrainConfig.from_dict(ckpt.meta["config"]))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{ckpt.path}: stored config is not usable here ({err})") from None
    if config.seed > 2**64 - 1:
        raise CheckpointError(f"{ckpt.path}: metadata field 'config.seed': expected an integer in [0, 2**64 - 1], "
                              f"got {config.seed}")
    manifold = build_manifold(config)
    model = build_model(config, manifold)
    check_compatible(ckpt, model, config)
    weights = ckpt.weights(model, "ema") if ema and ckpt.group("ema") else ckpt.weights(model)
    _check_finite(ckpt, weights)
    model.load_state_dict(weights)
    data = build_data(config, manifold)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    data = ManifoldData(data.name, data.manifold, data.train.to(dev), data.val.to(dev), data.test.to(dev), data.meta)
    history = _history(ckpt)
    return Run(ckpt.path.parent, config, manifold, data, model.to(dev).eval(), history, ckpt)


def _check_finite(ckpt: Checkpoint, weights: dict[str, torch.Tensor]) -> None:
    """One-line :class:`CheckpointError` when weights hold NaN/Inf (sampling from them cannot work)."""
    bad = [name for name, w in weights.items() if w.is_floating_point() and not bool(torch.isfinite(w).all())]
    if bad:
        raise CheckpointError(f"{ckpt.path}: {len(bad)} weight tensor(s) hold NaN or Inf ({', '.join(bad[:3])}"
                              f"{', ...' if len(bad) > 3 else ''}); the model cannot be evaluated")


def _history(ckpt: Checkpoint) -> History:
    try:
        return History.from_tensors(ckpt.group("history"), meta_int(ckpt, "skipped", default=0))
    except (KeyError, ValueError, TypeError, RuntimeError):
        raise CheckpointError(f"{ckpt.path}: history tensors missing or malformed (expected history/loss, "
                              f"grad_norm, lr, val)") from None
