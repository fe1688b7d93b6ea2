"""ODE sampling on manifolds (docs/math.md §7; issue 4, acceptance on solvers)."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from gaugeflow.manifolds import Euclidean, FlatTorus, Product, Sphere
from gaugeflow.models import GaugeFlow, HigherGaugeFlow, PlainFlow
from gaugeflow.sampling import FIXED_SOLVERS, SampleInfo, SolverError, sample



@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small-batch ODE solves are dispatch-bound; extra intra-op threads only add contention."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


OMEGA = torch.tensor([0.3, -0.5, 1.0], dtype=torch.float64)


class Rotation(nn.Module):
    """``V(x, t) = (1 + t) ω × x`` on S²: its flow rotates by the angle ``|ω|(t + t²/2)`` about ``ω``."""

    def __init__(self, omega=OMEGA):
        super().__init__()
        self.manifold = Sphere(2)
        self.register_buffer("omega", omega)

    def forward(self, x, t):
        t = torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1)
        return (1 + t) * torch.cross(self.omega.to(x.dtype).expand_as(x), x, dim=-1)

    def exact(self, x0, t0, t1):
        w = self.omega.to(x0.dtype)
        theta = float(w.norm()) * ((t1 + t1**2 / 2) - (t0 + t0**2 / 2))
        k = w / w.norm()
        kx = torch.cross(k.expand_as(x0), x0, dim=-1)
        return x0 * math.cos(theta) + kx * math.sin(theta) + k * (x0 @ k)[:, None] * (1 - math.cos(theta))


def _points(M, n=32, dtype=torch.float64, seed=0):
    return M.random_base(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("method, retraction, order", [
    ("euler", None, 1), ("midpoint", None, 2), ("rk4", None, 4),
    ("euler", "projx", 1), ("midpoint", "projx", 2),
])
def test_solvers_converge_at_their_order(method, retraction, order):
    model = Rotation()
    x0 = _points(Sphere(2))
    exact = model.exact(x0, 0.0, 1.0)
    steps = [8, 16, 32, 64]
    errs = [float(Sphere(2).dist(sample(model, x0, n, method, retraction=retraction), exact).max()) for n in steps]
    slope = np.polyfit(np.log(1.0 / np.array(steps)), np.log(errs), 1)[0]
    print(f"{method}/{retraction or FIXED_SOLVERS[method].default_retraction}: errors {errs}, slope {slope:.3f}")
    assert abs(slope - order) < 0.3, (errs, slope)


def test_backward_integration_inverts_forward():
    model = Rotation()
    x0 = _points(Sphere(2))
    x1 = sample(model, x0, 40, "rk4")
    back = sample(model, x1, 40, "rk4", t_span=(1.0, 0.0))
    assert float(Sphere(2).dist(back, x0).max()) < 1e-6
    assert float(Sphere(2).dist(x1, model.exact(x0, 0.0, 1.0)).max()) < 1e-5


def test_torchdiffeq_dopri5_is_accurate_and_reports_projection():
    model = Rotation()
    x0 = _points(Sphere(2))
    x1, info = sample(model, x0, method="dopri5", atol=1e-9, rtol=1e-9, return_info=True)
    assert float(Sphere(2).dist(x1, model.exact(x0, 0.0, 1.0)).max()) < 1e-7
    assert isinstance(info, SampleInfo) and info.method == "dopri5" and info.steps is None and info.nfe > 10
    loose, linfo = sample(model, x0, method="bosh3", atol=1e-3, rtol=1e-3, return_info=True)
    # the ambient solve drifts off the sphere; the final projection distance is measured, not hidden
    assert 0.0 < linfo.projection_error_max < 1e-1 and linfo.projection_error_mean <= linfo.projection_error_max
    Sphere(2).check_point(loose)
    _, hinfo = sample(model, x0, steps=20, method="heun3", return_info=True)  # fixed-grid torchdiffeq method
    assert hinfo.steps == 20 and hinfo.nfe == 60


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4"])
def test_samples_stay_on_the_manifold_in_float32(method):
    M = Sphere(2)
    torch.manual_seed(0)
    x0 = _points(M, n=64, dtype=torch.float32)
    models = [Rotation().float()] + ([GaugeFlow(M, hidden=8)] if method == "euler" else [])
    for model in models:
        x1, info = sample(model, x0, steps=1000, method=method, return_info=True)
        assert x1.dtype == torch.float32 and info.nfe == 1000 * len(FIXED_SOLVERS[method].b)
        assert float(((x1 * x1).sum(-1) - 1).abs().max()) < 1e-5


@pytest.mark.parametrize("M", [Euclidean(2), FlatTorus(2), Product(Sphere(2), FlatTorus(1))], ids=repr)
@pytest.mark.parametrize("cls", [PlainFlow, GaugeFlow, HigherGaugeFlow])
def test_models_sample_on_every_manifold(M, cls):
    torch.manual_seed(0)
    model = cls(M, hidden=16)
    x0 = _points(M, n=16, dtype=torch.float32)
    for method in ("rk4", "dopri5"):
        x1 = sample(model, x0, steps=20, method=method)
        M.check_point(x1)
        assert not torch.equal(x1, x0)


def test_torus_samples_are_wrapped_and_projection_ignores_the_wrap():
    M = FlatTorus(1)

    class Drift(nn.Module):
        manifold = M

        def forward(self, x, t):
            return torch.full_like(x, 7.0)

    x0 = torch.tensor([[6.0], [0.5]], dtype=torch.float64)
    for method in ("euler", "dopri5"):
        x1, info = sample(Drift(), x0, steps=4, method=method, return_info=True)
        assert torch.allclose(x1, torch.remainder(x0 + 7.0, 2 * math.pi), atol=1e-12)
        assert info.projection_error_max == 0.0


class _Broken(nn.Module):
    def __init__(self, when=0.5):
        super().__init__()
        self.manifold = Sphere(2)
        self.when = when

    def forward(self, x, t):
        v = self.manifold.proju(x, torch.ones_like(x))
        return v * float("nan") if float(torch.as_tensor(t).reshape(-1)[0]) >= self.when else v


@pytest.mark.parametrize("method", ["euler", "rk4", "dopri5"])
def test_failures_raise_instead_of_returning_numbers(method):
    x0 = _points(Sphere(2), n=4)
    with pytest.raises(SolverError):
        sample(_Broken(), x0, steps=10, method=method)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(steps=0), ValueError, "steps"),
    (dict(steps=2.5), ValueError, "steps"),
    (dict(method="rk45"), ValueError, "unknown method"),
    (dict(t_span=(0.5, 0.5)), ValueError, "distinct"),
    (dict(t_span=(0.0,)), ValueError, "t_span"),
    (dict(retraction="cayley"), ValueError, "retraction"),
    (dict(method="dopri5", retraction="exp"), ValueError, "retraction"),
    (dict(x0=torch.ones(4, 3)), ValueError, "off the manifold"),
    (dict(x0=torch.ones(4, 2)), ValueError, "last axis"),
    (dict(x0=torch.ones(3)), ValueError, "shape"),
    (dict(model=nn.Identity()), TypeError, "manifold"),
])
def test_sample_front_door(kwargs, err, match):
    args = dict(model=Rotation(), x0=_points(Sphere(2), n=4))
    args.update(kwargs)
    model, x0 = args.pop("model"), args.pop("x0")
    if x0.shape[-1] == 3 and x0.dim() == 1:
        x0 = Sphere(2).projx(x0)
    with pytest.raises(err, match=match):
        sample(model, x0, **args)


def test_manifold_override_for_wrapped_models():
    inner = Rotation()
    wrapped = nn.Sequential()
    wrapped.forward = inner.forward
    x0 = _points(Sphere(2), n=4)
    assert torch.allclose(sample(wrapped, x0, 10, manifold=Sphere(2)), sample(inner, x0, 10))


def test_isolate_failures_counts_failing_rows_as_nan_and_keeps_the_rest():
    """A batch with failing rows: bisection isolates exactly those, the others keep fn's values."""
    from gaugeflow.sampling import SolverError, isolate_failures

    bad = {3, 10}

    def fn(x):
        if any(int(i) in bad for i in x[:, 0]):
            raise SolverError("non-finite state")
        return 2 * x

    x = torch.arange(16, dtype=torch.float64).repeat(2, 1).T.contiguous()  # [16, 2], row i = (i, i)
    out = isolate_failures(fn, x, (2,))
    nan_rows = torch.isnan(out).all(-1).nonzero().flatten().tolist()
    assert nan_rows == sorted(bad)
    keep = [i for i in range(16) if i not in bad]
    assert torch.equal(out[keep], 2 * x[keep])
