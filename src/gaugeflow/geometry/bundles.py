"""Bundles over a base manifold and the learnable projection ``Π_x: fibre → T_xM`` (docs/math.md §4).

All bundles here are trivial (``M × F``), so a section is a tensor of fibre coordinates
``[..., fiber_dim]`` next to points ``[..., D]``. The classes are small immutable values that
*have* a base manifold (composition, no inheritance between them):

* :class:`VectorBundle` — the associated bundle ``P ×_G ℝ^k`` with structure group ``SO(k)``
  (Lie algebra ``so(k)``, acting by :meth:`so.act`).
* :class:`GradedVectorBundle` — fibre a 2-term L∞-algebra ``L`` (flat graded coordinates, ``L0`` first).
* :class:`FiberProduct` — ``E1 ×_M E2 ×_M …`` over one base; fibre coordinates concatenate.
* :class:`FibreProjection` — ``Π_x(s) = to_tangent(x, W s)`` (``proju`` for ambient metrics), an ``nn.Module`` with ``W: ℝ^fiber → ℝ^D``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import nn

from .._numerics import check_float
from ..algebra import LInfinityAlgebra, so
from .manifold import Manifold

__all__ = ["VectorBundle", "GradedVectorBundle", "FiberProduct", "FibreProjection"]


def _check_base(base: object, who: str) -> None:
    if not isinstance(base, Manifold):
        raise TypeError(f"{who}: base must be a gaugeflow Manifold, got {type(base).__name__}")


def _check_fibre(s: torch.Tensor, size: int, who: str) -> torch.Tensor:
    check_float(s, f"{who}: section")
    if s.dim() == 0 or s.shape[-1] != size:
        raise ValueError(f"{who}: sections must have last axis of size {size} (fibre dimension), got {tuple(s.shape)}")
    return s


@dataclass(frozen=True)
class VectorBundle:
    """Rank-``k`` vector bundle over ``base`` with structure group ``SO(k)``.

    Args:
        base: the base manifold ``M``.
        fiber_dim: ``k ≥ 2``, the fibre ``ℝ^k``.

    Examples:
        >>> from gaugeflow.manifolds import Sphere
        >>> E = VectorBundle(Sphere(2), fiber_dim=3)
        >>> E.group, E.fiber_dim
        (so(3), 3)
    """

    base: Manifold
    fiber_dim: int

    def __post_init__(self):
        _check_base(self.base, "VectorBundle")
        k = self.fiber_dim
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ValueError(f"VectorBundle: fiber_dim must be an integer >= 2 (group so(k)), got {k!r}")

    @property
    def group(self) -> so:
        """The Lie algebra ``so(k)`` of the structure group."""
        return so(self.fiber_dim)

    def act(self, xi: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Gauge action ``ρ(ξ) s`` on fibre coordinates. ``[..., dim so(k)], [..., k] -> [..., k]``."""
        return self.group.act(xi, s)

    def check_section(self, s: torch.Tensor) -> torch.Tensor:
        """Raise unless ``s`` is a float tensor ``[..., fiber_dim]``; returns ``s``."""
        return _check_fibre(s, self.fiber_dim, repr(self))

    def __repr__(self) -> str:
        return f"VectorBundle({self.base!r}, fiber_dim={self.fiber_dim})"


