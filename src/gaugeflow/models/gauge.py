"""GaugeFlow: the gauge flow model of the first paper (docs/math.md §5.2), gauge group SO(k) on ℝ^k.

    V(x, t) = v_θ(x, t) − α(t) · Π_x( ρ(A(x, t)[d(x, t)]) v_s(x, t) ),
    A[d] = Σ_μ Σ_a A_μ^a d^μ e_a ∈ so(k).

Cost contract: the connection is contracted with the direction field first (one batched product,
``O(B·D·dim so(k))``), the antisymmetric matrix is built by :meth:`so.hat`'s index gather and applied
to the section (``O(B·k²)``); no ``[dim so(k), k, k]`` basis is ever formed. The contraction and the
projection are isolated in :func:`gauge_contraction` / :meth:`GaugeFlow.contract` so benchmarks can
swap them for a no-op while keeping the networks.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..algebra import so
from ..algebra.batched import contract
from ..geometry.bundles import FibreProjection, VectorBundle
from ..geometry.manifold import Manifold
from .flows import FlowModel
from .networks import MLP, TimeWeight

__all__ = ["GaugeFlow", "gauge_contraction", "contract_direction"]


def gauge_contraction(g: so, A: torch.Tensor, d: torch.Tensor, section: torch.Tensor) -> torch.Tensor:
    """Fibre value ``G = ρ(A[d]) v_s`` of the gauge term.

    Args:
        g: the Lie algebra ``so(k)``.
        A: connection coefficients ``A_μ^a``, ``[B, D, dim so(k)]``.
        d: direction field ``d^μ`` (tangent), ``[B, D]``.
        section: fibre section ``v_s``, ``[B, k]``.

    Returns:
        ``[B, k]``: ``hat(Σ_μ d^μ A_μ) · v_s``.

    The contraction is :func:`contract_direction`; the ``k×k`` matrix–vector product is a broadcast
    multiply-reduce (a per-sample GEMV through ``bmm`` is several times slower on CPU).
    """
    return _act(g, contract_direction(A, d), section)


def _act(g: so, xi: torch.Tensor, section: torch.Tensor) -> torch.Tensor:
    """``hat(ξ) v``, ``[B, dim], [B, k] -> [B, k]``: a broadcast multiply-reduce."""
    return (g.hat(xi) * section.unsqueeze(-2)).sum(-1)


def folds(mlp: MLP, n: int) -> bool:
    """Whether a gauge model computes ``A[d]`` with :meth:`MLP.contracted` (``n`` coordinates per direction).

    A rule on shapes only: fold when the fold's ``[B, D · hidden]`` outer product is smaller than
    the ``[B, D, n]`` output it replaces (``n > hidden``; e.g. HigherGaugeFlow with ``k = 16``:
    ``dim L = 241`` against width 64). Both routes cost the same multiply-adds; the fold moves less
    memory forward and backward.
    """
    return n > mlp.out_layer.in_features


def contract_direction(A: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``A[d] = Σ_μ d^μ A_μ``: ``[B, D, n], [B, D] -> [B, n]``.

    Through :func:`gaugeflow.algebra.batched.contract`: each sample's value comes from its own row
    only, and the backward forms no ``[B, D, n]`` temporary beyond ``∂A = d ⊗ g`` itself.
    """
    if A.dim() != 3 or d.dim() != 2 or A.shape[:2] != d.shape:
        raise ValueError(f"contract_direction: expected A [B, D, n] and d [B, D], got {tuple(A.shape)} and {tuple(d.shape)}")
    return contract(A, d)


class GaugeFlow(FlowModel):
    """Gauge flow model with structure group ``SO(k)`` acting on the fibre ``ℝ^k`` (final class).

    Networks (all on ``features(x) ⊕ t``, two SiLU hidden layers of width ``hidden``):
    ``velocity`` (``D`` outputs), ``connection`` (``D · k(k−1)/2``), ``direction`` (``D``, projected),
    ``section`` (``k``); ``alpha`` is ``1 → 16 → 1``; ``projection`` is ``Π_x`` with ``W: ℝ^k → ℝ^D``.

    Args:
        manifold: base manifold.
        hidden: hidden width of every field network.
        k: fibre dimension (gauge group ``SO(k)``), ``k ≥ 2``; defaults to ``manifold.ambient_dim``.

    Examples:
        >>> from gaugeflow.manifolds import Sphere
        >>> model = GaugeFlow(Sphere(2), hidden=32)
        >>> model.k, model(Sphere(2).random_base(4), torch.rand(4)).shape
        (3, torch.Size([4, 3]))
    """

    def __init__(self, manifold: Manifold, hidden: int = 64, k: Optional[int] = None):
        super().__init__(manifold, hidden)
        k = manifold.ambient_dim if k is None else k
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ValueError(f"GaugeFlow: k (fibre dimension of SO(k)) must be an integer >= 2, got {k!r}")
        self.k = k
        self.group = so(k)
        D = manifold.ambient_dim
        self.connection = MLP(self.in_dim, D * self.group.dim, hidden)
        self.direction = MLP(self.in_dim, D, hidden)
        self.section = MLP(self.in_dim, k, hidden)
        self.alpha = TimeWeight()
        self.bundle = VectorBundle(manifold, fiber_dim=k)
        self.projection = FibreProjection.for_bundle(self.bundle)

    def fields(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Network outputs ``(A [B, D, dim so(k)], d [B, D] direction (:meth:`direction_field`), v_s [B, k])``."""
        A = self.connection(h).unflatten(-1, (self.manifold.ambient_dim, self.group.dim))
        d = self.direction_field(x, h)
        return A, d, self.section(h)

    def contract(self, x: torch.Tensor, A: torch.Tensor, d: torch.Tensor, section: torch.Tensor) -> torch.Tensor:
        """``Π_x(ρ(A[d]) v_s)`` ``[B, D]``: the contraction and projection of the gauge term, from :meth:`fields`."""
        return self.projection(x, gauge_contraction(self.group, A, d, section))

    def gauge_term(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``Π_x(ρ(A[d]) v_s)``; equal to ``contract(x, *fields(x, h))``.

        When ``dim so(k) > hidden`` the contraction ``A[d]`` is folded into the connection network's
        output layer (:meth:`MLP.contracted`), so the ``[B, D, dim so(k)]`` tensor ``A`` is never formed.
        """
        if not folds(self.connection, self.group.dim):
            return self.contract(x, *self.fields(x, h))
        d = self.direction_field(x, h)
        return self.projection(x, _act(self.group, self.connection.contracted(h, d), self.section(h)))
