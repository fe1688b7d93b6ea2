"""The manifold class behind the geoopt/geomstats adapters, and their default base distributions.

An :class:`ExternalManifold` is a gaugeflow :class:`~gaugeflow.geometry.Manifold` whose operations
are callables supplied by an adapter (``from_geoopt``/``from_geomstats``); the base distribution is a
:class:`BaseDistribution` (a sampler and its log-density w.r.t. the Riemannian volume).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from gaugeflow._numerics import tol
from gaugeflow.geometry.manifold import Manifold, default_dtype, safe_sqrt

__all__ = ["ExternalManifold", "BaseDistribution", "Ops", "uniform_sphere", "standard_normal", "wrapped_normal"]

Sampler = Callable[..., torch.Tensor]  # (n, generator=None, dtype=None, device=None) -> [n, D]
LogProb = Callable[[torch.Tensor], torch.Tensor]  # [..., D] -> [...]


@dataclass(frozen=True)
class BaseDistribution:
    """A base distribution ``p0``: ``sample(n, generator, dtype, device) -> [n, D]`` and ``log_prob(x) -> [...]``."""

    sample: Sampler
    log_prob: LogProb


@dataclass(frozen=True)
class Ops:
    """The point-first operations of a wrapped manifold (each ``[..., D]`` in, as in :class:`Manifold`)."""

    projx: Callable
    proju: Callable
    inner: Callable
    exp: Callable
    log: Callable
    dist: Callable
    transp: Callable


class ExternalManifold(Manifold):
    """A :class:`Manifold` whose operations come from another library (built by the adapters).

    Args:
        name: text of ``repr`` (e.g. ``"from_geoopt(Sphere)"``).
        dim, ambient_dim: intrinsic and ambient dimensions.
        ops: the operations, point first.
        base: the base distribution, or a factory ``base(M) -> BaseDistribution`` given the manifold.
        injectivity_radius: ``math.pi`` for the unit sphere, ``math.inf`` for Cartan–Hadamard spaces.
        key: identity for ``==``/``hash`` (the wrapped object).
        stable_radius: ``{dtype: radius}`` for :meth:`stable_radius` (default: unbounded).
    """

    def __init__(self, name: str, dim: int, ambient_dim: int, ops: Ops, base, injectivity_radius: float, key,
                 stable_radius: Optional[dict] = None):
        self.name, self.dim, self.ambient_dim = name, int(dim), int(ambient_dim)
        self.ops = ops
        self.injectivity_radius = float(injectivity_radius)
        self._stable = stable_radius
        self.base = base(self) if callable(base) and not isinstance(base, BaseDistribution) else base
        self._wrapped_key = key

    def projx(self, x):
        self._inputs(x=x)
        return self.ops.projx(x)

    def proju(self, x, u):
        self._inputs(x=x, u=u)
        return self.ops.proju(x, u)

    def inner(self, x, u, v):
        self._inputs(x=x, u=u, v=v)
        return self.ops.inner(x, u, v).expand(torch.broadcast_shapes(x.shape, u.shape, v.shape)[:-1])

    def exp(self, x, u):
        self._inputs(x=x, u=u)
        return self.ops.exp(x, u)

    def log(self, x, y):
        self._inputs(x=x, y=y)
        return self.ops.log(x, y)

    def dist(self, x, y):
        self._inputs(x=x, y=y)
        return self.ops.dist(x, y).expand(torch.broadcast_shapes(x.shape, y.shape)[:-1])

    def transp(self, x, y, v):
        self._inputs(x=x, y=y, v=v)
        return self.ops.transp(x, y, v)

    def stable_radius(self, dtype: torch.dtype) -> float:
        if self._stable is None:
            return math.inf
        return self._stable.get(dtype, self._stable[torch.float32])

    def cut_locus_mask(self, x, y):
        if math.isinf(self.injectivity_radius):
            return super().cut_locus_mask(x, y)
        return self.dist(x, y) > self.injectivity_radius - tol("cut", x.dtype)

    def random_base(self, n: int, generator=None, dtype: Optional[torch.dtype] = None, device=None):
        return self.base.sample(n, generator=generator, dtype=default_dtype(dtype), device=device)

    def base_log_prob(self, x):
        self._inputs(x=x)
        return self.base.log_prob(x)

    def _point_residual(self, x):
        """``max |projx(x) − x| / (1 + max |x|)`` (the wrapped library's projection as the reference)."""
        return (self.ops.projx(x) - x).abs().amax(-1) / (1 + x.abs().amax(-1))

    def _key(self) -> tuple:
        return ("ExternalManifold", self.name, id(self._wrapped_key))

    def __repr__(self) -> str:
        return self.name


# ---------------------------------------------------------------------- default base distributions
def uniform_sphere(M: Manifold) -> BaseDistribution:
    """Uniform distribution on the unit sphere ``S^n ⊂ ℝ^(n+1)``: ``log p0 = −log |S^n|``."""
    a = (M.dim + 1) / 2
    log_vol = math.log(2) + a * math.log(math.pi) - math.lgamma(a)

    def sample(n, generator=None, dtype=None, device=None):
        z = torch.randn(n, M.ambient_dim, generator=generator, dtype=dtype, device=device)
        return M.projx(z / z.norm(dim=-1, keepdim=True))

    return BaseDistribution(sample, lambda x: torch.full(x.shape[:-1], -log_vol, dtype=x.dtype, device=x.device))


def standard_normal(M: Manifold) -> BaseDistribution:
    """Standard normal distribution on ``ℝ^n``."""

    def sample(n, generator=None, dtype=None, device=None):
        return torch.randn(n, M.ambient_dim, generator=generator, dtype=dtype, device=device)

    return BaseDistribution(sample, lambda x: -0.5 * (x * x).sum(-1) - 0.5 * M.dim * math.log(2 * math.pi))


def wrapped_normal(M: Manifold, k: float = 1.0) -> BaseDistribution:
    """Wrapped standard normal at the origin of the hyperboloid ``⟨x, x⟩_L = −k`` (curvature ``−1/k``).

    ``v ~ N(0, I_n)`` in ``T_oM`` with ``o = (√k, 0, …, 0)``, ``x = exp_o(v)``, and
    ``log p0(x) = log N(v) − (n − 1) log(√k sinh(r/√k) / r)`` with ``r = dist(o, x)``, computed
    with the wrapped manifold's own ``exp`` and ``dist``.
    """
    R = math.sqrt(k)

    def origin(dtype, device):
        o = torch.zeros(M.ambient_dim, dtype=dtype, device=device)
        o[0] = R
        return o

    def sample(n, generator=None, dtype=None, device=None):
        v = torch.randn(n, M.dim, generator=generator, dtype=dtype, device=device)
        u = torch.cat([torch.zeros_like(v[:, :1]), v], dim=-1)
        return M.exp(origin(v.dtype, v.device).expand_as(u), u)

    def log_prob(x):
        z2 = (M.dist(origin(x.dtype, x.device), x) / R) ** 2
        small = tol("taylor", x.dtype)
        z = safe_sqrt(torch.where(z2 < small * small, torch.ones_like(z2), z2))
        # log(sinh z / z), series z²/6 − z⁴/180 near 0
        log_jac = torch.where(z2 < small * small, z2 / 6 - z2 * z2 / 180, torch.log(torch.sinh(z) / z))
        return -0.5 * z2 * k - 0.5 * M.dim * math.log(2 * math.pi) - (M.dim - 1) * log_jac

    return BaseDistribution(sample, log_prob)
