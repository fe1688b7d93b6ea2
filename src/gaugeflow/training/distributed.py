"""Process-group plumbing for multi-process training with PyTorch's own ``torch.distributed``.

Under ``torchrun --nproc_per_node=P`` every process sees ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``
in its environment; :meth:`DistEnv.setup` reads them, initialises the default process group (gloo on
CPU, NCCL on GPUs) and picks the device. Without those variables it is a single-process no-op.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistEnv", "resolve_device"]


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"environment variable {name} must be >= 0, got {value}")
    return value


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` if CUDA is available else CPU; ``"cuda"`` -> ``cuda:<local_rank>``."""
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(preference)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {preference!r} requested but CUDA is not available on this machine")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


@dataclass
class DistEnv:
    """Where this process sits in a (possibly single-process) job.

    Attributes:
        rank, world, local_rank: global rank, number of processes, rank on this node.
        device: the device this process trains on.
        owns_group: whether :meth:`setup` created the process group (and :meth:`close` destroys it).
    """

    rank: int
    world: int
    local_rank: int
    device: torch.device
    owns_group: bool = False

    @classmethod
    def setup(cls, device: str = "auto") -> "DistEnv":
        """Join the job described by the environment (or an already initialised group)."""
        if dist.is_available() and dist.is_initialized():
            local = _env_int("LOCAL_RANK", 0)
            return cls(dist.get_rank(), dist.get_world_size(), local, resolve_device(device, local))
        world = _env_int("WORLD_SIZE", 1)
        rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
        dev = resolve_device(device, local)
        if world <= 1:
            return cls(0, 1, 0, dev)
        if rank >= world:
            raise ValueError(f"RANK={rank} must be smaller than WORLD_SIZE={world}")
        if not dist.is_available():
            raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        return cls(rank, world, local, dev, owns_group=True)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def all_sum(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of ``x`` over all processes (``x`` itself when single-process)."""
        if not self.distributed:
            return x
        y = x.detach().clone()
        dist.all_reduce(y, op=dist.ReduceOp.SUM)
        return y

    def all_mean(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of ``x`` over all processes."""
        return self.all_sum(x) / self.world if self.distributed else x

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        """Destroy the process group if this object created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False
