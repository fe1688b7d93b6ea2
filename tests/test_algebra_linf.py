"""2-term L∞-algebras: graded spaces, shipped algebras, sign convention, the checker can fail."""
import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gaugeflow.algebra import (
    GradedSpace,
    LInfinityAlgebra,
    TwoTermLInfinity,
    so,
    so_crossed_module,
    string_lie2,
)
from gaugeflow.testing import AlgebraCheckError, check_linf_algebra

F64 = torch.float64
IDENTITIES = [
    "1: l1 l2(x,h) = l2(x, l1 h)",
    "2: l2(l1 h, k) = l2(h, l1 k)",
    "3: Jacobi on L0 up to l1 l3",
    "4: Jacobi on L0,L0,L1 up to l3",
    "5: coherence of l3",
]


# ---------------------------------------------------------------- graded spaces
def test_graded_space_split_join_and_value_semantics():
    V = GradedSpace((3, 4))
    assert V.dims == (3, 4) and V.dim == 7 and V.degree_slices == (slice(0, 3), slice(3, 7))
    B = torch.randn(5, 7)
    b0, b1 = V.split(B)
    assert b0.shape == (5, 3) and b1.shape == (5, 4) and torch.equal(V.join(b0, b1), B)
    assert V.join(torch.zeros(2, 1, 3), torch.ones(6, 4)).shape == (2, 6, 7)
    assert torch.equal(V.embed(torch.ones(4), 1), torch.tensor([0.0, 0, 0, 1, 1, 1, 1]))
    assert V == GradedSpace([3, 4]) and hash(V) == hash(GradedSpace((3, 4))) and V != GradedSpace((4, 3))
    assert repr(V) == "GradedSpace(dims=(3, 4))"


@pytest.mark.parametrize("dims", [(), (3, -1), (2.0, 1), "ab"])
def test_graded_space_rejects_bad_dims(dims):
    with pytest.raises(ValueError, match="dims must be"):
        GradedSpace(dims)


def test_graded_space_rejects_bad_elements():
    V = GradedSpace((3, 4))
    with pytest.raises(ValueError, match="last axis of size 7"):
        V.split(torch.zeros(2, 6))
    with pytest.raises(ValueError, match="expects 2 components"):
        V.join(torch.zeros(3))
    with pytest.raises(ValueError, match="component 1 must have last axis 4"):
        V.join(torch.zeros(3), torch.zeros(3))


# ---------------------------------------------------------------- shipped algebras
@pytest.mark.parametrize("k", [2, 3, 4, 8])
def test_dims(k):
    d = k * (k - 1) // 2
    assert so_crossed_module(k).dims == (d, d + 1) and so_crossed_module(k).dim == 2 * d + 1
    assert string_lie2(k, 1.0).dims == (d, 1)


@pytest.mark.parametrize("k", [2, 3, 4, 8, 16])
@pytest.mark.parametrize("make", [so_crossed_module, lambda k: string_lie2(k, kappa=1.7)], ids=["crossed", "string"])
def test_shipped_algebras_pass_all_identities(k, make):
    report = check_linf_algebra(make(k), dtype=F64)
    assert all(name in report.violations for name in IDENTITIES)
    assert max(report.violations.values()) < 1e-10, str(report)
    assert check_linf_algebra(make(k), dtype=torch.float32, n=8).passed


def test_crossed_module_formulas():
    k = 4
    L, g = so_crossed_module(k), so(k)
    d = g.dim
    B, V = torch.randn(2, 6, L.dim, dtype=F64)
    (B0, B1), (V0, V1) = L.split(B), L.split(V)
    assert torch.equal(L.bracket(B), L.join(B1[..., :d], torch.zeros(6, d + 1, dtype=F64)))
    expected = L.join(g.bracket(B0, V0), torch.cat([g.bracket(B0, V1[..., :d]) + g.bracket(B1[..., :d], V0),
                                                     torch.zeros(6, 1, dtype=F64)], -1))
    assert torch.allclose(L.bracket(B, V), expected, atol=1e-13)  # docs/math.md §5.3
    assert torch.allclose(L.l2(B, V), LInfinityAlgebra.l2(L, B, V), atol=1e-13)  # fast path = generic rule
    assert torch.equal(L.bracket(B, V, B), torch.zeros(6, L.dim, dtype=F64)) and L.is_strict
    assert L.bracket(B, V, B, V[:, None]).shape == (6, 6, L.dim)
    Bb, Cb = B[:2, None], V[:3]  # batch axes broadcast on the fast path too
    assert torch.allclose(L.l2(Bb, Cb), LInfinityAlgebra.l2(L, Bb, Cb), atol=1e-13) and L.l2(Bb, Cb).shape == (2, 3, L.dim)


