"""The manifold class behind the geoopt/geomstats adapters.

An :class:`ExternalManifold` is a gaugeflow :class:`~gaugeflow.geometry.Manifold` whose operations
are callables supplied by an adapter (``from_geoopt``/``from_geomstats``); its base distribution is
a :class:`~gaugeflow.geometry.BaseDistribution` — the same implementations the built-in manifolds use
(``UniformSphere``, ``WrappedNormal``, ``StandardNormal``) or a user's ``CallableBase``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from gaugeflow._numerics import tol
from gaugeflow.geometry._generic import nan_unless_finite
from gaugeflow.geometry.base import BaseDistribution
from gaugeflow.geometry.manifold import Manifold

__all__ = ["ExternalManifold", "Ops"]


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
        base: the base distribution.
        injectivity_radius: ``math.pi`` for the unit sphere, ``math.inf`` for Cartan–Hadamard spaces.
        key: the wrapped object: ``==``/``hash`` compare it by identity, with the name, dimensions and base.
        stable_radius: ``{dtype: radius}`` for :meth:`stable_radius` (default: unbounded).
    """

    def __init__(self, name: str, dim: int, ambient_dim: int, ops: Ops, base: BaseDistribution,
                 injectivity_radius: float, key, stable_radius: Optional[dict] = None):
        self.name, self.dim, self.ambient_dim = name, int(dim), int(ambient_dim)
        self.ops = ops
        self.injectivity_radius = float(injectivity_radius)
        self._stable = stable_radius
        self.base = base
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
        d = self.ops.dist(x, y).expand(torch.broadcast_shapes(x.shape, y.shape)[:-1])
        return nan_unless_finite(d, x, y)

    def transp(self, x, y, v):
        self._inputs(x=x, y=y, v=v)
        return self.ops.transp(x, y, v)

    def stable_radius(self, dtype: torch.dtype) -> float:
        if self._stable is None:
            return math.inf
        return self._stable.get(dtype, self._stable[torch.float32])

    def _key(self) -> tuple:
        return ("ExternalManifold", self.name, self.dim, self.ambient_dim, _Same(self._wrapped_key), self.base)

    def __repr__(self) -> str:
        return self.name


class _Same:
    """Compares and hashes the wrapped object by identity (geoopt/geomstats objects may define ``==``)."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)
