"""HigherGaugeFlow: the higher gauge flow model of the second paper (SPEC §5.3).

    V(x, t) = v_θ(x, t) − α(t) · Π_x( Σ_{m=1..m_max} c_m · l_m(A[d], v̂(1), …, v̂(m−1)) ),

with ``A`` L-valued (``D · dim L`` network outputs), graded fields ``v̂(i)`` (``dim L`` each) and
``Π_x: L → T_xM``. ``m_max = 3`` when the algebra has an ``l3`` (e.g. ``string_lie2``) and 2 for a
strict algebra (a crossed module). By default one field is reused in every slot (the papers);
``n_fields = m_max − 1`` gives distinct fields, which is what lets ``l3`` contribute (an
antisymmetric ``l3(B, v̂, v̂)`` vanishes).

Cost: ``A`` is contracted with ``d`` first (one batched product), then the brackets act on
``dim L`` coordinates: ``O(B·(D·dim L + k³))``. For the default ``so_crossed_module(k)`` with one
field, :func:`crossed_module_projected` fuses ``l1 + l2`` with ``Π``'s linear map (one batched
``2k×k · k×2k`` product and one GEMM, no coordinate gathers); other algebras use the generic
:func:`higher_gauge_contraction` through ``algebra.bracket``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from ..algebra import LInfinityAlgebra, SoCrossedModule, so_crossed_module
from ..geometry.bundles import FibreProjection, GradedVectorBundle
from ..geometry.manifold import Manifold
from .flows import FlowModel
from .gauge import contract_direction
from .networks import MLP, TimeWeight

__all__ = ["HigherGaugeFlow", "higher_gauge_contraction", "crossed_module_projected"]


def higher_gauge_contraction(
    algebra: LInfinityAlgebra, c: "Sequence[float] | torch.Tensor", A: torch.Tensor, d: torch.Tensor, fields: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Fibre value ``G = Σ_m c_m l_m(A[d], v̂(1), …, v̂(m−1))``.

    Args:
        algebra: the 2-term L∞-algebra ``L``.
        c: coefficients ``(c_1, …, c_m_max)`` (a sequence or a 1-d tensor).
        A: L-valued connection, ``[B, D, dim L]``.
        d: direction field (tangent), ``[B, D]``.
        fields: ``m_max − 1`` graded fields (slot order), each ``[B, dim L]``.

    Returns:
        ``[B, dim L]``.

    This is the generic path (any algebra, through ``algebra.bracket``); the model uses the fused
    :func:`crossed_module_projected` for ``so_crossed_module`` with a single field slot.
    """
    B = contract_direction(A, d)
    G = None
    for m, cm in enumerate(c, start=1):
        term = cm * algebra.bracket(B, *fields[: m - 1])
        G = term if G is None else G + term
    return G


def crossed_module_projected(
    algebra: SoCrossedModule, c: "Sequence[float] | torch.Tensor", B: torch.Tensor, V: torch.Tensor, W: torch.Tensor
) -> torch.Tensor:
    """``W (c_1 l1(B) + c_2 l2(B, V))`` for ``so_crossed_module(k)``: bracket and ``Π``'s linear map fused.

    With ``B = (B0, (B1, b))``, ``V = (V0, (V1, v))``, ``X_i = hat(B_i)``, ``Y_i = hat(V_i)``, one
    batched product ``P = [X0; X1] [Y0; Y1]ᵀ`` (``2k×k`` times ``k×2k``) holds the blocks
    ``P_ij = X_i Y_jᵀ = −X_i Y_j``. For antisymmetric matrices the coordinates of ``[X, Y]`` are
    those of ``XY − (XY)ᵀ``, and for a weight row ``w`` on so(k) coordinates
    ``Σ_(a<b) w_ab (Q_ab − Q_ba) = ⟨hat(w), Q⟩_F``. Hence, with ``W = [W0 | W1 | w_c]`` split like
    ``L = so(k) ⊕ (so(k) ⊕ ℝ)`` and ``l2(B, V) = ([B0, V0], ([B0, V1] + [B1, V0], 0))`` (SPEC §5.3),

        W l2(B, V) = ⟨K, P⟩_F,   K = −[[hat(W0), hat(W1)], [hat(W1), 0]]   (one ``[D, 2k, 2k]`` per output),
        W l1(B)    = W0 B1          (l1 maps the so(k) part of L1 into L0),

    so the read-off of bracket coordinates (a gather and its scatter-add backward) becomes one
    GEMM ``[N, 4k²] @ [4k², D]``. ``K`` is built from the parameters (``O(D k²)``, independent of
    the batch); no ``[dim so(k), k, k]`` basis is formed. On CPU this keeps the whole gauge term of
    ``HigherGaugeFlow`` to three small-matrix products per step direction.

    Args:
        algebra: ``so_crossed_module(k)``.
        c: ``(c_1, c_2)``.
        B: contracted connection ``[N, dim L]``; V: graded field ``[N, dim L]``.
        W: ``Π``'s ``[D, dim L]`` weight.

    Returns:
        ``[N, D]`` ambient vectors (``proju`` is applied by the caller).
    """
    g, n, k = algebra.g, algebra.g.dim, algebra.g.k
    X = g.hat(B[..., : 2 * n].unflatten(-1, (2, n))).flatten(-3, -2)  # [N, 2k, k]: X0 over X1
    Y = g.hat(V[..., : 2 * n].unflatten(-1, (2, n))).flatten(-3, -2)  # [N, 2k, k]: Y0 over Y1
    P = X @ Y.transpose(-1, -2)  # [N, 2k, 2k]
    H = g.hat(W[:, : 2 * n].unflatten(-1, (2, n)))  # [D, 2, k, k]: hat(W0), hat(W1)
    K = torch.cat([torch.cat([H[:, 0], H[:, 1]], -1), torch.cat([H[:, 1], torch.zeros_like(H[:, 1])], -1)], -2)
    return c[0] * (B[..., n : 2 * n] @ W[:, :n].T) - c[1] * (P.flatten(-2) @ K.flatten(-2).T)


