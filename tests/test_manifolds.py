"""Conformance: the full property suite (gaugeflow.testing.check_manifold) on every built-in manifold.

check_manifold covers, in float32 and float64: projx idempotent and on the manifold; proju tangent
and idempotent; exp∘log and log∘exp (inside the injectivity radius); dist = ‖log‖ = dist(y, x);
triangle inequality; transport tangent, isometric, inverted by transport back; batched = looped;
geodesic closed forms; random_base on the manifold; ∫ exp(base_log_prob) = 1 (Monte Carlo,
importance sampling); bad input to check_point; finite gradients and float64 gradcheck at u = 0,
y = x and y 1e-7 from x. The pairs include identical, 1e-7-apart, near-cut-locus and cut-locus
(antipodal) pairs, and tangent vectors from 0 and 1e-10 up to huge norms; any NaN/Inf fails.
The last tests show the checker fails (naming the property) on deliberately broken manifolds.
"""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gaugeflow.manifolds import Euclidean, FlatTorus, Hyperbolic, Product, Sphere
from gaugeflow.testing import (PAIR_KINDS, PROPERTIES, ManifoldCheckError, check_manifold, point_pairs, points,
                               tangent_vectors)

BUILTIN = [Euclidean(3), Sphere(1), Sphere(2), Sphere(5), FlatTorus(2), Hyperbolic(2), Product(Sphere(2), FlatTorus(1))]
DTYPES = [torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("M", BUILTIN, ids=repr)
def test_builtin_manifold_passes_the_conformance_suite(M, dtype):
    report = check_manifold(M, dtypes=[dtype], max_examples=12)
    assert {r.name for r in report.results} == set(PROPERTIES)
    assert all(r.worst <= 1 for r in report.results), str(report)


# ---------------------------------------------------------------- the checker can fail
class _ZeroAntipodalLog(Sphere):
    """The peers' bug: log at the antipode silently 0."""

    def log(self, x, y):
        out = super().log(x, y)
        return torch.where(self.cut_locus_mask(x, y)[..., None], torch.zeros_like(out), out)


class _WrongVolume(Sphere):
    def base_log_prob(self, x):
        return super().base_log_prob(x) + 0.1  # integrates to e^0.1


class _ProjectionTransport(Sphere):
    """geoopt's Sphere.transp: projection, not isometric."""

    def transp(self, x, y, v):
        return self.proju(y, v)


class _AcosDist(Sphere):
    """flow_matching's unclamped acos: NaN for identical points in float32."""

    def dist(self, x, y):
        return torch.acos((x * y).sum(-1))


class _NaNGradExp(Sphere):
    """Closed form without Taylor branch: NaN gradient at u = 0."""

    def exp(self, x, u):
        th = u.norm(dim=-1, keepdim=True)
        return torch.cos(th) * x + torch.sin(th) / th.clamp_min(1e-300) * u


@pytest.mark.parametrize("broken, prop", [
    (_ZeroAntipodalLog(2), "dist"),
    (_WrongVolume(2), "base_density"),
    (_ProjectionTransport(2), "transp"),
    (_AcosDist(2), "dist"),
    (_NaNGradExp(2), "gradients"),
])
def test_checker_fails_naming_the_property(broken, prop):
    with pytest.raises(ManifoldCheckError) as info:
        check_manifold(broken, max_examples=10, properties=[prop])
    message = str(info.value)
    assert prop in message and "worst ratio" in message
    worst = max(r.worst for r in info.value.report.failures)
    assert worst > 1


def test_checker_rejects_unknown_property_and_non_manifold():
    with pytest.raises(ValueError, match="unknown properties"):
        check_manifold(Sphere(2), properties=["nope"])
    with pytest.raises(TypeError, match="Manifold"):
        check_manifold("sphere")


# ---------------------------------------------------------------- the public strategies
@settings(max_examples=15)
@given(data=st.data())
def test_strategies_produce_points_tangents_and_degenerate_pairs(data):
    M = Sphere(2)
    dtype = data.draw(st.sampled_from(DTYPES))
    x = data.draw(points(M, dtype, batch=3))
    assert x.shape == (3, 3) and x.dtype == dtype
    M.check_point(x)
    u = data.draw(tangent_vectors(M, x))
    M.check_tangent(x, u)
    x, y, kinds = data.draw(point_pairs(M, dtype, batch=5))
    assert kinds.shape == (5,) and set(kinds) <= set(PAIR_KINDS)
    d = M.dist(x, y)
    for i, k in enumerate(kinds):
        if k == "identical":
            assert torch.equal(x[i], y[i])
        elif k == "near":
            assert 0 <= float(d[i]) < 1e-6
        elif k == "cut":
            assert float(d[i]) > math.pi - 1e-3


def test_pair_strategy_drops_cut_kinds_without_cut_locus_and_rejects_unknown_kinds():
    M = Hyperbolic(2)

    @settings(max_examples=5)
    @given(point_pairs(M, batch=4))
    def run(pair):
        assert set(pair[2]) <= {"generic", "identical", "near"}

    run()
    @settings(max_examples=1)
    @given(point_pairs(M, kinds=("antipodal",)))
    def draw(pair):
        pass

    with pytest.raises(ValueError, match="unknown kinds"):
        draw()