@dataclass(frozen=True)
class GradedVectorBundle:
    """Bundle over ``base`` whose fibre is the graded space of a 2-term L∞-algebra.

    Args:
        base: the base manifold ``M``.
        algebra: the L∞-algebra ``L``; ``fiber_dim = L.dim`` (``L0`` coordinates first).
    """

    base: Manifold
    algebra: LInfinityAlgebra

    def __post_init__(self):
        _check_base(self.base, "GradedVectorBundle")
        if not isinstance(self.algebra, LInfinityAlgebra):
            raise TypeError(f"GradedVectorBundle: algebra must be an LInfinityAlgebra, got {type(self.algebra).__name__}")

    @property
    def fiber_dim(self) -> int:
        """``dim L0 + dim L1``."""
        return self.algebra.dim

    @property
    def dims(self) -> tuple[int, int]:
        """``(dim L0, dim L1)``."""
        return self.algebra.dims

    def split(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Degree components of a section. ``[..., dim L] -> ([..., d0], [..., d1])``."""
        return self.algebra.split(s)

    def join(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`split`. ``-> [..., dim L]``."""
        return self.algebra.join(s0, s1)

    def check_section(self, s: torch.Tensor) -> torch.Tensor:
        """Raise unless ``s`` is a float tensor ``[..., dim L]``; returns ``s``."""
        return _check_fibre(s, self.fiber_dim, repr(self))

    def __repr__(self) -> str:
        return f"GradedVectorBundle({self.base!r}, algebra={self.algebra!r})"


Bundle = Union[VectorBundle, GradedVectorBundle, "FiberProduct"]


class FiberProduct:
    """Fibre product ``E1 ×_M E2 ×_M …`` of bundles over the same base (immutable value).

    Fibre coordinates are the concatenation of the factors' coordinates, in order.

    Args:
        *factors: at least one :class:`VectorBundle`, :class:`GradedVectorBundle` or
            :class:`FiberProduct`, all over equal base manifolds.

    Raises:
        ValueError: no factors, or factors over different bases (both are named).
        TypeError: a factor is not a bundle.

    Examples:
        >>> from gaugeflow.manifolds import Sphere
        >>> from gaugeflow.algebra import so_crossed_module
        >>> M = Sphere(2)
        >>> F = FiberProduct(VectorBundle(M, fiber_dim=3), GradedVectorBundle(M, algebra=so_crossed_module(3)))
        >>> F.fiber_dim, F.fiber_slices
        (10, (slice(0, 3, None), slice(3, 10, None)))
    """

    __slots__ = ("base", "factors", "fiber_dim", "fiber_slices")

    def __init__(self, *factors: Bundle):
        if not factors:
            raise ValueError("FiberProduct: expected at least one bundle, got none")
        for i, f in enumerate(factors):
            if not isinstance(f, (VectorBundle, GradedVectorBundle, FiberProduct)):
                raise TypeError(f"FiberProduct: factor {i} must be a bundle, got {type(f).__name__}")
            if f.base != factors[0].base:
                raise ValueError(
                    f"FiberProduct: all factors must share one base; factor 0 is over {factors[0].base!r} "
                    f"but factor {i} is over {f.base!r}"
                )
        slices, start = [], 0
        for f in factors:
            slices.append(slice(start, start + f.fiber_dim))
            start += f.fiber_dim
        for name, value in (("base", factors[0].base), ("factors", tuple(factors)),
                            ("fiber_dim", start), ("fiber_slices", tuple(slices))):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"{self!r} is immutable")

    def split(self, s: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-factor fibre coordinates. ``[..., fiber_dim] -> ([..., d_1], [..., d_2], …)``."""
        self.check_section(s)
        return tuple(s[..., sl] for sl in self.fiber_slices)

    def join(self, *parts: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`split` (batch axes broadcast). ``-> [..., fiber_dim]``."""
        if len(parts) != len(self.factors):
            raise ValueError(f"{self!r}: join expects {len(self.factors)} parts, got {len(parts)}")
        for f, p in zip(self.factors, parts):
            f.check_section(p)
        batch = torch.broadcast_shapes(*(p.shape[:-1] for p in parts))
        return torch.cat([p.expand(batch + p.shape[-1:]) for p in parts], dim=-1)

    def check_section(self, s: torch.Tensor) -> torch.Tensor:
        """Raise unless ``s`` is a float tensor ``[..., fiber_dim]``; returns ``s``."""
        return _check_fibre(s, self.fiber_dim, repr(self))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FiberProduct) and self.factors == other.factors

    def __hash__(self) -> int:
        return hash(("FiberProduct",) + self.factors)

    def __repr__(self) -> str:
        return f"FiberProduct({', '.join(map(repr, self.factors))})"


class FibreProjection(nn.Module):
    """Learnable ``Π_x: fibre → T_xM``, ``Π_x(s) = to_tangent(x, W s)`` with ``W ∈ ℝ^{D × fiber_dim}``.

    Initialisation (``init``):

    * ``"identity"`` (default): ``W = I_{D × fiber_dim}``, the rectangular identity ``W_ij = δ_ij``.
      For ``fiber_dim == D`` this is ``W = I`` (docs/math.md §4); otherwise it is a partial isometry that
      keeps the first ``min(D, fiber_dim)`` fibre coordinates (for a graded fibre: the ``L0`` part
      first), so the projection starts well-scaled, deterministic and independent of seeds.
    * ``"orthogonal"``: a random semi-orthogonal ``W`` (``nn.init.orthogonal_``), also a partial
      isometry but mixing all fibre coordinates.

    Args:
        base: the base manifold ``M`` (uses ``ambient_dim`` and ``to_tangent``).
        fiber_dim: size of the fibre coordinates.
        init: ``"identity"`` or ``"orthogonal"``.

    Shapes:
        ``forward(x [..., D], s [..., fiber_dim]) -> [..., D]`` tangent at ``x``.
    """

    def __init__(self, base: Manifold, fiber_dim: int, init: str = "identity",
                 dtype: Optional[torch.dtype] = None, device=None):
        super().__init__()
        _check_base(base, "FibreProjection")
        if isinstance(fiber_dim, bool) or not isinstance(fiber_dim, int) or fiber_dim < 1:
            raise ValueError(f"FibreProjection: fiber_dim must be an integer >= 1, got {fiber_dim!r}")
        self.base, self.fiber_dim = base, fiber_dim
        W = torch.empty(base.ambient_dim, fiber_dim, dtype=dtype, device=device)
        if init == "identity":
            with torch.no_grad():
                W.copy_(torch.eye(base.ambient_dim, fiber_dim, dtype=W.dtype, device=W.device))
        elif init == "orthogonal":
            nn.init.orthogonal_(W)
        else:
            raise ValueError(f"FibreProjection: init must be 'identity' or 'orthogonal', got {init!r}")
        self.weight = nn.Parameter(W)

    @classmethod
    def for_bundle(cls, bundle: Bundle, **kwargs) -> "FibreProjection":
        """The projection from ``bundle``'s fibre to the tangent spaces of its base."""
        return cls(bundle.base, bundle.fiber_dim, **kwargs)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        _check_fibre(s, self.fiber_dim, "FibreProjection")
        return self.base.to_tangent(x, s @ self.weight.transpose(0, 1))

    def extra_repr(self) -> str:
        return f"base={self.base!r}, fiber_dim={self.fiber_dim}"

