"""Checkpoints: one safetensors file holding tensors and a JSON metadata block; never pickle.

Layout of a checkpoint file (``safetensors`` format, readable by any safetensors reader):

* tensors ``model/<name>`` (weights), ``ema/<name>`` (EMA weights, optional),
  ``optimizer/<i>/<key>`` (optimiser state tensors, flattened) and any extra ``<group>/<name>``;
* header metadata ``{"gaugeflow": "<JSON>"}`` with the format tag, library / torch / python versions,
  step, seed, config, model class and manifold, optimiser hyper-parameters and scalar state, RNG
  states (base64) and whatever the trainer adds.

Writes are atomic: the bytes go to a temporary file of this writer in the same directory, are
``fsync``-ed and then ``os.replace``-d over the target, so a crash leaves either the old or the new
checkpoint. Integrity: the header metadata also holds ``gaugeflow_sha256``, the SHA-256 of the tensor
table (names, dtypes, shapes, offsets), the gaugeflow JSON block and the whole tensor payload; every
read recomputes it, so one flipped bit anywhere else in the file is a :class:`CheckpointError`.
Reading checks the header itself first, so that a truncated, foreign, corrupt or mismatched file raises
a :class:`CheckpointError` whose one-line message names the file and the problem.
"""
from __future__ import annotations

import json
import platform
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..models.flows import FlowModel
from .integrity import DIGEST_KEY, CheckpointError, decode_bytes, encode_bytes, meta_bytes, meta_int, verify_digest
from .integrity import digest as _digest
from .rundir import atomic_write_bytes

__all__ = [
    "CheckpointError", "Checkpoint", "save_checkpoint", "load_checkpoint", "read_checkpoint",
    "atomic_write_bytes", "encode_bytes", "decode_bytes", "CHECKPOINT_NAME", "BEST_NAME", "meta_int", "meta_bytes",
]

FORMAT = "gaugeflow-checkpoint"
FORMAT_VERSION = 2  # 2: content digest (gaugeflow_sha256); version-1 files carry none and still load
CHECKPOINT_NAME = "checkpoint.safetensors"
#: the EMA weights with the lowest validation NLL so far, beside the checkpoint (``Trainer``, ``load_run(weights="best")``)
BEST_NAME = "best.safetensors"
_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header size


@dataclass
class Checkpoint:
    """A checkpoint read from disk: ``meta`` (the JSON block) and the flat ``tensors`` dict."""

    path: Path
    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors stored under ``prefix/`` with the prefix removed (e.g. ``group("model")``)."""
        head = prefix + "/"
        return {key[len(head):]: value for key, value in self.tensors.items() if key.startswith(head)}

    def weights(self, model: torch.nn.Module, prefix: str = "model") -> dict[str, torch.Tensor]:
        """``group(prefix)`` as a state dict of ``model``: names written by earlier gaugeflow versions are
        renamed by the model's :meth:`~gaugeflow.models.FlowModel.upgrade_state_dict`."""
        state = self.group(prefix)
        return model.upgrade_state_dict(state) if isinstance(model, FlowModel) else state

    @property
    def step(self) -> int:
        return meta_int(self, "step", default=0)


