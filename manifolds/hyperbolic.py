"""Hyperbolic space H^n in the Lorentz (hyperboloid) model, with a wrapped-normal base distribution.

Points satisfy ``⟨x, x⟩_L = −1``, ``x_0 > 0`` in ``ℝ^(n+1)`` with the Minkowski form
``⟨u, v⟩_L = −u_0 v_0 + Σ_{i≥1} u_i v_i`` (time coordinate first, as in geomstats' ``Hyperboloid``
and geoopt's ``Lorentz``); tangent vectors at ``x`` satisfy ``⟨x, u⟩_L = 0`` and the metric is the
restriction of ``⟨·,·⟩_L`` (positive definite there).

Numerics (see ``gaugeflow._numerics.TOLERANCES``):

* Distances go through the chord ``c² = ⟨y − x, y − x⟩_L = 4 sinh²(r/2)``:
  ``r = 2 asinh(c/2)``. Unlike ``arcosh(−⟨x, y⟩_L)`` this is accurate for nearby points, needs no
  clamp and, with a safe square root, has gradient 0 (not NaN) at ``y = x``.
* ``log_x(y) = (r / sinh r)·w`` with ``w = proj_x(y − x) = y + ⟨x, y⟩_L x`` and
  ``sinh r = c·sqrt(1 + c²/4)``; below ``tol("taylor")`` the factor is the series
  ``(1 − c²/24 + 3c⁴/640)/sqrt(1 + c²/4)`` in ``c²``. ``exp`` uses ``cosh θ`` and ``sinh θ/θ`` as
  functions of ``θ² = ⟨u, u⟩_L`` with Taylor branches, then re-projects with :meth:`projx`.
* The model is exponentially ill-conditioned: coordinates grow like ``e^r`` and the Minkowski form
  cancels terms of size ``x_0²``. :meth:`stable_radius` is the tangent norm up to which
  ``exp``/``log`` keep ``~tol("prop")`` relative accuracy from points of moderate radius.
* No cut locus (``injectivity_radius = ∞``).

Base distribution: the wrapped normal at the origin ``o = (1, 0, …, 0)``: ``v ~ N(0, σ² I_n)`` in
``T_oH^n``, ``x = exp_o(v)``, with density w.r.t. the Riemannian volume
``log p0(x) = log N(v; 0, σ² I) − (n − 1) log(sinh r / r)``, ``r = ‖v‖ = asinh(‖x_{1:}‖)``.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from gaugeflow._numerics import broadcast_shapes, tol
from gaugeflow.geometry.manifold import Manifold, check_dimension, default_dtype, safe_sqrt

from ._series import cosh_sq, sinh_over

__all__ = ["Hyperbolic", "minkowski"]

#: tangent norm up to which exp/log stay accurate to ~tol("prop") (coordinates ~ e^r)
_STABLE_RADIUS = {torch.float32: 4.0, torch.float64: 12.0}


def minkowski(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Minkowski form ``−u_0 v_0 + Σ_{i≥1} u_i v_i``. ``[..., D] -> [...]``."""
    return (u[..., 1:] * v[..., 1:]).sum(-1) - u[..., 0] * v[..., 0]


