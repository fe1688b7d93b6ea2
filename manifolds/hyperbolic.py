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
  cancels terms of size ``x_0²`` (in float32 at radius 9, ``dist`` of nearby points used to round to
  exactly 0). Every operation therefore works in float64 for lower-precision inputs (and returns
  the input dtype), and first re-lifts points from their spatial part, ``x_0 = sqrt(1 + ‖x_{1:}‖²)``,
  and reads tangent inputs from their spatial part, ``u_0 = ⟨x_{1:}, u_{1:}⟩/x_0`` (a no-op for
  tangent vectors in exact arithmetic): a float32 point then means exactly the hyperboloid point
  over its float32 spatial coordinates, and ``dist``/``log`` are as accurate as in float64 at any
  radius. What float32 cannot fix is the *storage* far out: a point at radius ``r`` is known to
  ``~eps·e^r`` and a tangent vector there to relative ``~eps·e^r``.
  :meth:`stable_radius` is the tangent norm up to which ``exp``/``log`` round trips keep
  ``~tol("prop")`` relative accuracy from points of moderate radius.
* ``dist`` is NaN where an input is not finite.
* No cut locus (``injectivity_radius = ∞``).

Base distribution: :class:`~gaugeflow.geometry.WrappedNormal`, the wrapped normal at the origin
``o = (1, 0, …, 0)``: ``v ~ N(0, σ² I_n)`` in ``T_oH^n``, ``x = exp_o(v)``, density
``log p0(x) = log N(v; 0, σ² I) − (n − 1) log(sinh r / r)``, ``r = ‖v‖ = asinh(‖x_{1:}‖)``. By
default ``σ = σ_n`` shrinks with the dimension so that samples stay within geodesic radius
``BASE_RADIUS = 3`` (below the float32 stable radius) with probability ``1 − 7e-13`` in every
dimension; with ``σ = 1`` in ``H^16`` half of the samples lay beyond radius 4.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from gaugeflow._numerics import broadcast_shapes, tol
from gaugeflow.geometry._generic import nan_unless_finite
from gaugeflow.geometry.base import WrappedNormal
from gaugeflow.geometry.manifold import Manifold, check_dimension, default_dtype, safe_sqrt

from ._series import column, cosh_sq, row_dot, sinh_over

__all__ = ["Hyperbolic", "minkowski"]

#: float32 tangent norm up to which round trips stay within tol("prop") (storage error ~eps·e^r, see module doc)
STABLE_RADIUS_FLOAT32 = 6.0
#: tangent norm up to which exp/log stay accurate to ~tol("prop") (coordinates ~ e^r)
_STABLE_RADIUS = {torch.float32: STABLE_RADIUS_FLOAT32, torch.float64: 12.0}


