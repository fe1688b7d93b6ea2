r"""Base distributions ``p0``: objects a manifold *has* (composition), one implementation per density.

A :class:`BaseDistribution` samples points in ambient coordinates and returns their log-density with
respect to the Riemannian volume of the manifold it lives on. Built-in manifolds carry a default one
(``M.base``); ``M.random_base`` and ``M.base_log_prob`` delegate to it. A user manifold gets one with
``M.with_base(dist)``.

========================  =====================================================  ======================
class                     density                                                used by
========================  =====================================================  ======================
:class:`UniformSphere`    ``−log |S^n|``, ``|S^n| = 2π^{(n+1)/2} / Γ((n+1)/2)``   ``Sphere``, adapters
:class:`StandardNormal`   ``−‖x‖²/2 − (n/2) log 2π``                             ``Euclidean``, adapters
:class:`UniformTorus`     ``−n log 2π`` on ``[0, 2π)^n``                         ``FlatTorus``
:class:`WrappedNormal`    wrapped normal at the origin of the hyperboloid         ``Hyperbolic``, adapters
:class:`ProductBase`      sum over the factors                                   ``Product``
:class:`CallableBase`     a user's ``(sampler, log_prob)`` pair                  adapters
========================  =====================================================  ======================

Equality and hashing come from the constructor arguments (``UniformSphere(2) == UniformSphere(2)``).
"""
from __future__ import annotations

import abc
import math
from typing import Callable, Optional

import torch

from .._numerics import check_float, check_last_dim, tol
from ._values import ArgsValue

__all__ = ["BaseDistribution", "UniformSphere", "StandardNormal", "UniformTorus", "WrappedNormal", "ProductBase",
           "CallableBase", "BASE_RADIUS"]

#: geodesic radius the default hyperbolic base stays inside (with probability ``1 − 7e-13`` per sample)
BASE_RADIUS = 3.0
#: ``t`` of the Laurent–Massart bound ``P(χ²_n ≥ n + 2√(nt) + 2t) ≤ e^{−t}`` (``e^{−28} ≈ 7e-13``)
_TAIL_T = 28.0
TWO_PI = 2 * math.pi


def _dtype(dtype: Optional[torch.dtype]) -> torch.dtype:
    return torch.get_default_dtype() if dtype is None else dtype


def _count(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"sample: n must be an integer >= 0, got {n!r}")
    return n