class HigherGaugeFlow(FlowModel):
    """Higher gauge flow model with an L∞-algebra-valued connection (final class).

    Networks (on ``features(x) ⊕ t``, width ``hidden``): ``velocity`` (``D``), ``connection``
    (``D · dim L``), ``direction`` (``D``, projected), ``fields`` (``n_fields`` × ``dim L``);
    ``alpha``: ``1 → 16 → 1``; ``projection``: ``Π_x`` with ``W: L → ℝ^D``.

    Args:
        manifold: base manifold.
        algebra: a 2-term L∞-algebra; default ``so_crossed_module(k)``.
        hidden: hidden width of every field network.
        n_fields: ``1`` (one graded field reused in every slot) or ``m_max − 1`` (distinct fields).
        c: the coefficients ``c_1, …, c_m_max`` (default all ones; stored as a buffer, not trained).
        k: ``so(k)`` size of the default algebra (default ``manifold.ambient_dim``); only used when
            ``algebra`` is ``None``.

    Example:
        >>> from gaugeflow.manifolds import Sphere
        >>> model = HigherGaugeFlow(Sphere(2), hidden=32)
        >>> model.algebra, model(Sphere(2).random_base(4), 0.3).shape
        (so_crossed_module(3), torch.Size([4, 3]))
    """

    def __init__(
        self,
        manifold: Manifold,
        algebra: Optional[LInfinityAlgebra] = None,
        hidden: int = 64,
        n_fields: int = 1,
        c: Optional[Sequence[float]] = None,
        k: Optional[int] = None,
    ):
        super().__init__(manifold, hidden)
        if algebra is None:
            algebra = so_crossed_module(manifold.ambient_dim if k is None else k)
        elif k is not None:
            raise ValueError("HigherGaugeFlow: give either algebra or k (the size of the default algebra), not both")
        if not isinstance(algebra, LInfinityAlgebra):
            raise TypeError(f"HigherGaugeFlow: algebra must be a gaugeflow LInfinityAlgebra, got {type(algebra).__name__}")
        self.algebra = algebra
        self.m_max = 3 if algebra.has_l3 else 2
        if n_fields not in (1, self.m_max - 1) or isinstance(n_fields, bool):
            raise ValueError(f"HigherGaugeFlow: n_fields must be 1 or m_max - 1 = {self.m_max - 1} for {algebra}, got {n_fields!r}")
        c = (1.0,) * self.m_max if c is None else tuple(float(ci) for ci in c)
        if len(c) != self.m_max:
            raise ValueError(f"HigherGaugeFlow: c must have m_max = {self.m_max} coefficients for {algebra}, got {len(c)}")
        self.register_buffer("c", torch.tensor(c))
        D, dim_l = manifold.ambient_dim, algebra.dim
        self.connection = MLP(self.in_dim, D * dim_l, hidden)
        self.direction = MLP(self.in_dim, D, hidden)
        self.fields = nn.ModuleList(MLP(self.in_dim, dim_l, hidden) for _ in range(n_fields))
        self.alpha = TimeWeight()
        self.bundle = GradedVectorBundle(manifold, algebra=algebra)
        self.projection = FibreProjection.for_bundle(self.bundle)

    @property
    def n_fields(self) -> int:
        """Number of distinct graded-field networks."""
        return len(self.fields)

    def field_values(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Network outputs ``(A [B, D, dim L], d [B, D] tangent, [v̂(1), …, v̂(m_max−1)])`` (slot order)."""
        A = self.connection(h).unflatten(-1, (self.manifold.ambient_dim, self.algebra.dim))
        d = self.manifold.proju(x, self.direction(h))
        values = [f(h) for f in self.fields]
        slots = [values[min(i, len(values) - 1)] for i in range(self.m_max - 1)]
        return A, d, slots

    def contract(self, x: torch.Tensor, A: torch.Tensor, d: torch.Tensor, slots: list[torch.Tensor]) -> torch.Tensor:
        """``Π_x(Σ_m c_m l_m(A[d], v̂…))`` ``[B, D]``: the contraction and projection of the gauge term.

        ``so_crossed_module`` with one field slot takes the fused :func:`crossed_module_projected`
        (same value; a test compares it with the generic path).
        """
        if isinstance(self.algebra, SoCrossedModule) and len(slots) == 1:
            B = contract_direction(A, d)
            return self.manifold.proju(x, crossed_module_projected(self.algebra, self.c, B, slots[0], self.projection.weight))
        return self.projection(x, higher_gauge_contraction(self.algebra, self.c, A, d, slots))

    def gauge_term(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.contract(x, *self.field_values(x, h))
