"""so(k): identities, fast kernels against the dense-basis reference, value semantics, errors."""
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gaugeflow.algebra import so
from gaugeflow.testing import AlgebraCheckError, check_lie_algebra

KS = [2, 3, 4, 8, 16]
F64 = torch.float64


def draw(g, seed, *shape, dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, g.dim, generator=gen, dtype=dtype) for _ in range(3)], torch.randn(
        *shape, g.k, generator=gen, dtype=dtype
    )


@pytest.mark.parametrize("k", KS)
def test_dims_and_lexicographic_basis(k):
    g = so(k)
    assert g.dim == k * (k - 1) // 2 and g.k == k
    T = g.basis(dtype=F64)
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    for a, (i, j) in enumerate(pairs):
        E = torch.zeros(k, k, dtype=F64)
        E[i, j], E[j, i] = 1.0, -1.0
        assert torch.equal(T[a], E)


@settings(max_examples=30, deadline=None)
@given(k=st.sampled_from(KS), seed=st.integers(0, 2**31 - 1))
def test_antisymmetry_jacobi_hat_vee(k, seed):
    g = so(k)
    (x, y, z), _ = draw(g, seed, 5)
    assert torch.allclose(g.bracket(x, y), -g.bracket(y, x), atol=1e-12)
    jac = g.bracket(x, g.bracket(y, z)) + g.bracket(y, g.bracket(z, x)) + g.bracket(z, g.bracket(x, y))
    assert jac.abs().max() < 1e-10
    X = g.hat(x)
    assert torch.equal(X, -X.transpose(-1, -2))
    assert torch.allclose(g.vee(X), x, atol=0, rtol=0)
    assert torch.allclose(g.hat(g.vee(X)), X, atol=0, rtol=0)


@settings(max_examples=30, deadline=None)
@given(k=st.sampled_from(KS), seed=st.integers(0, 2**31 - 1))
def test_act_is_a_skew_representation(k, seed):
    g = so(k)
    (x, y, _), v = draw(g, seed, 7)
    lhs = g.act(g.bracket(x, y), v)
    rhs = g.act(x, g.act(y, v)) - g.act(y, g.act(x, v))
    assert (lhs - rhs).abs().max() < 1e-10 * (1 + rhs.abs().max())
    assert (v * g.act(x, v)).sum(-1).abs().max() < 1e-12 * (1 + v.abs().max() ** 2 * x.abs().max())


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_checker_passes_and_dtype_follows_input(k, dtype):
    g = so(k)
    report = check_lie_algebra(g, dtype=dtype)
    assert report.passed and max(report.violations.values()) < (1e-12 if dtype == F64 else 1e-5)
    (x, y, _), v = draw(g, 0, 3, dtype=dtype)
    for out in (g.hat(x), g.vee(g.hat(x)), g.bracket(x, y), g.act(x, v), g.inner(x, y)):
        assert out.dtype == dtype


def test_so3_is_the_cross_product_algebra():
    """Identification ω(ξ) = (−ξ_(1,2), ξ_(0,2), −ξ_(0,1)) (documented in gaugeflow.algebra.orthogonal)."""
    g = so(3)
    (x, y, _), v = draw(g, 1, 50)

    def omega(xi):
        return torch.stack([-xi[..., 2], xi[..., 1], -xi[..., 0]], -1)

    assert torch.allclose(g.act(x, v), torch.linalg.cross(omega(x), v), atol=1e-13)
    assert torch.allclose(omega(g.bracket(x, y)), torch.linalg.cross(omega(x), omega(y)), atol=1e-13)
    assert torch.allclose(g.inner(x, y), (omega(x) * omega(y)).sum(-1), atol=1e-13)


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_structure_constants_and_dense_reference(k):
    g = so(k)
    T, f = g.basis(dtype=F64), g.structure_constants(dtype=F64)
    comm = torch.einsum("aij,bjk->abik", T, T) - torch.einsum("bij,ajk->abik", T, T)
    assert torch.allclose(comm, torch.einsum("abc,cij->abij", f, T), atol=0)
    (x, y, _), v = draw(g, 2, 6)
    assert torch.allclose(g.bracket(x, y), torch.einsum("na,nb,abc->nc", x, y, f), atol=1e-13)
    assert torch.allclose(g.act(x, v), torch.einsum("na,aij,nj->ni", x, T, v), atol=1e-13)
    assert torch.allclose(g.inner(x, y), -0.5 * torch.einsum("nij,nji->n", g.hat(x), g.hat(y)), atol=1e-13)
    if k == 3:  # the so(3) structure constants are ±ε in this basis: [T01, T02] = −T12 etc.
        assert f[0, 1, 2] == -1 and f[0, 2, 1] == 1 and f[1, 2, 0] == -1


