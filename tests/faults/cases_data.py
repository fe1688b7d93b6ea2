"""Data: points are checked (finite, on the manifold, shaped), empty splits are refused, never a NaN metric."""
from __future__ import annotations

import math

import pytest
import torch

from .registry import case


def _sphere_data(train=None, val=None, test=None, dtype=torch.float32):
    from gaugeflow.data import ManifoldData
    from gaugeflow.manifolds import Sphere
    M = Sphere(2)
    g = torch.Generator().manual_seed(0)
    pts = lambda n: M.random_base(n, generator=g, dtype=dtype)  # noqa: E731
    return ManifoldData("custom", M, pts(64) if train is None else train, pts(16) if val is None else val,
                        pts(16) if test is None else test)


def _data_error(match, **splits):
    from gaugeflow.data.base import DataError
    with pytest.raises(DataError) as info:
        _sphere_data(**splits)
    msg = str(info.value)
    assert "\n" not in msg and match in msg, msg
    return msg


@case("DA-01", "data", "custom data with one NaN row", "DataError, one line: '1 of 64 points are not finite ... row 5'")
def _(ctx):
    from gaugeflow.manifolds import Sphere
    x = Sphere(2).random_base(64, generator=torch.Generator().manual_seed(1))
    x[5, 1] = float("nan")
    _data_error("custom.train: 1 of 64 points are not finite", train=x)


@case("DA-02", "data", "custom data off the manifold (norm 3 on S²)", "DataError, one line: 'off the manifold; largest violation'")
def _(ctx):
    from gaugeflow.manifolds import Sphere
    x = Sphere(2).random_base(64, generator=torch.Generator().manual_seed(1))
    x[:3] *= 3
    _data_error("3 of 64 points are off the manifold", train=x)


@case("DA-03", "data", "custom data of the wrong shape ([n, 4] on S²)", "DataError, one line: 'expected a [n, 3] tensor'")
def _(ctx):
    _data_error("expected a [n, 3] tensor", val=torch.zeros(5, 4))


@case("DA-04", "data", "custom data of an integer dtype", "DataError, one line: 'expected float32 or float64 points'")
def _(ctx):
    _data_error("expected float32 or float64 points", test=torch.zeros(5, 3, dtype=torch.int64))


@case("DA-05", "data", "points a hair off the sphere (1e-6 in float32)", "accepted (within the float32 tolerance 1e-4)")
def _(ctx):
    from gaugeflow.manifolds import Sphere
    x = Sphere(2).random_base(64, generator=torch.Generator().manual_seed(1)) * (1 + 1e-6)
    assert len(_sphere_data(train=x).train) == 64


@case("DA-06", "data", "`fit` with an empty training split", "DataError, one line: 'has no training points'")
def _(ctx):
    from gaugeflow.data.base import DataError
    from gaugeflow.models import PlainFlow
    from gaugeflow.training import fit
    data = _sphere_data(train=torch.zeros(0, 3))
    with pytest.raises(DataError, match="has no training points"):
        fit(PlainFlow(data.manifold, hidden=8), data, steps=2, progress=False)


@case("DA-07", "data", "`fit` with an empty validation split and val_size > 0",
      "DataError, one line: 'has no validation points; pass val_size=0' (was: validation NLL nan)")
def _(ctx):
    from gaugeflow.data.base import DataError
    from gaugeflow.models import PlainFlow
    from gaugeflow.training import fit
    data = _sphere_data(val=torch.zeros(0, 3))
    with pytest.raises(DataError, match="has no validation points; pass val_size=0"):
        fit(PlainFlow(data.manifold, hidden=8), data, steps=2, progress=False, batch_size=16)


@case("DA-08", "data", "empty validation split with val_size=0", "trains; no validation entry, no NaN anywhere in the history")
def _(ctx):
    from gaugeflow.models import PlainFlow
    from gaugeflow.training import fit
    data = _sphere_data(val=torch.zeros(0, 3))
    hist = fit(PlainFlow(data.manifold, hidden=8), data, steps=3, progress=False, batch_size=16, val_size=0)
    assert hist.val == [] and all(math.isfinite(v) for v in hist.loss)


@case("DA-09", "data", "`validation_nll` of an empty batch", "ValueError, one line: 'expected a non-empty [n, D] batch' (never nan)")
def _(ctx):
    from gaugeflow.models import PlainFlow
    from gaugeflow.training.trainer import validation_nll
    data = _sphere_data()
    with pytest.raises(ValueError, match="non-empty"):
        validation_nll(PlainFlow(data.manifold, hidden=8), torch.zeros(0, 3))


@case("DA-10", "data", "hyperbolic points below the sheet (x0 < 0)", "DataError, one line: 'off the manifold'")
def _(ctx):
    from gaugeflow.data import ManifoldData
    from gaugeflow.data.base import DataError
    from gaugeflow.manifolds import Hyperbolic
    H = Hyperbolic(2)
    x = H.random_base(8, generator=torch.Generator().manual_seed(0))
    x[2] = -x[2]
    with pytest.raises(DataError, match="off the manifold"):
        ManifoldData("h", H, x, x[:2], x[:2])


@case("DA-11", "data", "float64 data into a float32 model (`fit`)", "trains in the model's precision (float32), correct result")
def _(ctx):
    from gaugeflow.models import PlainFlow
    from gaugeflow.training import fit
    data = _sphere_data(dtype=torch.float64)
    model = PlainFlow(data.manifold, hidden=8)
    hist = fit(model, data, steps=2, progress=False, batch_size=16, val_size=4, val_steps=2)
    assert next(model.parameters()).dtype == torch.float32 and math.isfinite(hist.val[-1][1])


@case("DA-12", "data", "every built-in generated data set passes the checks", "wrapped mixtures on S², T², H², ℝ² build cleanly")
def _(ctx):
    from gaugeflow.data import wrapped_mixture
    from gaugeflow.manifolds import Euclidean, FlatTorus, Hyperbolic, Sphere
    for M in (Sphere(2), FlatTorus(2), Hyperbolic(2), Euclidean(2)):
        for dtype in (torch.float32, torch.float64):
            data = wrapped_mixture(M, n_train=200, seed=0)
            from gaugeflow.data import ManifoldData
            ManifoldData(data.name, M, data.train.to(dtype), data.val.to(dtype), data.test.to(dtype))


@case("DA-13", "data", "`evaluate` of a run whose test split is empty", "exit 3 (data), one line: 'has no test points'")
def _(ctx):
    from gaugeflow.app import registry
    from gaugeflow.data import ManifoldData
    run = ctx.run()
    real = registry.build_data

    def no_test(cfg, manifold=None):
        d = real(cfg, manifold)
        return ManifoldData(d.name, d.manifold, d.train, d.val, d.test[:0], d.meta)
    import gaugeflow.app.runs as runs
    ctx.monkeypatch.setattr(runs, "build_data", no_test)
    ctx.cli("evaluate", run, "--n-test", "8", "--n-samples", "8", "--steps", "2").fails(3, "has no test points")


@case("DA-14", "data", "a data set whose optional package is missing (`--data world-cities` without the extra)",
      "exit 3 (data) with one line naming the missing package, or training works when it is installed")
def _(ctx):
    import importlib.util
    res = ctx.train(ctx.path("r"), "--data", "world-cities", "--steps", "1")
    if importlib.util.find_spec("bokeh_sampledata") is None:
        assert res.code == 3 and len(res.err.strip().splitlines()) == 1, res.err
    else:
        assert res.code == 0, res.err
