"""The unit sphere S^n ⊂ ℝ^(n+1) with the induced metric and the uniform base distribution.

Numerics (see ``gaugeflow._numerics.TOLERANCES``):

* ``dist(x, y) = 2·atan2(‖y − x‖, ‖y + x‖)``: accurate to relative machine precision for nearly
  identical *and* nearly antipodal points, and no ``acos``.
* ``exp`` and ``log`` use Taylor series of ``sin θ / θ`` and ``θ / sin θ`` in ``θ²`` below
  ``tol("taylor")``, so ``exp(x, 0)`` and ``log(x, x)`` have exact, finite gradients.
* Cut locus: for ``y = −x`` the logarithm is not unique. gaugeflow returns ``π·e`` where ``e`` is the
  unit tangent direction obtained by projecting the standard basis vector ``e_j`` least aligned with
  ``x`` (smallest ``|x_j|``, first index on ties) onto ``T_xM``. The choice is deterministic and has
  the correct length ``π``; it is used whenever ``‖proj_x(y)‖`` falls below ``_CUT_FLOOR·eps(dtype)``
  with ``⟨x, y⟩ < 0`` (above that floor the rounded ``proj_x(y)`` still fixes the direction to within
  ``eps`` of the landing point). :meth:`Sphere.cut_locus_mask` flags pairs within ``tol("cut")`` of
  antipodal.
* ``exp`` is finite for every finite tangent vector: where ``‖u‖²`` overflows (``‖u‖ ≳ 1e19`` in
  float32, ``1e154`` in float64) the angle and direction come from ``u / max|u_i|`` instead.
* ``dist`` is NaN (never a plausible angle) where an input is not finite.
* No data-dependent Python control flow: every operation works under ``torch.func.vmap``/``jvp``.
"""
from __future__ import annotations

import math
import torch

from gaugeflow._numerics import tol
from gaugeflow.geometry._generic import nan_unless_finite
from gaugeflow.geometry.base import UniformSphere
from gaugeflow.geometry.manifold import Manifold, check_dimension, safe_norm

from ._series import cos_sq, row_dot, sin_over

__all__ = ["Sphere"]

#: multiple of machine epsilon below which ``‖proj_x(y)‖`` of a near-antipodal pair carries no direction
_CUT_FLOOR = 16.0


