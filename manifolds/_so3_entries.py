r"""Entry-major kernels of SO(3)'s fused geodesic pass and cut test (issue 19; docs/performance.md).

A batch of ``N`` rotation matrices is held *entry-major*, ``[3, 3, N]``: entry ``(i, j)`` of all ``N``
matrices contiguous. Every operation is then one long vectorised loop, and a ``3 × 3`` product per
matrix is three broadcast multiply-adds; on CPU, ``[N, 9]`` rows with a per-row factor, a cross
product or a batched ``bmm`` run 3- to 9-long inner loops (4–25× slower). Copies in and out of that
layout are one 3-D strided copy each (the 2-D ``[N, 9] ↔ [9, N]`` transpose copy is ~1.7× slower on
CPU, and a strided view handed on makes every later consumer slower).

For a pair ``R0, R1`` with ``D = R1 − R0`` and ``A = R0ᵀD`` (``R0ᵀR1 = I + A``, accurate for nearby
points): ``v = 2 vee(A) = 2 sin θ · n``, ``c₂ = 2 cos θ = 2 + tr(A)``, ``|v| = 2 sin θ``, so
``θ = atan2(|v|, c₂)``, and the pair is at the cut locus (``θ > π − tol``) exactly when
``|v| < −tan(tol) · c₂`` — the same inequality without the ``atan2`` (for ``c₂ < 0`` both sides are
the tangent of ``π − θ`` against ``tan(tol)``; for ``c₂ ≥ 0`` neither holds; ``NaN`` compares false).
"""
from __future__ import annotations

import math

import torch

from ._series import column

#: ``vee`` of the skew part in entry-major form: ``2 w_a = A[3i + j] − A[3j + i]`` for ``(i, j) = (2, 1), (0, 2), (1, 0)``
_VEE_PLUS, _VEE_MINUS = (7, 2, 3), (5, 6, 1)


def _rows_of(values: tuple, like: torch.Tensor) -> torch.Tensor:
    """A cached constant index vector (``like``'s device)."""
    return column(values, torch.int64, like.device).view(-1)


def entries(x0: torch.Tensor, x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry-major copies ``R0`` of ``x0`` and ``D = x1 − x0``: ``[..., 9] -> [3, 3, N]`` (``N`` the flattened
    batch; ``x0, x1`` of one shape). New buffers, always; ``x1`` is read in place by the subtraction."""
    R0 = x0.reshape(-1, 3, 3).permute(1, 2, 0).contiguous()
    D = torch.sub(x1.reshape(-1, 3, 3).permute(1, 2, 0), R0, out=torch.empty_like(R0))
    return R0, D


def rows(X: torch.Tensor, into: torch.Tensor) -> torch.Tensor:
    """Contiguous rows ``[N, 9]`` of entry-major matrices ``X [3, 3, N]``, written into the storage of ``into``
    (another ``[3, 3, N]`` buffer, no longer needed) by one 3-D strided copy: no new buffer."""
    out = into.view(-1, 9)
    out.view(-1, 3, 3).permute(1, 2, 0).copy_(X)
    return out


def times(X: torch.Tensor, Y: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The ``N`` products ``X Y`` of entry-major ``3 × 3`` matrices (``[3, 3, N]``) written into ``out`` as
    three broadcast multiply-adds, ``Σ_i X[:, i] ⊗ Y[i]``. ``out`` must not share memory with ``X`` or ``Y``."""
    x, y = X.unsqueeze(2).unbind(1), Y.unbind(0)  # X[:, i] as [3, 1, N], Y[i] as [3, N] (broadcasts as [1, 3, N])
    return torch.mul(x[0], y[0], out=out).addcmul_(x[1], y[1]).addcmul_(x[2], y[2])


def relative(R0: torch.Tensor, D: torch.Tensor, A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(v = 2 vee(A) [3, N], |v| [N], c₂ = 2 + tr(A) [N])`` of ``R0ᵀR1 = I + A`` from the entry-major ``R0``
    and ``D = R1 − R0`` (:func:`entries`); ``A = R0ᵀD`` is written into ``A`` (module doc)."""
    A9 = times(R0.transpose(0, 1), D, out=A).view(9, -1)  # A[i, j] = Σ_k R0[k, i] D[k, j]
    v = A9.index_select(0, _rows_of(_VEE_PLUS, A)).sub_(A9.index_select(0, _rows_of(_VEE_MINUS, A)))
    c2 = A9[0].add(A9[4]).add_(A9[8]).add_(2)
    return v, v.mul(v).sum(0).sqrt_(), c2


def cut_test(sv: torch.Tensor, c2: torch.Tensor, tol: float) -> torch.Tensor:
    """``θ > π − tol`` for ``θ = atan2(|v|, c₂)`` (:func:`relative`), as ``|v| < −tan(tol) c₂`` (module doc). ``[N]``."""
    return torch.lt(sv, c2 * -math.tan(tol))


def path(R0: torch.Tensor, D: torch.Tensor, A: torch.Tensor, t: torch.Tensor,
         tol: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""``(x_t, u_t, cut)`` of the geodesics ``R0 → R1`` at times ``t [N]`` from entry-major inputs, in place.

    With ``v, |v|, c₂`` of :func:`relative`, ``θ = atan2(|v|, c₂)``, ``φ = tθ``, ``n = v/|v|``:
    ``x_t = R0 E``, ``E = cos φ I + sin φ hat(n) + (1 − cos φ) nnᵀ`` (Rodrigues), ``u_t = x_t hat(θ n)``.
    ``1/|v|`` is taken of ``max(|v|, √tiny)``: at ``x0 = x1`` (``v = 0``) every term in ``n`` vanishes
    and the factors stay finite, also at ``θ = π``. The three buffers are all it uses for ``[3, 3, N]`` data
    (``E`` in ``D``'s, ``x_t`` in ``A``'s, ``u_t`` in ``R0``'s), and the results come back as contiguous rows
    in ``D``'s and ``A``'s storage (no new large buffer: on a chunk of many steps fresh ones page-fault).
    ``x_t, u_t [N, 9]``, ``cut [N]``.
    """
    v, sv, c2 = relative(R0, D, A)
    cut = cut_test(sv, c2, tol)
    theta = torch.atan2(sv, c2)
    inv = sv.clamp_min_(torch.finfo(sv.dtype).tiny ** 0.5).reciprocal_()
    phi = t * theta
    cos, sin_inv = torch.cos(phi), torch.sin(phi).mul_(inv)
    b = v * sin_inv  # sin φ · n
    nb = b.neg()
    E = torch.stack((cos, nb[2], b[1], b[2], cos, nb[0], nb[1], b[0], cos), out=D.view(9, -1)).view(3, 3, -1)
    gv = v * (1 - cos).mul_(inv).mul_(inv)  # (1 − cos φ) n/|v|
    E.addcmul_(gv.unsqueeze(1), v.unsqueeze(0))  # + (1 − cos φ) nnᵀ
    x_t = times(R0, E, out=A)
    omega, u_t = v.mul_(theta.mul_(inv)), R0  # ω = θ n; u_t = x_t hat(ω) in R0's buffer: rows x_k × ω
    x, u, o = x_t.unbind(1), u_t.unbind(1), omega.unbind(0)  # columns [3, N]; ω_j [N]
    for j, (j1, j2) in enumerate(((1, 2), (2, 0), (0, 1))):
        torch.mul(x[j1], o[j2], out=u[j]).addcmul_(x[j2], o[j1], value=-1)
    return rows(x_t, into=D), rows(u_t, into=A), cut  # E and then x_t are spent
