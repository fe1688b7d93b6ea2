"""The two shipped 2-term L∞-algebras built on ``so(k)`` (docs/math.md §3.4, §3.5).

Signs and the mixed-degree extension follow :mod:`gaugeflow.algebra.linf`. All brackets are
``k×k`` matmuls of ``hat`` matrices (``O(k³)`` per sample); no basis tensor is built.
"""
from __future__ import annotations

import math

import torch

from .._numerics import broadcast_shapes
from .graded import GradedSpace
from .linf import LInfinityAlgebra
from .orthogonal import so

__all__ = ["SoCrossedModule", "StringLie2", "so_crossed_module", "string_lie2"]


def _check_k(k: object, who: str) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"{who}: k must be an integer >= 2, got {k!r}")
    return k


class SoCrossedModule(LInfinityAlgebra):
    """The strict Lie 2-algebra of the papers' experiments (final class).

    ``L0 = so(k)``, ``L1 = so(k) ⊕ ℝ`` (coordinates ``(y, c)``: a second copy of so(k), then a
    central scalar), so ``dims = (k(k−1)/2, k(k−1)/2 + 1)``.

    * ``l1(y, c) = y``
    * ``l2(x, x') = [x, x']``,  ``l2(x, (y, c)) = ([x, y], 0)``,  ``l2(L1, L1) = 0``
    * ``l3 = 0`` (a Lie crossed module).

    On graded elements ``B = (B0, (B1, b))``, ``V = (V0, (V1, v))``:
    ``l2(B, V) = [B0, V0] ⊕ ([B0, V1] + [B1, V0], 0)`` (docs/math.md §5.3).

    Examples:
        >>> L = so_crossed_module(3)
        >>> L.dims
        (3, 4)
        >>> B = torch.zeros(7); B[3] = 1.0       # the L1 element (T_(0,1), 0)
        >>> L.bracket(B)                          # l1 maps it to T_(0,1) in L0
        tensor([1., 0., 0., 0., 0., 0., 0.])
    """

    has_l3 = False

    def __init__(self, k: int):
        self.g = so(_check_k(k, "so_crossed_module"))
        self.space = GradedSpace((self.g.dim, self.g.dim + 1))

    def l1_1(self, h):
        return h[..., : self.g.dim]

    def l2_00(self, x, y):
        return self.g.bracket(x, y)

    def l2_01(self, x, h):
        top = self.g.bracket(x, h[..., : self.g.dim])
        return torch.cat([top, top.new_zeros(top.shape[:-1] + (1,))], dim=-1)

    def l3_000(self, x, y, z):
        batch = broadcast_shapes(x.shape[:-1], y.shape[:-1], z.shape[:-1])
        return x.new_zeros(batch + (self.dims[1],))

    def l2(self, B, C):
        """Fast path: ``[B0, V0]`` and ``[B0, V1] + [B1, V0]`` as two ``k×k`` matmul brackets."""
        d = self.g.dim
        x, h = self.split(B)
        y, k = self.split(C)
        batch = broadcast_shapes(x.shape[:-1], y.shape[:-1])

        def full(t):
            return t.expand(batch + t.shape[-1:])

        # [x, k_y] + [h_y, y] = [x, k_y] − [y, h_y]: one bracket of stacked pairs (common batch shape)
        pairs = self.g.bracket(torch.stack([full(x), full(h[..., :d])]), torch.stack([full(k[..., :d]), full(y)]))
        top = pairs[0] + pairs[1]
        zero = top.new_zeros(top.shape[:-1] + (1,))
        return self.join(self.g.bracket(x, y), torch.cat([top, zero], dim=-1))

    def _key(self):
        return ("so_crossed_module", self.g.k)

    def __repr__(self):
        return f"so_crossed_module({self.g.k})"


class StringLie2(LInfinityAlgebra):
    """The string Lie 2-algebra of ``so(k)`` at level ``κ`` (final class; docs/math.md §3.5, beyond the papers).

    ``L0 = so(k)``, ``L1 = ℝ``, ``l1 = 0``, ``l2 = [·,·]`` on ``L0`` and 0 otherwise,
    ``l3(x, y, z) = κ ⟨x, [y, z]⟩`` (the Cartan 3-cocycle; totally antisymmetric by ad-invariance).

    Examples:
        >>> L = string_lie2(3, kappa=2.0)
        >>> e = torch.eye(3)
        >>> L.l3(*(torch.cat([e[i], torch.zeros(1)]) for i in (0, 1, 2)))[-1]   # κ⟨T01, [T02, T12]⟩
        tensor(-2.)
    """

    def __init__(self, k: int, kappa: float = 1.0):
        if isinstance(kappa, bool) or not isinstance(kappa, (int, float)) or not math.isfinite(kappa):
            raise ValueError(f"string_lie2: kappa must be a finite real number, got {kappa!r}")
        self.g = so(_check_k(k, "string_lie2"))
        self.kappa = float(kappa)
        self.space = GradedSpace((self.g.dim, 1))
        self.has_l3 = self.kappa != 0.0

    def l1_1(self, h):
        return h.new_zeros(h.shape[:-1] + (self.g.dim,))

    def l2_00(self, x, y):
        return self.g.bracket(x, y)

    def l2_01(self, x, h):
        return x.new_zeros(broadcast_shapes(x.shape[:-1], h.shape[:-1]) + (1,))

    def l3_000(self, x, y, z):
        return self.kappa * self.g.inner(x, self.g.bracket(y, z)).unsqueeze(-1)

    def _key(self):
        return ("string_lie2", self.g.k, self.kappa)

    def __repr__(self):
        return f"string_lie2({self.g.k}, kappa={self.kappa})"


def so_crossed_module(k: int) -> SoCrossedModule:
    """The crossed module ``so(k) → so(k) ⊕ ℝ`` of the papers' experiments; see :class:`SoCrossedModule`."""
    return SoCrossedModule(k)


def string_lie2(k: int, kappa: float = 1.0) -> StringLie2:
    """The string Lie 2-algebra of ``so(k)`` at level ``kappa``; see :class:`StringLie2`."""
    return StringLie2(k, kappa)