def _versions() -> dict[str, str]:
    from .._version import __version__  # not `import gaugeflow`: a library module never imports the root
    return {"gaugeflow": __version__, "torch": torch.__version__, "python": platform.python_version()}


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{idx}/{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    groups = [{key: (list(v) if isinstance(v, tuple) else v) for key, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"class": _optimizer_name(optimizer), "param_groups": groups, "scalars": scalars}


def _optimizer_name(optimizer: torch.optim.Optimizer) -> str:
    """The optimiser a checkpoint names: its ``checkpoint_name`` (FlatAdam: torch's Adam/AdamW, whose state
    it keeps), else its class name."""
    return getattr(optimizer, "checkpoint_name", type(optimizer).__name__)


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    *,
    ema: Optional[dict[str, torch.Tensor]] = None,
    optimizer: Optional[torch.optim.Optimizer] = None,
    config: Any = None,
    step: int = 0,
    meta: Optional[dict[str, Any]] = None,
    tensors: Optional[dict[str, torch.Tensor]] = None,
) -> Path:
    """Write model (and EMA, optimiser, extra tensors) plus JSON metadata atomically to ``path``.

    Args:
        path: target file (a directory means ``<dir>/checkpoint.safetensors``).
        model: the module whose ``state_dict()`` is stored under ``model/``.
        ema: EMA weights ``{name: tensor}`` (same names as the model's), stored under ``ema/``.
        optimizer: its state tensors are flattened under ``optimizer/``, the rest goes to JSON.
        config: a :class:`~gaugeflow.training.TrainConfig` (or anything with ``to_dict()``) or a dict.
        step: the number of optimisation steps taken.
        meta: extra JSON-serialisable metadata (seed, RNG states as base64, counters, ...).
        tensors: extra tensors, keys of the form ``group/name``.

    Returns:
        The path written.
    """
    path = Path(path)
    path = path / CHECKPOINT_NAME if path.is_dir() else path
    flat = {f"model/{k}": v for k, v in model.state_dict().items()}
    flat.update({f"ema/{k}": v for k, v in (ema or {}).items()})
    info: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, "versions": _versions(),
                            "step": int(step), "model_class": type(model).__name__,
                            "manifold": repr(getattr(model, "manifold", None))}
    if config is not None:
        info["config"] = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    if optimizer is not None:
        opt_tensors, info["optimizer"] = _flatten_optimizer(optimizer)
        flat.update(opt_tensors)
    flat.update(tensors or {})
    info.update(meta or {})
    flat = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in flat.items()}
    raw = json.dumps(info, sort_keys=True)
    first = st_save(flat, metadata={"gaugeflow": raw})  # the payload does not depend on the metadata
    (n,) = struct.unpack("<Q", first[:8])
    digest = _digest(json.loads(first[8:8 + n]), raw, memoryview(first)[8 + n:])
    return atomic_write_bytes(path, st_save(flat, metadata={"gaugeflow": raw, DIGEST_KEY: digest}))


