"""The flat torus T^n = ℝ^n / 2πℤ^n in angle coordinates, with the uniform base distribution.

Points are angles in ``[0, 2π)^n`` (``ambient_dim = dim = n``); tangent spaces are all of ``ℝ^n``
and the metric is the Euclidean one, so ``proju`` and ``transp`` are identities.

Numerics:

* ``exp(x, u) = (x + u) mod 2π``, folded into ``[0, 2π)`` even where float rounding of the
  remainder would give exactly ``2π``.
* ``log(x, y) = atan2(sin Δ, cos Δ)`` with ``Δ = y − x``, the wrapped difference in ``(−π, π]``:
  exact for tiny ``Δ`` (``sin Δ ≈ Δ``) and with derivative exactly 1 (finite gradients at ``y = x``).
* Cut locus: ``y`` is on the cut locus of ``x`` when some ``|Δ_i| = π``. There ``log`` picks
  ``+π`` for that component, deterministically, including for differences that round to within
  ``4·ulp(π)`` of ``−π`` (their representative ``Δ + 2π`` is returned, of length ``≈ π``).
  :meth:`FlatTorus.cut_locus_mask` flags pairs with some ``|Δ_i| > π − tol("cut")``.
* Networks see ``features(x) = (cos x, sin x)`` (``feature_dim = 2n``), continuous across
  ``0 = 2π``.
"""
from __future__ import annotations

import math

import torch

from gaugeflow._numerics import broadcast_shapes, tol
from gaugeflow.geometry._generic import nan_unless_finite
from gaugeflow.geometry.base import UniformTorus
from gaugeflow.geometry.manifold import Manifold, check_dimension, safe_norm

__all__ = ["FlatTorus"]

TWO_PI = 2 * math.pi


class FlatTorus(Manifold):
    """Flat torus ``T^n`` in angle coordinates; ``log p0 = −n log 2π``.

    Examples:
        >>> M = FlatTorus(1)
        >>> M.log(torch.tensor([0.1]), torch.tensor([6.2]))  # wraps through 0
        tensor([-0.1832])
    """

    injectivity_radius = math.pi

    def __init__(self, n: int):
        self.dim = n = check_dimension("FlatTorus", n)
        self.ambient_dim = n
        self.diameter = math.pi * math.sqrt(n)  # the point (π, …, π) away
        self.base = UniformTorus(n)

    # -- projections
    def projx(self, x):
        """Wrap angles into ``[0, 2π)``. ``[..., n] -> [..., n]``."""
        self._inputs(x=x)
        r = torch.remainder(x, TWO_PI)
        return torch.where(r >= TWO_PI, r - TWO_PI, r)

    def proju(self, x, u):
        self._inputs(x=x, u=u)
        return u.expand(broadcast_shapes(x.shape, u.shape))

    # -- exponential and logarithm
    def exp(self, x, u):
        """``(x + u) mod 2π``. ``[..., n] -> [..., n]``."""
        self._inputs(x=x, u=u)
        return self.projx(x + u)

    def log(self, x, y):
        """Wrapped difference in ``(−π, π]`` per angle (``+π`` on the cut locus). ``[..., n]``."""
        self._inputs(x=x, y=y)
        d = y - x
        w = torch.atan2(torch.sin(d), torch.cos(d))
        # atan2 returns values in [-π, π]; send the cut-locus representative to +π.
        eps = 4 * torch.finfo(d.dtype).eps * math.pi
        return torch.where(w <= -math.pi + eps, w + TWO_PI, w)

    def dist(self, x, y):
        return nan_unless_finite(safe_norm(self.log(x, y)), x, y)

    def pairwise_sq_dist(self, x, y):
        """``Σ_k wrap(y_jk − x_ik)²`` (``wrap`` into ``[−π, π)``): ``[..., m, n] × …``, no square root."""
        self._inputs(x=x, y=y)
        d = y.unsqueeze(-3) - x.unsqueeze(-2)
        return torch.remainder(d + math.pi, 2 * math.pi).sub_(math.pi).square_().sum(-1)

    def norm(self, x, u):
        self._inputs(x=x, u=u)
        return safe_norm(u)

    def transp(self, x, y, v):
        """The identity (the torus is flat and parallelisable). ``[..., n]``."""
        self._inputs(x=x, y=y, v=v)
        return v.expand(broadcast_shapes(x.shape, y.shape, v.shape))

    def geodesic(self, x0, x1, t):
        """``x_t = (x0 + t·log(x0, x1)) mod 2π`` and the constant velocity ``log(x0, x1)``."""
        u = self.log(x0, x1)
        return self.projx(x0 + t[..., None] * u), u.expand(broadcast_shapes(x0.shape, u.shape))

    def geodesic_and_cut(self, x0, x1, t):
        """:meth:`geodesic` and :meth:`cut_locus_mask` from one wrapped difference (no gradient needed).

        ``u = atan2(sin Δ, cos Δ)``, ``x_t = (x0 + t u) mod 2π``, ``u_t = u``, cut where some
        ``|u_i| > π − tol("cut")``; the ``+π`` representative of :meth:`log` is not enforced on
        those (flagged) pairs.
        """
        self._inputs(x0=x0, x1=x1)
        d = x1 - x0
        u = torch.atan2(torch.sin(d), torch.cos(d))
        r = torch.remainder(torch.addcmul(x0, t[..., None], u), TWO_PI)
        x_t = r.masked_fill_(r >= TWO_PI, 0.0)  # remainder may round up to exactly 2π (= angle 0)
        return x_t, u, u.abs().amax(-1) > math.pi - tol("cut", u.dtype)

    # -- cut locus
    def cut_locus_mask(self, x, y):
        return (self.log(x, y).abs() > math.pi - tol("cut", x.dtype)).any(-1)

    def cut_vector(self, x, u):
        """``π u / max_i |u_i|``: the straight line first reaches ``|Δ_i| = π`` in its largest component."""
        self._inputs(x=x, u=u)
        return math.pi * u / u.abs().amax(-1, keepdim=True)

    # -- network features
    @property
    def feature_dim(self) -> int:
        return 2 * self.dim

    def features(self, x):
        """``(cos x, sin x)``, continuous across ``0 = 2π``. ``[..., n] -> [..., 2n]``."""
        self._inputs(x=x)
        return torch.cat([torch.cos(x), torch.sin(x)], dim=-1)

    def tangent_frame(self, x):
        """The standard basis (the torus is parallelisable). ``[..., n] -> [..., n, n]``."""
        self._inputs(x=x)
        return torch.eye(self.dim, dtype=x.dtype, device=x.device).expand(x.shape + (self.dim,))

    def _point_residual(self, x):
        """Distance of the angles from ``[0, 2π]`` (max over the last axis). ``[...]``."""
        return torch.maximum(-x, x - TWO_PI).clamp_min(0).amax(-1)

    def _tangent_residual(self, x, u):
        return torch.zeros(broadcast_shapes(x.shape, u.shape)[:-1], dtype=u.dtype, device=u.device)
