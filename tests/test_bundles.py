"""Bundles: value semantics, fibre products over one base, and the learnable projection Π_x."""
import dataclasses

import pytest
import torch

from gaugeflow.algebra import so, so_crossed_module, string_lie2
from gaugeflow.geometry import FiberProduct, FibreProjection, GradedVectorBundle, VectorBundle
from gaugeflow.manifolds import Euclidean, Sphere

F64 = torch.float64


def test_vector_bundle_value_and_group_action():
    M = Sphere(2)
    E = VectorBundle(M, fiber_dim=4)
    assert E.base == M and E.fiber_dim == 4 and E.group == so(4)
    assert E == VectorBundle(Sphere(2), fiber_dim=4) and hash(E) == hash(VectorBundle(Sphere(2), 4))
    assert E != VectorBundle(M, fiber_dim=3) and E != VectorBundle(Euclidean(3), fiber_dim=4)
    assert repr(E) == "VectorBundle(Sphere(2), fiber_dim=4)"
    xi, s = torch.randn(5, 6, dtype=F64), torch.randn(5, 4, dtype=F64)
    assert torch.equal(E.act(xi, s), so(4).act(xi, s))
    with pytest.raises(dataclasses.FrozenInstanceError):
        E.fiber_dim = 5


@pytest.mark.parametrize("bad", [1, 0, 2.5, True])
def test_vector_bundle_rejects_bad_fibre(bad):
    with pytest.raises(ValueError, match="fiber_dim must be an integer >= 2"):
        VectorBundle(Sphere(2), fiber_dim=bad)


def test_bundles_reject_non_manifold_base_and_non_algebra():
    with pytest.raises(TypeError, match="base must be a gaugeflow Manifold"):
        VectorBundle("S2", fiber_dim=3)
    with pytest.raises(TypeError, match="algebra must be an LInfinityAlgebra"):
        GradedVectorBundle(Sphere(2), algebra=so(3))


def test_graded_bundle_split_join():
    L = so_crossed_module(3)
    W = GradedVectorBundle(Euclidean(2), algebra=L)
    assert W.fiber_dim == 7 and W.dims == (3, 4)
    s = torch.randn(8, 7)
    s0, s1 = W.split(s)
    assert torch.equal(W.join(s0, s1), s) and s1.shape == (8, 4)
    assert W == GradedVectorBundle(Euclidean(2), algebra=so_crossed_module(3))
    assert W != GradedVectorBundle(Euclidean(2), algebra=string_lie2(3))
    with pytest.raises(ValueError, match="last axis of size 7"):
        W.check_section(torch.zeros(3, 6))


def test_fiber_product_split_join_and_nesting():
    M = Sphere(2)
    E, W = VectorBundle(M, fiber_dim=3), GradedVectorBundle(M, algebra=so_crossed_module(3))
    F = FiberProduct(E, W)
    assert F.base == M and F.factors == (E, W) and F.fiber_dim == 10
    s = torch.randn(4, 10)
    a, b = F.split(s)
    assert a.shape == (4, 3) and b.shape == (4, 7) and torch.equal(F.join(a, b), s)
    assert F.join(torch.zeros(3), torch.ones(2, 7)).shape == (2, 10)  # batch axes broadcast
    G = FiberProduct(F, VectorBundle(M, fiber_dim=2))
    assert G.fiber_dim == 12 and G.fiber_slices[-1] == slice(10, 12)
    assert F == FiberProduct(E, W) and hash(F) == hash(FiberProduct(E, W)) and F != FiberProduct(W, E)
    assert repr(F).startswith("FiberProduct(VectorBundle(Sphere(2)")
    with pytest.raises(AttributeError, match="immutable"):
        F.fiber_dim = 3


def test_fiber_product_errors():
    E1, E2 = VectorBundle(Sphere(2), fiber_dim=3), VectorBundle(Euclidean(3), fiber_dim=3)
    with pytest.raises(ValueError, match=r"Sphere\(2\).*Euclidean\(3\)"):
        FiberProduct(E1, E2)
    with pytest.raises(ValueError, match=r"Sphere\(2\).*Sphere\(3\)"):
        FiberProduct(E1, VectorBundle(Sphere(3), fiber_dim=3))
    with pytest.raises(ValueError, match="at least one bundle"):
        FiberProduct()
    with pytest.raises(TypeError, match="factor 1 must be a bundle"):
        FiberProduct(E1, Sphere(2))
    F = FiberProduct(E1, VectorBundle(Sphere(2), fiber_dim=2))
    with pytest.raises(ValueError, match="join expects 2 parts"):
        F.join(torch.zeros(3))
    with pytest.raises(ValueError, match="last axis of size 2"):
        F.join(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="last axis of size 5"):
        F.split(torch.zeros(4))


def test_projection_identity_init_when_fibre_matches_ambient():
    M = Sphere(2)
    P = FibreProjection(M, fiber_dim=3, dtype=F64)
    assert torch.equal(P.weight, torch.eye(3, dtype=F64))
    x = M.random_base(16, dtype=F64)
    s = torch.randn(16, 3, dtype=F64)
    assert torch.allclose(P(x, s), M.proju(x, s), atol=1e-15)  # W = I: Π_x = proju
    E = Euclidean(3)
    assert torch.equal(FibreProjection(E, 3, dtype=F64)(torch.zeros(3, dtype=F64), s), s)


@pytest.mark.parametrize("fiber_dim", [2, 7])
@pytest.mark.parametrize("init", ["identity", "orthogonal"])
def test_projection_init_is_partial_isometry_and_output_is_tangent(fiber_dim, init):
    M = Sphere(3)  # D = 4
    torch.manual_seed(0)
    P = FibreProjection(M, fiber_dim, init=init, dtype=F64)
    W = P.weight.detach()
    gram = W @ W.T if fiber_dim >= 4 else W.T @ W
    assert torch.allclose(gram, torch.eye(min(4, fiber_dim), dtype=F64), atol=1e-12)
    if init == "identity":
        assert torch.equal(W, torch.eye(4, fiber_dim, dtype=F64))
    x = M.random_base(32, dtype=F64)
    v = P(x, torch.randn(32, fiber_dim, dtype=F64))
    assert v.shape == (32, 4) and (x * v).sum(-1).abs().max() < 1e-12  # tangent to the sphere


def test_projection_is_learnable_and_validates():
    M = Sphere(2)
    P = FibreProjection.for_bundle(GradedVectorBundle(M, algebra=so_crossed_module(3)))
    assert P.fiber_dim == 7 and P.weight.shape == (3, 7) and P.weight.requires_grad
    assert [n for n, _ in P.named_parameters()] == ["weight"]
    x = M.random_base(8)
    P(x, torch.randn(8, 7)).pow(2).sum().backward()
    assert P.weight.grad is not None and P.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="last axis of size 7"):
        P(x, torch.randn(8, 6))
    with pytest.raises(ValueError, match="init must be"):
        FibreProjection(M, 3, init="xavier")
    with pytest.raises(ValueError, match="fiber_dim must be an integer >= 1"):
        FibreProjection(M, 0)
