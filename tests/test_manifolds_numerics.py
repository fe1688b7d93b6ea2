"""Degenerate points, cut locus, float32 robustness, bad input and closed forms of the built-in manifolds."""
import math

import pytest
import torch
from torch.autograd import gradcheck

from gaugeflow.manifolds import Euclidean, FlatTorus, Hyperbolic, Product, Sphere
from gaugeflow.testing.strategies import _unit_tangents

F64 = torch.float64
GRAD_MANIFOLDS = [Sphere(1), Sphere(2), Sphere(5), FlatTorus(2), Hyperbolic(2), Product(Sphere(2), FlatTorus(1))]
ALL = [Euclidean(2)] + GRAD_MANIFOLDS


def _points(M, n=3, dtype=F64, seed=0):
    return M.random_base(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _leaf(t):
    return t.detach().clone().requires_grad_(True)


# ---------------------------------------------------------------- gradients at degenerate points
@pytest.mark.parametrize("M", GRAD_MANIFOLDS, ids=repr)
def test_gradcheck_exp_at_zero_and_log_dist_at_identical_points(M):
    x = _points(M)
    assert gradcheck(M.exp, (_leaf(x), _leaf(torch.zeros_like(x))))
    assert gradcheck(M.log, (_leaf(x), _leaf(x)))
    # dist has a kink at y = x: the safe-norm gradient 0 equals the central difference there
    assert gradcheck(M.dist, (_leaf(x), _leaf(x)))
    y = _leaf(x)
    (g,) = torch.autograd.grad(M.dist(x, y).sum(), [y])
    assert torch.equal(g, torch.zeros_like(g))


@pytest.mark.parametrize("M", GRAD_MANIFOLDS, ids=repr)
def test_gradcheck_log_dist_at_points_1e7_apart(M):
    x = _points(M)
    y = M.exp(x, 1e-7 * _unit_tangents(M, x, 1))
    assert float(M.dist(x, y).min()) > 5e-8
    # finite-difference step below the offset, so central differences do not straddle the kink
    assert gradcheck(M.log, (_leaf(x), _leaf(y)), eps=1e-10, atol=1e-5)
    assert gradcheck(M.dist, (_leaf(x), _leaf(y)), eps=1e-10, atol=1e-5)


@pytest.mark.parametrize("M", GRAD_MANIFOLDS, ids=repr)
def test_gradcheck_geodesic_path_and_transport_at_coincident_endpoints(M):
    x = _points(M)
    t = torch.tensor([0.0, 0.3, 1.0], dtype=F64)
    v = _unit_tangents(M, x, 2)
    assert gradcheck(lambda a, b: M.geodesic(a, b, t)[0], (_leaf(x), _leaf(x)))
    assert gradcheck(lambda a, b: M.geodesic(a, b, t)[1], (_leaf(x), _leaf(x)))
    assert gradcheck(M.transp, (_leaf(x), _leaf(x), _leaf(v)))


@pytest.mark.parametrize("M", GRAD_MANIFOLDS, ids=repr)
def test_geodesic_velocity_matches_jvp_of_the_path(M):
    """docs/math.md §6: the closed-form u_t equals d/dt of x_t (torch.func.jvp), also at t = 1."""
    x0, x1 = _points(M, 4, seed=1), _points(M, 4, seed=2)
    for t in (0.0, 0.37, 1.0):
        tt = torch.full((4,), t, dtype=F64)
        xt, ut = M.geodesic(x0, x1, tt)
        _, jv = torch.func.jvp(lambda s: M.geodesic(x0, x1, s)[0], (tt,), (torch.ones_like(tt),))
        assert torch.allclose(jv, ut, atol=1e-9), (t, (jv - ut).abs().max())
        assert torch.allclose(M.norm(xt, ut), M.dist(x0, x1), atol=1e-9)


# ---------------------------------------------------------------- cut locus
@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
@pytest.mark.parametrize("n", [1, 2, 5])
def test_sphere_antipodal_log_has_length_pi_and_documented_direction(n, dtype):
    M = Sphere(n)
    x = _points(M, 64, dtype)
    v = M.log(x, -x)
    assert torch.allclose(M.norm(x, v), torch.full((64,), math.pi, dtype=dtype), atol=1e-6)
    M.check_tangent(x, v)
    j = x.abs().argmin(-1, keepdim=True)  # documented rule: project e_j with the smallest |x_j|
    e = M.proju(x, torch.zeros_like(x).scatter(-1, j, 1.0))
    assert torch.allclose(v, math.pi * e / e.norm(dim=-1, keepdim=True), atol=1e-5)
    assert torch.equal(M.log(x, -x), v)  # deterministic
    assert float((M.exp(x, v) + x).abs().max()) < 1e-5
    assert bool(M.cut_locus_mask(x, -x).all()) and not bool(M.cut_locus_mask(x, x).any())


def test_sphere_log_at_the_axis_aligned_antipode_is_deterministic():
    M = Sphere(2)
    x = torch.tensor([0.0, 0.0, 1.0], dtype=F64)
    assert torch.allclose(M.log(x, -x), torch.tensor([math.pi, 0.0, 0.0], dtype=F64))  # e_0: first of the ties


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
def test_torus_log_picks_plus_pi_on_the_cut_locus(dtype):
    M = FlatTorus(2)
    x = torch.tensor([[0.5, 1.0], [4.0, 0.2], [0.0, 3.0]], dtype=dtype)
    for y in (M.projx(x + math.pi), M.projx(x - math.pi)):
        v = M.log(x, y)
        assert torch.allclose(v, torch.full_like(v, math.pi), atol=1e-6), v
        assert float(M.dist(M.exp(x, v), y).max()) < 1e-5
    assert bool(M.cut_locus_mask(x, M.projx(x + torch.tensor([math.pi, 0.1], dtype=dtype))).all())


def test_torus_log_wraps_and_features_are_continuous_across_zero():
    M = FlatTorus(1)
    v = M.log(torch.tensor([[0.1]], dtype=F64), torch.tensor([[2 * math.pi - 0.1]], dtype=F64))
    assert torch.allclose(v, torch.tensor([[-0.2]], dtype=F64))
    a, b = torch.tensor([[1e-9]], dtype=F64), torch.tensor([[2 * math.pi - 1e-9]], dtype=F64)
    assert M.feature_dim == 2 and float((M.features(a) - M.features(b)).abs().max()) < 1e-8
    assert float(M.projx(torch.tensor([-1e-9], dtype=torch.float32))) < 2 * math.pi  # never exactly 2π


# ---------------------------------------------------------------- float32: no NaN / Inf
@pytest.mark.parametrize("M", ALL, ids=repr)
def test_float32_ops_and_gradients_finite_on_degenerate_pairs(M):
    dt = torch.float32
    x = _points(M, 256, dt, seed=3)
    e = _unit_tangents(M, x, 4)
    ys = [x.clone(), M.exp(x, 1e-7 * e), M.exp(x, 1e-3 * e)]
    cut = M.cut_vector(x, e)
    if cut is not None:
        ys += [M.exp(x, cut), M.exp(x, cut * (1 - 1e-4 / M.norm(x, cut))[:, None])]
    for y in ys:
        xl, yl, el = _leaf(x), _leaf(y), _leaf(e)
        outs = [M.log(xl, yl), M.dist(xl, yl), M.exp(xl, 1e-7 * el), M.transp(xl, yl, el), M.geodesic(xl, yl, torch.rand(256))[1]]
        for o in outs:
            assert bool(torch.isfinite(o).all())
        grads = torch.autograd.grad(sum(o.sum() for o in outs), [xl, yl, el])
        assert all(bool(torch.isfinite(g).all()) for g in grads)


# ---------------------------------------------------------------- bad input
OPS = {
    "projx": lambda M, a, b: M.projx(a), "proju": lambda M, a, b: M.proju(a, b), "exp": lambda M, a, b: M.exp(a, b),
    "log": lambda M, a, b: M.log(a, b), "dist": lambda M, a, b: M.dist(a, b), "inner": lambda M, a, b: M.inner(a, b, b),
    "norm": lambda M, a, b: M.norm(a, b), "transp": lambda M, a, b: M.transp(a, a, b),
    "base_log_prob": lambda M, a, b: M.base_log_prob(a), "check_point": lambda M, a, b: M.check_point(a),
}


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("M", ALL, ids=repr)
def test_wrong_last_axis_and_integer_dtype_raise_with_expected_and_received(M, op):
    x = _points(M, 2)
    bad = torch.cat([x, x[:, :1]], -1)
    with pytest.raises(ValueError, match=rf"size {M.ambient_dim}.*got shape \(2, {M.ambient_dim + 1}\)"):
        OPS[op](M, bad, bad)
    with pytest.raises(TypeError, match=r"floating-point.*torch.int64"):
        OPS[op](M, x.long(), x.long())


@pytest.mark.parametrize("M", ALL, ids=repr)
def test_check_point_and_check_tangent_reject_nan_and_off_manifold(M):
    x = _points(M, 4)
    with pytest.raises(ValueError, match="NaN"):
        M.check_point(torch.where(torch.arange(M.ambient_dim) == 0, math.nan, x))
    with pytest.raises(ValueError, match="NaN"):
        M.check_tangent(x, torch.full_like(x, math.nan))
    if not isinstance(M, Euclidean):
        with pytest.raises(ValueError, match=r"off the manifold; largest violation .* > tolerance"):
            M.check_point(x + 10)
    if isinstance(M, (Sphere, Hyperbolic)):
        with pytest.raises(ValueError, match="not tangent"):
            M.check_tangent(x, x)


@pytest.mark.parametrize("cls", [Euclidean, Sphere, FlatTorus, Hyperbolic])
@pytest.mark.parametrize("n", [0, -1, 2.0, True, "2"])
def test_constructors_reject_bad_dimensions(cls, n):
    with pytest.raises(ValueError, match="integer >= 1"):
        cls(n)


def test_product_and_hyperbolic_argument_errors():
    with pytest.raises(ValueError, match="at least one factor"):
        Product()
    with pytest.raises(TypeError, match="factor 1 must be a gaugeflow Manifold, got str"):
        Product(Sphere(2), "torus")
    with pytest.raises(ValueError, match="std"):
        Hyperbolic(2, std=0.0)


# ---------------------------------------------------------------- closed forms and values
def test_closed_form_values():
    o = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    assert math.isclose(float(Hyperbolic(2).dist(o, Hyperbolic(2).exp(o, torch.tensor([0.0, 3.0, 4.0], dtype=F64)))), 5.0)
    assert math.isclose(float(Sphere(2).dist(o, torch.tensor([0.0, 1.0, 0.0], dtype=F64))), math.pi / 2)
    assert math.isclose(Sphere(2).log_volume(), math.log(4 * math.pi))
    assert math.isclose(Sphere(1).log_volume(), math.log(2 * math.pi))
    assert math.isclose(float(FlatTorus(3).base_log_prob(torch.zeros(3))), -3 * math.log(2 * math.pi), rel_tol=1e-6)


def test_hyperbolic_wrapped_normal_log_prob_matches_the_change_of_variables():
    M = Hyperbolic(3, std=0.7)
    v = 0.7 * torch.randn(500, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    x = M.exp(M.origin(F64).expand(500, 4), torch.cat([torch.zeros(500, 1, dtype=F64), v], -1))
    r = v.norm(dim=-1)
    want = torch.distributions.Normal(0.0, 0.7).log_prob(v).sum(-1) - 2 * torch.log(torch.sinh(r) / r)
    assert torch.allclose(M.base_log_prob(x), want, atol=1e-10)
    samples = M.random_base(20000, generator=torch.Generator().manual_seed(1), dtype=F64)
    r2 = M.dist(M.origin(F64), samples) ** 2  # = ‖v‖² ~ σ² χ²_3: mean 3σ²
    assert abs(float(r2.mean()) - 3 * 0.49) < 0.03


def test_value_semantics_and_dimensions():
    P = Product(Sphere(2), FlatTorus(1))
    assert (P.dim, P.ambient_dim, P.feature_dim) == (3, 4, 5)
    assert repr(P) == "Product(Sphere(2), FlatTorus(1))" and P == Product(Sphere(2), FlatTorus(1))
    assert hash(Sphere(2)) == hash(Sphere(2)) and Sphere(2) != Sphere(3) and Hyperbolic(2) != Hyperbolic(2, std=2.0)
    assert P.injectivity_radius == math.pi and Product(Euclidean(2), Hyperbolic(2)).cut_vector(
        torch.zeros(5), torch.ones(5)) is None


@pytest.mark.parametrize("M", GRAD_MANIFOLDS, ids=repr)
def test_operations_work_under_vmap(M):
    x, y = _points(M, 5, seed=4), _points(M, 5, seed=5)
    assert torch.allclose(torch.func.vmap(M.log)(x, y), M.log(x, y))
    assert torch.allclose(torch.func.vmap(M.transp)(x, y, M.log(x, y)), M.transp(x, y, M.log(x, y)))
    assert torch.allclose(torch.func.vmap(M.dist)(x, y), M.dist(x, y))


def test_hyperbolic_exp_stays_finite_up_to_the_stable_radius_in_float32():
    M = Hyperbolic(2)
    o = M.origin(torch.float32)
    u = torch.tensor([0.0, M.stable_radius(torch.float32), 0.0])
    y = M.exp(o, u)
    assert bool(torch.isfinite(y).all()) and abs(float(M.dist(o, y)) - float(u[1])) < 1e-4 * float(u[1])


# ---------------------------------------------------------------- issue 16: numerics at the extremes
@pytest.mark.parametrize("dtype, norms", [(torch.float32, [1e19, 1e20, 1e30, 3e38]), (F64, [1e155, 1e160, 1e300])],
                         ids=["float32", "float64"])
def test_sphere_exp_is_finite_on_the_sphere_and_in_the_plane_of_x_and_u_for_huge_finite_u(dtype, norms):
    M = Sphere(3)
    x = _points(M, len(norms), dtype, seed=6)
    e = _unit_tangents(M, x, 7)
    u = e * torch.tensor(norms, dtype=dtype)[:, None]
    assert bool(torch.isfinite(u).all())
    y = M.exp(x, u)
    assert bool(torch.isfinite(y).all())
    assert float(((y * y).sum(-1) - 1).abs().max()) < 10 * torch.finfo(dtype).eps
    w = M.proju(x, torch.randn(x.shape, generator=torch.Generator().manual_seed(8), dtype=dtype))
    w = w - (w * e).sum(-1, keepdim=True) * e  # ⟂ x and ⟂ u: y = cos θ x + sin θ e has no component along it
    assert float(((y * w).sum(-1) / w.norm(dim=-1)).abs().max()) < 10 * torch.finfo(dtype).eps
    # just below the overflow the plain branch is used and agrees with the closed form
    v = e[:1] * 3.0
    assert torch.allclose(M.exp(x[:1], v), torch.cos(torch.tensor(3.0, dtype=dtype)) * x[:1]
                          + torch.sin(torch.tensor(3.0, dtype=dtype)) * e[:1], atol=1e-6)


@pytest.mark.parametrize("M", ALL + [Hyperbolic(3)], ids=repr)
def test_dist_with_non_finite_input_is_nan_and_other_rows_are_untouched(M):
    x, y = _points(M, 4, seed=9), _points(M, 4, seed=10)
    bad = y.clone()
    bad[0, 0], bad[1, -1], bad[2, 0] = math.inf, math.nan, -math.inf
    d = M.dist(x, bad)
    assert bool(torch.isnan(d[:3]).all()), d
    assert torch.allclose(d[3], M.dist(x[3], y[3]))
    assert bool(torch.isnan(M.dist(bad, x)[:3]).all())


@pytest.mark.parametrize("radius", [5.0, 9.0, 12.0])
def test_hyperbolic_float32_dist_and_log_stay_correct_beyond_the_old_stable_radius(radius):
    """In float32 at radius 9 nearby points used to get dist exactly 0 and a log of norm ~1e9."""
    M = Hyperbolic(3)
    o = M.origin(F64)
    e = _unit_tangents(M, o.expand(64, 4), 11)
    x = M.exp(o, radius * e).float()  # float32 points far out ...
    y = M.exp(x.double(), 1e-3 * _unit_tangents(M, x.double(), 12)).float()  # ... and their neighbours
    d32, ref = M.dist(x, y), M.dist(x.double(), y.double())  # same float32 points, float64 arithmetic
    assert d32.dtype == torch.float32 and bool((d32 > 0).all())
    assert float(((d32.double() - ref) / ref).abs().max()) < 1e-5
    v = M.log(x, y)  # float32 storage of a tangent vector at radius r: relative error ~eps·e^r (module doc)
    bound = 1e-4 if radius <= M.stable_radius(torch.float32) else 10 * torch.finfo(torch.float32).eps * math.exp(radius)
    assert float(((M.norm(x.double(), v.double()) - ref) / ref).abs().max()) < bound
    far = M.dist(M.origin(torch.float32), x)
    assert float((far.double() - radius).abs().max()) < 1e-5 * radius


@pytest.mark.parametrize("n", [1, 2, 3, 8, 16, 64, 256, 1024])
def test_hyperbolic_default_base_stays_inside_the_stable_radius_in_every_dimension(n):
    from gaugeflow.geometry.base import BASE_RADIUS

    M = Hyperbolic(n)
    count = 20000 if n <= 64 else 2000
    x = M.random_base(count, generator=torch.Generator().manual_seed(n), dtype=F64)
    r = M.dist(M.origin(F64), x)
    assert float(r.max()) < BASE_RADIUS < M.stable_radius(torch.float32)
    assert abs(float((r * r).mean()) / (n * M.std ** 2) - 1) < 0.05  # radius² ~ σ² χ²_n
    x32 = M.random_base(256, generator=torch.Generator().manual_seed(n), dtype=torch.float32)
    M.check_point(x32)
    assert bool(torch.isfinite(M.base_log_prob(x32)).all())


@pytest.mark.parametrize("n, std, k", [(1, None, 1.0), (2, None, 1.0), (3, None, 1.0), (2, 1.0, 1.0), (3, None, 2.0)])
def test_wrapped_normal_density_integrates_to_one_in_polar_coordinates(n, std, k):
    """∫ p0 dvol = |S^{n−1}| ∫ p0(x(r)) (√k sinh(r/√k))^{n−1} dr = 1 (trapezoid rule, float64)."""
    from gaugeflow.geometry import WrappedNormal

    p0 = WrappedNormal(n, std=std, k=k)
    r = torch.linspace(0, 12 * p0.std, 200001, dtype=F64)
    z = r / math.sqrt(k)
    x = torch.zeros(r.shape[0], n + 1, dtype=F64)
    x[:, 0], x[:, 1] = math.sqrt(k) * torch.cosh(z), math.sqrt(k) * torch.sinh(z)
    sphere_area = 2 * math.pi ** (n / 2) / math.gamma(n / 2)
    integrand = torch.exp(p0.log_prob(x)) * (math.sqrt(k) * torch.sinh(z)) ** (n - 1) * sphere_area
    assert abs(float(torch.trapezoid(integrand, r)) - 1) < 1e-6


def test_hyperbolic_base_log_prob_matches_change_of_variables_for_the_default_scale():
    M = Hyperbolic(5)
    v = M.std * torch.randn(400, 5, generator=torch.Generator().manual_seed(13), dtype=F64)
    x = M.exp(M.origin(F64).expand(400, 6), torch.cat([torch.zeros(400, 1, dtype=F64), v], -1))
    r = v.norm(dim=-1)
    want = torch.distributions.Normal(0.0, torch.tensor(M.std, dtype=F64)).log_prob(v).sum(-1) - 4 * torch.log(torch.sinh(r) / r)
    assert torch.allclose(M.base_log_prob(x), want, atol=1e-10)
