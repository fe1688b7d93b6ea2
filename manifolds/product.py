"""Riemannian products M1 × M2 × … with coordinates concatenated along the last axis.

Every operation splits its inputs into the factors' blocks (ambient sizes ``D_i``), applies the
factor's operation and concatenates (points, tangent vectors, features) or sums (inner products,
squared distances, log-densities). The base distribution is the product of the factors'; a pair is
on the cut locus when it is in any factor; the injectivity radius is the smallest factor's.
"""
from __future__ import annotations

import math

import torch

from gaugeflow.geometry._generic import nan_unless_finite
from gaugeflow.geometry.base import ProductBase
from gaugeflow.geometry.manifold import Manifold, safe_sqrt

__all__ = ["Product"]


def _cat_blocks(blocks) -> torch.Tensor:
    """Concatenate ``[..., D_i]`` blocks along the last axis after broadcasting their batch axes."""
    batch = torch.broadcast_shapes(*(b.shape[:-1] for b in blocks))
    return torch.cat([b.expand(batch + b.shape[-1:]) for b in blocks], dim=-1)


class Product(Manifold):
    """Product manifold ``M1 × … × Mk`` (``dim = Σ dim_i``, ``ambient_dim = Σ D_i``).

    Args:
        *factors: the factor manifolds, at least one.

    Examples:
        >>> from gaugeflow.manifolds import FlatTorus, Sphere
        >>> M = Product(Sphere(2), FlatTorus(1))
        >>> M.dim, M.ambient_dim, M.feature_dim
        (3, 4, 5)
    """

    def __init__(self, *factors: Manifold):
        if not factors:
            raise ValueError("Product: expected at least one factor manifold, got none")
        for i, f in enumerate(factors):
            if not isinstance(f, Manifold):
                raise TypeError(f"Product: factor {i} must be a gaugeflow Manifold, got {type(f).__name__}")
        self.factors = tuple(factors)
        self.dim = sum(f.dim for f in factors)
        self.ambient_dim = sum(f.ambient_dim for f in factors)
        self.injectivity_radius = min(f.injectivity_radius for f in factors)
        self.diameter = math.sqrt(sum(f.diameter ** 2 for f in factors))  # inf with any unbounded factor
        # closed forms the product offers blockwise: those every factor offers ("spectral" is not
        # assembled from the factors' premetrics, so a product never claims it)
        self.capabilities = frozenset.intersection(*(frozenset(f.capabilities) for f in factors)) - {"spectral"}
        self._sizes = [f.ambient_dim for f in factors]
        bases = [f.base for f in factors]
        self.base = None if any(b is None for b in bases) else ProductBase(*bases)

    # -- helpers
    def _split(self, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.split(t, self._sizes, dim=-1)

    def _map(self, op: str, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Apply ``factor.op`` blockwise; returns one result per factor."""
        parts = [self._split(a) for a in args]
        return tuple(getattr(f, op)(*(p[i] for p in parts)) for i, f in enumerate(self.factors))

    def _cat(self, op: str, *args: torch.Tensor) -> torch.Tensor:
        return _cat_blocks(self._map(op, *args))

    def _sum(self, op: str, *args: torch.Tensor) -> torch.Tensor:
        out = self._map(op, *args)
        return sum(out[1:], out[0])

    # -- operations
    def projx(self, x):
        self._inputs(x=x)
        return self._cat("projx", x)

    def proju(self, x, u):
        self._inputs(x=x, u=u)
        return self._cat("proju", x, u)

    def to_tangent(self, x, u):
        """Each factor's :meth:`~gaugeflow.geometry.Manifold.to_tangent` on its block. ``[..., D]``."""
        self._inputs(x=x, u=u)
        return self._cat("to_tangent", x, u)

    def from_tangent(self, x, v):
        """Each factor's :meth:`~gaugeflow.geometry.Manifold.from_tangent` on its block. ``[..., D]``."""
        self._inputs(x=x, v=v)
        return self._cat("from_tangent", x, v)

    def connection_direction(self, x, u):
        """Each factor's :meth:`~gaugeflow.geometry.Manifold.connection_direction` on its block (a mesh
        factor keeps its raw direction, continuous across edges). ``[..., D]``."""
        self._inputs(x=x, u=u)
        return self._cat("connection_direction", x, u)

    def inner(self, x, u, v):
        """Sum of the factors' inner products. ``[..., D] -> [...]``."""
        self._inputs(x=x, u=u, v=v)
        return self._sum("inner", x, u, v)

    def exp(self, x, u):
        self._inputs(x=x, u=u)
        return self._cat("exp", x, u)

    def log(self, x, y):
        self._inputs(x=x, y=y)
        return self._cat("log", x, y)

    def dist(self, x, y):
        """``sqrt(Σ dist_i²)`` with zero gradient at ``y = x``. ``[..., D] -> [...]``."""
        self._inputs(x=x, y=y)
        return nan_unless_finite(safe_sqrt(sum(d * d for d in self._map("dist", x, y))), x, y)

    def pairwise_sq_dist(self, x, y):
        """``Σ_k C_k`` of the factors' :meth:`pairwise_sq_dist` costs (each factor's own route, e.g. one
        batched product on a sphere). ``[..., m, D] × [..., n, D] -> [..., m, n]``."""
        self._inputs(x=x, y=y)
        return self._sum("pairwise_sq_dist", x, y)

    def transp(self, x, y, v):
        self._inputs(x=x, y=y, v=v)
        return self._cat("transp", x, y, v)

    def geodesic(self, x0, x1, t):
        self._inputs(x0=x0, x1=x1)
        paths = [f.geodesic(a, b, t) for f, a, b in zip(self.factors, self._split(x0), self._split(x1))]
        return _cat_blocks([p[0] for p in paths]), _cat_blocks([p[1] for p in paths])

    def stable_radius(self, dtype: torch.dtype) -> float:
        return min(f.stable_radius(dtype) for f in self.factors)

    # -- cut locus
    def cut_locus_mask(self, x, y):
        masks = self._map("cut_locus_mask", x, y)
        out = masks[0]
        for m in masks[1:]:
            out = out | m
        return out

    def cut_vector(self, x, u):
        """The first factor with a cut locus gets its cut vector (of its block of ``u``); other blocks 0."""
        self._inputs(x=x, u=u)
        x, u = torch.broadcast_tensors(x, u)
        xs, us = self._split(x), self._split(u)
        for i, f in enumerate(self.factors):
            v_i = f.cut_vector(xs[i], us[i])
            if v_i is not None:
                zeros = [torch.zeros_like(b) for b in us]
                return torch.cat([*zeros[:i], v_i, *zeros[i + 1:]], dim=-1)
        return None

    # -- features
    @property
    def feature_dim(self) -> int:
        return sum(f.feature_dim for f in self.factors)

    def features(self, x):
        self._inputs(x=x)
        return self._cat("features", x)

    def tangent_frame(self, x):
        """Block-diagonal frame of the factors' frames. ``[..., D] -> [..., D, dim]``."""
        self._inputs(x=x)
        blocks = [f.tangent_frame(p) for f, p in zip(self.factors, self._split(x))]
        out = x.new_zeros(x.shape + (self.dim,))
        r = c = 0
        for b in blocks:
            out[..., r:r + b.shape[-2], c:c + b.shape[-1]] = b
            r, c = r + b.shape[-2], c + b.shape[-1]
        return out

    # -- validation
    def _point_residual(self, x):
        return torch.stack(torch.broadcast_tensors(*self._map("_point_residual", x)), -1).amax(-1)

    def _tangent_residual(self, x, u):
        return torch.stack(torch.broadcast_tensors(*self._map("_tangent_residual", x, u)), -1).amax(-1)

    def __repr__(self) -> str:
        return f"Product({', '.join(repr(f) for f in self.factors)})"
