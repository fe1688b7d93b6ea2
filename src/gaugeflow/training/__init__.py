"""Training: geodesic conditional paths, the RCFM loss, the trainer and checkpoints (docs/math.md §6).

Compatibility: ``build_manifold``, ``build_data``, ``build_model``, ``register_manifold``,
``register_data``, ``register_model``, ``load_run`` and ``Run`` live in the application layer
(:mod:`gaugeflow.app`); they stay importable from here, resolved on first use (module
``__getattr__``) so that importing :mod:`gaugeflow.training` never imports the application layer.
This is the one import from a library package into :mod:`gaugeflow.app` that the import-linter
contracts of ``pyproject.toml`` allow.
"""
from .loss import LossInfo, rcfm_loss
from .paths import GeodesicPath, PathSample
from .premetric import PremetricPath, default_path
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from .config import TrainConfig
from .coupling import COUPLINGS, ot_pairing
from .flat_adam import FlatAdam
from .tools import History, plateaued
from .trainer import NonFiniteLossError, Trainer, fit

_FROM_APP = ("build_manifold", "build_data", "build_model", "register_manifold", "register_data", "register_model",
             "Run", "load_run")

__all__ = [
    "GeodesicPath", "PathSample", "PremetricPath", "default_path", "rcfm_loss", "LossInfo",
    "fit", "Trainer", "TrainConfig", "History", "plateaued", "NonFiniteLossError", "ot_pairing", "COUPLINGS", "FlatAdam",
    "save_checkpoint", "load_checkpoint", "read_checkpoint", "Checkpoint", "CheckpointError",
    *_FROM_APP,
]


def __getattr__(name: str):
    """The application-layer names kept here for compatibility (see the module docstring)."""
    if name in _FROM_APP:
        from .. import app  # the allowed compatibility import (pyproject.toml [tool.importlinter])
        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
