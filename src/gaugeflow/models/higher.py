"""HigherGaugeFlow: the higher gauge flow model of the second paper (docs/math.md §5.3).

    V(x, t) = v_θ(x, t) − α(t) · Π_x( Σ_{m=1..m_max} c_m · l_m(A[d], v̂(1), …, v̂(m−1)) ),

with ``A`` L-valued (``D · dim L`` network outputs), graded fields ``v̂(i)`` (``dim L`` each) and
``Π_x: L → T_xM``. ``m_max = 3`` when the algebra has an ``l3`` (e.g. ``string_lie2``) and 2 for a
strict algebra (a crossed module). By default one field is reused in every slot (the papers);
``n_fields = m_max − 1`` gives distinct fields, which is what lets ``l3`` contribute (an
antisymmetric ``l3(B, v̂, v̂)`` vanishes).

Cost: ``A`` is contracted with ``d`` first, then the brackets act on ``dim L`` coordinates:
``O(B·(D·dim L + k³))``. For the default ``so_crossed_module(k)`` with one field the term goes
through :mod:`~gaugeflow.models.crossed_module`: the brackets fused with ``Π``'s linear map, or,
for ``k`` large against ``D`` and the width, the feature form that never evaluates the
connection's and the field's output layers — chosen by :func:`feature_form_pays` from the shapes
alone. Other algebras use the generic :func:`higher_gauge_contraction` through
``algebra.bracket``. When ``dim L > hidden``, ``A[d]`` is folded into the connection network's
output layer (:meth:`MLP.contracted`), so ``A`` itself is never formed.
"""
from __future__ import annotations

from typing import Optional, Sequence

import warnings

import torch
from torch import nn

from ..algebra import LInfinityAlgebra, SoCrossedModule, so_crossed_module
from ..algebra.batched import contract
from ..geometry.bundles import FibreProjection, GradedVectorBundle
from ..geometry.manifold import Manifold
from .crossed_module import crossed_module_features, crossed_module_projected, feature_form_pays
from .flows import FlowModel
from .gauge import folds
from .networks import MLP, TimeWeight

__all__ = ["HigherGaugeFlow", "higher_gauge_contraction", "read_every_degree"]


@torch.no_grad()
def read_every_degree(projection: FibreProjection, algebra: LInfinityAlgebra) -> None:
    """Let ``Π``'s initial ``W`` read ``L1`` too when the algebra has an ``l3`` (whose values lie in ``L1``).

    The identity start ``W = I_{D × dim L}`` keeps the first ``D`` coordinates (``L0`` first), so for
    ``string_lie2`` the central ``ℝ = L1`` that ``l3`` writes would be ignored until training moved
    ``W``. This adds the rectangular identity on the ``L1`` block too (``W[:, d0:] += I_{D × d1}``;
    for ``string_lie2``: the centre is read along ``e_0``), so ``l3`` shapes ``V`` from the first step.
    Algebras without an ``l3`` keep the identity start.
    """
    if algebra.has_l3:
        d0, d1 = algebra.dims
        W = projection.weight
        W[:, d0:] += torch.eye(W.shape[0], d1, dtype=W.dtype, device=W.device)


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
    B = contract(A, d)
    G = None
    for m, cm in enumerate(c, start=1):
        term = cm * algebra.bracket(B, *fields[: m - 1])
        G = term if G is None else G + term
    return G


