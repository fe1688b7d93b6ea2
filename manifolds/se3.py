r"""Rigid motions SE(3) as the Riemannian product SO(3) × ℝ³ with a translation scale.

A point is ``(R, t)`` stored as ``[..., 12]``: the rotation flattened row-major (``x[..., :9]``) then the
translation (``x[..., 9:]``, in the data's units, e.g. Å). Tangent vectors are ``(U, a)`` with
``U = R hat(ω)``. The metric is the product of SO(3)'s bi-invariant metric and ``s²`` times the
Euclidean one::

    ⟨(U, a), (V, b)⟩ = ½ tr(UᵀV) + s² a·b,      dist² = θ(R1ᵀR2)² + s² ‖t2 − t1‖²,

with ``s = translation_scale``. Frame-based protein backbone models measure translations in
nanometres against rotations in radians, i.e. ``s = 0.1`` per Å (the default): 10 Å of translation
weigh as much as one radian of rotation. Geodesics, ``exp``/``log`` and parallel transport act factor
by factor (the rotation part as in :mod:`gaugeflow.manifolds.so3`, the translation part linearly);
the cut locus is SO(3)'s (rotation angle π), so the first cut point along ``(U, a)`` is
``π (U, a)/|ω|``.

Base distribution (:class:`HaarNormalSE3`): Haar on the rotation times ``t ~ N(0, s⁻² I)``, i.e. a
standard normal in the scaled coordinates ``s t``. Its log-density w.r.t. the Riemannian volume
(``dvol = dvol_SO(3) · s³ d³t``) is ``−log 8π² − ½ s²‖t‖² − (3/2) log 2π``.
"""
from __future__ import annotations

import math

import torch

from gaugeflow._numerics import LOG_2PI, broadcast_shapes
from gaugeflow.geometry._generic import nan_unless_finite
from gaugeflow.geometry.base import BaseDistribution
from gaugeflow.geometry.manifold import Manifold, safe_sqrt

from .so3 import LOG_VOLUME_SO3, HaarSO3, SpecialOrthogonal

__all__ = ["SpecialEuclidean", "SE3", "HaarNormalSE3"]


def _scale(owner: str, s) -> float:
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
        raise ValueError(f"{owner}: translation_scale must be a finite number > 0, got {s!r}")
    return float(s)


def _split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :9], x[..., 9:]


def _cat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    batch = broadcast_shapes(a.shape[:-1], b.shape[:-1])
    return torch.cat([a.expand(batch + a.shape[-1:]), b.expand(batch + b.shape[-1:])], -1)


class HaarNormalSE3(BaseDistribution):
    """Haar rotation × ``N(0, s⁻² I₃)`` translation on SE(3) (log-density in the module doc).

    Args:
        translation_scale: ``s`` of the metric (the translation std is ``1/s``).
    """

    ambient_dim = 12

    def __init__(self, translation_scale: float = 0.1):
        self.scale = _scale("HaarNormalSE3", translation_scale)

    def sample(self, n, generator=None, dtype=None, device=None):
        R = HaarSO3().sample(n, generator=generator, dtype=dtype, device=device)
        t = torch.randn(n, 3, generator=generator, dtype=R.dtype, device=device) / self.scale
        return torch.cat([R, t], -1)

    def log_prob(self, x):
        self._check(x)
        st = self.scale * x[..., 9:]
        return -LOG_VOLUME_SO3 - 0.5 * (st * st).sum(-1) - 1.5 * LOG_2PI


