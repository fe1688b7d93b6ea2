"""Manifold.to_tangent / from_tangent: how network outputs become tangent vectors, with bounded speed."""
from __future__ import annotations

import math

import pytest
import torch

import gaugeflow as gf
from gaugeflow.manifolds import Euclidean, FlatTorus, Hyperbolic, Product, Sphere

MANIFOLDS = [Sphere(2), Sphere(5), FlatTorus(3), Euclidean(4), Hyperbolic(2), Hyperbolic(7),
             Product(Sphere(2), Hyperbolic(2))]


def _far_points(M, n, radius, g):
    """Points at geodesic distance ``radius`` from a base point (the origin on the hyperboloid)."""
    x0 = M.random_base(n, generator=g, dtype=torch.float64)
    u = M.proju(x0, torch.randn(n, M.ambient_dim, generator=g, dtype=torch.float64))
    return M.exp(x0, radius * u / M.norm(x0, u)[:, None])


@pytest.mark.parametrize("M", MANIFOLDS, ids=repr)
def test_to_tangent_is_a_bounded_linear_map_onto_the_tangent_space_inverted_by_from_tangent(M):
    g = torch.Generator().manual_seed(0)
    for radius in (0.5, 3.0, 8.0):
        x = _far_points(M, 64, radius, g)
        u, w = (torch.randn(64, M.ambient_dim, generator=g, dtype=torch.float64) for _ in range(2))
        v = M.to_tangent(x, u)
        M.check_tangent(x, v)
        torch.testing.assert_close(M.to_tangent(x, 2 * u - 3 * w), 2 * v - 3 * M.to_tangent(x, w))
        # bounded: the speed of a velocity never exceeds the size of the network output (C = 1 here)
        assert bool((M.norm(x, v) <= u.norm(dim=-1) * (1 + 1e-9)).all())
        back = M.from_tangent(x, v)
        torch.testing.assert_close(M.to_tangent(x, back), v, rtol=1e-9, atol=1e-9 * (1 + v.abs().max()))
        assert bool((back.norm(dim=-1) <= M.norm(x, v) * (1 + 1e-9) + 1e-12).all())


def test_hyperbolic_to_tangent_is_the_boost_from_the_origin_an_isometry():
    M = Hyperbolic(3)
    g = torch.Generator().manual_seed(1)
    x = _far_points(M, 32, 6.0, g)
    u = torch.randn(32, 4, generator=g, dtype=torch.float64)
    o = M.origin(torch.float64).expand(32, 4)
    torch.testing.assert_close(M.to_tangent(x, u), M.transp(o, x, M.proju(o, u)), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(M.norm(x, M.to_tangent(x, u)), u[:, 1:].norm(dim=-1), rtol=1e-10, atol=0)
    # the network sees bounded Poincaré-ball coordinates however far out the point is
    assert M.feature_dim == 3 and bool((M.features(x).norm(dim=-1) < 1).all())


@pytest.mark.parametrize("cls", [gf.PlainFlow, gf.GaugeFlow, gf.HigherGaugeFlow])
def test_an_untrained_field_on_the_hyperboloid_has_bounded_speed_far_out(cls):
    """proju of an MLP on ambient coordinates grew like e^{2r}; the speed now stays of order one."""
    torch.manual_seed(0)
    M = Hyperbolic(2)
    model = cls(M, hidden=16).double()
    g = torch.Generator().manual_seed(2)
    speeds = [float(M.norm(x, model(x, 0.5).detach()).max()) for x in (_far_points(M, 256, r, g) for r in (1.0, 8.0))]
    assert all(math.isfinite(s) for s in speeds)
    assert speeds[1] < 5 * speeds[0]  # e^{2·7} ≈ 1.2e6 before
