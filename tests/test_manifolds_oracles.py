"""Independent oracles: geomstats (numpy backend, float64) and geoopt agree with our closed forms.

geomstats takes ``(tangent_vec, base_point)`` — the opposite of our point-first order — and its
``Hyperboloid`` uses the same extrinsic coordinates as our Lorentz model (time coordinate first,
``⟨x, x⟩ = −1``). Measured maximum errors are printed (``pytest -s``) and bounded by the asserts.
"""
import math
import os

os.environ.setdefault("GEOMSTATS_BACKEND", "numpy")

import geoopt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from geomstats.geometry.hyperboloid import Hyperboloid  # noqa: E402
from geomstats.geometry.hypersphere import Hypersphere  # noqa: E402

from gaugeflow.manifolds import Hyperbolic, Sphere  # noqa: E402

F64 = torch.float64
N = 200


def _np(t):
    return t.detach().numpy()


def _generic_pairs(M, seed, min_dist=1e-3, max_dist=None):
    """Random base points ``x, y`` with ``min_dist < dist < max_dist`` and tangent ``v`` at ``x``."""
    g = torch.Generator().manual_seed(seed)
    x, y = M.random_base(4 * N, generator=g, dtype=F64), M.random_base(4 * N, generator=g, dtype=F64)
    d = M.dist(x, y)
    keep = (d > min_dist) & (d < (max_dist if max_dist is not None else math.inf))
    x, y = x[keep][:N], y[keep][:N]
    v = M.proju(x, torch.randn(x.shape, generator=g, dtype=F64))
    return x, y, v


def _max_err(a, b):
    def tensor(v):  # geomstats arrays may be read-only: copy them
        return v if isinstance(v, torch.Tensor) else torch.from_numpy(np.array(v))

    return float((tensor(a) - tensor(b)).abs().max())


def _compare(M, space, x, y, v):
    metric = space.metric
    u = M.log(x, y)
    errs = {
        "exp": _max_err(M.exp(x, v), metric.exp(_np(v), _np(x))),
        "log": _max_err(u, metric.log(_np(y), _np(x))),
        "dist": _max_err(M.dist(x, y), metric.dist(_np(x), _np(y))),
        "transp": _max_err(M.transp(x, y, v), metric.parallel_transport(_np(v), _np(x), end_point=_np(y))),
        "inner": _max_err(M.inner(x, u, v), metric.inner_product(_np(u), _np(v), _np(x))),
    }
    print(f"\n{M} vs geomstats {type(space).__name__}: max abs errors {errs}")
    return errs


@pytest.mark.parametrize("n", [1, 2, 5])
def test_sphere_agrees_with_geomstats_hypersphere(n):
    M = Sphere(n)
    x, y, v = _generic_pairs(M, seed=n, max_dist=math.pi - 1e-3)
    errs = _compare(M, Hypersphere(n), x, y, v)
    assert max(errs.values()) < 1e-8, errs


@pytest.mark.parametrize("n", [2, 3])
def test_hyperbolic_agrees_with_geomstats_hyperboloid(n):
    M = Hyperbolic(n)
    x, y, v = _generic_pairs(M, seed=10 + n)
    v = v / M.norm(x, v)[:, None]  # unit speed: exp stays within radius ~5 where coordinates are O(100)
    errs = _compare(M, Hyperboloid(n), x, y, v)
    assert max(errs.values()) < 1e-8, errs


@pytest.mark.parametrize("dtype, atol", [(F64, 1e-10), (torch.float32, 2e-5)], ids=["float64", "float32"])
def test_sphere_agrees_with_geoopt_away_from_degenerate_pairs(dtype, atol):
    """geoopt clamps acos at 1 − eps: its dist has a floor (4.5e-4 in float64, 1.4e-2 in float32),
    so compare only on pairs with 0.1 < dist < π − 0.1."""
    M, G = Sphere(2), geoopt.Sphere()
    x, y, v = (t.to(dtype) for t in _generic_pairs(M, seed=3, min_dist=0.1, max_dist=math.pi - 0.1))
    errs = {
        "exp": _max_err(M.exp(x, v), G.expmap(x, v)),
        "log": _max_err(M.log(x, y), G.logmap(x, y)),
        "dist": _max_err(M.dist(x, y), G.dist(x, y)),
        "inner": _max_err(M.inner(x, v, v), G.inner(x, v, v)),
    }
    print(f"\nSphere(2) vs geoopt.Sphere ({dtype}): max abs errors {errs}")
    assert max(errs.values()) < atol, errs


def test_hyperbolic_agrees_with_geoopt_lorentz():
    M, L = Hyperbolic(2), geoopt.Lorentz()
    x, y, v = _generic_pairs(M, seed=5, min_dist=0.1)
    v = v / M.norm(x, v)[:, None]
    errs = {
        "exp": _max_err(M.exp(x, v), L.expmap(x, v)),
        "log": _max_err(M.log(x, y), L.logmap(x, y)),
        "dist": _max_err(M.dist(x, y), L.dist(x, y)),
        "transp": _max_err(M.transp(x, y, v), L.transp(x, y, v)),
    }
    print(f"\nHyperbolic(2) vs geoopt.Lorentz: max abs errors {errs}")
    assert max(errs.values()) < 1e-8, errs


def test_geomstats_near_identical_and_antipodal_show_why_we_do_not_use_it_as_is():
    """Documented peer behaviour: geomstats' arccos-based distance has a floor ~1e-8 at y = x, and its
    log at the antipode is silently 0; ours is exact 0 and length π respectively."""
    S = Hypersphere(2)
    x = torch.tensor([0.6, 0.0, 0.8], dtype=F64)
    assert float(Sphere(2).dist(x, x)) == 0.0
    assert float(S.metric.norm(S.metric.log(_np(-x), _np(x)), _np(x))) == 0.0
    assert math.isclose(float(Sphere(2).norm(x, Sphere(2).log(x, -x))), math.pi)
