"""The Lie algebra ``so(k)`` of antisymmetric ``k×k`` matrices, in coordinates.

Conventions (docs/math.md §2):

* Basis ``T_(i,j) = E_ij − E_ji`` for ``i < j`` in lexicographic order of ``(i, j)``;
  ``dim so(k) = k(k−1)/2``. Coordinates ``ξ ∈ ℝ^dim`` sit on the last axis, leading axes are batch
  axes that broadcast; dtype and device follow the input.
* ``hat(ξ) = Σ_a ξ_a T_a`` is built by an *index gather*: entry ``(i, j)`` of the flattened matrix
  is ``s_ij · ξ_a(i,j)`` with precomputed ``a(i, j)`` and signs ``s_ij ∈ {+1, −1, 0}`` (cost
  ``O(k²)``); ``vee = hat⁻¹`` reads the strict upper triangle (antisymmetrised, so ``vee`` is the
  orthogonal projection onto ``so(k)`` for any matrix).
* ``[ξ, η] = vee(hat(ξ) hat(η) − hat(η) hat(ξ))``. For antisymmetric ``X, Y`` one has
  ``YX = (XY)ᵀ``, so one matmul suffices: ``[ξ, η]_(i,j) = P_ij − P_ji`` with ``P = XY``.
* The vector representation on ``ℝ^k`` is ``act(ξ, v) = hat(ξ) v`` (``O(k²)`` per sample).
* Inner product: Euclidean on coordinates, ``⟨ξ, η⟩ = −½ tr(hat ξ hat η)``; it is ad-invariant.
* so(3): the identification with ``(ℝ³, ×)`` is ``ω(ξ) = (−ξ_(1,2), ξ_(0,2), −ξ_(0,1))``, i.e.
  ``hat(ξ) v = ω(ξ) × v`` and ``ω([ξ, η]) = ω(ξ) × ω(η)``.

No method used in a forward pass materialises the ``[dim, k, k]`` basis; :meth:`so.basis` and
:meth:`so.structure_constants` exist for tests and documentation only.
"""
from __future__ import annotations

from typing import Optional

import torch

from .._numerics import check_float

__all__ = ["so"]


