r"""Riemannian divergence of a tangent vector field in ambient coordinates (SPEC §7).

Derivation. Let ``M ⊂ ℝ^D`` carry the metric ``g`` induced by a constant (possibly indefinite, as for
the Lorentz model) ambient form ``G``, and let ``P_x = ∂ proju(x, ·)`` be the ``g``-orthogonal
projector onto ``T_xM`` (``proju`` is linear in its vector argument). The Levi-Civita connection is
the projected ambient derivative, ``∇_w V = P_x (J w)`` with ``J = ∂V/∂x`` the ambient Jacobian of
any extension of ``V``. For a ``g``-orthonormal frame ``(e_i)`` of ``T_xM`` one has
``P_x = Σ_i e_i e_iᵀ G``, hence

    div_g V = Σ_i g(e_i, ∇_{e_i} V) = Σ_i e_iᵀ G J e_i = tr(J P_x) = tr(P_x J P_x).

Only derivatives along tangent directions (the columns of ``P_x``) enter, so the value does not
depend on how the network extends ``V`` off the manifold. On the unit sphere with ``V ∘ projx``,
``tr(J_{V∘projx}) = tr(J P_x)`` (as ``∂projx = P_x`` on ``M``): the ambient divergence trick is the
special case. For the flat torus and ``ℝ^n``, ``P_x = I`` and this is the ordinary trace.

Both estimators use reverse-mode AD on a *replicated batch*: the points are stacked ``r`` times
(``[r·B, D]``), the field is evaluated once on the stack and one backward pass with a different
cotangent ``c_j`` per copy returns every ``c_jᵀ J`` at once (the networks act on each point
separately, so copies do not interact). No Python loop over the batch or the directions, and no
functorch/forward-mode machinery.

* :func:`exact_divergence`: ``r = D`` copies with cotangents ``e_j``: ``tr(J P_x) = Σ_j e_jᵀ J (P_x e_j)``.
* :func:`hutchinson_divergence`: the unbiased estimator ``zᵀ P_x J P_x z`` with ``E[z zᵀ] = I``
  (``E = tr(P J P) = tr(J P)``): ``r = n_probes`` copies with cotangents ``P_xᵀ z`` (tangent-projected
  probes), each dotted with ``P_x z``; Rademacher or Gaussian ``z``.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ..geometry.manifold import Manifold

__all__ = ["exact_divergence", "hutchinson_divergence", "draw_probes", "PROBES"]

VectorField = Callable[[torch.Tensor], torch.Tensor]
PROBES = ("rademacher", "gaussian")


def _vjp_replicated(
    field: VectorField, x: torch.Tensor, cotangents: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(V(x) [B, D], c_jᵀ J [r, B, D])`` for cotangents ``[r, B, D]`` (one forward, one backward)."""
    r = cotangents.shape[0]
    with torch.enable_grad():
        xs = x.detach().unsqueeze(0).expand(r, *x.shape).reshape(-1, x.shape[-1]).requires_grad_(True)
        v = field(xs)
        rows = None
        if v.requires_grad:  # a field that ignores x (a constant) has J = 0
            (rows,) = torch.autograd.grad(v, xs, grad_outputs=cotangents.reshape(v.shape), allow_unused=True)
    rows = torch.zeros_like(xs) if rows is None else rows
    return v.detach()[: x.shape[0]], rows.reshape(cotangents.shape)


def _projector_columns(manifold: Manifold, x: torch.Tensor) -> torch.Tensor:
    """``P_x e_j`` for ``j = 0..D-1``: ``[D, B, D]``."""
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    return manifold.proju(x.unsqueeze(0), eye.unsqueeze(1))


def exact_divergence(field: VectorField, manifold: Manifold, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Field value and exact Riemannian divergence ``tr(J P_x)``.

    Args:
        field: ``x [N, D] -> V(x) [N, D]`` tangent, acting on each point separately (the time is
            bound by the caller).
        manifold: the manifold defining ``proju``.
        x: ``[B, D]`` points on the manifold.

    Returns:
        ``(V(x) [B, D], div [B])``; costs one field evaluation on ``D·B`` points and one backward.
    """
    D = x.shape[-1]
    eye = torch.eye(D, dtype=x.dtype, device=x.device)
    value, rows = _vjp_replicated(field, x, eye.unsqueeze(1).expand(D, x.shape[0], D))  # rows[j] = e_jᵀ J
    div = (rows * _projector_columns(manifold, x)).sum(-1).sum(0)  # Σ_j (e_jᵀ J)(P_x e_j)
    return value, div


def draw_probes(
    n_probes: int, x: torch.Tensor, kind: str = "rademacher", generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Ambient probes ``z`` with ``E[z zᵀ] = I``: ``[n_probes, B, D]`` Rademacher (±1) or Gaussian."""
    shape = (n_probes,) + tuple(x.shape)
    if kind == "rademacher":
        z = torch.randint(0, 2, shape, generator=generator, device=x.device).to(x.dtype)
        return 2 * z - 1
    if kind == "gaussian":
        return torch.randn(shape, generator=generator, dtype=x.dtype, device=x.device)
    raise ValueError(f"probe must be one of {PROBES}, got {kind!r}")


def _projector_transpose(manifold: Manifold, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``P_xᵀ z`` ``[r, B, D]`` (``proju`` is linear in ``u``; its transpose by one autograd call)."""
    with torch.enable_grad():
        u = torch.zeros_like(z).requires_grad_(True)
        (out,) = torch.autograd.grad((z * manifold.proju(x.unsqueeze(0), u)).sum(), u)
    return out


def hutchinson_divergence(
    field: VectorField, manifold: Manifold, x: torch.Tensor, probes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Field value and the Hutchinson estimate ``mean_p z_pᵀ P_x J P_x z_p`` of ``div_g V``.

    Args:
        field: as in :func:`exact_divergence`.
        manifold: the manifold defining ``proju``.
        x: ``[B, D]`` points.
        probes: ``[n_probes, B, D]`` ambient probes (see :func:`draw_probes`); keep them fixed along
            one ODE solve.

    Returns:
        ``(V(x) [B, D], div_estimate [B])``; one field evaluation on ``n_probes·B`` points.
    """
    w = manifold.proju(x.unsqueeze(0), probes)  # P_x z
    left = _projector_transpose(manifold, x, probes)  # P_xᵀ z
    value, rows = _vjp_replicated(field, x, left)  # zᵀ P_x J
    est = (rows * w).sum(-1)
    return value, est.mean(0)