class HigherGaugeFlow(FlowModel):
    """Higher gauge flow model with an L∞-algebra-valued connection (final class).

    Networks (on ``features(x) ⊕ t``, width ``hidden``): ``velocity`` (``D``), ``connection``
    (``D · dim L``), ``direction`` (``D``, projected), ``graded_fields`` (``n_fields`` × ``dim L``);
    ``alpha``: ``1 → 16 → 1``; ``projection``: ``Π_x`` with ``W: L → ℝ^D``.

    Args:
        manifold: base manifold.
        algebra: a 2-term L∞-algebra; default ``so_crossed_module(k)``.
        hidden: hidden width of every field network.
        n_fields: ``1`` (one graded field reused in every slot) or ``m_max − 1`` (distinct fields).
        c: the coefficients ``c_1, …, c_m_max`` (default all ones; stored as a buffer, not trained).
        k: ``so(k)`` size of the default algebra (default ``manifold.ambient_dim``); only used when
            ``algebra`` is ``None``.

    Examples:
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
        self.graded_fields = nn.ModuleList(MLP(self.in_dim, dim_l, hidden) for _ in range(n_fields))
        self.alpha = TimeWeight()
        self.bundle = GradedVectorBundle(manifold, algebra=algebra)
        self.projection = FibreProjection.for_bundle(self.bundle)
        read_every_degree(self.projection, algebra)
        self.register_load_state_dict_pre_hook(_rename_legacy_keys)

    def upgrade_state_dict(self, state: dict) -> dict:
        """Renames ``fields.*`` (before the graded-field networks became ``graded_fields``)."""
        state = dict(state)
        _rename_legacy_keys(self, state, "")
        return state

    @property
    def n_fields(self) -> int:
        """Number of distinct graded-field networks."""
        return len(self.graded_fields)

    def fields(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Network outputs ``(A [B, D, dim L], d [B, D] direction (:meth:`direction_field`), [v̂(1), …, v̂(m_max−1)])`` (slot order)."""
        A = self.connection(h).unflatten(-1, (self.manifold.ambient_dim, self.algebra.dim))
        d = self.direction_field(x, h)
        values = [f(h) for f in self.graded_fields]
        slots = [values[min(i, len(values) - 1)] for i in range(self.m_max - 1)]
        return A, d, slots

    def field_values(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Deprecated name of :meth:`fields` (the same method in every model)."""
        warnings.warn("HigherGaugeFlow.field_values is deprecated; use model.fields(x, h), as for every model",
                      DeprecationWarning, stacklevel=2)
        return self.fields(x, h)

    def contract(self, x: torch.Tensor, A: torch.Tensor, d: torch.Tensor, slots: list[torch.Tensor]) -> torch.Tensor:
        """``Π_x(Σ_m c_m l_m(A[d], v̂…))`` ``[B, D]``: the contraction and projection of the gauge term.

        ``so_crossed_module`` with one field slot takes the fused :func:`crossed_module_projected`
        (same value; a test compares it with the generic path).
        """
        if self._fused:
            return self._crossed_module_term(x, contract(A, d), slots[0])
        return self.projection(x, higher_gauge_contraction(self.algebra, self.c, A, d, slots))

    @property
    def _fused(self) -> bool:
        return isinstance(self.algebra, SoCrossedModule) and self.m_max - 1 == 1

    def _crossed_module_term(self, x: torch.Tensor, B: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        return self.manifold.to_tangent(x, crossed_module_projected(self.algebra, self.c, B, V, self.projection.weight))

    def _feature_form(self) -> bool:
        """Whether :meth:`gauge_term` takes the feature form (:func:`feature_form_pays` on this model's shapes)."""
        if not self._fused:
            return False
        conn, field = self.connection.out_layer, self.graded_fields[0].out_layer
        return feature_form_pays(self.manifold.ambient_dim, conn.in_features, field.in_features, self.algebra.g.k,
                                 self.algebra.dim)

    def gauge_term(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``Π_x(G)``; equal to ``contract(x, *fields(x, h))``.

        The fused crossed-module path takes, by :func:`feature_form_pays` (shapes only), either the
        feature form :func:`crossed_module_features` (the connection's and the field's output
        layers absorbed into one batch-independent bilinear form on their hidden features) or the
        brackets :func:`crossed_module_projected` on ``A[d]`` and ``v̂``. For the latter with
        ``dim L > hidden``, ``A[d]`` is folded into the connection network's output layer
        (:meth:`MLP.contracted`): the ``[B, D, dim L]`` tensor ``A`` is never formed.
        """
        if not self._fused:
            return self.contract(x, *self.fields(x, h))
        conn, field = self.connection, self.graded_fields[0]
        feature_form = self._feature_form()
        if not (feature_form or folds(conn, self.algebra.dim)):
            return self.contract(x, *self.fields(x, h))
        d = self.direction_field(x, h)
        if feature_form:
            out = crossed_module_features(self.algebra, self.c, conn.features(h), d, field.features(h),
                                          conn.out_layer, field.out_layer, self.projection.weight)
            return self.manifold.to_tangent(x, out)
        return self._crossed_module_term(x, conn.contracted(h, d), field(h))


def _rename_legacy_keys(module, state_dict, prefix, *args) -> None:
    """Load state dicts saved before the graded-field networks were renamed ``fields`` → ``graded_fields``."""
    old = prefix + "fields."
    for key in [key for key in state_dict if key.startswith(old)]:
        state_dict[prefix + "graded_" + key[len(prefix):]] = state_dict.pop(key)
