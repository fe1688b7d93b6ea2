r"""The rotation group SO(3) with its bi-invariant metric and the Haar base distribution.

Points are rotation matrices ``R`` stored flattened row-major in the last axis (``[..., 9]``,
``R[i, j] = x[..., 3i + j]``); tangent vectors at ``R`` are ``U = R Ω`` with ``Ω`` skew, also
flattened. With ``Ω = hat(ω)`` (``hat(ω) v = ω × v``):

* Metric ``⟨U, V⟩_R = ½ tr(UᵀV) = ½ U·V`` (half the Frobenius product), so ``‖R hat(ω)‖ = |ω|`` and
  ``dist(R1, R2)`` = the rotation angle ``θ ∈ [0, π]`` of ``R1ᵀR2``. With this scaling SO(3) is
  ``S³(radius 2)/±1``: volume ``vol(SO(3)) = ∫₀^π 4 sin²(θ/2) dθ · 4π = 8π²`` and sectional curvature
  ``1/4``; the Haar density is ``−log 8π²`` and a Haar rotation's angle has density ``(1 − cos θ)/π``.
* ``exp(R, U) = R Exp(ω)`` with Rodrigues ``Exp(ω) = cos θ I + (sin θ/θ) hat(ω) + ((1 − cos θ)/θ²) ωωᵀ``,
  the coefficients as series in ``θ²`` below ``tol("taylor")``.
* ``log(R1, R2) = R1 hat(ω)``, ``ω = Log(R1ᵀR2)`` from ``A = R1ᵀ(R2 − R1) = R1ᵀR2 − I`` (accurate for
  nearby points): ``w = vee(A) = sin θ n``, ``cos θ = 1 + tr(A)/2``, ``θ = atan2(|w|, cos θ)``.
  For ``cos θ ≥ 0``: ``ω = (θ/sin θ) w`` (series in ``|w|²`` below ``tol("taylor")``). For
  ``cos θ < 0`` (near π, where ``w`` loses its relative accuracy) the axis comes from the symmetric
  part ``sym(R) − cos θ I = (1 − cos θ) nnᵀ``: the column ``k`` with the largest diagonal entry gives
  ``±n``, signed to agree with ``w``. At ``θ = π`` (the cut locus; numerically: ``|w·n| ≤ 16 eps``, where
  rounding decides the sign of ``sin θ``) the documented deterministic choice is the axis whose
  largest-magnitude component (first index on ties) is positive, with length ``π``.
* Parallel transport along the geodesic ``R1 Exp(tω)``: ``Γ(U) = R1 E R1ᵀ U E`` with ``E = Exp(ω/2)``
  (from ``∇_X Y = ½[X, Y]`` for left-invariant fields); isometric, finite at the cut locus.
* Geodesic path: ``x_t = x0 Exp(tω)``, ``u_t = x_t hat(ω)`` (the body velocity is constant).
* ``projx`` is the nearest rotation in the Frobenius norm (sign-fixed to ``det = +1``), computed as the
  rotation of the top eigenvector of Horn's symmetric ``4 × 4`` quaternion matrix of ``M``; it is
  differentiable wherever that eigenvalue is simple (always near SO(3), where the gap is ≈ 4).
"""
from __future__ import annotations

import math

import torch

from gaugeflow._numerics import broadcast_shapes, check_float, tol
from gaugeflow.geometry._generic import nan_unless_finite
from gaugeflow.geometry.base import BaseDistribution
from gaugeflow.geometry.manifold import Manifold, safe_norm, safe_sqrt

from . import _so3_entries as _em
from ._series import cos_sq, row_dot, sin_over

__all__ = ["SpecialOrthogonal", "SO3", "HaarSO3", "hat", "vee", "rotation_exp", "rotation_log",
           "quaternion_to_matrix", "matrix_to_quaternion", "LOG_VOLUME_SO3"]

#: multiple of machine epsilon below which ``sin θ`` carries no sign (the rotation is at angle π to rounding)
_CUT_FLOOR = 16.0
#: ``log vol(SO(3)) = log 8π²`` for the metric ``½ tr(UᵀV)`` (dist = rotation angle)
LOG_VOLUME_SO3 = math.log(8 * math.pi ** 2)


