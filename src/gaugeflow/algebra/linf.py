r"""2-term L∞-algebras on flat graded coordinates. **The one place where the sign convention lives.**

Sign convention (Lada–Markl, as in Baez–Crans, "Higher-Dimensional Algebra VI: Lie 2-Algebras",
Def. 4.3.1 and Lemma 4.3.3):

* Grading: ``L = L0 ⊕ L1`` with ``L0`` in degree 0 and ``L1`` in degree 1; ``l_m`` has degree ``m − 2``
  (``l1: L1 → L0``, ``l2: Li ⊗ Lj → L(i+j)``, zero when ``i + j > 1``, ``l3: L0^⊗3 → L1``,
  ``l_m = 0`` for ``m ≥ 4``).
* Graded antisymmetry: swapping neighbouring arguments ``a, b`` multiplies by ``−(−1)^{|a||b|}``.
  On ``L0`` the brackets are totally antisymmetric and ``l2(h, x) = −l2(x, h)`` for ``x ∈ L0, h ∈ L1``.
* Homotopy Jacobi: for every ``n ≥ 1`` and homogeneous ``x_1, …, x_n``,
  ``Σ_{i+j=n+1} Σ_{σ ∈ Unsh(i, n−i)} χ(σ) (−1)^{i(j−1)} l_j(l_i(x_σ(1), …, x_σ(i)), x_σ(i+1), …, x_σ(n)) = 0``
  with ``χ(σ) = sgn(σ) · ε(σ; x)`` (Koszul sign). For a 2-term algebra the non-trivial cases are,
  for ``x, y, z, w ∈ L0`` and ``h, k ∈ L1``:

  1. ``l1(l2(x, h)) = l2(x, l1(h))``
  2. ``l2(l1(h), k) = l2(h, l1(k))``
  3. ``l1(l3(x, y, z)) = −l2(l2(x, y), z) + l2(l2(x, z), y) + l2(x, l2(y, z))``
  4. ``l3(x, y, l1(h)) = −l2(l2(x, y), h) + l2(l2(x, h), y) + l2(x, l2(y, h))``
  5. ``l2(l3(w,x,y), z) + l2(l3(w,y,z), x) + l3(l2(w,y), x, z) + l3(l2(x,z), w, y)
     = l2(l3(w,x,z), y) + l2(l3(x,y,z), w) + l3(l2(w,x), y, z) + l3(l2(w,z), x, y)
     + l3(l2(x,y), w, z) + l3(l2(y,z), w, x)``

  ``gaugeflow.testing.check_linf_algebra`` checks exactly these, and the test-suite re-derives them
  from the general formula above by brute force over unshuffles.

Mixed-degree (inhomogeneous) arguments: the brackets are extended by multilinearity. With
``B = x + h``, ``C = y + k``, ``A = a + g`` (``x, y, a ∈ L0``; ``h, k, g ∈ L1``), flat coordinates
``[..., d0 + d1]`` with ``L0`` first:

* ``l1(B) = l1(h)`` (in ``L0``; the ``L1`` part of the result is 0),
* ``l2(B, C) = l2(x, y)  ⊕  (l2(x, k) − l2(y, h))`` (``l2(h, y) = −l2(y, h)``; ``l2(h, k) = 0``),
* ``l3(A, B, C) = l3(a, x, y)`` (in ``L1``; any ``L1`` input gives degree ≥ 2, hence 0),
* ``l_m = 0`` for ``m ≥ 4``.

A concrete algebra supplies the *component maps* on homogeneous coordinates: ``l1_1(h)``,
``l2_00(x, y)``, ``l2_01(x, h)`` and ``l3_000(x, y, z)``; either subclass :class:`LInfinityAlgebra`
or pass plain functions to :class:`TwoTermLInfinity`.
"""
from __future__ import annotations

import abc
from typing import Callable, Optional

import torch

from .._numerics import broadcast_shapes
from .graded import GradedSpace

__all__ = ["LInfinityAlgebra", "TwoTermLInfinity"]

Component = Callable[..., torch.Tensor]