def test_string_formulas():
    L, g = string_lie2(3, kappa=-0.5), so(3)
    x, y, z = torch.randn(3, 5, L.dim, dtype=F64)
    top = -0.5 * g.inner(x[..., :3], g.bracket(y[..., :3], z[..., :3]))
    assert torch.allclose(L.l3(x, y, z), torch.cat([torch.zeros(5, 3, dtype=F64), top[:, None]], -1))
    assert torch.equal(L.l1(x), torch.zeros(5, 4, dtype=F64)) and not L.is_strict
    assert string_lie2(3, 0.0).is_strict


def test_value_semantics_and_errors():
    assert so_crossed_module(3) == so_crossed_module(3) and so_crossed_module(3) != so_crossed_module(4)
    assert string_lie2(3, 1.0) == string_lie2(3, 1.0) != string_lie2(3, 2.0)
    assert len({so_crossed_module(3), so_crossed_module(3), string_lie2(3)}) == 2
    assert repr(so_crossed_module(5)) == "so_crossed_module(5)" and repr(string_lie2(3, 2)) == "string_lie2(3, kappa=2.0)"
    with pytest.raises(ValueError, match="k must be an integer >= 2"):
        so_crossed_module(1)
    with pytest.raises(ValueError, match="kappa must be a finite real"):
        string_lie2(3, float("nan"))
    with pytest.raises(ValueError, match="last axis of size 7"):
        so_crossed_module(3).l2(torch.zeros(7), torch.zeros(6))


# ---------------------------------------------------------------- the sign convention, from first principles
def _sign(p):
    return -1 if sum(p[i] > p[j] for i, j in itertools.combinations(range(len(p)), 2)) % 2 else 1


def lada_markl(L, elems, degs):
    """Σ_{i+j=n+1} Σ_{unshuffles σ} χ(σ) (−1)^{i(j−1)} l_j(l_i(x_σ(1..i)), x_σ(i+1..n)) (linf docstring)."""
    n, total = len(elems), 0
    for i in range(1, n + 1):
        j = n + 1 - i
        for head in itertools.combinations(range(n), i):
            p = list(head) + [r for r in range(n) if r not in head]
            koszul = 1
            for a, b in itertools.combinations(range(n), 2):
                if p[a] > p[b] and degs[p[a]] * degs[p[b]] % 2:
                    koszul = -koszul
            inner = L.bracket(*[elems[q] for q in p[:i]])
            total = total + _sign(p) * koszul * (-1) ** (i * (j - 1)) * L.bracket(inner, *[elems[q] for q in p[i:]])
    return total


def worst_lada_markl(L, seed=0):
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for n in range(1, 5):
        for degs in itertools.product((0, 1), repeat=n):
            elems = [L.space.embed(torch.randn(4, L.dims[d], generator=gen, dtype=F64), d) for d in degs]
            worst = max(worst, float(lada_markl(L, elems, degs).abs().max()))
    return worst


@settings(max_examples=3, deadline=None)
@given(k=st.sampled_from([3, 4]), seed=st.integers(0, 2**31 - 1), kappa=st.floats(-3, 3))
def test_shipped_algebras_satisfy_the_general_lada_markl_identities(k, seed, kappa):
    assert worst_lada_markl(so_crossed_module(k), seed) < 1e-10
    assert worst_lada_markl(string_lie2(k, kappa), seed) < 1e-10