def hat(w: torch.Tensor) -> torch.Tensor:
    """Skew matrix of a 3-vector, ``hat(w) v = w × v``. ``[..., 3] -> [..., 3, 3]``."""
    z = torch.zeros_like(w[..., 0])
    a, b, c = w.unbind(-1)
    return torch.stack([z, -c, b, c, z, -a, -b, a, z], -1).unflatten(-1, (3, 3))


def vee(A: torch.Tensor) -> torch.Tensor:
    """3-vector of the skew part of a matrix: ``vee(hat(w)) = w``, ``vee(A) = vee((A − Aᵀ)/2)``. ``[..., 3, 3] -> [..., 3]``."""
    return 0.5 * torch.stack([A[..., 2, 1] - A[..., 1, 2], A[..., 0, 2] - A[..., 2, 0], A[..., 1, 0] - A[..., 0, 1]], -1)


def rotation_exp(w: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula ``Exp(ω)`` with Taylor branches in ``θ² = |ω|²``. ``[..., 3] -> [..., 3, 3]``."""
    theta2 = (w * w).sum(-1)[..., None, None]
    small = tol("taylor", w.dtype)
    half = sin_over(theta2 / 4, small)
    eye = torch.eye(3, dtype=w.dtype, device=w.device)
    outer = w[..., :, None] * w[..., None, :]
    return cos_sq(theta2, small) * eye + sin_over(theta2, small) * hat(w) + 0.5 * half * half * outer


def rotation_log(A: torch.Tensor) -> torch.Tensor:
    """Rotation vector ``ω`` with ``Exp(ω) = I + A`` (``A = R − I`` given for accuracy). ``[..., 3, 3] -> [..., 3]``.

    See the module doc for the branches (series at 0, symmetric-part axis for ``cos θ < 0``, the
    deterministic axis at ``θ = π``). ``|ω| = θ ∈ [0, π]``.
    """
    w = vee(A)
    s2 = (w * w).sum(-1, keepdim=True)
    c = 1 + 0.5 * torch.diagonal(A, dim1=-2, dim2=-1).sum(-1, keepdim=True)
    theta = torch.atan2(safe_sqrt(s2), c)
    small = tol("taylor", A.dtype)
    taylor = (s2 < small * small) & (c > 0)
    far = c < 0
    s_safe = torch.sqrt(torch.where(taylor | far, torch.ones_like(s2), s2))
    near = torch.where(taylor, 1 + s2 / 6 + 3 * s2 * s2 / 40, theta / s_safe) * w
    eye = torch.eye(3, dtype=A.dtype, device=A.device)
    B = 0.5 * (A + A.transpose(-1, -2)) + (1 - c[..., None]) * eye  # sym(R) − cos θ I = (1 − cos θ) nnᵀ
    d0, d1, d2 = (d[..., None] for d in torch.diagonal(B, dim1=-2, dim2=-1).unbind(-1))
    pick0 = (d0 >= d1) & (d0 >= d2)  # k = argmax of the diagonal, first index on ties (no argmax kernel)
    pick1 = (d1 >= d2) & ~pick0
    col = torch.where(pick0, B[..., :, 0], torch.where(pick1, B[..., :, 1], B[..., :, 2]))
    dkk = torch.where(pick0, d0, torch.where(pick1, d1, d2))
    n = col / torch.sqrt(torch.where(far, dkk * (1 - c), torch.ones_like(c)))
    floor = _CUT_FLOOR * torch.finfo(A.dtype).eps  # |sin θ| below this: at π to rounding, the axis sign is ours
    n = torch.where((n * w).sum(-1, keepdim=True) < -floor, -n, n)
    return torch.where(far, theta * n, near)


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrix of a quaternion ``q = (w, x, y, z)`` (normalised first). ``[..., 4] -> [..., 3, 3]``."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(q.dtype).tiny ** 0.5)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).unflatten(-1, (3, 3))


def matrix_to_quaternion(x: torch.Tensor) -> torch.Tensor:
    """A unit quaternion ``(w, x, y, z)`` of each rotation (sign unspecified: ``±q`` are the same rotation).
    ``[..., 9] -> [..., 4]``.

    Shepperd's rule without branches: the rows of ``K + I`` (``K`` Horn's matrix of ``R``, :func:`_horn`) are
    ``4 q_k q``; the row with the largest diagonal entry (``4 q_k² ≥ 1``, the first on ties) is normalised.
    ``K + I`` is linear in the 9 entries, so it is one product with a constant ``[9, 16]`` matrix. Accurate
    to rounding for every rotation, half-turns included; the inverse of :func:`quaternion_to_matrix` up to sign.
    """
    K = torch.addmm(_HORN_ONE.to(x), x.reshape(-1, 9), _HORN_LINEAR.to(x)).view(*x.shape[:-1], 4, 4)
    k = torch.diagonal(K, dim1=-2, dim2=-1).contiguous().argmax(-1, keepdim=True)  # argmax is slow on the strided view
    row = torch.take_along_dim(K, k[..., None].expand(*k.shape, 4), dim=-2).squeeze(-2)
    return row / row.norm(dim=-1, keepdim=True)


def _horn_tables() -> tuple[torch.Tensor, torch.Tensor]:
    """``L [9, 16]`` and ``b [16]`` with ``(K + I).flatten() = vec(M) L + b`` for Horn's ``K`` of ``M``."""
    basis = torch.eye(9, dtype=torch.float64).view(9, 3, 3)
    return _horn(basis).flatten(-2), torch.eye(4, dtype=torch.float64).flatten()


