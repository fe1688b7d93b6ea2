"""The geometry-only manifold contract (issue 15, item 3), on the guide's own 35-line circle.

The "plug in your own manifold" block of docs/guide.md is extracted and executed as written: a
manifold with only projx/proju/exp/log (+ dim, ambient_dim) is instantiated, passes check_manifold
(geometry; base properties once a base is attached) and trains with fit once given a base. Then the
defaults it relies on are checked against closed forms: pole-ladder transport against the sphere's
and hyperboloid's exact transport, cut_locus_mask from the injectivity radius, the Gram–Schmidt
tangent frame (orthonormal, tangent), value semantics from constructor arguments.
"""
import math
import pathlib
import re

import pytest
import torch

from gaugeflow.geometry import (BaseDistribution, CallableBase, Manifold, ProductBase, StandardNormal, UniformSphere,
                                UniformTorus, WrappedNormal)
from gaugeflow.geometry._generic import gram_schmidt_frame, pole_ladder
from gaugeflow.manifolds import Euclidean, FlatTorus, Hyperbolic, Product, Sphere
from gaugeflow.testing import ManifoldCheckError, check_manifold
from gaugeflow.testing.strategies import _unit_tangents

F64 = torch.float64
GUIDE = pathlib.Path(__file__).resolve().parents[1] / "docs" / "guide.md"


@pytest.fixture(scope="module")
def guide():
    """Run the guide's manifold block once; returns its namespace."""
    text = GUIDE.read_text()
    section = text[text.index("## 3. Writing your own manifold"):text.index("## 4.")]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(block.strip().splitlines()) <= 40, "the guide promises a manifold in at most 40 lines"
    namespace: dict = {}
    exec(compile(block, str(GUIDE), "exec"), namespace)  # noqa: S102 - the documented example, verbatim
    return namespace


def test_guide_manifold_has_only_the_required_methods_and_passes_the_checker(guide):
    Circle = guide["Circle"]
    own = {k for k, v in vars(Circle).items() if callable(v)}
    assert own == {"projx", "proju", "exp", "log"}
    report = guide["report"]
    assert not report.failures and report.skipped == ["random_base", "base_density"]
    assert {r.name for r in report.results} >= {"exp_log", "transp", "geodesic", "gradients", "bad_input"}