def _header(path: Path, data: bytes) -> dict[str, Any]:
    """Parse and sanity-check the safetensors header of ``data``; one-line ``CheckpointError`` otherwise."""
    size = len(data)
    if size < 8:
        raise CheckpointError(f"{path}: truncated or empty checkpoint ({size} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_HEADER or size < 9 or data[8:9] != b"{":
        raise CheckpointError(f"{path}: not a gaugeflow checkpoint (not a safetensors file; pickled files are refused)")
    if 8 + n > size:
        raise CheckpointError(f"{path}: truncated checkpoint (header needs {8 + n} bytes, file has {size})")
    try:
        header = json.loads(data[8:8 + n])
    except ValueError:
        raise CheckpointError(f"{path}: corrupt checkpoint header (invalid JSON)") from None
    malformed = CheckpointError(f"{path}: corrupt checkpoint header (malformed tensor table or metadata)")
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        block = header.get("__metadata__") or {}
    except (AttributeError, KeyError, TypeError, IndexError, ValueError):
        raise malformed from None
    if not isinstance(block, dict) or not all(isinstance(v, str) for v in block.values()):
        raise malformed
    if 8 + n + end > size:
        raise CheckpointError(f"{path}: truncated checkpoint (tensor data needs {8 + n + end} bytes, file has {size})")
    return header


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read and validate a checkpoint without building any model (no code is ever unpickled).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: truncated, foreign (not safetensors / no gaugeflow block) or corrupt file.
    """
    path = Path(path)
    path = path / CHECKPOINT_NAME if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    data = path.read_bytes()
    header = _header(path, data)
    raw = (header.get("__metadata__") or {}).get("gaugeflow")
    if raw is None:
        raise CheckpointError(f"{path}: foreign safetensors file (no gaugeflow metadata block)")
    try:
        meta = json.loads(raw)
    except ValueError:
        raise CheckpointError(f"{path}: corrupt gaugeflow metadata block (invalid JSON)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: foreign safetensors file (metadata format is not {FORMAT!r})")
    version = meta.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(f"{path}: metadata field 'format_version': expected an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {meta['format_version']} is newer than this gaugeflow "
                              f"understands ({FORMAT_VERSION}); upgrade gaugeflow")
    verify_digest(path, header, meta, data)
    try:
        tensors = st_load(data)
    except Exception as err:  # safetensors raises its own SafetensorError
        raise CheckpointError(f"{path}: corrupt checkpoint ({(str(err).splitlines() or ['unreadable'])[0]})") from None
    ckpt = Checkpoint(path, meta, {k: v.to(map_location) for k, v in tensors.items()})
    meta_int(ckpt, "step", default=0)
    return ckpt


def check_compatible(ckpt: Checkpoint, model: torch.nn.Module, config: Any = None) -> None:
    """Raise a one-line :class:`CheckpointError` unless ``ckpt`` fits ``model`` (and ``config``)."""
    where = ckpt.path
    if ckpt.meta.get("model_class") != type(model).__name__:
        raise CheckpointError(f"{where}: checkpoint holds a {ckpt.meta.get('model_class')}, "
                              f"the model is a {type(model).__name__}")
    stored_m, own_m = ckpt.meta.get("manifold"), repr(getattr(model, "manifold", None))
    if stored_m is not None and stored_m != own_m:
        raise CheckpointError(f"{where}: checkpoint was trained on {stored_m}, the model lives on {own_m}")
    spec = getattr(config, "model_spec", None)
    stored = ckpt.meta.get("config")
    if spec is not None and stored is not None:
        diff = [f"{k}={stored.get(k)!r} in checkpoint vs {v!r}" for k, v in spec().items() if stored.get(k) != v]
        if diff:
            raise CheckpointError(f"{where}: checkpoint was made for a different model ({'; '.join(diff)})")
    saved, own = ckpt.weights(model), model.state_dict()
    missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{where}: parameter names differ from the model's "
                              f"(missing: {', '.join(missing[:4]) or '-'}; unexpected: {', '.join(unexpected[:4]) or '-'})")
    for name, value in own.items():
        if saved[name].shape != value.shape:
            raise CheckpointError(f"{where}: parameter {name!r} has shape {tuple(saved[name].shape)} in the "
                                  f"checkpoint but {tuple(value.shape)} in the model")


#: optimiser settings that choose how the update is computed, not what it is: a resumed run keeps its own
#: (a checkpoint written by torch's multi-tensor Adam resumes on FlatAdam, and the other way round)
ROUTE_KEYS = ("foreach", "fused", "capturable")


def _restore_optimizer(ckpt: Checkpoint, optimizer: torch.optim.Optimizer) -> None:
    info = ckpt.meta.get("optimizer")
    if info is None:
        raise CheckpointError(f"{ckpt.path}: checkpoint has no optimizer state to resume from")
    if info["class"] != _optimizer_name(optimizer):
        raise CheckpointError(f"{ckpt.path}: optimizer is {info['class']} in the checkpoint, {_optimizer_name(optimizer)} here")
    state: dict[int, dict[str, Any]] = {}
    for key, value in ckpt.group("optimizer").items():
        idx, name = key.split("/", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, extra in info["scalars"].items():
        state.setdefault(int(idx), {}).update(extra)
    groups = [{k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()}
              for g in info["param_groups"]]
    for saved, live in zip(groups, optimizer.param_groups):  # how to compute the update is this run's choice
        saved.update({k: live[k] for k in ROUTE_KEYS if k in live})
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"{ckpt.path}: optimizer state does not fit ({str(err).splitlines()[0]})") from None


def load_checkpoint(
    path: str | Path,
    model: Optional[torch.nn.Module] = None,
    *,
    optimizer: Optional[torch.optim.Optimizer] = None,
    config: Any = None,
    map_location: str | torch.device = "cpu",
) -> Checkpoint:
    """Read ``path`` and load it into ``model`` (and ``optimizer``) after checking they match.

    Args:
        path: a checkpoint file or a run directory containing ``checkpoint.safetensors``.
        model: receives the ``model/`` weights (EMA weights are in ``ckpt.group("ema")``).
        optimizer: receives the stored optimiser state.
        config: when given, its :meth:`model_spec` must equal the stored one.

    Returns:
        The :class:`Checkpoint` (metadata, all tensors).

    Raises:
        FileNotFoundError, CheckpointError: see :func:`read_checkpoint` and :func:`check_compatible`.
    """
    ckpt = read_checkpoint(path, map_location)
    if model is not None:
        check_compatible(ckpt, model, config)
        model.load_state_dict(ckpt.weights(model))
    if optimizer is not None:
        _restore_optimizer(ckpt, optimizer)
    return ckpt
