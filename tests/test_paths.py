"""Geodesic conditional paths and the RCFM loss (docs/math.md §6; issue 4, acceptance on paths)."""
import math

import pytest
import torch
from torch.func import jvp

from gaugeflow.manifolds import Euclidean, FlatTorus, Hyperbolic, Product, Sphere
from gaugeflow.models import GaugeFlow, PlainFlow
from gaugeflow.training import GeodesicPath, PathSample, rcfm_loss

MANIFOLDS = [Euclidean(3), Sphere(2), Sphere(4), FlatTorus(2), Hyperbolic(2), Product(Sphere(2), FlatTorus(1), Euclidean(1))]
IDS = [repr(M) for M in MANIFOLDS]


def _pairs(M, n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return M.random_base(n, generator=g, dtype=torch.float64), M.random_base(n, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("M", MANIFOLDS, ids=IDS)
def test_path_matches_jvp_of_the_geodesic(M):
    x0, x1 = _pairs(M)
    t = torch.rand(len(x0), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x_t, u_t = GeodesicPath(M).sample(x0, x1, t)
    u = M.log(x0, x1)

    def curve(s):
        return M.exp(x0, s[:, None] * u)

    ref_x, ref_u = jvp(curve, (t,), (torch.ones_like(t),))
    assert torch.allclose(x_t, ref_x, atol=1e-10), float((x_t - ref_x).abs().max())
    assert torch.allclose(u_t, ref_u, atol=1e-8), float((u_t - ref_u).abs().max())
    M.check_tangent(x_t, u_t)


@pytest.mark.parametrize("M", MANIFOLDS, ids=IDS)
def test_path_end_points_and_speed(M):
    x0, x1 = _pairs(M, seed=3)
    path = GeodesicPath(M)
    a, ua = path.sample(x0, x1, 0.0)
    b, ub = path.sample(x0, x1, 1.0)
    assert float(M.dist(a, x0).max()) < 1e-9 and float(M.dist(b, x1).max()) < 1e-9
    # a geodesic has constant speed = dist(x0, x1), and it is finite at t = 1
    d = M.dist(x0, x1)
    assert torch.allclose(M.norm(a, ua), d, atol=1e-8) and torch.allclose(M.norm(b, ub), d, atol=1e-8)


def test_path_sample_unpacks_and_reports():
    M = Sphere(2)
    x0, x1 = _pairs(M, n=8)
    ps = GeodesicPath(M).sample(x0, x1, torch.full((8,), 0.5, dtype=torch.float64))
    assert isinstance(ps, PathSample)
    x_t, u_t = ps
    assert x_t is ps.x_t and u_t is ps.u_t
    assert (ps.n_cut, ps.n_resampled, ps.n_masked) == (0, 0, 0) and bool(ps.valid.all())


def _antipodal_batch(n=16, n_cut=5):
    M = Sphere(2)
    x0, x1 = _pairs(M, n=n, seed=7)
    x1[:n_cut] = -x0[:n_cut]
    return M, x0, x1


def test_cut_locus_pairs_are_resampled_and_counted():
    M, x0, x1 = _antipodal_batch()
    ps = GeodesicPath(M).sample(x0, x1, 0.5, generator=torch.Generator().manual_seed(0))
    assert ps.n_cut == 5 and ps.n_resampled >= 5 and ps.n_masked == 0
    assert bool(ps.valid.all())
    assert not torch.equal(ps.x0[:5], x0[:5]) and torch.equal(ps.x0[5:], x0[5:])
    assert not bool(M.cut_locus_mask(ps.x0, x1).any())
    # targets are never silently zero
    assert float(M.norm(ps.x_t, ps.u_t).min()) > 1e-3


def test_cut_locus_pairs_are_masked_or_raise():
    M, x0, x1 = _antipodal_batch()
    ps = GeodesicPath(M, cut_locus="mask").sample(x0, x1, 0.3)
    assert ps.n_cut == 5 and ps.n_masked == 5 and ps.n_resampled == 0
    assert ps.valid.tolist() == [False] * 5 + [True] * 11
    with pytest.raises(ValueError, match="cut locus"):
        GeodesicPath(M, cut_locus="raise").sample(x0, x1, 0.3)


def test_torus_cut_locus_is_detected():
    M = FlatTorus(2)
    x0, x1 = _pairs(M, n=4)
    x1[0, 1] = (x0[0, 1] + math.pi) % (2 * math.pi)
    assert GeodesicPath(M, cut_locus="mask").sample(x0, x1, 0.5).n_masked == 1


@pytest.mark.parametrize(
    "kwargs, err",
    [
        (dict(x0=torch.zeros(4, 2)), ValueError),  # wrong ambient size
        (dict(t=torch.rand(3)), ValueError),  # wrong number of times
        (dict(t=torch.tensor([0.1, 0.2, 1.5, 0.3])), ValueError),  # t outside [0, 1]
        (dict(t="0.5"), TypeError),
        (dict(x0=torch.zeros(4, 3, dtype=torch.long)), TypeError),
    ],
)
def test_path_front_door(kwargs, err):
    M = Sphere(2)
    x0, x1 = _pairs(M, n=4)
    args = dict(x0=x0.float(), x1=x1.float(), t=torch.rand(4))
    args.update(kwargs)
    with pytest.raises(err):
        GeodesicPath(M).sample(**args)
    with pytest.raises(ValueError):
        GeodesicPath(M, cut_locus="ignore")


def test_rcfm_loss_uses_the_manifold_metric():
    M = Hyperbolic(2)
    torch.manual_seed(0)
    model = PlainFlow(M, hidden=16).double()
    x0, x1 = _pairs(M, n=32)
    t = torch.rand(32, dtype=torch.float64)
    loss, info = rcfm_loss(model, x0, x1, t, return_info=True)
    x_t, u_t = GeodesicPath(M).sample(x0, x1, t)
    err = model(x_t, t) - u_t
    expected = M.inner(x_t, err, err).mean()
    euclid = (err * err).sum(-1).mean()
    assert torch.allclose(loss, expected, rtol=1e-12)
    assert not torch.allclose(loss, euclid, rtol=1e-3)  # the Minkowski norm, not the ambient one
    assert info.n_used == 32 and info.n_masked == 0


def test_rcfm_loss_is_zero_for_the_conditional_field_on_flat_space():
    # one pair broadcast over times: V(x, t) = x1 − x0 is exactly the conditional target
    M = Euclidean(2)
    x0 = torch.tensor([[0.0, 1.0]]).repeat(8, 1)
    x1 = torch.tensor([[2.0, -1.0]]).repeat(8, 1)

    class Constant(torch.nn.Module):
        manifold = M

        def forward(self, x, t):
            return (x1 - x0)[: len(x)]

    assert float(rcfm_loss(Constant(), x0, x1)) == 0.0
    assert float(rcfm_loss(PlainFlow(M), x0, x1).detach()) > 0.0


def test_rcfm_loss_masks_cut_pairs_and_backpropagates():
    M, x0, x1 = _antipodal_batch()
    model = GaugeFlow(M, hidden=8).double()
    t = torch.rand(16, dtype=torch.float64)
    loss, info = rcfm_loss(model, x0, x1, t, path=GeodesicPath(M, cut_locus="mask"), return_info=True)
    x_t, u_t = GeodesicPath(M, cut_locus="mask").sample(x0, x1, t)
    err = model(x_t, t) - u_t
    assert torch.allclose(loss, (err[5:] ** 2).sum(-1).mean())
    assert (info.n_used, info.n_cut, info.n_masked) == (11, 5, 5)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    with pytest.raises(ValueError, match="cut locus"):
        rcfm_loss(model, x0[:5], x1[:5], path=GeodesicPath(M, cut_locus="mask"))


def test_rcfm_loss_time_sampler_manifold_override_and_errors():
    M = Sphere(2)
    x0, x1 = _pairs(M, n=8)
    model = PlainFlow(M).double()
    seen = []

    def sampler(n, generator, dtype, device):
        seen.append(n)
        return torch.full((n,), 0.25, dtype=dtype, device=device)

    a = rcfm_loss(model, x0, x1, time_sampler=sampler)
    b = rcfm_loss(model, x0, x1, 0.25)
    assert seen == [8] and torch.allclose(a, b)
    wrapped = torch.nn.Sequential()  # no `manifold` attribute, like a DDP wrapper
    wrapped.forward = model.forward
    assert torch.allclose(rcfm_loss(wrapped, x0, x1, 0.25, manifold=M), b)
    with pytest.raises(TypeError, match="manifold"):
        rcfm_loss(wrapped, x0, x1)
    with pytest.raises(ValueError, match="path is on"):
        rcfm_loss(model, x0, x1, path=GeodesicPath(Sphere(3)))


def _loss_without_reads(model, x0, x1, t, path, no_host_reads):
    with no_host_reads():  # (also switches off GeodesicPath's CPU-only count read)
        return rcfm_loss(model, x0, x1, t, path=path, generator=torch.Generator().manual_seed(3),
                         return_info=True, host_checks=False)


def test_no_host_reads_guard_catches_a_read(no_host_reads):
    with pytest.raises(AssertionError, match="device→host"), no_host_reads():
        float(torch.ones(()))


@pytest.mark.parametrize("M", [Sphere(2), FlatTorus(2), Hyperbolic(2), Euclidean(3)], ids=repr)
def test_loss_without_host_checks_reads_nothing_and_equals_the_checked_loss(M, no_host_reads):
    x0, x1 = _pairs(M, n=32, seed=11)
    t = torch.rand(32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    model = PlainFlow(M, hidden=8).double()
    checked = rcfm_loss(model, x0, x1, t)
    loss, info = _loss_without_reads(model, x0, x1, t, GeodesicPath(M), no_host_reads)
    torch.testing.assert_close(loss, checked, rtol=1e-13, atol=0)
    assert int(info.n_masked) == 0


def test_cut_pairs_without_host_checks_are_resampled_or_masked_on_the_device(no_host_reads):
    M, x0, x1 = _antipodal_batch()
    model = PlainFlow(M, hidden=8).double()
    t = torch.rand(16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    masked_ref = rcfm_loss(model, x0, x1, t, path=GeodesicPath(M, cut_locus="mask"))
    ps = GeodesicPath(M).sample(x0, x1, t, generator=torch.Generator().manual_seed(0), host_checks=False)
    assert isinstance(ps.n_cut, torch.Tensor) and int(ps.n_cut) == 5 and int(ps.n_resampled) == 5
    assert int(ps.n_masked) == 0 and bool(ps.valid.all()) and torch.equal(ps.x0[5:], x0[5:])
    assert not bool(M.cut_locus_mask(ps.x0, x1).any())
    loss, info = _loss_without_reads(model, x0, x1, t, GeodesicPath(M, cut_locus="mask"), no_host_reads)
    torch.testing.assert_close(loss, masked_ref, rtol=1e-13, atol=0)  # the weighted mean drops the 5 cut pairs
    loss.backward()  # masked pairs contribute nothing, the rest a finite gradient
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_masked_pairs_on_the_differentiable_route_carry_finite_placeholders(no_host_reads):
    # inputs that require a gradient take Manifold.geodesic, which is ill-defined at exact antipodes;
    # the device-side mask must still leave finite values, so that a zero weight drops the pair
    M, x0, x1 = _antipodal_batch()
    x0 = x0.clone().requires_grad_(True)
    t = torch.rand(16, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with no_host_reads():
        ps = GeodesicPath(M, cut_locus="mask").sample(x0, x1, t, host_checks=False)
    assert ps.valid.tolist() == [False] * 5 + [True] * 11
    assert torch.equal(ps.x_t[:5], x1[:5]) and torch.equal(ps.u_t[:5], torch.zeros(5, 3, dtype=torch.float64))
    ref_x, ref_u = M.geodesic(x0[5:], x1[5:], t[5:])
    torch.testing.assert_close(ps.x_t[5:], ref_x, rtol=0, atol=0)
    torch.testing.assert_close(ps.u_t[5:], ref_u, rtol=0, atol=0)
    model = PlainFlow(M, hidden=8).double()
    checked = rcfm_loss(model, x0.detach(), x1, t, path=GeodesicPath(M, cut_locus="mask"))
    loss, _ = _loss_without_reads(model, x0, x1, t, GeodesicPath(M, cut_locus="mask"), no_host_reads)
    torch.testing.assert_close(loss, checked, rtol=1e-13, atol=0)
    loss.backward()
    assert torch.isfinite(x0.grad[5:]).all() and bool(x0.grad[5:].abs().sum() > 0)
