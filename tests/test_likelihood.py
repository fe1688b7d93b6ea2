"""Divergence and exact likelihood (docs/math.md §7; issue 4, acceptance on divergence and densities)."""
import math

import pytest
import torch
from torch import nn

from gaugeflow.data import wrapped_mixture
from gaugeflow.manifolds import Euclidean, FlatTorus, Hyperbolic, Product, Sphere
from gaugeflow.models import GaugeFlow, HigherGaugeFlow, PlainFlow
from gaugeflow.sampling import LogProbInfo, SolverError, draw_probes, exact_divergence, hutchinson_divergence, log_prob
from gaugeflow.training import rcfm_loss



@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small-batch ODE solves are dispatch-bound; extra intra-op threads only add contention."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


F64 = torch.float64
EZ = torch.tensor([0.0, 0.0, 1.0], dtype=F64)
OMEGA = torch.tensor([0.3, -0.5, 1.0], dtype=F64)


def _points(M, n=32, dtype=F64, seed=0):
    return M.random_base(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _height_field(x):
    return Sphere(2).proju(x, EZ.expand_as(x))


def _rotation_field(x):
    return torch.cross(OMEGA.expand_as(x), x, dim=-1)


class Field(nn.Module):
    """A time-independent field as a model."""

    def __init__(self, M, fn):
        super().__init__()
        self.manifold, self.fn = M, fn

    def forward(self, x, t):
        return self.fn(x)


# ---------------------------------------------------------------------------------- divergence
def test_exact_divergence_on_the_sphere_analytic():
    x = _points(Sphere(2), 64)
    v, div = exact_divergence(_height_field, Sphere(2), x)
    assert torch.equal(v, _height_field(x))
    err = float((div + 2 * x[:, 2]).abs().max())
    print(f"S² proju(x, e_z): max |div + 2z| = {err:.2e}")
    assert err < 1e-12
    _, div_rot = exact_divergence(_rotation_field, Sphere(2), x)
    print(f"S² rotation: max |div| = {float(div_rot.abs().max()):.2e}")
    assert float(div_rot.abs().max()) < 1e-12


def _per_probe(fn, M, x, z):
    """Hutchinson estimates of every probe separately, in one call: ``[n, B]``."""
    n, B, D = z.shape
    _, est = hutchinson_divergence(fn, M, x.repeat(n, 1), z.reshape(1, n * B, D))
    return est.reshape(n, B)


def _check_unbiased(fn, M, x, probe, n=20000, seed=1):
    """The probe mean agrees with the exact divergence within 5 standard errors."""
    z = draw_probes(n, x, probe, torch.Generator().manual_seed(seed))
    per = _per_probe(fn, M, x, z)
    _, mean = hutchinson_divergence(fn, M, x, z)
    _, exact = exact_divergence(fn, M, x)
    se = per.std(0) / math.sqrt(n)
    assert torch.allclose(per.mean(0), mean, atol=1e-10)
    z_score = float(((mean - exact).abs() / (se + 1e-15)).max())
    err = float((mean - exact).abs().max())
    assert err < 1e-12 or z_score < 5, (err, z_score)
    return err, z_score


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
@pytest.mark.parametrize("fn, name", [(_height_field, "height"), (_rotation_field, "rotation")])
def test_hutchinson_is_unbiased_on_the_sphere(fn, name, probe):
    err, z_score = _check_unbiased(fn, Sphere(2), _points(Sphere(2), 8), probe)
    print(f"Hutchinson {name}/{probe} (20000 probes): max |mean − exact| = {err:.2e}, max z-score {z_score:.2f}")


@pytest.mark.parametrize("M", [Hyperbolic(2), Product(Sphere(2), FlatTorus(1)), Sphere(3)], ids=repr)
def test_hutchinson_is_unbiased_for_a_network_field(M):
    torch.manual_seed(0)
    model = GaugeFlow(M, hidden=16).double()
    err, z_score = _check_unbiased(lambda y: model(y, 0.4), M, _points(M, 6), "gaussian", seed=2)  # noqa: E731
    print(f"{M}: Hutchinson vs exact, max |mean − exact| = {err:.2e}, max z-score {z_score:.2f}")


def _fd_divergence(field, x, h=1e-5):
    """Central finite differences of ``Σ_i ∂V_i/∂x_i`` (flat manifolds: P = I)."""
    div = torch.zeros(x.shape[0], dtype=x.dtype)
    for i in range(x.shape[1]):
        e = torch.zeros_like(x)
        e[:, i] = h
        div += (field(x + e)[:, i] - field(x - e)[:, i]) / (2 * h)
    return div


@pytest.mark.parametrize("M", [FlatTorus(2), FlatTorus(3), Euclidean(2), Euclidean(5)], ids=repr)
@pytest.mark.parametrize("cls", [PlainFlow, GaugeFlow, HigherGaugeFlow])
def test_exact_divergence_matches_finite_differences_on_flat_manifolds(M, cls):
    torch.manual_seed(0)
    model = cls(M, hidden=16).double()
    x = _points(M, 16)
    field = lambda y: model(y, 0.7)  # noqa: E731
    _, div = exact_divergence(field, M, x)
    with torch.no_grad():
        fd = _fd_divergence(field, x)
    assert float((div - fd).abs().max()) < 1e-7, float((div - fd).abs().max())


def test_exact_divergence_on_hyperbolic_matches_the_chart_formula():
    # chart φ(s) = (√(1+|s|²), s): √det g = (1+|s|²)^(-1/2), chart components of V = its spatial part;
    # div V = (1/√g) Σ_i ∂_i(√g V^i)
    M = Hyperbolic(2)
    torch.manual_seed(0)
    model = HigherGaugeFlow(M, hidden=16).double()
    field = lambda y: model(y, 0.3)  # noqa: E731
    x = _points(M, 16)
    _, div = exact_divergence(field, M, x)

    def weighted(s):
        return field(M.projx(torch.cat([torch.ones_like(s[:, :1]), s], -1)))[:, 1:] / (1 + (s * s).sum(-1, keepdim=True)).sqrt()

    s = x[:, 1:]
    with torch.no_grad():
        chart = _fd_divergence(weighted, s) * (1 + (s * s).sum(-1)).sqrt()
    print(f"H²: max |exact − chart formula| = {float((div - chart).abs().max()):.2e}")
    assert float((div - chart).abs().max()) < 1e-6 * max(1.0, float(chart.abs().max()))


# ---------------------------------------------------------------------------------- log_prob
def test_log_prob_of_a_linear_flow_on_the_plane_is_exact():
    a = 0.7
    M = Euclidean(2)
    model = Field(M, lambda x: a * x)
    x1 = _points(M, 16) * 2
    expected = M.base_log_prob(x1 * math.exp(-a)) - 2 * a
    for method, steps in (("rk4", 20), ("dopri5", 1)):
        lp, info = log_prob(model, x1, steps=steps, method=method, atol=1e-10, rtol=1e-10, return_info=True)
        assert isinstance(info, LogProbInfo) and torch.allclose(info.base_log_prob + info.delta, lp)
        assert float((lp - expected).abs().max()) < 1e-6
    lp_h = log_prob(model, x1, steps=20, divergence="hutchinson", n_probes=3)  # zᵀ(aI)z for ±1 probes is exact
    assert float((lp_h - expected).abs().max()) < 1e-6


def test_log_prob_of_the_height_flow_on_the_sphere_is_exact():
    # V = proju(x, e_z): z' = 1 − z², z(t) = tanh(t + atanh z0) and log p1 = log p0 + ∫ 2 z dt
    model = Field(Sphere(2), _height_field)
    x1 = _points(Sphere(2), 32)
    z1 = x1[:, 2]
    c = torch.atanh(z1) - 1
    expected = -math.log(4 * math.pi) + 2 * (torch.log(torch.cosh(c + 1)) - torch.log(torch.cosh(c)))
    lp, info = log_prob(model, x1, steps=50, return_info=True)
    print(f"S² height flow: max |log p − exact| = {float((lp - expected).abs().max()):.2e}")
    assert float((lp - expected).abs().max()) < 1e-6
    assert torch.allclose(info.x0[:, 2], torch.tanh(c), atol=1e-6)


def _mc_sphere_integral(model, n=8000, seed=0):
    """∫ p dvol over S² = 4π · E_{x ~ U(S²)} p(x)."""
    x = _points(Sphere(2), n, dtype=torch.float32, seed=seed)
    return 4 * math.pi * float(log_prob(model, x, steps=16).double().exp().mean())


def _quick_fit(model, data, steps, lr=3e-3, batch=256, seed=0):
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        idx = torch.randint(0, len(data.train), (batch,), generator=gen)
        x0 = model.manifold.random_base(batch, generator=gen)
        loss = rcfm_loss(model, x0, data.train[idx], generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@pytest.mark.slow
def test_log_prob_is_a_density_on_the_sphere():
    torch.manual_seed(0)
    untrained = GaugeFlow(Sphere(2), hidden=32)
    data = wrapped_mixture(Sphere(2), n_components=4, n_train=2000, n_val=10, n_test=10, scale=0.3, seed=1)
    trained = _quick_fit(PlainFlow(Sphere(2), hidden=32), data, steps=300)
    values = {"untrained": _mc_sphere_integral(untrained), "trained": _mc_sphere_integral(trained)}
    nll = -float(log_prob(trained, data.train[:500], steps=16).mean())
    print(f"S² MC ∫p: {values}; trained train NLL {nll:.3f} vs uniform {math.log(4 * math.pi):.3f}")
    assert nll < math.log(4 * math.pi) - 0.3  # the trained density is far from uniform
    for name, v in values.items():
        assert abs(v - 1) < 0.05, (name, v)


@pytest.mark.slow
def test_log_prob_is_a_density_on_the_plane():
    M = Euclidean(2)
    torch.manual_seed(0)
    data = wrapped_mixture(M, n_components=3, n_train=2000, n_val=10, n_test=10, scale=0.5, seed=2)
    trained = _quick_fit(HigherGaugeFlow(M, hidden=32), data, steps=300)
    sigma, n = 3.0, 8000
    q = torch.randn(n, 2, generator=torch.Generator().manual_seed(3)) * sigma
    log_q = -0.5 * (q * q).sum(-1) / sigma**2 - math.log(2 * math.pi * sigma**2)
    out = {}
    for name, model in (("untrained", HigherGaugeFlow(M, hidden=32)), ("trained", trained)):
        out[name] = float((log_prob(model, q, steps=16) - log_q).double().exp().mean())
    print(f"R² MC ∫p with a N(0, 9 I) proposal: {out}")
    for name, v in out.items():
        assert abs(v - 1) < 0.05, (name, v)


def test_log_prob_failures_and_front_door():
    M = Sphere(2)
    x = _points(M, 4)
    nan_model = Field(M, lambda y: y * float("nan"))
    for method in ("rk4", "dopri5"):
        with pytest.raises(SolverError):
            log_prob(nan_model, x, steps=4, method=method)
    ok = Field(M, _height_field)
    for kwargs, err in [
        (dict(divergence="approx"), ValueError),
        (dict(divergence="hutchinson", n_probes=0), ValueError),
        (dict(divergence="hutchinson", probe="sobol"), ValueError),
        (dict(generator=0), TypeError),
        (dict(steps=-1), ValueError),
        (dict(method="leapfrog"), ValueError),
    ]:
        with pytest.raises(err):
            log_prob(ok, x, **kwargs)
    with pytest.raises(ValueError, match="off the manifold"):
        log_prob(ok, 2 * x)


def test_hutchinson_log_prob_is_reproducible_with_a_generator():
    torch.manual_seed(0)
    model = GaugeFlow(Sphere(2), hidden=16).double()
    x = _points(Sphere(2), 8)
    a = log_prob(model, x, steps=8, divergence="hutchinson", n_probes=2, generator=torch.Generator().manual_seed(5))
    b = log_prob(model, x, steps=8, divergence="hutchinson", n_probes=2, generator=torch.Generator().manual_seed(5))
    exact = log_prob(model, x, steps=8)
    assert torch.equal(a, b) and float((a - exact).abs().max()) < 0.5
