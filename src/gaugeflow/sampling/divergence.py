r"""Riemannian divergence of a tangent vector field in ambient coordinates (docs/math.md §7.2).

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

Both estimators use reverse-mode AD: one forward pass of the field with its graph, then *one*
backward pass batched over ``r`` cotangents ``c_j`` (``autograd.grad(..., is_grads_batched=True)``,
a ``vmap`` over the backward graph) returns every row ``c_jᵀ J``. No Python loop over the batch or the
directions, and the forward activations are shared by all ``r`` rows (cheaper than ``r`` separate
backward passes, and than a forward on an ``r``-times replicated batch).

* :func:`exact_divergence`: with the manifold's ``g``-orthonormal tangent frame
  (``Manifold.tangent_frame``; the unit sphere's Householder frame, ``e_j`` when ``P_x = I``, the
  boosted frame of the hyperboloid, Gram–Schmidt by default) ``div V = Σ_i ω_i(J e_i)`` with the
  covectors ``ω_i = g(e_i, P_x ·)`` (``= e_i`` for the ambient Euclidean metric): ``r = n = dim M``
  rows instead of ``D`` (``experiments/benchmarks``, ``docs/performance.md``).
* :func:`hutchinson_divergence`: the unbiased estimator ``zᵀ P_x J P_x z`` with ``E[z zᵀ] = I``
  (``E = tr(P J P) = tr(J P)``): ``r = n_probes`` cotangents ``P_xᵀ z`` (tangent-projected probes),
  each row dotted with ``P_x z``; Rademacher or Gaussian ``z``.

Default. :func:`default_divergence` picks the estimator ``log_prob`` uses when none is given, by a rule on
the manifold's dimension ``n`` only (never the batch size or the device): exact below
:data:`HUTCHINSON_FROM_DIM`, Hutchinson from it on. Exact costs ``n`` backward rows per evaluation,
Hutchinson one per probe; the threshold is where Hutchinson with one probe estimates a test-set NLL at
least twice as efficiently as exact at equal compute on ``S^n`` and ``T^n`` (measured by
``experiments/benchmarks/bench_dimension.py``; docs/performance.md, "How cost grows with dimension").
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ..geometry.manifold import Manifold

__all__ = [
    "exact_divergence", "hutchinson_divergence", "draw_probes", "tangent_frame", "PROBES", "DIVERGENCES",
    "HUTCHINSON_FROM_DIM", "default_divergence",
]

VectorField = Callable[[torch.Tensor], torch.Tensor]
PROBES = ("rademacher", "gaussian")
DIVERGENCES = ("exact", "hutchinson")

#: Manifold dimension from which :func:`default_divergence` is ``"hutchinson"`` (see the module notes).
HUTCHINSON_FROM_DIM = 16


def default_divergence(manifold: Manifold) -> str:
    """The divergence estimator ``log_prob`` uses when none is given: a rule on ``manifold.dim`` only.

    Args:
        manifold: the flow's manifold (its intrinsic dimension ``n = manifold.dim`` decides).

    Returns:
        ``"exact"`` if ``n < HUTCHINSON_FROM_DIM`` (``n`` backward rows per evaluation, no noise), else
        ``"hutchinson"`` (one row per probe; unbiased, per-point noise that falls as ``1/√probes``).

    Raises:
        TypeError: ``manifold`` is not a :class:`~gaugeflow.geometry.Manifold`.

    Examples:
        >>> from gaugeflow.manifolds import Sphere
        >>> default_divergence(Sphere(2)), default_divergence(Sphere(HUTCHINSON_FROM_DIM))
        ('exact', 'hutchinson')
    """
    if not isinstance(manifold, Manifold):
        raise TypeError(f"default_divergence: expected a gaugeflow Manifold, got {type(manifold).__name__}")
    return "exact" if manifold.dim < HUTCHINSON_FROM_DIM else "hutchinson"


def _vjp_batched(field: VectorField, x: torch.Tensor, cotangents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(V(x) [B, D], c_jᵀ J [r, B, D])`` for cotangents ``[r, B, D]``: one forward, one batched backward."""
    with torch.enable_grad():
        y = x.detach().requires_grad_(True)
        v = field(y)
        if not v.requires_grad:  # a field that ignores x (a constant) has J = 0
            return v.detach(), torch.zeros_like(cotangents)
        (rows,) = torch.autograd.grad(v, y, grad_outputs=cotangents, is_grads_batched=True, allow_unused=True)
    return v.detach(), torch.zeros_like(cotangents) if rows is None else rows


def tangent_frame(manifold: Manifold, x: torch.Tensor) -> torch.Tensor:
    """The manifold's ``g``-orthonormal frame of ``T_xM`` as rows: ``[n, B, D]``.

    ``manifold.tangent_frame(x)`` (``[B, D, n]``, a documented :class:`Manifold` method with a
    Gram–Schmidt default; the sphere's Householder frame, the identity for ℝ^n and the torus),
    moved to the leading axis for the batched backward pass.
    """
    return manifold.tangent_frame(x).movedim(-1, 0)


def _cotangents(manifold: Manifold, x: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
    """Covectors ``ω_i = g_x(e_i, P_x ·)`` ``[n, B, D]`` of the frame rows ``e_i`` ``[n, B, D]``.

    ``div V = Σ_i g(e_i, ∇_{e_i}V) = Σ_i ω_i(J e_i)``. For the default (ambient Euclidean) metric
    ``P_x`` is the Euclidean orthogonal projector and ``ω_i = e_i``; otherwise (the Minkowski form,
    products) ``ω_i[j] = g_x(e_i, P_x ε_j)`` from ``D`` projections and ``n·D`` inner products.
    """
    if type(manifold).inner is Manifold.inner:
        return frame
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    cols = manifold.proju(x.unsqueeze(0), eye.unsqueeze(1))  # [D, B, D], P_x ε_j
    return manifold.inner(x[None, None], frame[:, None], cols[None]).transpose(1, 2)  # [n, B, D]


def exact_divergence(field: VectorField, manifold: Manifold, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Field value and exact Riemannian divergence ``tr(J P_x)``.

    Args:
        field: ``x [B, D] -> V(x) [B, D]`` tangent (the time is bound by the caller).
        manifold: the manifold defining ``proju``.
        x: ``[B, D]`` points on the manifold.

    Returns:
        ``(V(x) [B, D], div [B])``; one forward and one backward batched over ``n`` cotangents
        (the manifold's :meth:`~gaugeflow.geometry.Manifold.tangent_frame`).
    """
    frame = tangent_frame(manifold, x)  # [n, B, D]
    value, rows = _vjp_batched(field, x, _cotangents(manifold, x, frame))  # rows[i] = ω_iᵀ J
    return value, (rows * frame).sum(-1).sum(0)


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
        ``(V(x) [B, D], div_estimate [B])``; one forward and one backward batched over the probes.
    """
    w = manifold.proju(x.unsqueeze(0), probes)  # P_x z
    left = _projector_transpose(manifold, x, probes)  # P_xᵀ z
    value, rows = _vjp_batched(field, x, left)  # zᵀ P_x J
    est = (rows * w).sum(-1)
    return value, est.mean(0)
