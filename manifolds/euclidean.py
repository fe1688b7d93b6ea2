"""Euclidean space ℝ^n with the identity metric and a standard-normal base distribution."""
from __future__ import annotations

import math
from typing import Optional

import torch

from gaugeflow._numerics import broadcast_shapes
from gaugeflow.geometry.manifold import Manifold, check_dimension, default_dtype

__all__ = ["Euclidean"]


class Euclidean(Manifold):
    """``ℝ^n``: ``exp(x, u) = x + u``, ``log(x, y) = y − x``, transport is the identity.

    Example:
        >>> M = Euclidean(2)
        >>> M.dist(torch.zeros(2), torch.tensor([3.0, 4.0]))
        tensor(5.)
    """

    def __init__(self, n: int):
        self.dim = n = check_dimension("Euclidean", n)
        self.ambient_dim = n

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

    def random_base(self, n: int, generator=None, dtype: Optional[torch.dtype] = None, device=None):
        return torch.randn(n, self.dim, generator=generator, dtype=default_dtype(dtype), device=device)

    def base_log_prob(self, x):
        self._inputs(x=x)
        return -0.5 * (x * x).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)

    def _point_residual(self, x):
        return torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
