"""Manifold.pairwise_sq_dist (the cost matrix of minibatch OT) against dist on every pair."""
import pytest
import torch

from gaugeflow.manifolds import SO3, Euclidean, FlatTorus, Hyperbolic, Product, Sphere

F64 = torch.float64
MANIFOLDS = [Sphere(2), Sphere(5), FlatTorus(3), Hyperbolic(2), SO3(), Euclidean(4), Product(Sphere(2), FlatTorus(1))]


@pytest.mark.parametrize("M", MANIFOLDS, ids=repr)
def test_pairwise_sq_dist_is_dist_squared_on_every_pair(M):
    g = torch.Generator().manual_seed(0)
    x, y = M.random_base(7, generator=g, dtype=F64), M.random_base(5, generator=g, dtype=F64)
    C = M.pairwise_sq_dist(x.reshape(1, 7, -1), y.reshape(1, 5, -1))
    assert C.shape == (1, 7, 5)
    ref = torch.stack([torch.stack([M.dist(xi, yj) ** 2 for yj in y]) for xi in x])
    torch.testing.assert_close(C[0], ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("M", [Sphere(2), FlatTorus(2)], ids=repr)
def test_fast_cost_near_coincident_and_far_pairs(M):
    """The overrides' documented precision: absolute error ≤ 1e-14 in float64 for θ from 1e-8 to near π."""
    g = torch.Generator().manual_seed(1)
    x = M.random_base(64, generator=g, dtype=F64)
    u = M.proju(x, torch.randn(x.shape, generator=g, dtype=F64))
    u = u / M.norm(x, u).unsqueeze(-1)
    lengths = torch.logspace(-8, 0.49, 64, dtype=F64).unsqueeze(-1)  # up to ~3.09 < π
    y = M.exp(x, lengths * u)
    C = M.pairwise_sq_dist(x.unsqueeze(-2), y.unsqueeze(-2)).squeeze(-1).squeeze(-1)
    torch.testing.assert_close(C, M.dist(x, y) ** 2, rtol=1e-10, atol=1e-14)