# ---------------------------------------------------------------- user-defined and broken algebras
def custom_crossed(k, *, act_scale=1.0, act_sign=1.0, l1_scale=1.0, l3=None, name="custom"):
    g, d = so(k), so(k).dim

    def l2_01(x, h):
        b = act_scale * (g.bracket(x, h[..., :d]) if act_sign > 0 else g.bracket(h[..., :d], x))
        return torch.cat([b, b.new_zeros(b.shape[:-1] + (1,))], -1)

    return TwoTermLInfinity((d, d + 1), l1=lambda h: l1_scale * h[..., :d], l2_00=g.bracket, l2_01=l2_01, l3=l3,
                            name=name)


def test_user_defined_algebra_reproduces_the_crossed_module():
    L, ref = custom_crossed(3), so_crossed_module(3)
    B, C, D = torch.randn(3, 5, L.dim, dtype=F64)
    for args in [(B,), (B, C), (B, C, D)]:
        assert torch.allclose(L.bracket(*args), ref.bracket(*args), atol=1e-14)
    assert check_linf_algebra(L).passed and L.is_strict and L != ref and L == L


def _bad_l3(x, y, z):  # totally antisymmetric, but l1 ∘ l3 ≠ 0 while Jacobi holds on the nose
    c = so(3).inner(x, so(3).bracket(y, z))[..., None]
    return torch.cat([c.expand(c.shape[:-1] + (3,)), torch.zeros_like(c)], -1)


def _asym_l3(x, y, z):  # not totally antisymmetric
    return torch.cat([x * (y * z).sum(-1, keepdim=True), x[..., :1] * 0], -1)


@pytest.mark.parametrize(
    "kwargs, must_fail",
    [
        ({"act_scale": 2.0}, IDENTITIES[0]),          # action l2(L0, L1) scaled by 2
        ({"act_sign": -1.0}, IDENTITIES[0]),          # wrong sign of the action
        ({"l3": _bad_l3}, IDENTITIES[2]),             # non-zero Jacobiator the strict Jacobi cannot absorb
        ({"l3": _asym_l3}, "antisymmetry l3"),
    ],
    ids=["action_x2", "action_wrong_sign", "jacobiator_not_l1_l3", "l3_not_antisymmetric"],
)
def test_checker_rejects_broken_algebras(kwargs, must_fail):
    L = custom_crossed(3, **kwargs)
    report = check_linf_algebra(L, raise_on_failure=False)
    assert must_fail in report.failures and report.violations[must_fail] > 1e-2, str(report)
    with pytest.raises(AlgebraCheckError, match="identities violated") as info:
        check_linf_algebra(L)
    assert isinstance(info.value, AssertionError) and must_fail in info.value.report.failures
    assert worst_lada_markl(L) > 1e-2 or must_fail == "antisymmetry l3"  # first principles agree


def test_scaling_l1_by_two_is_an_isomorphic_algebra_not_a_broken_one():
    """l1 ↦ 2 l1 satisfies every identity: φ = (id on L0, ½ id on L1) is a strict isomorphism to it."""
    L, L2 = so_crossed_module(3), custom_crossed(3, l1_scale=2.0)
    assert check_linf_algebra(L2).passed and worst_lada_markl(L2) < 1e-12
    B, C = torch.randn(2, 4, L.dim, dtype=F64)
    phi = torch.cat([torch.ones(L.dims[0]), 0.5 * torch.ones(L.dims[1])]).to(F64)
    assert torch.allclose(phi * L.l1(B), L2.l1(phi * B), atol=1e-14)
    assert torch.allclose(phi * L.l2(B, C), L2.l2(phi * B, phi * C), atol=1e-14)


def test_two_term_rejects_bad_components():
    g = so(3)
    with pytest.raises(TypeError, match="l2_00 .* is required"):
        TwoTermLInfinity((3, 1), l1=None, l2_00=None)
    with pytest.raises(TypeError, match="l1 must be callable"):
        TwoTermLInfinity((3, 1), l1=3, l2_00=g.bracket)
    with pytest.raises(ValueError, match=r"dims must be \(d0, d1\)"):
        TwoTermLInfinity((3,), l1=None, l2_00=g.bracket)
    L = TwoTermLInfinity((3, 1), l1=lambda h: h, l2_00=g.bracket)
    with pytest.raises(ValueError, match=r"l1 must return \[\.\.\., 3\]"):
        L.l1(torch.zeros(4))