def test_vee_projects_arbitrary_matrices():
    g = so(4)
    M = torch.randn(3, 4, 4, dtype=F64)
    assert torch.allclose(g.vee(M), g.vee(0.5 * (M - M.transpose(-1, -2))), atol=1e-15)


def test_broadcasting_batched_equals_looped_and_vmap():
    g = so(5)
    x, y = torch.randn(2, 1, g.dim, dtype=F64), torch.randn(3, g.dim, dtype=F64)
    v = torch.randn(2, 3, 5, dtype=F64)
    out = g.bracket(x, y)
    assert out.shape == (2, 3, g.dim)
    looped = torch.stack([torch.stack([g.bracket(x[i, 0], y[j]) for j in range(3)]) for i in range(2)])
    assert torch.allclose(out, looped, atol=1e-14)
    assert g.act(x, v).shape == (2, 3, 5)
    vm = torch.func.vmap(g.act)(y, v[0])
    assert torch.allclose(vm, g.act(y, v[0]), atol=1e-14)


def test_gradients():
    g = so(3)
    x, y = torch.randn(2, g.dim, dtype=F64, requires_grad=True), torch.randn(2, g.dim, dtype=F64, requires_grad=True)
    v = torch.randn(2, 3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(g.bracket, (x, y))
    assert torch.autograd.gradcheck(g.act, (x, v))


def test_no_basis_in_hot_paths(monkeypatch):
    def forbidden(*_, **__):
        raise RuntimeError("basis materialised")

    monkeypatch.setattr(so, "basis", forbidden)
    monkeypatch.setattr(so, "structure_constants", forbidden)
    g = so(6)
    (x, y, _), v = draw(g, 3, 4)
    g.act(x, v), g.bracket(x, y), g.vee(g.hat(x))


def test_value_semantics_and_immutability():
    assert so(3) == so(3) and so(3) != so(4) and hash(so(5)) == hash(so(5))
    assert repr(so(7)) == "so(7)" and len({so(3), so(3), so(4)}) == 2
    assert pickle.loads(pickle.dumps(so(6))) == so(6)
    with pytest.raises(AttributeError, match="immutable"):
        so(3).k = 4


@pytest.mark.parametrize("bad", [1, 0, -2, 2.0, True, "3"])
def test_rejects_bad_k(bad):
    with pytest.raises(ValueError, match="k must be an integer >= 2"):
        so(bad)


def test_rejects_bad_inputs():
    g = so(3)
    with pytest.raises(ValueError, match="last axis of size 3"):
        g.hat(torch.zeros(4))
    with pytest.raises(ValueError, match="last axis of size 3"):
        g.act(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match=r"\[\.\.\., 3, 3\]"):
        g.vee(torch.zeros(2, 2))
    with pytest.raises(TypeError, match="floating-point"):
        g.hat(torch.zeros(3, dtype=torch.long))


class _Broken:
    """so(3) with a defective bracket or action, to show the checker can fail."""

    def __init__(self, kind):
        self.g, self.kind, self.dim, self.k = so(3), kind, 3, 3

    def bracket(self, x, y):
        b = self.g.bracket(x, y)
        if self.kind == "not_antisymmetric":
            return b + 0.1 * x * y
        if self.kind == "not_jacobi":  # antisymmetric but not a Lie bracket
            return b + x[..., :1] * y - y[..., :1] * x
        return b

    def act(self, x, v):
        return (2.0 if self.kind == "not_representation" else 1.0) * self.g.act(x, v)


@pytest.mark.parametrize(
    "kind, identity",
    [("not_antisymmetric", "antisymmetry"), ("not_jacobi", "jacobi"), ("not_representation", "representation")],
)
def test_checker_rejects_broken_lie_algebras(kind, identity):
    report = check_lie_algebra(_Broken(kind), raise_on_failure=False)
    assert identity in report.failures and not report.passed and not report
    with pytest.raises(AlgebraCheckError, match=identity):
        check_lie_algebra(_Broken(kind))
