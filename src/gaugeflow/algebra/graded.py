"""Graded vector spaces ``L = L0 ⊕ L1 ⊕ …`` with flat coordinates, degree 0 first."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .._numerics import broadcast_shapes, check_float

__all__ = ["GradedSpace"]


@dataclass(frozen=True)
class GradedSpace:
    """A finite-dimensional graded vector space, as an immutable, hashable value.

    An element is a flat tensor ``[..., dim]`` whose last axis concatenates the coordinates of the
    degree-0, degree-1, … components, in that order.

    Args:
        dims: ``(d0, d1, …)``, the dimension of each degree (non-negative integers, at least one).

    Examples:
        >>> V = GradedSpace((3, 4))
        >>> V.dim, V.degree_slices
        (7, (slice(0, 3, None), slice(3, 7, None)))
        >>> b0, b1 = V.split(torch.arange(7.0))
        >>> b1
        tensor([3., 4., 5., 6.])
    """

    dims: tuple[int, ...]

    def __post_init__(self):
        dims = tuple(self.dims) if isinstance(self.dims, (tuple, list)) else self.dims
        if (
            not isinstance(dims, tuple)
            or not dims
            or any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in dims)
        ):
            raise ValueError(f"GradedSpace: dims must be a non-empty tuple of integers >= 0, got {self.dims!r}")
        object.__setattr__(self, "dims", dims)

    def __repr__(self) -> str:
        return f"GradedSpace(dims={self.dims})"

    @property
    def dim(self) -> int:
        """Total dimension ``Σ_i d_i``."""
        return sum(self.dims)

    @property
    def degree_slices(self) -> tuple[slice, ...]:
        """Slices of the last axis holding each degree."""
        out, start = [], 0
        for d in self.dims:
            out.append(slice(start, start + d))
            start += d
        return tuple(out)

    def check(self, B: torch.Tensor, what: str = "B") -> torch.Tensor:
        """Raise ``TypeError``/``ValueError`` unless ``B`` is a float tensor ``[..., dim]``. Returns ``B``."""
        check_float(B, f"{self}: {what}")
        if B.dim() == 0 or B.shape[-1] != self.dim:
            raise ValueError(
                f"{self}: {what} must have last axis of size {self.dim} (graded coordinates), got shape {tuple(B.shape)}"
            )
        return B

    def split(self, B: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Homogeneous components ``(B0, B1, …)``, each ``[..., d_i]`` (views of ``B``)."""
        self.check(B)
        return tuple(B[..., s] for s in self.degree_slices)

    def join(self, *parts: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`split`: concatenate ``[..., d_i]`` components (batch axes broadcast)."""
        if len(parts) != len(self.dims):
            raise ValueError(f"{self}: join expects {len(self.dims)} components, got {len(parts)}")
        for i, (p, d) in enumerate(zip(parts, self.dims)):
            check_float(p, f"{self}: component {i}")
            if p.dim() == 0 or p.shape[-1] != d:
                raise ValueError(f"{self}: component {i} must have last axis {d}, got shape {tuple(p.shape)}")
        batch = broadcast_shapes(*(p.shape[:-1] for p in parts))
        return torch.cat([p.expand(batch + p.shape[-1:]) for p in parts], dim=-1)

    def embed(self, part: torch.Tensor, degree: int) -> torch.Tensor:
        """The graded element whose only non-zero component is ``part`` in ``degree``. ``[..., dim]``."""
        if not 0 <= degree < len(self.dims):
            raise ValueError(f"{self}: degree must be in [0, {len(self.dims) - 1}], got {degree}")
        parts = [part.new_zeros(part.shape[:-1] + (d,)) for d in self.dims]
        parts[degree] = part
        return self.join(*parts)

    def zeros(self, *shape: int, dtype: Optional[torch.dtype] = None, device=None) -> torch.Tensor:
        """The zero element, ``[*shape, dim]``."""
        return torch.zeros(*shape, self.dim, dtype=dtype, device=device)

    def random(self, *shape: int, generator=None, dtype: Optional[torch.dtype] = None, device=None) -> torch.Tensor:
        """Standard-normal graded coordinates ``[*shape, dim]`` (all degrees populated)."""
        return torch.randn(*shape, self.dim, generator=generator, dtype=dtype, device=device)
