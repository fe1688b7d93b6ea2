"""The dataset value every loader returns and every trainer, CLI command and experiment consumes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..geometry.manifold import Manifold

__all__ = ["ManifoldData", "split_indices"]


@dataclass(frozen=True)
class ManifoldData:
    """Points on a manifold with a fixed train/validation/test split.

    Attributes:
        name: short identifier (``"wrapped-mixture"``, ``"world-cities"``, ...).
        manifold: the base manifold all points lie on.
        train, val, test: ``[n_split, D]`` tensors of points (already checked with ``manifold.check_point``).
        meta: free-form, JSON-serialisable provenance (seed, generator parameters, source package, ...).
    """

    name: str
    manifold: Manifold
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        for split in ("train", "val", "test"):
            x = getattr(self, split)
            self.manifold.validate(x, f"{self.name}.{split}")
            if x.dim() != 2:
                raise ValueError(f"{self.name}.{split}: expected a [n, D] tensor, got shape {tuple(x.shape)}")

    def __repr__(self) -> str:
        return (
            f"ManifoldData({self.name!r} on {self.manifold}, train={len(self.train)}, "
            f"val={len(self.val)}, test={len(self.test)})"
        )


def split_indices(n: int, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Deterministic random split of ``range(n)`` into train/val/test index tensors.

    Args:
        n: number of items.
        fractions: three non-negative numbers summing to 1 (train, val, test).
        seed: seed of the permutation (a fixed ``torch.Generator``; independent of global RNG state).
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions!r}")
    if n < 3:
        raise ValueError(f"need at least 3 items to split into train/val/test, got {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(fractions[1] * n)))
    n_test = max(1, int(round(fractions[2] * n)))
    n_train = n - n_val - n_test
    return perm[:n_train], perm[n_train:n_train + n_val], perm[n_train + n_val:]