def _horn(M: torch.Tensor) -> torch.Tensor:
    """Horn's symmetric matrix ``K`` with ``qᵀKq = tr(R(q)ᵀM)`` for unit ``q``. ``[..., 3, 3] -> [..., 4, 4]``."""
    m = M.flatten(-2).unbind(-1)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m
    return torch.stack([
        m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01,
        m21 - m12, m00 - m11 - m22, m01 + m10, m02 + m20,
        m02 - m20, m01 + m10, m11 - m00 - m22, m12 + m21,
        m10 - m01, m02 + m20, m12 + m21, m22 - m00 - m11,
    ], -1).unflatten(-1, (4, 4))


def _mat(x: torch.Tensor) -> torch.Tensor:
    return x.unflatten(-1, (3, 3))


_HORN_LINEAR, _HORN_ONE = _horn_tables()


class HaarSO3(BaseDistribution):
    """Haar (uniform) distribution on SO(3): ``log p0 = −log 8π²`` for the metric ``½ tr(UᵀV)``.

    Samples: rotations of normalised standard-normal quaternions (uniform on ``S³``, pushed through
    the double cover). Points ``[n, 9]`` row-major.
    """

    ambient_dim = 9

    def __init__(self):
        self.log_volume = LOG_VOLUME_SO3

    def sample(self, n, generator=None, dtype=None, device=None):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"sample: n must be an integer >= 0, got {n!r}")
        dtype = torch.get_default_dtype() if dtype is None else dtype
        q = torch.randn(n, 4, generator=generator, dtype=dtype, device=device)
        return quaternion_to_matrix(q).flatten(-2)

    def log_prob(self, x):
        self._check(x)
        return torch.full(x.shape[:-1], -self.log_volume, dtype=x.dtype, device=x.device)