def test_guide_manifold_trains_with_fit_once_given_a_base(guide):
    history, M = guide["history"], guide["M"]
    assert len(history.loss) == 20 and all(math.isfinite(v) for v in history.loss)
    assert M.base == UniformSphere(1) and guide["Circle"]().base is None
    x = M.random_base(8, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert torch.allclose(M.base_log_prob(x), torch.full((8,), -math.log(2 * math.pi), dtype=F64))


def test_random_base_without_a_base_is_one_clear_error(guide):
    with pytest.raises(ValueError, match=r"Circle\(\) has no base distribution: attach one with M = M.with_base"):
        guide["Circle"]().random_base(4)
    with pytest.raises(ValueError, match="ambient dimension 3, expected 2"):
        guide["Circle"]().with_base(UniformSphere(2))
    with pytest.raises(TypeError, match="BaseDistribution"):
        guide["Circle"]().with_base(lambda n: None)


def test_checker_names_the_failing_property_on_its_first_line(guide):
    class Broken(guide["Circle"]):
        def log(self, x, y):  # forgot the sign of the angle
            return super().log(x, y).abs()

    with pytest.raises(ManifoldCheckError) as info:
        check_manifold(Broken(), dtypes=(F64,), properties=["exp_log", "projx"], max_examples=10)
    first = str(info.value).splitlines()[0]
    # the property, its largest violation and the worst point (the drawn pair's row), on the first line
    assert re.fullmatch(r"check_manifold\(Broken\(\)\): exp_log \(float64\) failed: exp\(x, log\(x, y\)\) = y: "
                        r"error \S+ > tolerance \S+ at x = \[\S+, \S+\], y = \[\S+, \S+\]", first), first
    x, y = (torch.tensor([float(c) for c in v.split(", ")], dtype=F64) for v in re.findall(r"\[(.*?)\]", first))
    assert torch.allclose(x.norm(), torch.ones((), dtype=F64), atol=1e-5)  # a point of the circle, as printed
    assert guide["Circle"]().exp(x, Broken().log(x, y)).sub(y).norm() > 1e-9  # and the property does fail there


def test_a_manifold_missing_a_required_method_cannot_be_instantiated(guide):
    class NoLog(Manifold):
        dim, ambient_dim = 1, 2
        projx = proju = exp = guide["Circle"].exp

    with pytest.raises(TypeError, match="log"):
        NoLog()


# ---------------------------------------------------------------- defaults against closed forms
def _pairs(M, n, seed):
    g = torch.Generator().manual_seed(seed)
    x, y = M.random_base(n, generator=g, dtype=F64), M.random_base(n, generator=g, dtype=F64)
    v = _unit_tangents(M, x, seed + 1) * torch.rand(n, 1, generator=g, dtype=F64) * 3
    return x, y, v


@pytest.mark.parametrize("M", [Sphere(2), Sphere(4), Hyperbolic(3, std=1.0)], ids=repr)
def test_default_pole_ladder_is_exact_on_symmetric_spaces(M):
    x, y, v = _pairs(M, 256, 0)
    if isinstance(M, Sphere):  # include near-antipodal pairs and the antipode (the documented cut direction)
        y = torch.cat([y[:200], M.exp(x[200:], M.cut_vector(x[200:], v[200:]) * 0.999)], 0)
    want = M.transp(x, y, v)
    got = Manifold.transp(M, x, y, v)  # the generic default, one rung
    assert float((got - want).abs().max()) < 1e-9
    assert float((pole_ladder(M, x, y, v, rungs=3) - want).abs().max()) < 1e-9


def test_default_geodesic_matches_the_closed_forms():
    for M in (Sphere(3), Hyperbolic(2, std=1.0)):
        x, y, _ = _pairs(M, 64, 3)
        t = torch.rand(64, generator=torch.Generator().manual_seed(4), dtype=F64)
        (xt, ut), (xd, ud) = M.geodesic(x, y, t), Manifold.geodesic(M, x, y, t)
        assert float((xt - xd).abs().max()) < 1e-9 and float((ut - ud).abs().max()) < 1e-8


def test_default_cut_locus_mask_follows_the_injectivity_radius(guide):
    C = guide["Circle"]()
    a = torch.linspace(0, 6, 50, dtype=F64)
    x = torch.stack([a.cos(), a.sin()], -1)
    turn = lambda b: torch.stack([(a + b).cos(), (a + b).sin()], -1)  # noqa: E731
    assert bool(C.cut_locus_mask(x, turn(math.pi)).all()) and bool(C.cut_locus_mask(x, turn(math.pi - 1e-7)).all())
    assert not bool(C.cut_locus_mask(x, turn(math.pi - 1e-2)).any()) and not bool(C.cut_locus_mask(x, x).any())
    H = Hyperbolic(2)  # infinite radius: never
    assert not bool(Manifold.cut_locus_mask(H, H.origin(F64), H.random_base(9, dtype=F64)).any())


@pytest.mark.parametrize("M", [Sphere(3), Hyperbolic(3), Product(Sphere(2), FlatTorus(1), Hyperbolic(2))], ids=repr)
def test_tangent_frames_default_and_overrides_are_orthonormal_and_tangent(M):
    x = M.random_base(32, generator=torch.Generator().manual_seed(5), dtype=F64)
    for frame in (gram_schmidt_frame(M, x), M.tangent_frame(x)):
        assert frame.shape == (32, M.ambient_dim, M.dim)
        E = frame.transpose(-1, -2)
        gram = M.inner(x[:, None, None, :], E[:, :, None, :], E[:, None, :, :])
        assert float((gram - torch.eye(M.dim, dtype=F64)).abs().max()) < 1e-10
        assert float(M._tangent_residual(x[:, None, :], E).max()) < 1e-10


def test_divergence_and_data_frames_come_from_the_manifold_method():
    from gaugeflow.data import tangent_frame as data_frame
    from gaugeflow.sampling.divergence import tangent_frame as div_frame

    M = Sphere(2)
    x = M.random_base(5, dtype=F64)
    assert torch.equal(div_frame(M, x), M.tangent_frame(x).movedim(-1, 0))
    assert torch.equal(data_frame(M, x), M.tangent_frame(x).transpose(-1, -2))


# ---------------------------------------------------------------- value semantics
def test_equality_and_hash_come_from_constructor_arguments(guide):
    Circle = guide["Circle"]
    pairs_equal = [(Sphere(2), Sphere(n=2)), (Hyperbolic(2), Hyperbolic(2, std=None)), (Circle(), Circle()),
                   (Product(Sphere(2), FlatTorus(1)), Product(Sphere(2), FlatTorus(1))),
                   (Circle().with_base(UniformSphere(1)), Circle().with_base(UniformSphere(1)))]
    for a, b in pairs_equal:
        assert a == b and hash(a) == hash(b), (a, b)
    unequal = [Sphere(2), Sphere(3), Hyperbolic(2), Hyperbolic(2, std=0.5), Euclidean(3), FlatTorus(3),
               Product(Sphere(2), FlatTorus(1)), Product(FlatTorus(1), Sphere(2)), Circle(),
               Circle().with_base(UniformSphere(1)), Circle().with_base(CallableBase(lambda n, **k: None, len, 2))]
    assert len(set(unequal)) == len(unequal)
    assert all(a != b for i, a in enumerate(unequal) for b in unequal[i + 1:])
    assert repr(Hyperbolic(2, std=0.5)) == "Hyperbolic(2, std=0.5)" and repr(Circle()) == "Circle()"


def test_adapters_wrapping_different_objects_differ():
    geoopt = pytest.importorskip("geoopt")
    from gaugeflow.manifolds import from_geoopt

    s1, s2 = geoopt.Sphere(), geoopt.Sphere()
    a, b = from_geoopt(s1, ambient_dim=3), from_geoopt(s1, ambient_dim=3)
    assert a == b and hash(a) == hash(b)
    assert a != from_geoopt(s2, ambient_dim=3) and a != from_geoopt(s1, ambient_dim=4)
    assert a.base == Sphere(2).base == UniformSphere(2)  # one implementation per density
    assert from_geoopt(geoopt.Lorentz(), ambient_dim=3).base == Hyperbolic(2).base


def test_base_distributions_are_values_with_one_implementation_per_density():
    assert isinstance(Sphere(2).base, BaseDistribution) and Euclidean(3).base == StandardNormal(3)
    assert FlatTorus(2).base == UniformTorus(2) and Hyperbolic(4).base == WrappedNormal(4)
    assert Product(Sphere(2), FlatTorus(1)).base == ProductBase(UniformSphere(2), UniformTorus(1))
    assert WrappedNormal(2) != WrappedNormal(2, std=1.0) != WrappedNormal(2, std=1.0, k=2.0)


@pytest.mark.parametrize("M", [Product(Sphere(2), Euclidean(3)), Product(Sphere(1), FlatTorus(2))], ids=repr)
def test_products_with_unbounded_or_flat_factors_pass_the_log_length_check(M):
    """‖log‖ is bounded by the diameter (∞ with a flat unbounded factor), not by injectivity_radius·√dim."""
    assert M.diameter == math.sqrt(sum(f.diameter ** 2 for f in M.factors))
    check_manifold(M, max_examples=5)


class _LongWaySphere(Sphere):
    """A planted bug: ``log`` returns the geodesic the long way round (length 2π − θ)."""

    def log(self, x, y):
        v = super().log(x, y)
        theta = self.norm(x, v)[..., None]
        return torch.where(theta > 1e-3, -v * (2 * math.pi - theta) / theta.clamp_min(1e-3), v)


def test_a_log_that_is_not_minimising_is_caught():
    with pytest.raises(ManifoldCheckError, match="diameter"):
        check_manifold(_LongWaySphere(2), max_examples=5)


class _NarrowScreenSphere(Sphere):
    """A cut-locus screen that is not a superset of the mask: it flags only pairs exactly antipodal."""

    def cut_locus_screen(self, x, y):
        return (x + y).abs().amax(-1) == 0


def test_a_cut_locus_screen_that_misses_cut_pairs_is_caught():
    assert not check_manifold(Sphere(2), properties=["cut_screen"], dtypes=[torch.float32]).failures
    with pytest.raises(ManifoldCheckError, match="cut_locus_screen flags every pair"):
        check_manifold(_NarrowScreenSphere(2), properties=["cut_screen"], dtypes=[torch.float32])
