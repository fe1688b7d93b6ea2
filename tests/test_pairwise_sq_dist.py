"""Manifold.pairwise_sq_dist (the cost matrix of minibatch OT) against dist on every pair."""
import math

import pytest
import torch

from gaugeflow.manifolds import SE3, SO3, Euclidean, FlatTorus, Hyperbolic, Product, Sphere
from gaugeflow.manifolds.so3 import matrix_to_quaternion, quaternion_to_matrix

F64 = torch.float64
MANIFOLDS = [Sphere(2), Sphere(5), FlatTorus(3), Hyperbolic(2), SO3(), SE3(), Euclidean(4),
             Product(Sphere(2), FlatTorus(1)), Product(SO3(), Sphere(2))]


@pytest.mark.parametrize("M", MANIFOLDS, ids=repr)
def test_pairwise_sq_dist_is_dist_squared_on_every_pair(M):
    g = torch.Generator().manual_seed(0)
    x, y = M.random_base(7, generator=g, dtype=F64), M.random_base(5, generator=g, dtype=F64)
    C = M.pairwise_sq_dist(x.reshape(1, 7, -1), y.reshape(1, 5, -1))
    assert C.shape == (1, 7, 5)
    ref = torch.stack([torch.stack([M.dist(xi, yj) ** 2 for yj in y]) for xi in x])
    torch.testing.assert_close(C[0], ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("M", [Sphere(2), FlatTorus(2), SO3()], ids=repr)
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


def _so3_pairs_up_to_pi(dtype):
    """Pairs ``(x, exp_x(θ u))`` with θ from 1e-8 to π itself (SO(3)'s half-turns, where Haar pairs crowd)."""
    M, g = SO3(), torch.Generator().manual_seed(2)
    x = M.random_base(200, generator=g, dtype=F64)
    u = M.proju(x, torch.randn(x.shape, generator=g, dtype=F64))
    u = u / M.norm(x, u).unsqueeze(-1)
    theta = torch.cat([torch.logspace(-8, 0.49, 100, dtype=F64), math.pi - torch.logspace(-1, -9, 99, dtype=F64),
                       torch.tensor([math.pi], dtype=F64)]).unsqueeze(-1)
    y = M.exp(x, theta * u)
    return M, x.to(dtype), y.to(dtype), (M.dist(x, y) ** 2)


def test_so3_cost_is_accurate_up_to_the_half_turn():
    """The quaternion route keeps θ² to ~1e-14 in float64 and ~3e-6 in float32 at every angle, π included
    (a route through tr(xᵀy) would lose √eps near π: 1e-8 in float64, 3e-4 in float32)."""
    for dtype, atol in ((F64, 1e-14), (torch.float32, 1e-5)):
        M, x, y, ref = _so3_pairs_up_to_pi(dtype)
        C = M.pairwise_sq_dist(x.unsqueeze(-2), y.unsqueeze(-2)).squeeze(-1).squeeze(-1)
        assert C.dtype == dtype
        torch.testing.assert_close(C.double(), ref, rtol=0, atol=atol)


def test_matrix_to_quaternion_inverts_quaternion_to_matrix_up_to_sign():
    g = torch.Generator().manual_seed(3)
    q = torch.randn(500, 4, generator=g, dtype=F64)
    q = q / q.norm(dim=-1, keepdim=True)
    axis = q[:100, 1:] / q[:100, 1:].norm(dim=-1, keepdim=True)
    q[:100] = torch.cat([torch.zeros(100, 1, dtype=F64), axis], -1)  # half-turns: w = 0, tr R = −1
    q[100] = torch.tensor([1.0, 0, 0, 0], dtype=F64)                # the identity
    back = matrix_to_quaternion(quaternion_to_matrix(q).flatten(-2))
    torch.testing.assert_close(back.norm(dim=-1), torch.ones(500, dtype=F64))
    torch.testing.assert_close((back * q).sum(-1).abs(), torch.ones(500, dtype=F64), rtol=0, atol=1e-14)
    assert matrix_to_quaternion(torch.eye(3, dtype=F64).reshape(9)).tolist() == [1.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("M", [SO3(), SE3(), Product(SO3(), Sphere(2))], ids=repr)
def test_quaternion_cost_has_dists_riemannian_gradient(M):
    """Differentiated (a differentiable OT loss), the quaternion route passes gradcheck and its gradient,
    projected to the tangent space, is the one of ``dist`` on the broadcast pairs."""
    from gaugeflow.geometry import Manifold

    g = torch.Generator().manual_seed(4)
    x = M.random_base(4, generator=g, dtype=F64).reshape(1, 4, -1).requires_grad_()
    y = M.random_base(3, generator=g, dtype=F64).reshape(1, 3, -1)
    assert torch.autograd.gradcheck(lambda a: M.pairwise_sq_dist(a, y), (x,))
    ours, = torch.autograd.grad(M.pairwise_sq_dist(x, y).sum(), x)
    ref, = torch.autograd.grad(Manifold.pairwise_sq_dist(M, x, y).sum(), x)
    at = x.detach()[0]
    torch.testing.assert_close(M.proju(at, ours[0]), M.proju(at, ref[0]), rtol=1e-10, atol=1e-12)