class SpecialOrthogonal(Manifold):
    """The rotation group ``SO(3)`` (``dim 3``, points ``[..., 9]`` row-major) with the bi-invariant
    metric ``⟨U, V⟩ = ½ tr(UᵀV)`` (``dist`` = rotation angle of ``R1ᵀR2``) and the Haar base ``−log 8π²``.

    Args:
        n: the ``n`` of ``SO(n)``; only ``3`` is implemented (``SO3()`` equals ``SpecialOrthogonal(3)``).

    Examples:
        >>> M = SO3()
        >>> I = torch.eye(3, dtype=torch.float64).reshape(9)
        >>> Rz = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64).reshape(9)
        >>> round(float(M.dist(I, Rz)), 6), M.log(I, Rz).reshape(3, 3)[1, 0].item()  # π/2 about z
        (1.570796, 1.5707963267948966)
    """

    injectivity_radius = math.pi
    diameter = math.pi  # antipodes / half-turns

    def __init__(self, n: int = 3):
        if isinstance(n, bool) or n != 3:
            raise ValueError(f"SpecialOrthogonal: only n = 3 (SO(3)) is implemented, got n={n!r}")
        self.n, self.dim, self.ambient_dim = 3, 3, 9
        self.base = HaarSO3()

    def __repr__(self) -> str:
        return "SO3()" if self.base == HaarSO3() else f"SO3().with_base({self.base!r})"

    def validate(self, x, what="x"):
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dim() > 0 and x.shape[-1] == 9:
            return x
        check_float(x, f"{self}: {what}")
        if x.dim() >= 2 and tuple(x.shape[-2:]) == (3, 3):
            raise ValueError(f"{self}: {what} must have last axis of size 9 (3×3 matrices flattened row-major: "
                             f"x.reshape(*x.shape[:-2], 9)), got shape {tuple(x.shape)}")
        return super().validate(x, what)

    # -- projections
    def projx(self, x):
        """Nearest rotation in the Frobenius norm (``det = +1``), via Horn's quaternion eigenproblem."""
        self._inputs(x=x)
        _, vecs = torch.linalg.eigh(_horn(_mat(x)))
        return quaternion_to_matrix(vecs[..., :, -1]).flatten(-2)

    def proju(self, x, u):
        """``½(U − R Uᵀ R)`` = ``R skew(RᵀU)``, orthogonal for the (scaled Frobenius) metric."""
        self._inputs(x=x, u=u)
        R, U = _mat(x), _mat(u)
        return (0.5 * (U - R @ U.transpose(-1, -2) @ R)).flatten(-2)

    # -- metric
    def inner(self, x, u, v):
        """``½ tr(UᵀV) = ½ u·v``. ``[..., 9] -> [...]``."""
        self._inputs(x=x, u=u, v=v)
        out, shape = 0.5 * (u * v).sum(-1), broadcast_shapes(x.shape, u.shape, v.shape)[:-1]
        return out if out.shape == shape else out.expand(shape)

    def norm(self, x, u):
        self._inputs(x=x, u=u)
        out = safe_sqrt(0.5 * (u * u).sum(-1))
        shape = broadcast_shapes(x.shape, u.shape)[:-1]
        return out if out.shape == shape else out.expand(shape)

    # -- exponential and logarithm
    def _body(self, x, u):
        """Body angular velocity ``ω = vee(Rᵀ U)`` ``[..., 3]`` (the skew part: exact for tangent ``U``)."""
        return vee(_mat(x).transpose(-1, -2) @ _mat(u))

    def exp(self, x, u):
        self._inputs(x=x, u=u)
        return (_mat(x) @ rotation_exp(self._body(x, u))).flatten(-2)

    def _rel_log(self, x, y):
        """``ω = Log(xᵀy)`` ``[..., 3]`` computed from ``A = xᵀ(y − x)``."""
        R = _mat(x)
        return rotation_log(R.transpose(-1, -2) @ (_mat(y) - R))

    def log(self, x, y):
        self._inputs(x=x, y=y)
        return (_mat(x) @ hat(self._rel_log(x, y))).flatten(-2)

    def dist(self, x, y):
        """Rotation angle of ``xᵀy``: ``atan2(|vee(A)|, 1 + tr(A)/2)``, ``A = xᵀ(y − x)``. ``[..., 9] -> [...]``."""
        self._inputs(x=x, y=y)
        R = _mat(x)
        A = R.transpose(-1, -2) @ (_mat(y) - R)
        c = 1 + 0.5 * torch.diagonal(A, dim1=-2, dim2=-1).sum(-1)
        return nan_unless_finite(torch.atan2(safe_norm(vee(A)), c), x, y)

    def pairwise_sq_dist(self, x, y):
        """``θ_ij²`` of every pair through unit quaternions and one batched product: ``[..., m, 9] × [..., n, 9]
        -> [..., m, n]``.

        With ``q_i, p_j`` unit quaternions of ``x_i, y_j`` (:func:`matrix_to_quaternion`, one per point),
        ``cos(θ_ij / 2) = |⟨q_i, p_j⟩|``; the angle comes from the chord of the nearer of ``±p_j``,
        ``θ = 4 asin(√((1 − |⟨q, p⟩|)/2))`` (the sphere's form on ``S³``). Near ``θ = π`` the product is
        ``≈ 0`` and the angle is accurate to rounding; near ``θ = 0`` the chord from the product loses relative
        precision (``θ²`` to ``~8 eps`` absolute), which a transport cost does not feel: use :meth:`dist`
        for exact small distances. One ``[m, 4] × [4, n]`` product in place of ``m·n`` ``3 × 3`` products.
        """
        self._inputs(x=x, y=y)
        c = torch.matmul(matrix_to_quaternion(x), matrix_to_quaternion(y).transpose(-1, -2))
        half_chord2 = c.abs_().neg_().add_(1).mul_(0.5).clamp_(0, 0.5)
        return (4 * torch.asin(half_chord2.sqrt_())) ** 2

    # -- transport and geodesics
    def transp(self, x, y, v):
        """``R1 E R1ᵀ V E`` with ``E = Exp(ω/2)``, ``ω = Log(R1ᵀR2)`` (module doc). ``[..., 9]``."""
        self._inputs(x=x, y=y, v=v)
        R, E = _mat(x), rotation_exp(0.5 * self._rel_log(x, y))
        return (R @ E @ R.transpose(-1, -2) @ _mat(v) @ E).flatten(-2)

    def geodesic(self, x0, x1, t):
        """``x_t = x0 Exp(tω)``, ``u_t = x_t hat(ω)`` with ``ω = Log(x0ᵀx1)``; ``t`` ``[...]``."""
        self._inputs(x0=x0, x1=x1)
        w = self._rel_log(x0, x1)
        xt = _mat(x0) @ rotation_exp(t[..., None] * w)
        return xt.flatten(-2), (xt @ hat(w)).flatten(-2)

    def geodesic_and_cut(self, x0, x1, t):
        """:meth:`geodesic` and :meth:`cut_locus_mask` in one pass, for data (no graph; no ``bmm``).

        With ``D = R1 − R0`` and ``A = R0ᵀD`` (``R0ᵀR1 = I + A``): ``v = 2 vee(A) = 2 sin θ · n``,
        ``c₂ = 2 cos θ = 2 + tr(A)``, ``θ = atan2(|v|, c₂)``, ``φ = tθ``, and Rodrigues in ``n = v/|v|``:

            x_t = R0 E,  E = cos φ I + sin φ hat(n) + (1 − cos φ) nnᵀ,   u_t = x_t hat(θ n).

        Layout (issue 19, docs/performance.md): the batch is copied entry-major (``[3, 3, N]``: each entry
        of the ``N`` matrices contiguous; :mod:`._so3_entries`), so every operation is one long loop and a
        ``3 × 3`` product per matrix is three broadcast multiply-adds; the work is done in place in three
        ``[3, 3, N]`` buffers and the results are copied back to contiguous rows. No Taylor branch is
        needed for the values (``sin φ/|v| → t/2``, ``θ/|v| → 1/2`` in floating point as ``|v| → 0``; ``1/|v|``
        taken of ``max(|v|, √tiny)``, so every factor stays finite, also at ``θ = π``). Near ``θ = π`` the
        axis comes from ``v``, accurate to ``~eps/|v|`` (where :meth:`log` reads it off the symmetric part);
        cut: ``θ > π − tol("cut")``, tested as ``|v| < −tan(tol) c₂`` (the same inequality, no ``atan2``),
        where the result is finite but unspecified. The results carry no graph (the inputs are read
        detached; use :meth:`geodesic` to differentiate). ``x0, x1 [..., 9]``, ``t [...]`` (broadcast).
        """
        self._inputs(x0=x0, x1=x1)
        lead = broadcast_shapes(x0.shape[:-1], x1.shape[:-1], t.shape)
        R0, D = _em.entries(x0.detach().expand(*lead, 9), x1.detach().expand(*lead, 9))
        t = t.detach().expand(lead).reshape(-1)
        x_t, u_t, cut = _em.path(R0, D, torch.empty_like(D), t, tol("cut", x0.dtype))
        return x_t.view(*lead, 9), u_t.view(*lead, 9), cut.view(lead)

    def cut_locus_mask(self, x, y):
        """``dist(x, y) > π − tol("cut")``: the test of the fused pass (:meth:`geodesic_and_cut`, no ``bmm``)."""
        self._inputs(x=x, y=y)
        lead = broadcast_shapes(x.shape[:-1], y.shape[:-1])
        R0, D = _em.entries(x.detach().expand(*lead, 9), y.detach().expand(*lead, 9))
        _, sv, c2 = _em.relative(R0, D, torch.empty_like(D))
        return _em.cut_test(sv, c2, tol("cut", x.dtype)).view(lead)

    def cut_locus_screen(self, x, y):
        """``tr(xᵀy) < 1 − 2 cos(2 tol("cut"))``: rotation angle above ``π − 2 tol``, one multiply–sum per pair.

        A superset of :meth:`cut_locus_mask` (``θ > π − tol``) in float32 and float64: near ``θ = π``,
        ``1 + tr(xᵀy) = 2(1 − cos δ) ≈ δ²`` with ``δ = π − θ``, and the rounding of the 9-term sum
        (≤ ``9 · 3 · eps/2``, 1.6e-6 in float32) stays below the gap ``≈ 3 tol²`` (3e-6) between the two
        thresholds. Pairs with ``δ`` in ``[tol, 2 tol)`` are flagged as well (``P ≈ 2·tol/π`` per Haar
        pair). The trace is second order in ``δ``: points off SO(3) by ``ε`` (orthogonality residual;
        ``check_point`` admits 1e-4 in float32) move its threshold by ``~ε/tol`` in ``δ``, so on such
        points it can miss a cut pair, which the path's exact test then masks (weight 0 in the loss)
        instead of the round replacing it. Other dtypes: :meth:`cut_locus_mask`. ``[..., 9] -> [...]``.
        """
        self._inputs(x=x, y=y)
        if x.dtype not in (torch.float32, torch.float64) or y.dtype != x.dtype:
            return self.cut_locus_mask(x, y)
        return row_dot(x.detach(), y.detach()).squeeze(-1) < 1 - 2 * math.cos(2 * tol("cut", x.dtype))

    def tangent_frame(self, x):
        """Columns ``R hat(e_i)`` (orthonormal for ``½ tr(UᵀV)``). ``[..., 9] -> [..., 9, 3]``."""
        self._inputs(x=x)
        E = hat(torch.eye(3, dtype=x.dtype, device=x.device))  # [3, 3, 3]: E[i] = hat(e_i)
        return (_mat(x).unsqueeze(-3) @ E).flatten(-2).transpose(-1, -2)

    def log_volume(self) -> float:
        """``log 8π²``."""
        return LOG_VOLUME_SO3

    # -- validation
    def _point_residual(self, x):
        """``max(max|RᵀR − I|, |det R − 1|)`` per point (a reflection scores 2)."""
        R = _mat(x)
        eye = torch.eye(3, dtype=x.dtype, device=x.device)
        orth = (R.transpose(-1, -2) @ R - eye).abs().flatten(-2).amax(-1)
        return torch.maximum(orth, (torch.linalg.det(R) - 1).abs())

    def check_point(self, x, atol=None):
        """As :meth:`Manifold.check_point`, naming reflections (``det R = −1``) and non-orthogonal matrices."""
        self.validate(x)
        if torch.isfinite(x).all() and x.numel():
            R = _mat(x)
            eye = torch.eye(3, dtype=x.dtype, device=x.device)
            orth = (R.transpose(-1, -2) @ R - eye).abs().flatten(-2).amax(-1)
            det = torch.linalg.det(R)
            atol_ = tol("point", x.dtype) if atol is None else atol
            if float(orth.max()) > atol_:
                raise ValueError(f"{self}: expected rotation matrices (RᵀR = I, det R = +1), but "
                                 f"{int((orth > atol_).sum())} of {orth.numel()} points are off the manifold: "
                                 f"not orthogonal, largest |RᵀR − I| = {float(orth.max()):.3e} > tolerance {atol_:.1e}")
            if float((det - 1).abs().max()) > atol_:
                raise ValueError(f"{self}: expected rotation matrices (det R = +1), but {int(((det - 1).abs() > atol_).sum())} "
                                 f"of {det.numel()} points are off the manifold: reflections with det R = "
                                 f"{float(det[(det - 1).abs().argmax()]):+.3f}")
        return super().check_point(x, atol)


#: ``SO3()`` is ``SpecialOrthogonal(3)``
SO3 = SpecialOrthogonal