def minkowski(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Minkowski form ``−u_0 v_0 + Σ_{i≥1} u_i v_i``. ``[..., D] -> [...]``."""
    return (u[..., 1:] * v[..., 1:]).sum(-1) - u[..., 0] * v[..., 0]


def _hi(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float64 when its dtype is less precise (the working precision of every operation)."""
    return t if t.dtype == torch.float64 else t.to(torch.float64)


def _lift(x: torch.Tensor) -> torch.Tensor:
    """The hyperboloid point over the spatial part of ``x``: ``(sqrt(1 + ‖x_{1:}‖²), x_{1:})``."""
    xs = x[..., 1:]
    return torch.cat([torch.sqrt(1 + (xs * xs).sum(-1, keepdim=True)), xs], dim=-1)


def _tangent(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``u + ⟨x, u⟩_L x``: projection onto ``T_xH^n`` (``x`` on the hyperboloid)."""
    return u + minkowski(x, u)[..., None] * x


def _lift_tangent(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The tangent vector at ``x`` over the spatial part of ``u``: ``u_0 = ⟨x_{1:}, u_{1:}⟩ / x_0``.

    How operations read their tangent inputs: for a tangent ``u`` it is ``u``; for a float32 ``u``
    far out it discards the rounding of ``u_0``, whose tangent part is ``sinh r`` times larger than
    the rounding itself (relative error ``eps·e^r`` instead of ``eps·e^{2r}``).
    """
    us = u[..., 1:]
    return torch.cat([(x[..., 1:] * us).sum(-1, keepdim=True) / x[..., :1], us], dim=-1)


def _log(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``log_x(y)`` for lifted points in working precision (see :meth:`Hyperbolic.log`)."""
    d = y - x
    _, factor = _chord_factor(minkowski(d, d)[..., None], tol("taylor", d.dtype))
    return factor * _tangent(x, d)


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
        std: standard deviation ``σ`` of the wrapped-normal base distribution; ``None`` (default)
            picks the dimension-aware ``σ_n`` (see module doc), e.g. 0.35 for ``n = 2``.

    Examples:
        >>> M = Hyperbolic(2)
        >>> o = torch.tensor([1.0, 0.0, 0.0])
        >>> round(float(M.dist(o, M.exp(o, torch.tensor([0.0, 3.0, 4.0])))), 4)  # the norm of the tangent
        5.0
    """

    injectivity_radius = math.inf

    def __init__(self, n: int, std: Optional[float] = None):
        n = check_dimension("Hyperbolic", n)
        if std is not None and not (isinstance(std, (int, float)) and not isinstance(std, bool)
                                    and math.isfinite(std) and std > 0):
            raise ValueError(f"Hyperbolic: std must be None or a finite number > 0, got {std!r}")
        self.dim = n
        self.ambient_dim = n + 1
        self.base = WrappedNormal(n, std)
        self.std = self.base.std

    # -- metric
    def inner(self, x, u, v):
        """Minkowski form of ``u``, ``v`` read as tangent vectors at ``x`` (spatial parts). ``[..., D] -> [...]``."""
        self._inputs(x=x, u=u, v=v)
        X = _lift(_hi(x))
        out = minkowski(_lift_tangent(X, _hi(u)), _lift_tangent(X, _hi(v))).to(u.dtype)
        return out.expand(broadcast_shapes(x.shape, u.shape, v.shape)[:-1])

    # -- projections
    def projx(self, x):
        """Lift the spatial part onto the upper sheet: ``x_0 = sqrt(1 + ‖x_{1:}‖²)``."""
        self._inputs(x=x)
        return _lift(x)

    def proju(self, x, u):
        """``u + ⟨x, u⟩_L x`` (orthogonal projection onto ``T_xH^n`` for ``⟨x, x⟩_L = −1``)."""
        self._inputs(x=x, u=u)
        return _tangent(_lift(_hi(x)), _hi(u)).to(u.dtype)

    def to_tangent(self, x, u):
        """Boost of ``u``'s spatial part from the origin: ``(⟨x̄, ū⟩, ū + x̄ ⟨x̄, ū⟩ / (1 + x_0))``.

        ``= tangent_frame(x) @ u_{1:}``, the parallel transport of ``(0, u_{1:}) ∈ T_oH^n`` to ``x``: an
        isometry, so a network output of norm ``c`` is a velocity of speed ``c`` wherever ``x`` is
        (:meth:`proju` would scale it like ``e^r`` at distance ``r`` from the origin). ``[..., D]``.
        """
        self._inputs(x=x, u=u)
        X, us = _lift(_hi(x)), _hi(u)[..., 1:]
        xs = X[..., 1:]
        c = (xs * us).sum(-1, keepdim=True)
        return torch.cat([c, us + xs * (c / (1 + X[..., :1]))], dim=-1).to(u.dtype)

    def from_tangent(self, x, v):
        """Inverse boost to the origin: ``(0, v̄ − x̄ v_0 / (1 + x_0))``; inverts :meth:`to_tangent` on ``T_xH^n``."""
        self._inputs(x=x, v=v)
        X = _lift(_hi(x))
        V = _lift_tangent(X, _hi(v))
        spatial = V[..., 1:] - X[..., 1:] * (V[..., :1] / (1 + X[..., :1]))
        return torch.cat([torch.zeros_like(spatial[..., :1]), spatial], dim=-1).to(v.dtype)

    # -- network features
    @property
    def feature_dim(self) -> int:
        return self.dim

    def features(self, x):
        """Poincaré-ball coordinates ``x̄ / (1 + x_0)``: a diffeomorphism onto the open unit ball, so
        network inputs stay bounded however far out the point is (ambient coordinates grow like
        ``e^r``). ``[..., D] -> [..., n]``."""
        self._inputs(x=x)
        X = _lift(_hi(x))
        return (X[..., 1:] / (1 + X[..., :1])).to(x.dtype)

    # -- exponential and logarithm
    def exp(self, x, u):
        """``cosh θ · x + (sinh θ / θ) · u`` with ``θ² = ⟨u, u⟩_L``, re-projected. ``[..., D]``."""
        self._inputs(x=x, u=u)
        X = _lift(_hi(x))
        U = _lift_tangent(X, _hi(u))
        small = tol("taylor", U.dtype)
        theta2 = minkowski(U, U)[..., None]
        return _lift(cosh_sq(theta2, small) * X + sinh_over(theta2, small) * U).to(x.dtype)

    def log(self, x, y):
        """``(r / sinh r) · proj_x(y − x)`` via the chord (see module doc). ``[..., D]``."""
        self._inputs(x=x, y=y)
        return _log(_lift(_hi(x)), _lift(_hi(y))).to(x.dtype)

    def dist(self, x, y):
        """``2 asinh(‖y − x‖_L / 2)``; gradient 0 at ``y = x``; NaN for non-finite input. ``[..., D] -> [...]``."""
        self._inputs(x=x, y=y)
        d = _lift(_hi(y)) - _lift(_hi(x))
        return nan_unless_finite(2 * torch.asinh(safe_sqrt(minkowski(d, d)) / 2), x, y).to(x.dtype)

    def transp(self, x, y, v):
        """``v + ⟨y, v⟩_L / (1 − ⟨x, y⟩_L) · (x + y)`` (exact; the denominator is ``≥ 2``)."""
        self._inputs(x=x, y=y, v=v)
        X, Y = _lift(_hi(x)), _lift(_hi(y))
        V = _lift_tangent(X, _hi(v))
        coef = minkowski(Y, V) / (1 - minkowski(X, Y))
        return (V + coef[..., None] * (X + Y)).to(v.dtype)

    def geodesic(self, x0, x1, t):
        """``x_t = cosh(tθ) x0 + t sinhc(tθ) u``, ``u_t = θ² t sinhc(tθ) x0 + cosh(tθ) u``."""
        self._inputs(x0=x0, x1=x1)
        X0 = _lift(_hi(x0))
        u = _log(X0, _lift(_hi(x1)))
        theta2 = minkowski(u, u)[..., None]
        tt = _hi(t)[..., None]
        small = tol("taylor", u.dtype)
        tt2 = tt * tt * theta2
        cosh_t, sinhc_t = cosh_sq(tt2, small), sinh_over(tt2, small)
        xt = _lift(cosh_t * X0 + tt * sinhc_t * u)
        ut = _tangent(xt, theta2 * tt * sinhc_t * X0 + cosh_t * u)
        return xt.to(x0.dtype), ut.to(x0.dtype)

    def geodesic_and_cut(self, x0, x1, t):
        """:meth:`geodesic` for data (no gradient), in one pass; the cut mask is all ``False``.

        In float64 on lifted points, with ``d = X1 − X0``, ``c² = ⟨d, d⟩_L``, ``r = 2 asinh(c/2)``,
        ``w = d + ⟨X0, d⟩_L X0 = sinh r · e`` (``e`` the unit direction of ``log_{X0} X1``):

            x_t = cosh(tr) X0 + (sinh(tr)/sinh r) w,    u_t = r sinh(tr) X0 + (r cosh(tr)/sinh r) w.

        ``sinh(tr)/sinh r → t`` and ``r/sinh r → 1`` in floating point as ``r → 0``, so the values
        need no Taylor branch; ``sinh r`` is clamped to the smallest normal number (``x0 = x1``).

        Layout (issue 19, docs/performance.md): the ``N`` pairs are copied *coordinate-major* in float64
        (``[2, D, N]``: each coordinate of the ``N`` points contiguous; the conversion and the transpose
        in one copy per input), so a per-point factor is a ``[N]`` row broadcast over ``D`` rows — one
        long loop per operation, where ``[N, D]`` rows with an ``[N, 1]`` factor run ``D``-long inner
        loops — and ``x_t, u_t`` come back as rows in the input dtype by one copy. The inputs are read
        detached (no graph; use :meth:`geodesic` to differentiate). ``x0, x1 [..., D]``, ``t [...]``.
        """
        self._inputs(x0=x0, x1=x1)
        lead = broadcast_shapes(x0.shape[:-1], x1.shape[:-1], t.shape)
        D = x0.shape[-1]
        X = torch.empty((2, D, math.prod(lead)), dtype=torch.float64, device=x0.device)
        for i, x in enumerate((x0, x1)):
            X[i].copy_(x.detach().expand(*lead, D).reshape(-1, D).t())
        S = X[:, 1:]  # spatial rows [2, D − 1, N]; the time row is lifted from them
        X[:, 0] = S.mul(S).sum(1).add_(1).sqrt_()
        X0, X1 = X.unbind(0)
        d = X1 - X0
        J = column((-1.0,) + (1.0,) * (D - 1), torch.float64, X.device)  # [D, 1]: ⟨u, v⟩_L = Σ_i J_i u_i v_i
        r = torch.asinh((d * d * J).sum(0).clamp_min_(0).sqrt_().mul_(0.5)).mul_(2)
        w = d.addcmul_(X0, (X0 * d * J).sum(0))  # d + ⟨X0, d⟩_L X0, in d's buffer
        inv = torch.sinh(r).clamp_min_(torch.finfo(r.dtype).tiny).reciprocal_()
        phi = _hi(t.detach()).expand(lead).reshape(-1) * r
        ch, sh = torch.cosh(phi), torch.sinh(phi)
        # u_t into X1's rows (spent), then x_t into X0's: no further [D, N] buffer (fresh ones page-fault)
        torch.mul(X0, r * sh, out=X1).addcmul_(w, ch.mul(r).mul_(inv))
        X0.mul_(ch).addcmul_(w, sh.mul_(inv))
        rows = torch.empty((2, X.shape[-1], D), dtype=x0.dtype, device=x0.device)
        rows.copy_(X.transpose(1, 2))
        return rows[0].view(*lead, D), rows[1].view(*lead, D), torch.zeros(lead, dtype=torch.bool, device=x0.device)

    def stable_radius(self, dtype: torch.dtype) -> float:
        return _STABLE_RADIUS.get(dtype, _STABLE_RADIUS[torch.float32])

    def tangent_frame(self, x):
        """The boosted standard frame: ``e_i = (x_i, ε_i + x_i x_{1:} / (1 + x_0))``. ``[..., D] -> [..., D, n]``.

        The Lorentz boost taking ``o`` to ``x`` maps ``(0, ε_i)`` to ``e_i``, so the columns are
        Minkowski-orthonormal and tangent at ``x``.
        """
        self._inputs(x=x)
        X = _lift(_hi(x))
        xs = X[..., 1:]
        eye = torch.eye(self.dim, dtype=X.dtype, device=X.device)
        spatial = eye + xs.unsqueeze(-1) * (xs / (1 + X[..., :1])).unsqueeze(-2)  # [..., n(row), n(col)]
        return torch.cat([xs.unsqueeze(-2), spatial], dim=-2).to(x.dtype)

    def origin(self, dtype: Optional[torch.dtype] = None, device=None) -> torch.Tensor:
        """The point ``o = (1, 0, …, 0)``. ``[D]``."""
        o = torch.zeros(self.ambient_dim, dtype=default_dtype(dtype), device=device)
        o[0] = 1
        return o

    # -- validation
    def _point_residual(self, x):
        """``|⟨x, x⟩_L + 1| / (1 + ‖x‖²)`` (relative: the form cancels terms of size ``x_0²``), or 1 below the sheet."""
        rel = (minkowski(x, x) + 1).abs() / (1 + (x * x).sum(-1))
        return torch.where(x[..., 0] > 0, rel, torch.ones_like(rel))

    def _tangent_residual(self, x, u):
        """``|⟨x, u⟩_L| / ‖x‖`` (relative, as for points). ``[...]``."""
        return minkowski(x, u).abs() / (x * x).sum(-1).sqrt()

    def __repr__(self) -> str:
        std = self._argument("std")
        return f"Hyperbolic({self.dim})" if std is None else f"Hyperbolic({self.dim}, std={std})"
