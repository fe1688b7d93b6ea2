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

* :func:`exact_divergence`: ``tr(J P_x) = Σ_j (J P_x e_j)_j`` with the ``D`` Jacobian–vector products
  ``J (P_x e_j)`` computed by forward-mode AD, vectorised with ``torch.func.vmap`` (no loop over the
  batch or the directions).
* :func:`hutchinson_divergence`: the unbiased estimator ``zᵀ P_x J P_x z`` with ``E[z zᵀ] = I``
  (``E = tr(P J P) = tr(J P)``), i.e. a tangent-projected probe ``P_x z`` pushed through ``J`` and
  projected again; Rademacher or Gaussian ``z``, averaged over ``n_probes``.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch.func import jvp, vmap

from ..geometry.manifold import Manifold

__all__ = ["exact_divergence", "hutchinson_divergence", "draw_probes", "PROBES"]

VectorField = Callable[[torch.Tensor], torch.Tensor]
PROBES = ("rademacher", "gaussian")


def _jvp_many(field: VectorField, x: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(V(x), J w_j)`` for directions ``[n, B, D]`` -> ``([B, D], [n, B, D])`` (one vmapped JVP)."""
    return vmap(lambda w: jvp(field, (x,), (w,)), out_dims=(None, 0))(directions)


def exact_divergence(field: VectorField, manifold: Manifold, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Field value and exact Riemannian divergence ``tr(J P_x)``.

    Args:
        field: ``x [B, D] -> V(x) [B, D]`` tangent (the time is bound by the caller); must be
            composed of operations with forward-mode AD support (all of torch's ``nn`` layers are).
        manifold: the manifold defining ``proju``.
        x: ``[B, D]`` points on the manifold.

    Returns:
        ``(V(x) [B, D], div [B])``; ``D`` Jacobian–vector products, vectorised.
    """
    D = x.shape[-1]
    eye = torch.eye(D, dtype=x.dtype, device=x.device)
    cols = manifold.proju(x.unsqueeze(0), eye.unsqueeze(1))  # [D, B, D]: cols[j] = P_x e_j
    value, jw = _jvp_many(field, x, cols)  # jw[j] = J P_x e_j
    div = jw.diagonal(dim1=0, dim2=2).sum(-1)  # Σ_j (J P_x e_j)_j
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
        ``(V(x) [B, D], div_estimate [B])``; ``n_probes`` Jacobian–vector products.
    """
    w = manifold.proju(x.unsqueeze(0), probes)
    value, jw = _jvp_many(field, x, w)
    est = (probes * manifold.proju(x.unsqueeze(0), jw)).sum(-1)
    return value, est.mean(0)
