"""Synthetic data on any manifold: a mixture of wrapped Gaussians (used by tests, docs and the demo).

Component ``c`` has a mean ``μ_c`` drawn from the manifold's base distribution and generates
``x = exp_{μ_c}(Σ_i ξ_i e_i)`` with ``ξ ~ N(0, scale² I_n)`` in a ``g``-orthonormal frame
``(e_i)`` of ``T_{μ_c}M`` (so the tangent noise is isotropic in the manifold's own metric, including
the Minkowski metric of the Lorentz model). Components are equally weighted.
"""
from __future__ import annotations

import math

import torch

from ..geometry.manifold import Manifold
from .base import ManifoldData

__all__ = ["wrapped_mixture", "tangent_frame"]


def tangent_frame(manifold: Manifold, x: torch.Tensor) -> torch.Tensor:
    """A ``g``-orthonormal basis of ``T_xM`` for each point, as rows. ``[B, D] -> [B, n, D]``.

    Delegates to :meth:`Manifold.tangent_frame <gaugeflow.geometry.Manifold.tangent_frame>`
    (``[..., D, n]``, columns) and transposes.
    """
    return manifold.tangent_frame(x).transpose(-1, -2)


def _check_count(value: object, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"wrapped_mixture: {what} must be an integer >= {minimum}, got {value!r}")
    return value


def wrapped_mixture(
    manifold: Manifold,
    n_components: int = 4,
    n_train: int = 5000,
    n_val: int = 1000,
    n_test: int = 1000,
    scale: float = 0.2,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> ManifoldData:
    """Equal-weight mixture of wrapped Gaussians on ``manifold``, split into train/val/test.

    Args:
        manifold: any gaugeflow manifold.
        n_components: number of mixture components ``K``.
        n_train, n_val, n_test: split sizes (i.i.d. draws; the splits are disjoint draws).
        scale: standard deviation of the tangent noise (in the manifold's metric).
        seed: seed of a private ``torch.Generator`` (the global RNG is untouched).
        dtype: floating dtype of the points (generated in float64, then cast and re-projected).

    Returns:
        :class:`ManifoldData` named ``"wrapped-mixture"``; ``meta`` holds the parameters, the means
        and the component label of every point (``labels_train`` …).

    Examples:
        >>> from gaugeflow.manifolds import Sphere
        >>> data = wrapped_mixture(Sphere(2), n_train=100, n_val=10, n_test=10)
        >>> data.train.shape
        torch.Size([100, 3])
    """
    if not isinstance(manifold, Manifold):
        raise TypeError(f"wrapped_mixture: expected a gaugeflow Manifold, got {type(manifold).__name__}")
    K = _check_count(n_components, "n_components", 1)
    sizes = [_check_count(v, w, 1) for v, w in ((n_train, "n_train"), (n_val, "n_val"), (n_test, "n_test"))]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"wrapped_mixture: scale must be a positive finite number, got {scale!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"wrapped_mixture: dtype must be a floating torch.dtype, got {dtype!r}")
    gen = torch.Generator().manual_seed(int(seed))
    means = manifold.random_base(K, generator=gen, dtype=torch.float64)
    frames = tangent_frame(manifold, means)  # [K, n, D]
    total = sum(sizes)
    labels = torch.randint(0, K, (total,), generator=gen)
    xi = scale * torch.randn(total, manifold.dim, generator=gen, dtype=torch.float64)
    v = torch.einsum("bk,bkd->bd", xi, frames[labels])
    x = manifold.projx(manifold.exp(means[labels], v).to(dtype))
    manifold.check_point(x)
    parts = torch.split(x, sizes)
    label_parts = torch.split(labels, sizes)
    meta = {
        "generator": "wrapped_mixture", "n_components": K, "scale": float(scale), "seed": int(seed),
        "means": means.tolist(),
        **{f"labels_{s}": lab.tolist() for s, lab in zip(("train", "val", "test"), label_parts)},
    }
    return ManifoldData("wrapped-mixture", manifold, parts[0], parts[1], parts[2], meta)
