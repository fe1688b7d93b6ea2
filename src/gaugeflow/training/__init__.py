"""Training: geodesic conditional paths and the RCFM loss (SPEC §6)."""
from .loss import LossInfo, rcfm_loss
from .paths import GeodesicPath, PathSample
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from .config import TrainConfig, build_data, build_manifold, build_model, register_data, register_manifold, register_model
from .runs import Run, load_run
from .tools import History
from .trainer import NonFiniteLossError, Trainer, fit

__all__ = [
    "GeodesicPath", "PathSample", "rcfm_loss", "LossInfo",
    "fit", "Trainer", "TrainConfig", "History", "NonFiniteLossError",
    "save_checkpoint", "load_checkpoint", "read_checkpoint", "Checkpoint", "CheckpointError",
    "build_manifold", "build_data", "build_model", "register_manifold", "register_data", "register_model",
    "Run", "load_run",
]