def _chord_factor(c2: torch.Tensor, small: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance ``r`` and ``r / sinh r`` from the squared chord ``c² = 4 sinh²(r/2)``."""
    c = safe_sqrt(c2)
    r = 2 * torch.asinh(c / 2)
    is_small = c2 < small * small
    root = torch.sqrt(1 + c2.clamp_min(0) / 4)
    c_safe = torch.where(is_small, torch.ones_like(c), c)
    series = (1 - c2 / 24 + 3 * c2 * c2 / 640) / torch.sqrt(1 + c2 / 4)
    return r, torch.where(is_small, series, r / (c_safe * root))


class Hyperbolic(Manifold):
    """Hyperbolic space ``H^n`` (curvature −1) in the Lorentz model, embedded in ``ℝ^(n+1)``.

    Args:
        n: intrinsic dimension (``>= 1``).
        std: standard deviation ``σ`` of the wrapped-normal base distribution (default 1).

    Example:
        >>> M = Hyperbolic(2)
        >>> o = torch.tensor([1.0, 0.0, 0.0])
        >>> round(float(M.dist(o, M.exp(o, torch.tensor([0.0, 3.0, 4.0])))), 4)  # the norm of the tangent
        5.0
    """

    injectivity_radius = math.inf

    def __init__(self, n: int, std: float = 1.0):
        n = check_dimension("Hyperbolic", n)
        if not (isinstance(std, (int, float)) and math.isfinite(std) and std > 0):
            raise ValueError(f"Hyperbolic: std must be a finite number > 0, got {std!r}")
        self.dim = n
        self.ambient_dim = n + 1
        self.std = float(std)

    # -- metric
    def inner(self, x, u, v):
        """Minkowski form restricted to ``T_xH^n``. ``[..., D] -> [...]``."""
        self._inputs(x=x, u=u, v=v)
        return minkowski(u, v).expand(broadcast_shapes(x.shape, u.shape, v.shape)[:-1])

    # -- projections
    def projx(self, x):
        """Lift the spatial part onto the upper sheet: ``x_0 = sqrt(1 + ‖x_{1:}‖²)``."""
        self._inputs(x=x)
        xs = x[..., 1:]
        x0 = torch.sqrt(1 + (xs * xs).sum(-1, keepdim=True))
        return torch.cat([x0, xs], dim=-1)

    def proju(self, x, u):
        """``u + ⟨x, u⟩_L x`` (orthogonal projection onto ``T_xH^n`` for ``⟨x, x⟩_L = −1``)."""
        self._inputs(x=x, u=u)
        return u + minkowski(x, u)[..., None] * x

    # -- exponential and logarithm
    def exp(self, x, u):
        """``cosh θ · x + (sinh θ / θ) · u`` with ``θ² = ⟨u, u⟩_L``, re-projected. ``[..., D]``."""
        self._inputs(x=x, u=u)
        small = tol("taylor", u.dtype)
        theta2 = minkowski(u, u)[..., None]
        return self.projx(cosh_sq(theta2, small) * x + sinh_over(theta2, small) * u)

    def log(self, x, y):
        """``(r / sinh r) · proj_x(y − x)`` via the chord (see module doc). ``[..., D]``."""
        self._inputs(x=x, y=y)
        d = y - x
        w = d + minkowski(x, d)[..., None] * x
        _, factor = _chord_factor(minkowski(d, d)[..., None], tol("taylor", d.dtype))
        return factor * w

    def dist(self, x, y):
        """``2 asinh(‖y − x‖_L / 2)``; gradient 0 at ``y = x``. ``[..., D] -> [...]``."""
        self._inputs(x=x, y=y)
        d = y - x
        return 2 * torch.asinh(safe_sqrt(minkowski(d, d)) / 2)

    def transp(self, x, y, v):
        """``v + ⟨y, v⟩_L / (1 − ⟨x, y⟩_L) · (x + y)`` (exact; the denominator is ``≥ 2``)."""
        self._inputs(x=x, y=y, v=v)
        coef = minkowski(y, v) / (1 - minkowski(x, y))
        return v + coef[..., None] * (x + y)

    def geodesic(self, x0, x1, t):
        """``x_t = cosh(tθ) x0 + t sinhc(tθ) u``, ``u_t = θ² t sinhc(tθ) x0 + cosh(tθ) u``."""
        u = self.log(x0, x1)
        theta2 = minkowski(u, u)[..., None]
        t = t[..., None]
        small = tol("taylor", u.dtype)
        tt2 = t * t * theta2
        cosh_t, sinhc_t = cosh_sq(tt2, small), sinh_over(tt2, small)
        xt = self.projx(cosh_t * x0 + t * sinhc_t * u)
        return xt, self.proju(xt, theta2 * t * sinhc_t * x0 + cosh_t * u)

    def stable_radius(self, dtype: torch.dtype) -> float:
        return _STABLE_RADIUS.get(dtype, _STABLE_RADIUS[torch.float32])

    # -- base distribution
    def origin(self, dtype: Optional[torch.dtype] = None, device=None) -> torch.Tensor:
        """The point ``o = (1, 0, …, 0)``. ``[D]``."""
        o = torch.zeros(self.ambient_dim, dtype=default_dtype(dtype), device=device)
        o[0] = 1
        return o

    def random_base(self, n: int, generator=None, dtype: Optional[torch.dtype] = None, device=None):
        v = self.std * torch.randn(n, self.dim, generator=generator, dtype=default_dtype(dtype), device=device)
        xs = sinh_over((v * v).sum(-1, keepdim=True), tol("taylor", v.dtype)) * v  # spatial part of exp_o(v)
        return self.projx(torch.cat([torch.zeros_like(v[..., :1]), xs], dim=-1))

    def base_log_prob(self, x):
        """``log N(v; 0, σ²I) − (n−1) log(sinh r / r)`` with ``sinh r = ‖x_{1:}‖``. ``[...]``."""
        self._inputs(x=x)
        s2 = (x[..., 1:] ** 2).sum(-1)  # sinh² r
        small = tol("taylor", x.dtype)
        is_small = s2 < small * small
        s = torch.sqrt(torch.where(is_small, torch.ones_like(s2), s2))
        r = torch.asinh(safe_sqrt(s2))
        # log(sinh r / r) = log(s / asinh s), series s²/6 − 11 s⁴/180
        log_jac = torch.where(is_small, s2 / 6 - 11 * s2 * s2 / 180, torch.log(s / torch.asinh(s)))
        n, var = self.dim, self.std**2
        return -0.5 * r * r / var - 0.5 * n * math.log(2 * math.pi * var) - (n - 1) * log_jac

    # -- validation
    def _point_residual(self, x):
        """``|⟨x, x⟩_L + 1| / (1 + ‖x‖²)`` (relative: the form cancels terms of size ``x_0²``), or 1 below the sheet."""
        rel = (minkowski(x, x) + 1).abs() / (1 + (x * x).sum(-1))
        return torch.where(x[..., 0] > 0, rel, torch.ones_like(rel))

    def _tangent_residual(self, x, u):
        """``|⟨x, u⟩_L| / ‖x‖`` (relative, as for points). ``[...]``."""
        return minkowski(x, u).abs() / (x * x).sum(-1).sqrt()

    def _key(self) -> tuple:
        return (type(self).__name__, self.dim, self.std)

    def __repr__(self) -> str:
        return f"Hyperbolic({self.dim})" if self.std == 1.0 else f"Hyperbolic({self.dim}, std={self.std})"
