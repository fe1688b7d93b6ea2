"""The fused training paths ``Manifold.geodesic_and_cut`` against the exact closed forms (issue 19).

``geodesic_and_cut`` (used by ``GeodesicPath`` under ``torch.no_grad()`` when nothing requires a
gradient) must give :meth:`geodesic`'s values to rounding and :meth:`cut_locus_mask`'s flags, on
random, near-coincident and near-cut pairs, and stay finite at the cut locus; differentiating through
the path must still go through the exact :meth:`geodesic` (gradcheck at ``x0 = x1``).
"""
import math

import pytest
import torch
from torch.autograd import gradcheck

from gaugeflow.geometry import Manifold
from gaugeflow.manifolds import SO3, Euclidean, FlatTorus, Hyperbolic, Product, Sphere
from gaugeflow.models import PlainFlow
from gaugeflow.testing.strategies import _unit_tangents
from gaugeflow.training import GeodesicPath, paths, rcfm_loss

F64 = torch.float64
EPS = torch.finfo(F64).eps
FUSED = [Sphere(1), Sphere(2), Sphere(5), FlatTorus(1), FlatTorus(3), Hyperbolic(2), Hyperbolic(4), SO3()]
ALL = FUSED + [Euclidean(3), Product(Sphere(2), FlatTorus(1))]