class SpecialEuclidean(Manifold):
    """``SE(3) = SO(3) × ℝ³`` (``dim 6``, points ``[..., 12]`` = rotation row-major ⊕ translation).

    Args:
        n: the ``n`` of ``SE(n)``; only ``3`` is implemented (``SE3()`` equals ``SpecialEuclidean(3)``).
        translation_scale: ``s > 0`` weighting translations in the metric (module doc); default 0.1
            (translations in Å, the frame-based protein-model convention).

    Examples:
        >>> M = SE3()
        >>> x = torch.cat([torch.eye(3).reshape(9), torch.zeros(3)])
        >>> y = torch.cat([torch.eye(3).reshape(9), torch.tensor([30.0, 0, 40])])
        >>> float(M.dist(x, y))  # 0.1 × 50 Å
        5.0
    """

    injectivity_radius = math.pi

    def __init__(self, n: int = 3, translation_scale: float = 0.1):
        if isinstance(n, bool) or n != 3:
            raise ValueError(f"SpecialEuclidean: only n = 3 (SE(3)) is implemented, got n={n!r}")
        self.scale = _scale("SpecialEuclidean", translation_scale)
        self.rot = SpecialOrthogonal(3)
        self.n, self.dim, self.ambient_dim = 3, 6, 12
        self.base = HaarNormalSE3(self.scale)

    def __repr__(self) -> str:
        s = "" if self.scale == 0.1 else f"translation_scale={self.scale}"
        return f"SE3({s})" + ("" if self.base == HaarNormalSE3(self.scale) else f".with_base({self.base!r})")

    # -- projections and metric
    def projx(self, x):
        self._inputs(x=x)
        r, t = _split(x)
        return _cat(self.rot.projx(r), t)

    def proju(self, x, u):
        self._inputs(x=x, u=u)
        return _cat(self.rot.proju(_split(x)[0], _split(u)[0]), _split(u)[1])

    def inner(self, x, u, v):
        """``½ tr(UᵀV) + s² a·b``. ``[..., 12] -> [...]``."""
        self._inputs(x=x, u=u, v=v)
        (ur, ut), (vr, vt) = _split(u), _split(v)
        out = 0.5 * (ur * vr).sum(-1) + self.scale ** 2 * (ut * vt).sum(-1)
        shape = broadcast_shapes(x.shape, u.shape, v.shape)[:-1]
        return out if out.shape == shape else out.expand(shape)

    def norm(self, x, u):
        return safe_sqrt(self.inner(x, u, u))

    # -- exponential, logarithm, distance
    def exp(self, x, u):
        self._inputs(x=x, u=u)
        (xr, xt), (ur, ut) = _split(x), _split(u)
        return _cat(self.rot.exp(xr, ur), xt + ut)

    def log(self, x, y):
        self._inputs(x=x, y=y)
        (xr, xt), (yr, yt) = _split(x), _split(y)
        return _cat(self.rot.log(xr, yr), yt - xt)

    def dist(self, x, y):
        """``sqrt(θ² + s²‖Δt‖²)`` (zero gradient at ``y = x``; NaN for non-finite input). ``[..., 12] -> [...]``."""
        self._inputs(x=x, y=y)
        (xr, xt), (yr, yt) = _split(x), _split(y)
        theta, dt = self.rot.dist(xr, yr), self.scale * (yt - xt)
        return nan_unless_finite(safe_sqrt(theta * theta + (dt * dt).sum(-1)), x, y)

    def pairwise_sq_dist(self, x, y):
        """``θ_ij² + s²‖t_j − t_i‖²``: the rotations' :meth:`SpecialOrthogonal.pairwise_sq_dist` (one batched
        product of quaternions) plus the translations' squared differences. ``[..., m, 12] × [..., n, 12]
        -> [..., m, n]``."""
        self._inputs(x=x, y=y)
        (xr, xt), (yr, yt) = _split(x), _split(y)
        dt = self.scale * (yt.unsqueeze(-3) - xt.unsqueeze(-2))
        return self.rot.pairwise_sq_dist(xr, yr) + (dt * dt).sum(-1)

    def transp(self, x, y, v):
        self._inputs(x=x, y=y, v=v)
        (xr, xt), (yr, yt), (vr, vt) = _split(x), _split(y), _split(v)
        return _cat(self.rot.transp(xr, yr, vr), vt)

    def geodesic(self, x0, x1, t):
        """Rotation geodesic ⊕ straight line: ``(x_t, u_t)`` ``[..., 12]``; ``t`` ``[...]``."""
        self._inputs(x0=x0, x1=x1)
        (ar, at), (br, bt) = _split(x0), _split(x1)
        rt, ur = self.rot.geodesic(ar, br, t)
        d = bt - at
        return _cat(rt, at + t[..., None] * d), _cat(ur, d)

    # -- cut locus
    def cut_locus_mask(self, x, y):
        return self.rot.cut_locus_mask(_split(x)[0], _split(y)[0])

    def cut_vector(self, x, u):
        """``π u / |ω|``: the geodesic along ``u`` first reaches the cut locus when its rotation angle is π."""
        self._inputs(x=x, u=u)
        w = self.rot.norm(_split(x)[0], _split(u)[0])[..., None]
        return math.pi * u / w.clamp_min(torch.finfo(u.dtype).tiny ** 0.5)

    # -- features and frames
    @property
    def feature_dim(self) -> int:
        return 12

    def features(self, x):
        """Rotation entries ⊕ scaled translation ``s t``. ``[..., 12] -> [..., 12]``."""
        self._inputs(x=x)
        r, t = _split(x)
        return torch.cat([r, self.scale * t], -1)

    def tangent_frame(self, x):
        """Block-diagonal orthonormal frame: SO(3)'s ``R hat(e_i)`` and ``e_j / s``. ``[..., 12] -> [..., 12, 6]``."""
        self._inputs(x=x)
        out = x.new_zeros(x.shape + (6,))
        out[..., :9, :3] = self.rot.tangent_frame(_split(x)[0])
        out[..., 9:, 3:] = torch.eye(3, dtype=x.dtype, device=x.device) / self.scale
        return out

    # -- validation
    def _point_residual(self, x):
        return self.rot._point_residual(_split(x)[0])

    def check_point(self, x, atol=None):
        """As :meth:`Manifold.check_point`; a bad rotation block is named as such."""
        self.validate(x)
        if torch.isfinite(x).all():
            try:
                self.rot.check_point(_split(x)[0], atol)
            except ValueError as err:
                raise ValueError(f"{self}: rotation block x[..., :9]: {err}") from None
        return super().check_point(x, atol)


#: ``SE3()`` is ``SpecialEuclidean(3)``
SE3 = SpecialEuclidean
