"""Sample-quality metrics that compare generated points with held-out data on any manifold.

All metrics take ``[n, D]`` and ``[m, D]`` tensors and return Python floats (or a small dataclass),
computed in float64 on subsamples of at most ``max_points`` rows so they stay cheap on a CPU.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .geometry.manifold import Manifold

__all__ = ["energy_distance", "sliced_wasserstein", "mode_coverage", "ModeCoverage"]


def _subsample(x: torch.Tensor, max_points: int, generator: torch.Generator) -> torch.Tensor:
    if x.dim() != 2 or len(x) == 0:
        raise ValueError(f"expected a non-empty [n, D] tensor of points, got shape {tuple(x.shape)}")
    if len(x) <= max_points:
        return x.double()
    return x[torch.randperm(len(x), generator=generator)[:max_points]].double()


def _mean_pairwise(a: torch.Tensor, b: torch.Tensor, manifold: Optional[Manifold], chunk: int = 512) -> torch.Tensor:
    total = a.new_zeros(())
    for i in range(0, len(a), chunk):
        ai = a[i:i + chunk, None, :]
        d = manifold.dist(ai, b[None]) if manifold is not None else (ai - b[None]).norm(dim=-1)
        total = total + d.sum()
    return total / (len(a) * len(b))


def energy_distance(
    x: torch.Tensor, y: torch.Tensor, manifold: Optional[Manifold] = None, max_points: int = 2000, seed: int = 0
) -> float:
    """Squared energy distance ``2E d(X,Y) − E d(X,X') − E d(Y,Y')`` with the manifold's geodesic distance.

    Zero iff the two distributions agree (``d`` is a metric of negative type on ℝ^N, S^n and the
    flat torus). V-statistic estimate on at most ``max_points`` rows of each set.

    Args:
        x: ``[n, D]`` samples. y: ``[m, D]`` reference points (e.g. the test set).
        manifold: distance to use; ``None`` means Euclidean distance in ambient coordinates.
    """
    g = torch.Generator().manual_seed(seed)
    a, b = _subsample(x, max_points, g), _subsample(y, max_points, g)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"energy_distance: last axes differ: {a.shape[-1]} vs {b.shape[-1]}")
    ed = 2 * _mean_pairwise(a, b, manifold) - _mean_pairwise(a, a, manifold) - _mean_pairwise(b, b, manifold)
    return float(ed)


def sliced_wasserstein(
    x: torch.Tensor, y: torch.Tensor, n_projections: int = 256, max_points: int = 4000, seed: int = 0
) -> float:
    """Sliced 2-Wasserstein distance in ambient coordinates (random unit directions, quantile matching).

    Args:
        x: ``[n, D]``, y: ``[m, D]``; sizes may differ (both are compared at ``min(n, m)`` quantiles).
    """
    g = torch.Generator().manual_seed(seed)
    a, b = _subsample(x, max_points, g), _subsample(y, max_points, g)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"sliced_wasserstein: last axes differ: {a.shape[-1]} vs {b.shape[-1]}")
    dirs = torch.randn(a.shape[-1], n_projections, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    q = torch.linspace(0, 1, min(len(a), len(b)), dtype=torch.float64)
    pa = torch.quantile((a @ dirs), q, dim=0)
    pb = torch.quantile((b @ dirs), q, dim=0)
    return float(((pa - pb) ** 2).mean().sqrt())


@dataclass(frozen=True)
class ModeCoverage:
    """Result of :func:`mode_coverage`: fraction of modes hit, per-mode sample counts, outlier fraction."""

    fraction: float
    counts: tuple[int, ...]
    outliers: float


def mode_coverage(
    samples: torch.Tensor, means: torch.Tensor, radius: float, min_share: float = 0.1,
    manifold: Optional[Manifold] = None,
) -> ModeCoverage:
    """Which mixture components the samples reach.

    Every sample is assigned to its nearest mean; samples farther than ``radius`` from all means are
    outliers. A mode counts as covered when it receives at least ``min_share`` of its fair share
    ``n / K`` of the samples.

    Args:
        samples: ``[n, D]``; means: ``[K, D]``; radius: e.g. 3σ for isotropic components.
    """
    if radius <= 0:
        raise ValueError(f"mode_coverage: radius must be positive, got {radius}")
    s, m = samples.double(), means.double()
    d = manifold.dist(s[:, None], m[None]) if manifold is not None else torch.cdist(s, m)
    dmin, idx = d.min(dim=1)
    inside = dmin <= radius
    counts = torch.bincount(idx[inside], minlength=len(m))
    covered = counts >= min_share * len(s) / len(m)
    return ModeCoverage(
        fraction=float(covered.double().mean()),
        counts=tuple(int(c) for c in counts),
        outliers=float((~inside).double().mean()),
    )