class LInfinityAlgebra(abc.ABC):
    """Abstract 2-term L∞-algebra; graded elements are flat tensors ``[..., dim]``, ``L0`` first.

    Subclasses set ``space`` (a :class:`GradedSpace` with two degrees) and ``has_l3`` (``False``
    when ``l3 ≡ 0``, i.e. a strict algebra = Lie crossed module), and implement the component maps
    ``l1_1``, ``l2_00``, ``l2_01``, ``l3_000`` and ``_key`` (value semantics).
    """

    space: GradedSpace
    has_l3: bool = True

    # ------------------------------------------------------------------ component maps
    @abc.abstractmethod
    def l1_1(self, h: torch.Tensor) -> torch.Tensor:
        """``l1: L1 → L0``. ``[..., d1] -> [..., d0]``."""

    @abc.abstractmethod
    def l2_00(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``l2: L0 ⊗ L0 → L0`` (antisymmetric). ``[..., d0]² -> [..., d0]``."""

    @abc.abstractmethod
    def l2_01(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``l2: L0 ⊗ L1 → L1``. ``[..., d0], [..., d1] -> [..., d1]``."""

    @abc.abstractmethod
    def l3_000(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``l3: L0^⊗3 → L1`` (totally antisymmetric). ``[..., d0]³ -> [..., d1]``."""

    @abc.abstractmethod
    def _key(self) -> tuple:
        """Hashable identity of the algebra."""

    # ------------------------------------------------------------------ graded space
    @property
    def dims(self) -> tuple[int, int]:
        """``(dim L0, dim L1)``."""
        return self.space.dims

    @property
    def dim(self) -> int:
        """``dim L0 + dim L1``."""
        return self.space.dim

    @property
    def degree_slices(self) -> tuple[slice, slice]:
        """Slices of the flat last axis holding ``L0`` and ``L1``."""
        return self.space.degree_slices

    @property
    def is_strict(self) -> bool:
        """``True`` when ``l3 ≡ 0`` (a Lie crossed module)."""
        return not self.has_l3

    def split(self, B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``B ↦ (B0, B1)``. ``[..., dim] -> ([..., d0], [..., d1])``."""
        return self.space.split(B)

    def join(self, B0: torch.Tensor, B1: torch.Tensor) -> torch.Tensor:
        """``(B0, B1) ↦ B``, batch axes broadcast. ``-> [..., dim]``."""
        return self.space.join(B0, B1)

    def random(self, *shape: int, generator=None, dtype=None, device=None) -> torch.Tensor:
        """Standard-normal graded elements ``[*shape, dim]``."""
        return self.space.random(*shape, generator=generator, dtype=dtype, device=device)

    # ------------------------------------------------------------------ brackets on graded elements
    def l1(self, B: torch.Tensor) -> torch.Tensor:
        """``l1(B) = l1(B1) ∈ L0``. ``[..., dim] -> [..., dim]``."""
        _, h = self.split(B)
        return self.join(self.l1_1(h), B.new_zeros(B.shape[:-1] + (self.dims[1],)))

    def l2(self, B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
        """``l2(B, C) = l2(x, y) ⊕ (l2(x, k) − l2(y, h))``. ``[..., dim]² -> [..., dim]``."""
        x, h = self.split(B)
        y, k = self.split(C)
        return self.join(self.l2_00(x, y), self.l2_01(x, k) - self.l2_01(y, h))

    def l3(self, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
        """``l3(A, B, C) = l3(A0, B0, C0) ∈ L1``. ``[..., dim]³ -> [..., dim]``."""
        a, _ = self.split(A)
        x, _ = self.split(B)
        y, _ = self.split(C)
        batch = broadcast_shapes(a.shape[:-1], x.shape[:-1], y.shape[:-1])
        top = self.l3_000(a, x, y) if self.has_l3 else A.new_zeros(batch + (self.dims[1],))
        return self.join(A.new_zeros(batch + (self.dims[0],)), top)

    def bracket(self, B: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """``l_m(B, *args)`` with ``m = 1 + len(args)``; zero for ``m ≥ 4``. ``-> [..., dim]``."""
        m = 1 + len(args)
        if m == 1:
            return self.l1(B)
        if m == 2:
            return self.l2(B, args[0])
        if m == 3:
            return self.l3(B, args[0], args[1])
        for i, a in enumerate((B,) + args):
            self.space.check(a, f"argument {i}")
        batch = broadcast_shapes(*(a.shape[:-1] for a in (B,) + args))
        return B.new_zeros(batch + (self.dim,))

    # ------------------------------------------------------------------ value semantics
    def __eq__(self, other: object) -> bool:
        return isinstance(other, LInfinityAlgebra) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def _zero_like(size: int) -> Component:
    def zero(*args: torch.Tensor) -> torch.Tensor:
        batch = broadcast_shapes(*(a.shape[:-1] for a in args))
        return args[0].new_zeros(batch + (size,))

    return zero


class TwoTermLInfinity(LInfinityAlgebra):
    """A user-defined 2-term L∞-algebra given by its component maps (final class).

    The maps act on homogeneous coordinates and must be multilinear; ``l2_00`` and ``l3`` must be
    (totally) antisymmetric. Verify a new algebra with ``gaugeflow.testing.check_linf_algebra``.

    Args:
        dims: ``(d0, d1)``.
        l1: ``[..., d1] -> [..., d0]``; ``None`` for the zero map.
        l2_00: ``[..., d0]² -> [..., d0]``.
        l2_01: ``[..., d0], [..., d1] -> [..., d1]``; ``None`` for the zero map.
        l3: ``[..., d0]³ -> [..., d1]``; ``None`` for the zero map (strict algebra).
        name: label used in ``repr`` and equality (defaults to ``"custom"``).

    Examples:
        >>> from gaugeflow.algebra import so
        >>> g = so(3)   # so(3) ⊕ R with a trivial L1: l1 = 0, l2 = bracket on L0, l3 = 0
        >>> L = TwoTermLInfinity((3, 1), l1=None, l2_00=g.bracket, name="so3+R")
        >>> L.bracket(L.random(5), L.random(5)).shape
        torch.Size([5, 4])
    """

    def __init__(
        self,
        dims: tuple[int, int],
        *,
        l1: Optional[Component],
        l2_00: Component,
        l2_01: Optional[Component] = None,
        l3: Optional[Component] = None,
        name: str = "custom",
    ):
        space = GradedSpace(tuple(dims))
        if len(space.dims) != 2:
            raise ValueError(f"TwoTermLInfinity: dims must be (d0, d1), got {dims!r}")
        for what, f in (("l1", l1), ("l2_00", l2_00), ("l2_01", l2_01), ("l3", l3)):
            if f is not None and not callable(f):
                raise TypeError(f"TwoTermLInfinity: {what} must be callable or None, got {type(f).__name__}")
        if l2_00 is None:
            raise TypeError("TwoTermLInfinity: l2_00 (the bracket on L0) is required, got None")
        d0, d1 = space.dims
        self.space = space
        self.name = str(name)
        self.has_l3 = l3 is not None
        self._fns = (l1 or _zero_like(d0), l2_00, l2_01 or _zero_like(d1), l3 or _zero_like(d1))
        self._given = (l1, l2_00, l2_01, l3)

    def _call(self, i: int, what: str, size: int, *args: torch.Tensor) -> torch.Tensor:
        out = self._fns[i](*args)
        if not isinstance(out, torch.Tensor) or out.dim() == 0 or out.shape[-1] != size:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"{self}: {what} must return [..., {size}], got {got}")
        return out

    def l1_1(self, h):
        return self._call(0, "l1", self.dims[0], h)

    def l2_00(self, x, y):
        return self._call(1, "l2_00", self.dims[0], x, y)

    def l2_01(self, x, h):
        return self._call(2, "l2_01", self.dims[1], x, h)

    def l3_000(self, x, y, z):
        return self._call(3, "l3", self.dims[1], x, y, z)

    def _key(self) -> tuple:
        return ("TwoTermLInfinity", self.name, self.dims) + tuple(id(f) for f in self._given)

    def __repr__(self) -> str:
        return f"TwoTermLInfinity({self.name!r}, dims={self.dims})"