def _dimension(owner: str, n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{owner}: dimension must be an integer >= 1, got {n!r}")
    return n


class BaseDistribution(ArgsValue, abc.ABC):
    """A base distribution ``p0`` on a manifold in ambient coordinates ``ℝ^D``.

    Subclasses set ``ambient_dim`` and implement :meth:`sample` and :meth:`log_prob`.
    """

    ambient_dim: int

    @abc.abstractmethod
    def sample(self, n: int, generator: Optional[torch.Generator] = None, dtype: Optional[torch.dtype] = None,
               device=None) -> torch.Tensor:
        """``n`` independent samples ``[n, D]`` (dtype: torch's default when ``None``)."""

    @abc.abstractmethod
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density w.r.t. the Riemannian volume. ``[..., D] -> [...]``."""

    def _check(self, x: torch.Tensor) -> None:
        check_float(x, f"{self}: x")
        check_last_dim(x, self.ambient_dim, "x", str(self))


class UniformSphere(BaseDistribution):
    """Uniform distribution on the unit sphere ``S^n ⊂ ℝ^(n+1)`` (normalised Gaussian samples)."""

    def __init__(self, n: int):
        self.dim = _dimension("UniformSphere", n)
        self.ambient_dim = n + 1
        a = (n + 1) / 2
        self.log_volume = math.log(2) + a * math.log(math.pi) - math.lgamma(a)

    def sample(self, n, generator=None, dtype=None, device=None):
        z = torch.randn(_count(n), self.ambient_dim, generator=generator, dtype=_dtype(dtype), device=device)
        return z / z.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(z.dtype).tiny ** 0.5)

    def log_prob(self, x):
        self._check(x)
        return torch.full(x.shape[:-1], -self.log_volume, dtype=x.dtype, device=x.device)


class StandardNormal(BaseDistribution):
    """Standard normal distribution ``N(0, I_n)`` on ``ℝ^n``."""

    def __init__(self, n: int):
        self.dim = self.ambient_dim = _dimension("StandardNormal", n)

    def sample(self, n, generator=None, dtype=None, device=None):
        return torch.randn(_count(n), self.dim, generator=generator, dtype=_dtype(dtype), device=device)

    def log_prob(self, x):
        self._check(x)
        return -0.5 * (x * x).sum(-1) - 0.5 * self.dim * math.log(TWO_PI)


class UniformTorus(BaseDistribution):
    """Uniform distribution on the flat torus ``[0, 2π)^n`` (angle coordinates)."""

    def __init__(self, n: int):
        self.dim = self.ambient_dim = _dimension("UniformTorus", n)

    def sample(self, n, generator=None, dtype=None, device=None):
        a = TWO_PI * torch.rand(_count(n), self.dim, generator=generator, dtype=_dtype(dtype), device=device)
        return torch.where(a >= TWO_PI, torch.zeros_like(a), a)  # rounding up to 2π folds to 0

    def log_prob(self, x):
        self._check(x)
        return torch.full(x.shape[:-1], -self.dim * math.log(TWO_PI), dtype=x.dtype, device=x.device)


def default_hyperbolic_std(n: int, radius: float = BASE_RADIUS) -> float:
    """``σ_n = R / sqrt(n + 2√(28 n) + 56)``: the wrapped normal's radius exceeds ``R`` w.p. ``≤ 7e-13``.

    ``r = ‖v‖`` with ``v ~ N(0, σ² I_n)`` has ``r²/σ² ~ χ²_n``; the Laurent–Massart bound gives
    ``P(r ≥ R) ≤ e^{−28}`` in every dimension. Typical radii: ``σ_n √n`` = 0.50 (n = 2), 1.1 (16), 2.4 (256).
    """
    return radius / math.sqrt(n + 2 * math.sqrt(_TAIL_T * n) + 2 * _TAIL_T)


def _sinhc_sq(z2: torch.Tensor) -> torch.Tensor:
    """``sinh z / z`` as a function of ``z²`` (Taylor branch below ``tol("taylor")``, both branches finite)."""
    small = tol("taylor", z2.dtype)
    is_small = z2 < small * small
    z = torch.sqrt(torch.where(is_small, torch.ones_like(z2), z2))
    return torch.where(is_small, 1 + z2 / 6 + z2 * z2 / 120, torch.sinh(z) / z)


class WrappedNormal(BaseDistribution):
    r"""Wrapped normal at the origin of the hyperboloid ``⟨x, x⟩_L = −k`` (curvature ``−1/k``), time first.

    ``v ~ N(0, σ² I_n)`` in ``T_oH^n`` at ``o = (√k, 0, …, 0)``, ``x = exp_o(v)``, whose spatial part is
    ``x_{1:} = √k sinh(r/√k) v / r`` with ``r = ‖v‖`` (the geodesic distance to ``o``). Density w.r.t.
    the Riemannian volume (polar coordinates: ``dvol = (√k sinh(r/√k))^{n−1} dr dΩ``)::

        log p0(x) = −r²/(2σ²) − (n/2) log(2πσ²) − (n − 1) log(s / asinh s),
        s = ‖x_{1:}‖/√k = sinh(r/√k),

    with the series ``s²/6 − 11 s⁴/180`` for small ``s``.

    Args:
        n: intrinsic dimension.
        std: ``σ``; ``None`` (default) chooses it by dimension (:func:`default_hyperbolic_std`, times
            ``√k``) so that every sample lies within geodesic radius ``BASE_RADIUS·√k`` with probability
            ``1 − 7e-13``: the Lorentz model's coordinates grow like ``e^r``, and both its float32
            arithmetic and flows on it degrade far from the origin.
        k: ``−1/curvature`` (1 for ``Hyperbolic``; geoopt's ``Lorentz(k)``).
    """

    def __init__(self, n: int, std: Optional[float] = None, k: float = 1.0):
        self.dim = n = _dimension("WrappedNormal", n)
        self.ambient_dim = n + 1
        for name, value in (("std", std), ("k", k)):
            if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                          and math.isfinite(value) and value > 0):
                raise ValueError(f"WrappedNormal: {name} must be a finite number > 0, got {value!r}")
        self.k = float(k)
        self.std = math.sqrt(self.k) * default_hyperbolic_std(n) if std is None else float(std)

    def __repr__(self) -> str:
        std, k = self._argument("std"), self._argument("k")
        return f"WrappedNormal({self.dim}" + ("" if std is None else f", std={std}") + ("" if k == 1 else f", k={k}") + ")"

    def sample(self, n, generator=None, dtype=None, device=None):
        v = self.std * torch.randn(_count(n), self.dim, generator=generator, dtype=_dtype(dtype), device=device)
        xs = _sinhc_sq((v * v).sum(-1, keepdim=True) / self.k) * v
        return torch.cat([torch.sqrt(self.k + (xs * xs).sum(-1, keepdim=True)), xs], dim=-1)

    def log_prob(self, x):
        self._check(x)
        s2 = (x[..., 1:] ** 2).sum(-1) / self.k  # sinh²(r/√k)
        small = tol("taylor", x.dtype)
        is_small = s2 < small * small
        s = torch.sqrt(torch.where(is_small, torch.ones_like(s2), s2))
        a = torch.asinh(s)  # r/√k
        z2 = torch.where(is_small, s2 - s2 * s2 / 3, a * a)  # asinh² s = s² − s⁴/3 + O(s⁶)
        log_jac = torch.where(is_small, s2 / 6 - 11 * s2 * s2 / 180, torch.log(s / a))
        n, var = self.dim, self.std ** 2
        return -0.5 * self.k * z2 / var - 0.5 * n * math.log(TWO_PI * var) - (n - 1) * log_jac



class ProductBase(BaseDistribution):
    """Independent product of base distributions; coordinates concatenated, log-densities summed."""

    def __init__(self, *factors: BaseDistribution):
        if not factors:
            raise ValueError("ProductBase: expected at least one factor distribution, got none")
        for i, f in enumerate(factors):
            if not isinstance(f, BaseDistribution):
                raise TypeError(f"ProductBase: factor {i} must be a BaseDistribution, got {type(f).__name__}")
        self.factors = tuple(factors)
        self._sizes = [f.ambient_dim for f in factors]
        self.ambient_dim = sum(self._sizes)

    def sample(self, n, generator=None, dtype=None, device=None):
        return torch.cat([f.sample(n, generator=generator, dtype=dtype, device=device) for f in self.factors], -1)

    def log_prob(self, x):
        self._check(x)
        parts = [f.log_prob(p) for f, p in zip(self.factors, torch.split(x, self._sizes, dim=-1))]
        return sum(parts[1:], parts[0])


class CallableBase(BaseDistribution):
    """A base distribution from a user's functions.

    Args:
        sampler: ``(n, generator=None, dtype=None, device=None) -> [n, D]``.
        log_prob: ``[..., D] -> [...]``, log-density w.r.t. the Riemannian volume.
        ambient_dim: ``D``.
    """

    def __init__(self, sampler: Callable[..., torch.Tensor], log_prob: Callable[[torch.Tensor], torch.Tensor],
                 ambient_dim: int):
        if not callable(sampler) or not callable(log_prob):
            raise TypeError(f"CallableBase: sampler and log_prob must be callables, got {type(sampler).__name__} "
                            f"and {type(log_prob).__name__}")
        self.sampler, self.log_prob_fn = sampler, log_prob
        self.ambient_dim = _dimension("CallableBase", ambient_dim)

    def sample(self, n, generator=None, dtype=None, device=None):
        return self.sampler(_count(n), generator=generator, dtype=_dtype(dtype), device=device)

    def log_prob(self, x):
        self._check(x)
        return self.log_prob_fn(x)
