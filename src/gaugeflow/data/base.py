"""The dataset value every loader returns and every trainer, CLI command and experiment consumes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .._numerics import tol
from ..geometry.manifold import Manifold

__all__ = ["ManifoldData", "DataError", "split_indices"]


class DataError(ValueError):
    """A data set's points are unusable: non-finite, off the manifold, wrongly shaped, or a split is empty."""


@dataclass(frozen=True)
class ManifoldData:
    """Points on a manifold with a fixed train/validation/test split.

    Attributes:
        name: short identifier (``"wrapped-mixture"``, ``"world-cities"``, ...).
        manifold: the base manifold all points lie on.
        train, val, test: ``[n_split, D]`` tensors of points, each split possibly empty (``[0, D]``).
        meta: free-form, JSON-serialisable provenance (seed, generator parameters, source package, ...).

    Construction checks every split: a floating ``[n, D]`` tensor with ``D = manifold.ambient_dim``,
    every entry finite, and every row on the manifold within ``manifold.check_point``'s tolerance for
    the dtype (``tol("point", dtype)``: 1e-4 in float32, 1e-10 in float64, on the manifold's own
    residual). Float64 points that are on the manifold only to float32 precision (data generated or
    stored in float32, then cast) are projected with ``manifold.projx``, a change below 1e-4. A failure
    raises :class:`DataError` saying how many rows failed and the worst violation.
    Whether an *empty* split is acceptable is up to the consumer (``fit`` needs training points and,
    with ``val_size > 0``, validation points).
    """

    name: str
    manifold: Manifold
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.manifold, Manifold):
            raise TypeError(f"ManifoldData {self.name!r}: manifold must be a gaugeflow Manifold, "
                            f"got {type(self.manifold).__name__}")
        for split in ("train", "val", "test"):
            x = _check_split(self.manifold, getattr(self, split), f"{self.name}.{split}")
            object.__setattr__(self, split, x)

    def __repr__(self) -> str:
        return (
            f"ManifoldData({self.name!r} on {self.manifold}, train={len(self.train)}, "
            f"val={len(self.val)}, test={len(self.test)})"
        )


def _check_split(manifold: Manifold, x: torch.Tensor, what: str) -> torch.Tensor:
    """Shape, dtype, finiteness and on-manifold check of one ``[n, D]`` split; :class:`DataError` otherwise.

    Returns the split, projected onto the manifold when float64 points are on it to float32 precision only.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor of points, got {type(x).__name__}")
    if x.dim() != 2 or x.shape[-1] != manifold.ambient_dim:
        raise DataError(f"{what}: expected a [n, {manifold.ambient_dim}] tensor of points on {manifold}, "
                        f"got shape {tuple(x.shape)}")
    if not x.is_floating_point() or x.dtype not in (torch.float32, torch.float64):
        raise DataError(f"{what}: expected float32 or float64 points, got dtype {x.dtype}")
    if len(x) == 0:
        return x
    bad = ~torch.isfinite(x).all(-1)
    n_bad = int(bad.sum())
    if n_bad:
        first = int(bad.nonzero()[0, 0])
        raise DataError(f"{what}: {n_bad} of {len(x)} points are not finite (NaN or Inf); first at row {first}: "
                        f"{x[first].tolist()}")
    try:
        manifold.check_point(x)
        return x
    except ValueError as err:
        first = err
    if x.dtype == torch.float64:
        try:
            manifold.check_point(x, atol=tol("point", torch.float32))
        except ValueError:
            pass
        else:
            return manifold.projx(x)
    raise DataError(f"{what}: {str(first).splitlines()[0]}") from None


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