def _pairs(M, n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0, x1 = M.random_base(n, generator=g, dtype=F64), M.random_base(n, generator=g, dtype=F64)
    return x0, x1, torch.rand(n, generator=g, dtype=F64)


def _assert_equal_paths(M, x0, x1, t, atol):
    """Fused and exact paths agree: ``x_t`` in geodesic distance, ``u_t`` entrywise (``atol`` per row)."""
    x_ref, u_ref = M.geodesic(x0, x1, t)
    x_t, u_t, cut = M.geodesic_and_cut(x0, x1, t)
    assert x_t.shape == x_ref.shape and u_t.shape == u_ref.shape and cut.shape == x0.shape[:1]
    assert cut.dtype == torch.bool and torch.equal(cut, M.cut_locus_mask(x0, x1))
    ok = ~cut
    atol = torch.as_tensor(atol, dtype=F64).expand(x0.shape[:1])[ok]
    gap_x = M.dist(x_ref, x_t)[ok]
    gap_u = (u_ref - u_t).abs().amax(-1)[ok]
    assert bool((gap_x <= atol).all()), float((gap_x - atol).max())
    assert bool((gap_u <= atol).all()), float((gap_u - atol).max())
    return x_t, u_t, cut


@pytest.mark.parametrize("M", ALL, ids=repr)
def test_fused_path_equals_the_exact_path_on_random_pairs(M):
    x0, x1, t = _pairs(M)
    t[:3] = torch.tensor([0.0, 1.0, 0.5], dtype=F64)
    _assert_equal_paths(M, x0, x1, t, 1e-12)


@pytest.mark.parametrize("M", FUSED, ids=repr)
@pytest.mark.parametrize("eps", [1e-3, 1e-7, 1e-12, 0.0])
def test_fused_path_near_coincident_endpoints(M, eps):
    x0, _, t = _pairs(M, n=64, seed=1)
    x1 = M.exp(x0, eps * _unit_tangents(M, x0, 2)) if eps else x0.clone()
    x_t, u_t, cut = _assert_equal_paths(M, x0, x1, t, 1e-12)
    assert not bool(cut.any())
    if not isinstance(M, Hyperbolic):
        # relative accuracy of the (tiny) velocity, not only absolute: |u_t| = eps. (On the
        # hyperboloid both routes lift the time coordinate from the spatial part, rounded to
        # eps·x_0 absolute, so only the absolute agreement above is meaningful there.)
        u_ref = M.geodesic(x0, x1, t)[1]
        assert float((u_t - u_ref).abs().max()) <= 1e-7 * eps
    if eps == 0.0:
        assert float(M.dist(x_t, x0).max()) <= 1e-15 and float(u_t.abs().max()) == 0.0


@pytest.mark.parametrize("M", [M for M in FUSED if not math.isinf(M.injectivity_radius)], ids=repr)
@pytest.mark.parametrize("delta", [1e-2, 1e-4])
def test_fused_path_near_the_cut_locus(M, delta):
    """A distance ``δ`` from the cut locus the direction of ``log`` is conditioned like ``eps/δ`` (the
    exact path's own rounding is of that size), so the two agree to ``1e-12 + 32 eps/δ``."""
    x0, _, t = _pairs(M, n=64, seed=2)
    v = _unit_tangents(M, x0, 3)
    to_cut = M.cut_vector(x0, v)
    reach = M.norm(x0, to_cut)[:, None]
    x1 = M.exp(x0, to_cut * (1 - delta / reach))
    _, _, cut = _assert_equal_paths(M, x0, x1, t, 1e-12 + 32 * EPS / delta)
    assert not bool(cut.any())


@pytest.mark.parametrize("M", [M for M in FUSED if not math.isinf(M.injectivity_radius)], ids=repr)
def test_fused_path_flags_cut_pairs_and_stays_finite_there(M):
    x0, _, t = _pairs(M, n=32, seed=3)
    v = _unit_tangents(M, x0, 4)
    x1 = M.exp(x0, M.cut_vector(x0, v))  # on the cut locus (to rounding)
    x1[16:] = M.exp(x0[16:], M.cut_vector(x0[16:], v[16:]) * (1 - 1e-9))  # within tol("cut") = 1e-6
    x_t, u_t, cut = M.geodesic_and_cut(x0, x1, t)
    assert bool(cut.all()) and torch.equal(cut, M.cut_locus_mask(x0, x1))
    assert bool(torch.isfinite(x_t).all() and torch.isfinite(u_t).all())


@pytest.mark.parametrize("M", [Sphere(2), FlatTorus(2), Hyperbolic(2), SO3()], ids=repr)
def test_float32_fused_path_matches_the_exact_one(M):
    g = torch.Generator().manual_seed(4)
    x0, x1 = M.random_base(512, generator=g), M.random_base(512, generator=g)
    t = torch.rand(512, generator=g)
    x_ref, u_ref = M.geodesic(x0, x1, t)
    x_t, u_t, cut = M.geodesic_and_cut(x0, x1, t)
    far = (M.dist(x0, x1) < M.injectivity_radius - 0.1) if not math.isinf(M.injectivity_radius) else ~cut
    assert x_t.dtype == u_t.dtype == torch.float32
    assert float(M.dist(x_ref, x_t)[far].max()) < 2e-5
    assert float((u_ref - u_t)[far].abs().max()) < 5e-5 * max(1.0, float(u_ref.abs().max()))


@pytest.mark.parametrize("M", FUSED, ids=repr)
def test_fused_pass_leaves_its_inputs_alone_and_broadcasts(M):
    """The passes work in place on their own buffers (SO(3): entry-major copies); the endpoints, times
    and a gradient-tracking input are untouched, one point against a batch broadcasts, and an empty
    batch gives empty results."""
    x0, x1, t = _pairs(M, n=8, seed=7)
    kept = [v.clone() for v in (x0, x1, t)]
    a = x0.clone().requires_grad_(True)
    x_t, u_t, cut = M.geodesic_and_cut(a, x1, t)
    M.cut_locus_mask(a, x1)
    assert all(torch.equal(v, k) for v, k in zip((x0, x1, t), kept)) and torch.equal(a.detach(), x0)
    one = M.geodesic_and_cut(x0[3], x1, t)
    x_ref, u_ref = M.geodesic(x0[3].expand_as(x1), x1, t)
    assert one[0].shape == x1.shape and bool(torch.equal(one[2], M.cut_locus_mask(x0[3], x1)))
    torch.testing.assert_close(one[0], x_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(one[1], u_ref, rtol=0, atol=1e-12)
    empty = M.geodesic_and_cut(x0[:0], x1[:0], t[:0])
    assert [v.shape[0] for v in empty] == [0, 0, 0] and M.cut_locus_mask(x0[:0], x1[:0]).shape == (0,)


def test_the_default_hook_is_geodesic_and_cut_locus_mask():
    M = Product(Sphere(2), FlatTorus(1))
    assert type(M).geodesic_and_cut is Manifold.geodesic_and_cut
    x0, x1, t = _pairs(M, n=16)
    x_t, u_t, cut = M.geodesic_and_cut(x0, x1, t)
    x_ref, u_ref = M.geodesic(x0, x1, t)
    assert torch.equal(x_t, x_ref) and torch.equal(u_t, u_ref) and torch.equal(cut, M.cut_locus_mask(x0, x1))


# ---------------------------------------------------------------- GeodesicPath: which route, and gradients
@pytest.mark.parametrize("M", [Sphere(2), FlatTorus(2), Hyperbolic(2), SO3()], ids=repr)
def test_path_on_data_is_fused_and_equals_the_differentiable_route(M):
    x0, x1, t = _pairs(M, n=64, seed=5)
    fused = GeodesicPath(M).sample(x0, x1, t)
    assert not fused.x_t.requires_grad and not fused.u_t.requires_grad
    a = x0.clone().requires_grad_(True)
    exact = GeodesicPath(M).sample(a, x1, t)  # a gradient is wanted: the exact geodesic
    assert exact.x_t.requires_grad and exact.u_t.requires_grad
    torch.testing.assert_close(fused.x_t, exact.x_t.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(fused.u_t, exact.u_t.detach(), rtol=0, atol=1e-12)
    on_device = GeodesicPath(M).sample(x0, x1, t, host_checks=False)
    assert torch.equal(on_device.x_t, fused.x_t) and torch.equal(on_device.u_t, fused.u_t)


@pytest.mark.parametrize("M", [Sphere(2), FlatTorus(2), Hyperbolic(2), SO3()], ids=repr)
def test_gradcheck_through_the_path_at_coincident_endpoints(M):
    """Differentiating through GeodesicPath (endpoints or times) uses the exact closed form: gradients
    at ``x0 = x1`` are finite and equal to central differences."""
    x = M.random_base(3, generator=torch.Generator().manual_seed(6), dtype=F64)
    t = torch.tensor([0.0, 0.3, 1.0], dtype=F64)
    path = GeodesicPath(M)

    def leaf(z):
        return z.detach().clone().requires_grad_(True)

    assert gradcheck(lambda a, b: path.sample(a, b, t).x_t, (leaf(x), leaf(x)))
    assert gradcheck(lambda a, b: path.sample(a, b, t).u_t, (leaf(x), leaf(x)))
    y = M.exp(x, 0.5 * _unit_tangents(M, x, 7))
    assert gradcheck(lambda s: path.sample(x, y, s).u_t, (leaf(t.clamp(0.1, 0.9)),))


def test_rcfm_loss_gradients_equal_on_both_routes():
    M = Sphere(2)
    torch.manual_seed(0)
    model = PlainFlow(M, hidden=16).double()
    x0, x1, t = _pairs(M, n=64, seed=8)
    fused = torch.autograd.grad(rcfm_loss(model, x0, x1, t), list(model.parameters()))
    exact = torch.autograd.grad(rcfm_loss(model, x0.clone().requires_grad_(True), x1, t), list(model.parameters()))
    for a, b in zip(fused, exact):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("n_cut", [0, 3])
def test_on_device_round_reads_no_count_and_resamples_cut_pairs(n_cut, no_host_reads):
    """The trainer's policy (``host_checks=False``): one resampling round on every device, no host read."""
    M = Sphere(2)
    x0, x1, t = _pairs(M, n=32, seed=9)
    x1[:n_cut] = -x0[:n_cut]
    with no_host_reads():
        s = GeodesicPath(M).sample(x0, x1, t, generator=torch.Generator().manual_seed(0), host_checks=False)
    assert int(s.n_cut) == n_cut and bool(s.valid.all())
    assert torch.equal(s.x0[n_cut:], x0[n_cut:]) and not torch.equal(s.x0[:n_cut], x0[:n_cut]) or n_cut == 0