class so:  # noqa: N801 - the mathematical name, as in DESIGN.md
    """The Lie algebra ``so(k)``, ``k ≥ 2``: an immutable, hashable value (like e3nn ``Irreps``).

    Args:
        k: size of the matrices (the fibre dimension of the vector representation).

    Attributes:
        k: matrix size.
        dim: ``k(k−1)/2``.

    Examples:
        >>> g = so(3)
        >>> xi = torch.tensor([1.0, 0.0, 0.0])           # T_(0,1)
        >>> X = g.hat(xi); X[0, 1], X[1, 0], X.abs().sum()
        (tensor(1.), tensor(-1.), tensor(2.))
        >>> g.act(xi, torch.tensor([0.0, 1.0, 0.0]))
        tensor([1., 0., 0.])
    """

    __slots__ = ("k", "dim", "_rows", "_cols", "_gather", "_sign", "_cache")

    def __init__(self, k: int):
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ValueError(f"so(k): k must be an integer >= 2, got {k!r}")
        rows, cols = torch.triu_indices(k, k, offset=1)
        dim = k * (k - 1) // 2
        # flattened k×k matrix entry (i, j) = sign[i*k+j] * ξ[gather[i*k+j]]
        gather = torch.zeros(k * k, dtype=torch.long)
        sign = torch.zeros(k * k, dtype=torch.float64)
        a = torch.arange(dim)
        gather[rows * k + cols] = a
        gather[cols * k + rows] = a
        sign[rows * k + cols] = 1.0
        sign[cols * k + rows] = -1.0
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "dim", dim)
        object.__setattr__(self, "_rows", rows)
        object.__setattr__(self, "_cols", cols)
        object.__setattr__(self, "_gather", gather)
        object.__setattr__(self, "_sign", sign)
        object.__setattr__(self, "_cache", {})

    def __setattr__(self, name, value):
        raise AttributeError(f"{self!r} is immutable")

    # ------------------------------------------------------------------ value semantics
    def __repr__(self) -> str:
        return f"so({self.k})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, so) and other.k == self.k

    def __hash__(self) -> int:
        return hash(("so", self.k))

    def __reduce__(self):
        return (so, (self.k,))

    # ------------------------------------------------------------------ index tensors
    def _index(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(gather, upper_flat, lower_flat)`` long tensors on ``device`` (cached per device)."""
        key = str(device)
        hit = self._cache.get(key)
        if hit is None:
            upper = self._rows * self.k + self._cols
            lower = self._cols * self.k + self._rows
            hit = tuple(t.to(device) for t in (self._gather, upper, lower))
            self._cache[key] = hit
        return hit

    def _signs(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``[k²]`` entry signs in ``dtype`` on ``device`` (cached)."""
        key = (str(device), dtype)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._sign.to(device=device, dtype=dtype)
        return hit

    def _check(self, xi: torch.Tensor, size: int, what: str) -> None:
        check_float(xi, f"{self}: {what}")
        if xi.dim() == 0 or xi.shape[-1] != size:
            raise ValueError(f"{self}: {what} must have last axis of size {size}, got shape {tuple(xi.shape)}")

    # ------------------------------------------------------------------ coordinates <-> matrices
    def hat(self, xi: torch.Tensor) -> torch.Tensor:
        """Antisymmetric matrix ``Σ_a ξ_a T_a``. ``[..., dim] -> [..., k, k]`` (index gather, ``O(k²)``)."""
        self._check(xi, self.dim, "xi")
        gather, _, _ = self._index(xi.device)
        if xi.dim() > 2 and xi.is_contiguous():  # a 2-D gather is several times faster than along the last of 3+ axes
            flat = xi.reshape(-1, self.dim).index_select(-1, gather).view(*xi.shape[:-1], self.k * self.k)
        else:
            flat = xi.index_select(-1, gather)
        return (flat * self._signs(xi.dtype, xi.device)).unflatten(-1, (self.k, self.k))

    def vee(self, X: torch.Tensor) -> torch.Tensor:
        """Coordinates ``ξ_(i,j) = ½(X_ij − X_ji)``, ``i < j``. ``[..., k, k] -> [..., dim]``.

        Exact inverse of :meth:`hat` on antisymmetric matrices; the orthogonal projection onto
        ``so(k)`` (for the inner product ``−½ tr(XY)``) followed by coordinates otherwise.
        """
        check_float(X, f"{self}: X")
        if X.dim() < 2 or X.shape[-2:] != (self.k, self.k):
            raise ValueError(f"{self}: X must have shape [..., {self.k}, {self.k}], got {tuple(X.shape)}")
        _, upper, lower = self._index(X.device)
        flat = X.flatten(-2)
        return 0.5 * (flat.index_select(-1, upper) - flat.index_select(-1, lower))

    # ------------------------------------------------------------------ algebra
    def bracket(self, xi: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
        """Lie bracket ``[ξ, η]`` in coordinates (one ``k×k`` matmul). ``[..., dim]² -> [..., dim]``."""
        self._check(eta, self.dim, "eta")
        P = (self.hat(xi) @ self.hat(eta)).flatten(-2)
        _, upper, lower = self._index(P.device)
        return P.index_select(-1, upper) - P.index_select(-1, lower)

    def act(self, xi: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Vector representation ``ρ(ξ) v = hat(ξ) v``. ``[..., dim], [..., k] -> [..., k]``, ``O(k²)``."""
        self._check(v, self.k, "v")
        return (self.hat(xi) @ v.unsqueeze(-1)).squeeze(-1)

    def inner(self, xi: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
        """Euclidean inner product of coordinates ``= −½ tr(hat ξ hat η)``. ``[..., dim]² -> [...]``."""
        return (xi * eta).sum(-1)

    def random(
        self,
        *shape: int,
        generator: Optional[torch.Generator] = None,
        dtype: Optional[torch.dtype] = None,
        device: Optional[torch.device] = None,
    ) -> torch.Tensor:
        """Standard-normal coordinates of shape ``[*shape, dim]``."""
        return torch.randn(*shape, self.dim, generator=generator, dtype=dtype, device=device)

    # ------------------------------------------------------------------ tests / documentation only
    def basis(self, dtype: Optional[torch.dtype] = None, device: Optional[torch.device] = None) -> torch.Tensor:
        """The basis matrices ``T_a`` as ``[dim, k, k]`` (for tests; never used in hot paths)."""
        return self.hat(torch.eye(self.dim, dtype=dtype or torch.get_default_dtype(), device=device))

    def structure_constants(
        self, dtype: Optional[torch.dtype] = None, device: Optional[torch.device] = None
    ) -> torch.Tensor:
        """``f[a, b, c]`` with ``[T_a, T_b] = Σ_c f_ab^c T_c``, shape ``[dim, dim, dim]`` (tests only)."""
        eye = torch.eye(self.dim, dtype=dtype or torch.get_default_dtype(), device=device)
        return self.bracket(eye[:, None, :], eye[None, :, :])
