"""Training configuration: one typed, validated dataclass.

A :class:`TrainConfig` names *what* to train (manifold, data set, model family) and *how* (optimiser,
schedule, EMA, clipping, seed, ...). This module checks types and ranges only. The names are looked
up in the application layer's tables (:mod:`gaugeflow.app.registry`: ``check_names``,
``build_manifold``, ``build_data``, ``build_model``), which users extend with ``register_manifold``,
``register_data`` and ``register_model``; the trainer itself never resolves a name.

Examples:
    >>> cfg = TrainConfig(manifold="sphere", dim=2, model="gauge", steps=100, hidden=32)
    >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
    True
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

import torch

__all__ = ["TrainConfig", "load_config_file"]


_CHOICES = {
    "optimizer": ("adam", "adamw"),
    "schedule": ("constant", "cosine", "linear"),
    "dtype": ("float32", "float64"),
    "logger": ("csv", "tensorboard"),  # = gaugeflow.training.tools.LOGGERS
    "coupling": ("independent", "ot"),  # = gaugeflow.training.coupling.COUPLINGS
    "path": ("auto", "geodesic", "biharmonic", "diffusion"),  # gaugeflow.training.premetric.default_path
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; validated on construction (``ValueError``/``TypeError``).

    Attributes:
        manifold, dim: registry name and intrinsic dimension of the base manifold.
        data, n_data: data-set name and number of points (``None``: the loader's default).
        model, hidden, k: model family, hidden width and gauge rank (``None``: the model's default).
        rank: number of direction indices of a ``tensor-gauge`` field (``None``: its default, 2).
        dtype: ``"float32"`` or ``"float64"`` for parameters and data.
        steps, batch_size: optimisation steps and *global* batch size (split across processes).
        lr, optimizer, weight_decay: Adam/AdamW settings.
        schedule, warmup_steps, final_lr_fraction: ``lr(s)`` rises linearly over ``warmup_steps``,
            then stays constant or decays (cosine / linear) to ``final_lr_fraction · lr`` at ``steps``.
        ema_decay: weight EMA ``θ̄ ← d θ̄ + (1 − d) θ`` (``0`` disables it); evaluation uses ``θ̄``.
        grad_clip: maximal global gradient norm (``None``: no clipping).
        seed: seeds model initialisation and the training stream (batches, ``x0``, ``t``).
        val_every, val_size, val_steps: validation NLL every ``val_every`` steps (``0``: only at the
            end) on ``val_size`` validation points (``0``: no validation) with ``val_steps`` ODE steps.
            With an ``out`` folder, the EMA weights of the lowest validation NLL so far are kept in
            ``best.safetensors`` beside the checkpoint.
        plateau_tol, plateau_min_evals: early stopping (``plateau_tol=None``: train all ``steps``).
            Training stops at the first validation where, with ``n ≥ plateau_min_evals`` validations, the
            lowest validation NLL of the last ``⌈n/4⌉`` is not below the lowest before them by more than
            ``plateau_tol`` nats (:func:`gaugeflow.training.tools.plateaued`, the criterion of the
            equal-compute study). Needs ``val_every > 0`` and ``val_size > 0``; ``steps`` stays the cap.
        checkpoint_every, log_every: checkpoint / CSV-row period in steps (``0``: only at the end).
        max_nonfinite: stop after this many consecutive non-finite losses.
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        progress: show a progress bar (loss, steps/s) when stderr is a terminal; never in logs.
        logger: ``"csv"`` (``metrics.csv`` only) or ``"tensorboard"``: also TensorBoard event files in
            ``RUN/tensorboard`` (needs the ``tensorboard`` extra); ``metrics.csv`` is always written.
        coupling: pairing of base points and data in a batch: ``"independent"`` (as drawn) or ``"ot"``
            (minibatch optimal transport by squared geodesic distance, :mod:`gaugeflow.training.coupling`).
        ot_batch: with ``"ot"``, couple consecutive blocks of this many pairs of the global batch
            (must divide ``batch_size``; ``None``: the whole batch is one block).
        ot_exact_max: blocks of at most this many pairs are coupled exactly (a permutation, one host
            sync per step); larger ones by Sinkhorn on the device.
        mesh: with ``manifold="mesh"``: ``"icosphere"``, ``"torus"``, ``"bumpy"`` or a mesh file (OBJ/PLY/OFF).
        path: conditional path of the RCFM loss: ``"auto"`` (geodesic where the manifold has a closed-form
            ``log``, else the biharmonic premetric path), ``"geodesic"``, ``"biharmonic"`` or ``"diffusion"``
            (:class:`~gaugeflow.training.PremetricPath`).
        path_chunk: build the geodesic paths of this many steps in one vectorised call (the same few
            dozen small operations for ``path_chunk`` steps; :mod:`gaugeflow.training.prefetch`). It
            changes neither the random stream nor any step's pairs, only rounding in the last bit, and
            a run resumes with its own value; ``1`` builds each step's path alone. Default 16: measured
            in docs/performance.md ("Paths at the floor"). Premetric paths are built step by step.
    """

    manifold: str = "sphere"
    dim: int = 2
    data: str = "wrapped-mixture"
    n_data: Optional[int] = None
    model: str = "higher-gauge"
    hidden: int = 64
    k: Optional[int] = None
    rank: Optional[int] = None
    dtype: str = "float32"
    steps: int = 1000
    batch_size: int = 256
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_steps: int = 0
    final_lr_fraction: float = 0.0
    ema_decay: float = 0.999
    grad_clip: Optional[float] = 1.0
    seed: int = 0
    val_every: int = 0
    val_size: int = 256
    val_steps: int = 20
    plateau_tol: Optional[float] = None
    plateau_min_evals: int = 6
    checkpoint_every: int = 0
    log_every: int = 1
    max_nonfinite: int = 20
    device: str = "auto"
    progress: bool = True
    logger: str = "csv"
    coupling: str = "independent"
    ot_batch: Optional[int] = None
    ot_exact_max: int = 1024
    mesh: Optional[str] = None
    path: str = "auto"
    path_chunk: int = 16

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, f.type, getattr(self, f.name)))
        _check_ranges(self)

    # -- conversions
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (inverse of :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from a mapping; keys may use dashes (``batch-size``) or underscores."""
        if not isinstance(values, dict):
            raise TypeError(f"config: expected a mapping of settings, got {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        norm = {str(key).replace("-", "_"): value for key, value in values.items()}
        unknown = sorted(set(norm) - known)
        if unknown:
            raise ValueError(f"config: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**norm)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def model_spec(self) -> dict[str, Any]:
        """The fields that determine the parameter shapes (compared when loading a checkpoint)."""
        return {key: getattr(self, key) for key in ("manifold", "dim", "model", "hidden", "k", "rank", "dtype")}


_INTS = {"dim": 1, "hidden": 1, "steps": 0, "batch_size": 1, "warmup_steps": 0, "seed": 0, "val_every": 0,
         "val_size": 0, "val_steps": 1, "checkpoint_every": 0, "log_every": 0, "max_nonfinite": 1,
         "n_data": 3, "k": 1, "rank": 1, "ot_batch": 1, "ot_exact_max": 1,
         "path_chunk": 1, "plateau_min_evals": 2}


def _coerce(name: str, annotation: str, value: Any) -> Any:
    """Check/convert one field against its annotation; raises ``TypeError`` naming expected vs received."""
    optional = annotation.startswith("Optional")
    if value is None:
        if optional:
            return None
        raise TypeError(f"config: {name} must not be None")
    base = annotation.removeprefix("Optional[").removesuffix("]")
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"config: {name} must be an integer, got {value!r} ({type(value).__name__})")
        if value < _INTS[name]:
            raise ValueError(f"config: {name} must be >= {_INTS[name]}, got {value}")
    elif base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"config: {name} must be a number, got {value!r} ({type(value).__name__})")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"config: {name} must be finite, got {value}")
    elif base == "bool":
        if not isinstance(value, bool):
            raise TypeError(f"config: {name} must be true or false, got {value!r}")
    elif base == "str" and not isinstance(value, str):
        raise TypeError(f"config: {name} must be a string, got {value!r} ({type(value).__name__})")
    return value


def _check_ranges(cfg: TrainConfig) -> None:
    for key, choices in _CHOICES.items():
        if getattr(cfg, key) not in choices:
            raise ValueError(f"config: {key} must be one of {', '.join(choices)}, got {getattr(cfg, key)!r}")
    if cfg.lr <= 0:
        raise ValueError(f"config: lr must be > 0, got {cfg.lr}")
    if cfg.weight_decay < 0:
        raise ValueError(f"config: weight_decay must be >= 0, got {cfg.weight_decay}")
    if not 0 <= cfg.ema_decay < 1:
        raise ValueError(f"config: ema_decay must be in [0, 1), got {cfg.ema_decay}")
    if not 0 <= cfg.final_lr_fraction <= 1:
        raise ValueError(f"config: final_lr_fraction must be in [0, 1], got {cfg.final_lr_fraction}")
    if cfg.grad_clip is not None and cfg.grad_clip <= 0:
        raise ValueError(f"config: grad_clip must be > 0 (or None to disable), got {cfg.grad_clip}")
    if cfg.device != "auto" and not cfg.device.startswith(("cpu", "cuda", "mps")):
        raise ValueError(f"config: device must be auto, cpu, cuda or cuda:N, got {cfg.device!r}")
    for key in ("manifold", "data", "model"):
        if not getattr(cfg, key):
            raise ValueError(f"config: {key} must be a non-empty name, got {getattr(cfg, key)!r}")
    if cfg.plateau_tol is not None:
        if cfg.plateau_tol < 0:
            raise ValueError(f"config: plateau_tol must be >= 0 nats (or None: no early stopping), got {cfg.plateau_tol}")
        if not (cfg.val_every > 0 and cfg.val_size > 0):
            raise ValueError(f"config: plateau_tol needs validation during training (val_every > 0 and val_size > 0), "
                             f"got val_every={cfg.val_every}, val_size={cfg.val_size}")
    if cfg.ot_batch is not None and cfg.batch_size % cfg.ot_batch:
        raise ValueError(f"config: ot_batch must divide batch_size {cfg.batch_size}, got {cfg.ot_batch}")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a ``.toml``, ``.yaml`` or ``.yml`` file into a dict of settings (validated later)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise ValueError(f"config file {path}: expected a .toml, .yaml or .yml file, got {suffix or 'no suffix'!r}")
    try:
        if suffix == ".toml":
            import tomllib
            values = tomllib.loads(path.read_text())
        else:
            import yaml
            values = yaml.safe_load(path.read_text())
    except Exception as err:  # tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise ValueError(f"config file {path} could not be parsed: {reason}") from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValueError(f"config file {path}: expected a table/mapping of settings, got {type(values).__name__}")
    return values
