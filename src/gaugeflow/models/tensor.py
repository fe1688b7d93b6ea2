"""TensorGaugeFlow: the tensor gauge flow model of the third paper (docs/math.md §5.4).

    V(x, t) = v_θ(x, t) − α(x, t) · Π_x( A_{μ1…μr}(x, t)[T̂(x, t)] d^{μ1} ⋯ d^{μr} ),

a rank-``r`` gauge field contracted with ``r`` copies of the direction field ``d`` and acting on a
fibre field ``T̂``: through ``so(k)`` on ``T̂ ∈ ℝ^k`` (``ρ(ξ) T̂ = hat(ξ) T̂``, the default) or through
the brackets of a 2-term L∞-algebra ``L`` on graded fields, ``Σ_m c_m l_m(ξ, T̂(1), …, T̂(m−1))``
(as :class:`~gaugeflow.models.HigherGaugeFlow`). ``α(x, t)`` is a network on ``features(x) ⊕ t``.

Index symmetries and parametrisation. Only the part of ``A`` that is totally symmetric in
``μ1 … μr`` is seen by ``d^{μ1} ⋯ d^{μr}``, so the field *is* that symmetric tensor, ``g``-valued
(``g = so(k)`` or ``L``), with no symmetry between the direction indices and the algebra index. It
is parametrised in ``S`` channels (``channels``) of rank-one factors,

    A_{μ1…μr} = Sym_{μ1…μr} Σ_{s=1..S} a(1)_{s μ1} ⋯ a(r−1)_{s μ(r−1)} A_{s μr},

with covector fields ``a(j)_s`` (network ``factors``, ``(r−1)·S·D`` outputs, gauge invariant) and
``g``-valued fields ``A_s`` (network ``connection``, ``D·S·dim g`` outputs). Every symmetric field is
of this form once ``S ≥ C(D+r−2, r−1)``; ``r = 1``, ``S = 1`` is GaugeFlow's connection.

Cost contract: one direction index at a time — ``⟨a(j)_s, d⟩`` for each slot, then ``A_s[d]``,
then the channel sum — ``O(B·(r·S·D + S·D·dim g))``, plus ``O(B·k²)`` for ``so(k)`` or the brackets
(``O(B·k³)``). The ``[B, D^r, dim g]`` tensor is never formed (it would cost ``O(B·D^r·dim g)``).
When ``S·dim g > hidden``, ``A_s[d]`` is folded into the connection's output layer
(:meth:`MLP.contracted`), so ``[B, D, S, dim g]`` is not formed either; a rule on shapes only.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import nn

from ..algebra import LInfinityAlgebra, SoCrossedModule, so
from ..geometry.bundles import FibreProjection, GradedVectorBundle, VectorBundle
from ..geometry.manifold import Manifold
from .crossed_module import crossed_module_projected
from .flows import FlowModel
from .gauge import _act, contract_direction, folds
from .higher import read_every_degree
from .networks import MLP, TimeLike, TimeWeight, time_column

__all__ = ["TensorGaugeFlow", "SpaceTimeWeight", "tensor_contraction", "channel_weights"]


def channel_weights(a: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``w_s = Π_{j=1..r−1} ⟨a(j)_s, d⟩``: ``[B, r−1, S, D], [B, D] -> [B, S]`` (ones when ``r = 1``).

    Each factor slot is contracted with ``d`` on its own (``(r−1)·S·D`` multiply-adds per sample),
    then the slots are multiplied.
    """
    if a.dim() != 4 or d.dim() != 2 or a.shape[0] != d.shape[0] or a.shape[-1] != d.shape[-1]:
        raise ValueError(f"channel_weights: expected a [B, r-1, S, D] and d [B, D], got {tuple(a.shape)} and {tuple(d.shape)}")
    return (a * d[:, None, None, :]).sum(-1).prod(1)


