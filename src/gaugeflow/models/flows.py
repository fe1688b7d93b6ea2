"""The flow-model skeleton shared by all models, and :class:`PlainFlow` (docs/math.md §5, §5.1).

Every model is an ``nn.Module`` defining a tangent velocity field

    V(x, t) = v_θ(x, t) − α(t) · Π_x(G(x, t)),

with ``v_θ = to_tangent(x, MLP(features(x) ⊕ t))`` (:meth:`Manifold.to_tangent`: ``proju`` unless the
metric is not the ambient one). Subclasses provide the gauge term
``Π_x(G)`` through :meth:`FlowModel.gauge_term`; the plain model has none.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..geometry.manifold import Manifold
from .networks import MLP, TimeLike, time_column

__all__ = ["FlowModel", "PlainFlow"]


class FlowModel(nn.Module):
    """Abstract base of the flow models: ``model(x, t) -> V(x, t) ∈ T_xM``.

    Args:
        manifold: the base manifold (kept as ``model.manifold``).
        hidden: width of the velocity network ``v_θ``.

    Attributes:
        manifold: the base manifold.
        velocity: the ``MLP`` of ``v_θ`` (output made tangent with ``manifold.to_tangent``).
        alpha: the ``α(t)`` network, or ``None`` when there is no gauge term.
    """

    def __init__(self, manifold: Manifold, hidden: int = 64):
        super().__init__()
        if not isinstance(manifold, Manifold):
            raise TypeError(f"{type(self).__name__}: expected a gaugeflow Manifold, got {type(manifold).__name__}")
        self.manifold = manifold
        self.in_dim = manifold.feature_dim + 1
        self.velocity = MLP(self.in_dim, manifold.ambient_dim, hidden)
        self.alpha: Optional[nn.Module] = None

    def inputs(self, x: torch.Tensor, t: TimeLike) -> tuple[torch.Tensor, torch.Tensor]:
        """Network input ``features(x) ⊕ t`` ``[B, feature_dim + 1]`` and the time column ``[B, 1]``."""
        self.manifold.validate(x)
        if x.dim() != 2:
            raise ValueError(f"{type(self).__name__}: x must have shape [B, {self.manifold.ambient_dim}], got {tuple(x.shape)}")
        tcol = time_column(t, x)
        return torch.cat([self.manifold.features(x), tcol], dim=-1), tcol

    def fields(self, x: torch.Tensor, h: torch.Tensor) -> tuple:
        """The network outputs the gauge term is built from, in the order :meth:`contract` takes them.

        The same kind of object in every model: a tuple of tensors (``[B, …]``, one row per point)
        or lists of them — ``()`` for :class:`PlainFlow`, ``(A, d, v_s)`` for ``GaugeFlow``,
        ``(A, d, [v̂(1), …])`` for ``HigherGaugeFlow``. ``contract(x, *fields(x, h))`` is the
        reference route to the gauge term (checkers and benchmarks use it).

        Args:
            x: points ``[B, D]``; h: network inputs ``features(x) ⊕ t`` ``[B, feature_dim + 1]``.
        """
        return ()

    def direction_field(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The direction ``d [B, D]`` the connection is contracted with: ``A[d] = A · d``.

        ``from_tangent(x, to_tangent(x, direction(h)))``: the tangent direction at ``x`` in the
        manifold's bounded ambient representation (:meth:`Manifold.from_tangent`), so ``A[d]``
        stays bounded where ambient coordinates grow (the hyperboloid). For the ambient metric
        (every other built-in manifold) it is ``proju(x, direction(h))``, a tangent vector; on a
        mesh the raw output (:meth:`Manifold.connection_direction`, docs/math.md §11.3).
        """
        return self.manifold.connection_direction(x, self.direction(h))

    def contract(self, x: torch.Tensor, *fields) -> Optional[torch.Tensor]:
        """The gauge term ``Π_x(G)`` ``[B, D]`` from :meth:`fields`; ``None`` if the model has none."""
        return None

    def gauge_term(self, x: torch.Tensor, h: torch.Tensor) -> Optional[torch.Tensor]:
        """``Π_x(G(x, t))`` ``[B, D]`` from points and network inputs ``h``; ``None`` if the model has none.

        Equal to ``contract(x, *fields(x, h))``; a model may compute it by a faster route with the
        same value (a rule on shapes only, so a point's value never depends on its batch).
        """
        return self.contract(x, *self.fields(x, h))

    def upgrade_state_dict(self, state: dict) -> dict:
        """``state`` (a state dict saved by an earlier gaugeflow version) with its names as this version's.

        Checkpoint loaders call it before comparing names, so runs saved before a rename keep loading.
        The default returns an unchanged copy; a model that renamed a submodule overrides it.
        """
        return dict(state)

    def forward(self, x: torch.Tensor, t: TimeLike) -> torch.Tensor:
        """Velocity ``V(x, t)``. ``x: [B, D]``, ``t: float | [] | [B]`` → ``[B, D]`` tangent at ``x``."""
        h, tcol = self.inputs(x, t)
        v = self.manifold.to_tangent(x, self.velocity(h))
        gauge = self.gauge_term(x, h)
        if gauge is None:
            return v
        return v - self.alpha(tcol) * gauge


class PlainFlow(FlowModel):
    """``V = v_θ(x, t)`` (docs/math.md §5.1): a projected MLP, the baseline of the papers.

    Args:
        manifold: base manifold.
        hidden: width of the two hidden layers (free, so parameter-matched baselines can be built).

    Examples:
        >>> from gaugeflow.manifolds import Sphere
        >>> model = PlainFlow(Sphere(2), hidden=32)
        >>> model(Sphere(2).random_base(5), 0.5).shape
        torch.Size([5, 3])
    """
