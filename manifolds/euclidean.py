"""Euclidean space ℝ^n with the identity metric and a standard-normal base distribution."""
from __future__ import annotations

import torch

from gaugeflow._numerics import broadcast_shapes
from gaugeflow.geometry._generic import nan_unless_finite
from gaugeflow.geometry.base import StandardNormal
from gaugeflow.geometry.manifold import Manifold, check_dimension, safe_norm

__all__ = ["Euclidean"]


class Euclidean(Manifold):
    """``ℝ^n``: ``exp(x, u) = x + u``, ``log(x, y) = y − x``, transport is the identity.

    Examples:
        >>> M = Euclidean(2)
        >>> M.dist(torch.zeros(2), torch.tensor([3.0, 4.0]))
        tensor(5.)
    """

    def __init__(self, n: int):
        self.dim = n = check_dimension("Euclidean", n)
        self.ambient_dim = n
        self.base = StandardNormal(n)

    def projx(self, x):
        self._inputs(x=x)
        return x

    def proju(self, x, u):
        self._inputs(x=x, u=u)
        shape = broadcast_shapes(x.shape, u.shape)
        return u if u.shape == shape else u.expand(shape)  # no autograd view node in the common case

    def exp(self, x, u):
        self._inputs(x=x, u=u)
        return x + u

    def log(self, x, y):
        self._inputs(x=x, y=y)
        return y - x

    def transp(self, x, y, v):
        self._inputs(x=x, y=y, v=v)
        return v.expand(broadcast_shapes(x.shape, y.shape, v.shape))

    def geodesic(self, x0, x1, t):
        u = self.log(x0, x1)
        return x0 + t[..., None] * u, u

    def dist(self, x, y):
        """``‖y − x‖`` (NaN where an input is not finite). ``[..., n] -> [...]``."""
        self._inputs(x=x, y=y)
        return nan_unless_finite(safe_norm(y - x), x, y)

    def tangent_frame(self, x):
        """The standard basis (``T_xℝ^n = ℝ^n``). ``[..., n] -> [..., n, n]``."""
        self._inputs(x=x)
        return torch.eye(self.dim, dtype=x.dtype, device=x.device).expand(x.shape + (self.dim,))

    def _point_residual(self, x):
        return torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