def tensor_contraction(A: torch.Tensor, a: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``A_{μ1…μr} d^{μ1} ⋯ d^{μr} = Σ_s w_s A_s[d]`` ``[B, n]`` from ``A [B, D, S, n]``, ``a [B, r−1, S, D]``, ``d [B, D]``.

    ``A_s[d] = Σ_μ d^μ A_{μ s}`` (:func:`contract_direction`) and ``w_s`` from :func:`channel_weights`;
    equal to contracting the symmetrised dense tensor, which is never built.
    """
    B, D, S, n = A.shape
    return _combine(contract_direction(A.reshape(B, D, S * n), d).view(B, S, n), a, d)


def _combine(Ad: torch.Tensor, a: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``Σ_s w_s A_s[d]``: ``[B, S, n]`` and the factors -> ``[B, n]``."""
    if a.shape[1] == 0:  # rank 1: no factor slots, one channel
        return Ad.sum(1)
    return (channel_weights(a, d).unsqueeze(-1) * Ad).sum(1)


class SpaceTimeWeight(nn.Module):
    """The weight ``α(x, t)``: ``features(x) ⊕ t → hidden → 1`` with a SiLU; output bias starts at ``init``.

    Called as ``alpha(x, t)`` with ``x [B, D]`` and ``t`` a number or ``[B]`` → ``[B, 1]``; the model
    uses :meth:`from_inputs` on the inputs it has already built. ``init = 1`` puts ``α ≈ 1`` at
    initialisation, so the gauge term is live from the first step.
    """

    def __init__(self, manifold: Manifold, hidden: int = 16, init: float = 1.0):
        super().__init__()
        self.manifold = manifold
        self.net = nn.Sequential(nn.Linear(manifold.feature_dim + 1, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        with torch.no_grad():
            self.net[-1].bias.fill_(float(init))

    def forward(self, x: torch.Tensor, t: TimeLike) -> torch.Tensor:
        self.manifold.validate(x)
        if x.dim() != 2:
            raise ValueError(f"alpha: x must have shape [B, {self.manifold.ambient_dim}], got {tuple(x.shape)}")
        return self.from_inputs(torch.cat([self.manifold.features(x), time_column(t, x)], dim=-1))

    def from_inputs(self, h: torch.Tensor) -> torch.Tensor:
        """``α`` from network inputs ``features(x) ⊕ t`` ``[B, feature_dim + 1]`` → ``[B, 1]``."""
        return self.net(h)

    @torch.no_grad()
    def load_time_weight(self, weight: TimeWeight) -> "SpaceTimeWeight":
        """Copy a :class:`TimeWeight` ``α(t)`` and zero the ``x`` columns: ``α(x, t) = α(t)`` (same hidden width)."""
        first, last = self.net[0], self.net[-1]
        first.weight.zero_()
        first.weight[:, -1:].copy_(weight.net[0].weight)
        first.bias.copy_(weight.net[0].bias)
        last.weight.copy_(weight.net[-1].weight)
        last.bias.copy_(weight.net[-1].bias)
        return self


def _check_int(value: object, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"TensorGaugeFlow: {what} must be an integer >= {low}, got {value!r}")
    return value


class TensorGaugeFlow(FlowModel):
    """Tensor gauge flow model with a rank-``r`` field acting through ``so(k)`` or an L∞-algebra (final class).

    Networks (on ``features(x) ⊕ t``, two SiLU hidden layers of width ``hidden``): ``velocity``
    (``D``), ``connection`` (``D·S·dim g``, direction-major ``[D, S, dim g]``), ``factors``
    (``(r−1)·S·D`` as ``[r−1, S, D]``; ``None`` for ``r = 1``), ``direction`` (``D``, tangent), and
    ``section`` (``k``, for ``so(k)``) or ``graded_fields`` (``n_fields × dim L``); ``alpha`` is
    :class:`SpaceTimeWeight`; ``projection`` is ``Π_x`` with ``W: fibre → ℝ^D``.

    Args:
        manifold: base manifold.
        rank: ``r ≥ 1``, the number of direction indices of the field.
        algebra: ``None`` or an :class:`~gaugeflow.algebra.so` (action on ``T̂ ∈ ℝ^k``), or a 2-term
            L∞-algebra such as ``so_crossed_module(k)`` or ``string_lie2(k)`` (brackets on graded ``T̂``).
        hidden: hidden width of every field network.
        n_fields: graded fields: ``1`` (reused in every slot) or ``m_max − 1``; ``1`` for ``so(k)``.
        channels: ``S``, rank-one channels of the field (default ``rank``; must be 1 when ``rank = 1``).
        c: bracket coefficients ``c_1, …, c_m_max`` (L∞ only; default ones; a buffer).
        k: ``so(k)`` size when ``algebra`` is ``None`` (default ``manifold.ambient_dim``).

    Examples:
        >>> from gaugeflow.manifolds import Sphere
        >>> model = TensorGaugeFlow(Sphere(2), rank=2, hidden=32)
        >>> model.algebra, model(Sphere(2).random_base(4), 0.3).shape
        (so(3), torch.Size([4, 3]))
    """

    def __init__(self, manifold: Manifold, rank: int = 2, algebra: Optional[Union[so, LInfinityAlgebra]] = None,
                 hidden: int = 64, n_fields: int = 1, channels: Optional[int] = None,
                 c: Optional[Sequence[float]] = None, k: Optional[int] = None):
        super().__init__(manifold, hidden)
        self.rank = _check_int(rank, "rank (number of direction indices)", 1)
        self.channels = _check_int(rank if channels is None else channels, "channels", 1)
        if self.rank == 1 and self.channels != 1:
            raise ValueError(f"TensorGaugeFlow: a rank-1 field has one channel, got channels={channels!r}")
        self.algebra = _resolve_algebra(manifold, algebra, k)
        self.lie = isinstance(self.algebra, so)
        self.k = self.algebra.k if self.lie else getattr(getattr(self.algebra, "g", None), "k", None)
        self.m_max = 1 if self.lie else (3 if self.algebra.has_l3 else 2)
        if isinstance(n_fields, bool) or n_fields not in (1, max(self.m_max - 1, 1)):
            raise ValueError(f"TensorGaugeFlow: n_fields must be 1 or m_max - 1 = {max(self.m_max - 1, 1)} for "
                             f"{self.algebra}, got {n_fields!r}")
        D, n, S = manifold.ambient_dim, self.algebra.dim, self.channels
        self.connection = MLP(self.in_dim, D * S * n, hidden)
        self.factors = MLP(self.in_dim, (self.rank - 1) * S * D, hidden) if self.rank > 1 else None
        self.direction = MLP(self.in_dim, D, hidden)
        self.alpha = SpaceTimeWeight(manifold)
        if self.lie:
            if c is not None:
                raise ValueError("TensorGaugeFlow: c (bracket coefficients) applies to an L-infinity algebra, not so(k)")
            self.section = MLP(self.in_dim, self.k, hidden)
            self.bundle = VectorBundle(manifold, fiber_dim=self.k)
        else:
            c = (1.0,) * self.m_max if c is None else tuple(float(ci) for ci in c)
            if len(c) != self.m_max:
                raise ValueError(f"TensorGaugeFlow: c must have m_max = {self.m_max} coefficients for {self.algebra}, got {len(c)}")
            self.register_buffer("c", torch.tensor(c))
            self.graded_fields = nn.ModuleList(MLP(self.in_dim, n, hidden) for _ in range(n_fields))
            self.bundle = GradedVectorBundle(manifold, algebra=self.algebra)
        self.projection = FibreProjection.for_bundle(self.bundle)
        if not self.lie:
            read_every_degree(self.projection, self.algebra)

    @property
    def n_fields(self) -> int:
        """Number of distinct fibre-field networks (``1`` for ``so(k)``)."""
        return 1 if self.lie else len(self.graded_fields)

    def fields(self, x: torch.Tensor, h: torch.Tensor) -> tuple:
        """``(A [B, D, S, dim g], a [B, r−1, S, D], d [B, D], T̂)``: ``T̂ = v_s [B, k]`` (so(k)) or the slot list ``[B, dim L]``."""
        B, D, S = h.shape[0], self.manifold.ambient_dim, self.channels
        A = self.connection(h).view(B, D, S, self.algebra.dim)
        a = self.factors(h).view(B, self.rank - 1, S, D) if self.factors is not None else h.new_empty(B, 0, S, D)
        return A, a, self.direction_field(x, h), self._fibre_fields(h)

    def _fibre_fields(self, h: torch.Tensor):
        if self.lie:
            return self.section(h)
        values = [f(h) for f in self.graded_fields]
        return [values[min(i, len(values) - 1)] for i in range(self.m_max - 1)]

    def contract(self, x: torch.Tensor, A: torch.Tensor, a: torch.Tensor, d: torch.Tensor, T) -> torch.Tensor:
        """``Π_x(A_{μ1…μr}[T̂] d^{μ1}⋯d^{μr})`` ``[B, D]`` from :meth:`fields` (the reference route)."""
        return self._act(x, tensor_contraction(A, a, d), T)

    def _act(self, x: torch.Tensor, xi: torch.Tensor, T) -> torch.Tensor:
        """``Π_x`` of the action of ``ξ = A[d, …, d]`` ``[B, dim g]`` on the fibre field(s)."""
        if self.lie:
            return self.projection(x, _act(self.algebra, xi, T))
        if isinstance(self.algebra, SoCrossedModule) and self.m_max - 1 == 1:  # fused with Π's weight
            return self.manifold.to_tangent(x, crossed_module_projected(self.algebra, self.c, xi, T[0], self.projection.weight))
        G = None
        for m, cm in enumerate(self.c, start=1):
            term = cm * self.algebra.bracket(xi, *T[: m - 1])
            G = term if G is None else G + term
        return self.projection(x, G)

    def gauge_term(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``Π_x(A[T̂] d⋯d)``; equal to ``contract(x, *fields(x, h))``.

        When ``S · dim g > hidden`` (:func:`~gaugeflow.models.gauge.folds`, shapes only), ``A_s[d]``
        comes from the connection's output layer folded with ``d`` (:meth:`MLP.contracted`).
        """
        S, n = self.channels, self.algebra.dim
        if not folds(self.connection, S * n):
            return self.contract(x, *self.fields(x, h))
        B, D = h.shape[0], self.manifold.ambient_dim
        d = self.direction_field(x, h)
        a = self.factors(h).view(B, self.rank - 1, S, D) if self.factors is not None else h.new_empty(B, 0, S, D)
        xi = _combine(self.connection.contracted(h, d).view(B, S, n), a, d)
        return self._act(x, xi, self._fibre_fields(h))

    def forward(self, x: torch.Tensor, t: TimeLike) -> torch.Tensor:
        """Velocity ``V(x, t) = v_θ − α(x, t) Π_x(…)``. ``x: [B, D]``, ``t: float | [] | [B]`` → ``[B, D]``."""
        h, _ = self.inputs(x, t)
        v = self.manifold.to_tangent(x, self.velocity(h))
        return v - self.alpha.from_inputs(h) * self.gauge_term(x, h)

    def extra_repr(self) -> str:
        return f"rank={self.rank}, algebra={self.algebra}, channels={self.channels}, n_fields={self.n_fields}"


def _resolve_algebra(manifold: Manifold, algebra, k: Optional[int]):
    """``so(k)`` (default ``k = D``) or the given algebra; one-line errors for anything else."""
    if algebra is None:
        k = manifold.ambient_dim if k is None else k
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ValueError(f"TensorGaugeFlow: k (size of so(k)) must be an integer >= 2, got {k!r}")
        return so(k)
    if k is not None:
        raise ValueError("TensorGaugeFlow: give either algebra or k (the size of the default so(k)), not both")
    if not isinstance(algebra, (so, LInfinityAlgebra)):
        raise TypeError(f"TensorGaugeFlow: algebra must be so(k) or a gaugeflow LInfinityAlgebra "
                        f"(so_crossed_module, string_lie2, ...), got {type(algebra).__name__}")
    return algebra