class Sphere(Manifold):
    """Unit sphere ``S^n`` embedded in ``ℝ^(n+1)``; ``log p0 = −log |S^n|``.

    Examples:
        >>> M = Sphere(2)
        >>> x = torch.tensor([0.0, 0.0, 1.0]); y = torch.tensor([1.0, 0.0, 0.0])
        >>> float(M.dist(x, y))  # π/2
        1.5707963705062866
    """

    injectivity_radius = math.pi
    diameter = math.pi  # antipodes / half-turns

    def __init__(self, n: int):
        self.dim = n = check_dimension("Sphere", n)
        self.ambient_dim = n + 1
        self.base = UniformSphere(n)

    # -- projections
    def projx(self, x):
        self._inputs(x=x)  # x / max(‖x‖, sqrt(tiny)); the squared norm as a matrix–vector product (faster on CPU)
        return x * row_dot(x, x).clamp_min(torch.finfo(x.dtype).tiny).rsqrt()

    def proju(self, x, u):
        self._inputs(x=x, u=u)
        return u - (x * u).sum(-1, keepdim=True) * x

    # -- exponential and logarithm
    def exp(self, x, u):
        self._inputs(x=x, u=u)
        small = tol("taylor", u.dtype)
        theta2 = (u * u).sum(-1, keepdim=True)
        y = cos_sq(theta2, small) * x + sin_over(theta2, small) * u
        huge = torch.isinf(theta2)  # finite u whose squared norm overflows: rescale by max|u_i| first
        m = torch.where(huge, u.abs().amax(-1, keepdim=True), torch.ones_like(theta2))
        w = u / m
        wn = safe_norm(w)[..., None]
        theta = m * wn
        y_huge = torch.cos(theta) * x + torch.sin(theta) * (w / torch.where(huge, wn, torch.ones_like(wn)))
        return self.projx(torch.where(huge, y_huge, y))

    def _cut_direction(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic unit tangent at ``x`` used for ``log`` at the antipode (see module doc)."""
        j = x.abs().argmin(dim=-1, keepdim=True)
        e = (torch.arange(x.shape[-1], device=x.device) == j).to(x.dtype)
        w = self.proju(x, e)
        return w / w.norm(dim=-1, keepdim=True)

    def log(self, x, y):
        self._inputs(x=x, y=y)
        x, y = torch.broadcast_tensors(x, y)
        d = y - x
        w = d - (x * d).sum(-1, keepdim=True) * x  # = proj_x(y), computed from the difference for accuracy
        w = w - (x * w).sum(-1, keepdim=True) * x  # second pass: tangent to eps relative to |w| (near the antipode)
        s2 = (w * w).sum(-1, keepdim=True)  # sin²θ
        c = (x * y).sum(-1, keepdim=True)
        small = tol("taylor", x.dtype)
        taylor = (s2 < small * small) & (c > 0)
        antipodal = (c <= 0) & (s2 < (_CUT_FLOOR * torch.finfo(x.dtype).eps) ** 2)
        theta = self._theta(x, y)[..., None]
        s_safe = torch.sqrt(torch.where(taylor | antipodal, torch.ones_like(s2), s2))
        factor = torch.where(taylor, 1 + s2 / 6 + 3 * s2 * s2 / 40, theta / s_safe)  # θ / sin θ
        return torch.where(antipodal, theta * self._cut_direction(x), factor * w)

    def _theta(self, x, y):
        return 2 * torch.atan2(safe_norm(y - x), safe_norm(y + x))

    def dist(self, x, y):
        self._inputs(x=x, y=y)
        return nan_unless_finite(self._theta(x, y), x, y)

    def pairwise_sq_dist(self, x, y):
        """``θ_ij² = (2 asin(‖x_i − y_j‖ / 2))²`` with ``‖x_i − y_j‖² = 2 − 2⟨x_i, y_j⟩`` from one batched
        product. ``[..., m, D] × [..., n, D] -> [..., m, n]``. The chord from the inner product loses
        relative precision for tiny angles (``θ² ≈ eps``), which a transport cost does not feel; use
        :meth:`dist` for exact small distances."""
        self._inputs(x=x, y=y)
        half_chord2 = torch.matmul(x, y.transpose(-1, -2)).neg_().add_(1).mul_(0.5).clamp_(0, 1)
        return (2 * torch.asin(half_chord2.sqrt_())) ** 2

    def norm(self, x, u):
        self._inputs(x=x, u=u)
        return safe_norm(u)

    # -- transport and geodesics
    def transp(self, x, y, v):
        """Parallel transport along the minimising great circle.

        ``v − ⟨y, v⟩/(1 + ⟨x, y⟩)·(x + y)`` away from the antipode; for ``⟨x, y⟩ < −0.9`` the
        rotation form ``v + (cos θ − 1)⟨e, v⟩e − sin θ⟨e, v⟩x`` with ``e = log_x(y)/θ`` (the
        documented cut direction at the antipode itself), so it stays finite and isometric.
        """
        self._inputs(x=x, y=y, v=v)
        x, y, v = torch.broadcast_tensors(x, y, v)
        c = (x * y).sum(-1, keepdim=True)
        far = c < -0.9
        denom = torch.where(far, torch.ones_like(c), 1 + c)
        near_form = v - (y * v).sum(-1, keepdim=True) / denom * (x + y)
        u = self.proju(x, self.log(x, y))  # re-projected: log is tangent to eps absolute, not relative
        theta = safe_norm(u)[..., None]
        e = u / torch.where(far, theta, torch.ones_like(theta))
        ev = (e * v).sum(-1, keepdim=True)
        far_form = v + (torch.cos(theta) - 1) * ev * e - torch.sin(theta) * ev * x
        return torch.where(far, far_form, near_form)

    def geodesic(self, x0, x1, t):
        u = self.log(x0, x1)
        theta2 = (u * u).sum(-1, keepdim=True)
        t = t[..., None]
        small = tol("taylor", u.dtype)
        tt2 = t * t * theta2
        # x_t = cos(tθ) x0 + t·sinc(tθ) u ;  u_t = −θ² t·sinc(tθ) x0 + cos(tθ) u
        cos_t, sinc_t = cos_sq(tt2, small), sin_over(tt2, small)
        xt = self.projx(cos_t * x0 + t * sinc_t * u)
        ut = -theta2 * t * sinc_t * x0 + cos_t * u
        return xt, self.proju(xt, ut)

    def geodesic_and_cut(self, x0, x1, t):
        """:meth:`geodesic` and :meth:`cut_locus_mask` in one pass, for data (no gradient; 22 operations).

        With ``d = x1 − x0``, ``a = ⟨x0, d⟩ = cos θ − 1``, ``w = d − a x0 = sin θ · e`` (``e`` the unit
        direction of ``log_{x0} x1``), ``s = ‖w‖`` and ``θ = atan2(s, 1 + a)``:

            x_t = cos(tθ) x0 + sin(tθ) e,    u_t = θ (cos(tθ) e − sin(tθ) x0),    e = w / s.

        As ``s → 0``, ``θ ≈ s`` in floating point too (``θ`` is computed from ``s``), so the values
        need no Taylor branch; ``s²`` is clamped to the smallest normal number so ``x0 = x1`` gives
        ``(x0, 0)``. Gradients through it are those of these formulas (not exact at ``x0 = x1``:
        use :meth:`geodesic` to differentiate). Cut: ``θ > π − tol("cut")``; on those pairs
        the result is finite but not the documented antipodal choice of :meth:`log`. Near the
        antipode ``w`` fixes the direction to ``~eps/s`` (as in :meth:`log`).
        """
        self._inputs(x0=x0, x1=x1)
        d = x1 - x0
        a = row_dot(x0, d)
        w = torch.addcmul(d, a, x0, value=-1)
        s2 = row_dot(w, w)
        inv = torch.rsqrt(s2.clamp_min(torch.finfo(d.dtype).tiny))
        theta = torch.atan2(s2 * inv, a + 1)
        phi = t[..., None] * theta
        sin, cos = torch.sin(phi), torch.cos(phi)
        e = w * inv
        x_t = torch.addcmul(cos * x0, sin, e)
        u_t = torch.addcmul(cos * e, sin, x0, value=-1) * theta
        return x_t, u_t, (theta > math.pi - tol("cut", x0.dtype)).squeeze(-1)

    def cut_locus_mask(self, x, y):
        """``dist(x, y) > π − tol("cut")``, as ``‖x + y‖ < 2 sin(tol/2)``: the chord from ``x`` to the
        antipode ``−y`` (the same test on unit vectors, without an angle and without cancellation)."""
        s = x + y
        return row_dot(s, s).squeeze(-1) < (2 * math.sin(tol("cut", x.dtype) / 2)) ** 2

    def tangent_frame(self, x):
        """Householder frame of ``T_x S^n = x^⊥`` (orthonormal columns). ``[..., D] -> [..., D, n]``.

        ``H = I − 2 v vᵀ / vᵀv`` with ``v = x + s e_k`` (``k = argmax |x_k|``, ``s = sign x_k``) maps
        ``e_k`` to ``−s x``; its other rows are orthonormal and orthogonal to ``x`` (``vᵀv ≥ 2``).
        """
        self._inputs(x=x)
        D = x.shape[-1]
        k = x.abs().argmax(-1, keepdim=True)  # [..., 1]
        s = torch.where(x.gather(-1, k) < 0, -1.0, 1.0).to(x.dtype)
        v = x.scatter_add(-1, k, s)  # x + s e_k
        rows = (k + 1 + torch.arange(D - 1, device=x.device)) % D  # [..., n]: every index but k
        eye = torch.eye(D, dtype=x.dtype, device=x.device)
        vk = v.gather(-1, rows)  # [..., n]
        frame = eye[rows] - (2 / (v * v).sum(-1, keepdim=True)).unsqueeze(-1) * vk.unsqueeze(-1) * v.unsqueeze(-2)
        return frame.transpose(-1, -2)  # [..., D, n]

    def log_volume(self) -> float:
        """``log |S^n| = log 2 + ((n+1)/2) log π − lgamma((n+1)/2)``."""
        return UniformSphere(self.dim).log_volume

    def _point_residual(self, x):
        return ((x * x).sum(-1) - 1).abs()

    def _tangent_residual(self, x, u):
        return (x * u).sum(-1).abs()
