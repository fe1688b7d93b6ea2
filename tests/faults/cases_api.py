"""The library API: torch's own errors become one clear line (ValueError/TypeError)."""
from __future__ import annotations

import pytest
import torch

from .registry import case


def _model(dtype=torch.float32):
    from gaugeflow.manifolds import Sphere
    from gaugeflow.models import PlainFlow
    torch.manual_seed(0)
    return PlainFlow(Sphere(2), hidden=8).to(dtype)


def _pts(n, dtype=torch.float32):
    from gaugeflow.manifolds import Sphere
    return Sphere(2).random_base(n, generator=torch.Generator().manual_seed(0), dtype=dtype)


def _one_line(exc, match, fn, *a, **k):
    with pytest.raises(exc) as info:
        fn(*a, **k)
    assert "\n" not in str(info.value) and match in str(info.value), str(info.value)


@case("AP-01", "api", "`sample` of an empty batch", "ValueError: 'sample: empty batch'")
def _(ctx):
    from gaugeflow.sampling import sample
    _one_line(ValueError, "sample: empty batch", sample, _model(), torch.zeros(0, 3))


@case("AP-02", "api", "`log_prob` of an empty batch", "ValueError: 'log_prob: empty batch'")
def _(ctx):
    from gaugeflow.sampling import log_prob
    _one_line(ValueError, "log_prob: empty batch", log_prob, _model(), torch.zeros(0, 3))


@case("AP-03", "api", "float64 points into a float32 model (`sample`, `log_prob`)",
      "TypeError: 'the points are torch.float64 but the model's parameters are torch.float32'")
def _(ctx):
    from gaugeflow.sampling import log_prob, sample
    for fn in (sample, log_prob):
        _one_line(TypeError, "the points are torch.float64 but the model's parameters are torch.float32", fn, _model(),
                  _pts(4, torch.float64), steps=2)


@case("AP-04", "api", "a float16 model (`sample`, `fit`)", "TypeError: 'float32 or float64 ... model.float()'")
def _(ctx):
    from gaugeflow.data import wrapped_mixture
    from gaugeflow.sampling import sample
    from gaugeflow.training import fit
    _one_line(TypeError, "model.float()", sample, _model(torch.float16), _pts(4).half(), steps=2)
    m = _model(torch.float16)
    _one_line(TypeError, "gaugeflow trains in float32 or float64", fit, m, wrapped_mixture(m.manifold, n_train=50), steps=1)


@case("AP-05", "api", "`fit(resume=True, out=None)`", "ValueError: 'resume=True continues the run in `out`, but out is None'")
def _(ctx):
    from gaugeflow.data import wrapped_mixture
    from gaugeflow.training import fit
    m = _model()
    _one_line(ValueError, "out is None", fit, m, wrapped_mixture(m.manifold, n_train=50), resume=True, steps=1)


@case("AP-06", "api", "`sample(..., method=\"dopri5\", atol=-1)` and `rtol=nan`", "ValueError: 'atol must be a positive finite number'")
def _(ctx):
    from gaugeflow.sampling import sample
    _one_line(ValueError, "atol must be a positive finite number", sample, _model(), _pts(4), method="dopri5", atol=-1)
    _one_line(ValueError, "rtol must be a positive finite number", sample, _model(), _pts(4), method="dopri5", rtol=float("nan"))


@case("AP-07", "api", "`fit(..., resume=True, overwrite=True)`", "ValueError: 'resume and overwrite exclude each other'")
def _(ctx):
    from gaugeflow.data import wrapped_mixture
    from gaugeflow.training import fit
    m = _model()
    _one_line(ValueError, "exclude each other", fit, m, wrapped_mixture(m.manifold, n_train=50), out=ctx.path("r"),
              resume=True, overwrite=True, steps=1)


@case("AP-08", "api", "`fit(out=RUN)` on an existing run without resume/overwrite",
      "RunFolderError (a ValueError): 'already holds a run'", kept="run byte for byte")
def _(ctx):
    from gaugeflow.data import wrapped_mixture
    from gaugeflow.training.rundir import RunFolderError
    from gaugeflow.training import fit

    from .registry import snapshot
    run = ctx.run()
    before = snapshot(run)
    m = _model()
    _one_line(RunFolderError, "already holds a run", fit, m, wrapped_mixture(m.manifold, n_train=50), out=run, steps=1)
    assert snapshot(run) == before


@case("AP-09", "api", "a second `Trainer` on a folder whose lock another trainer holds (same process)",
      "RunBusyError: 'is in use by another gaugeflow process'", kept="the first trainer's run")
def _(ctx):
    from gaugeflow.data import wrapped_mixture
    from gaugeflow.training import Trainer, read_checkpoint
    from gaugeflow.training.rundir import RunBusyError
    m = _model()
    data = wrapped_mixture(m.manifold, n_train=50)
    first = Trainer(m, data, out=ctx.path("r"), steps=2, batch_size=16, val_size=0, progress=False)
    try:
        _one_line(RunBusyError, "is in use by another gaugeflow process", Trainer, _model(), data, out=ctx.path("r"),
                  overwrite=True, steps=2, progress=False)
        first.fit()
    finally:
        first.close()
    assert read_checkpoint(ctx.path("r")).step == 2


@case("AP-10", "api", "`sample` with points on another device than the model / not on the manifold",
      "ValueError naming both devices / 'off the manifold'")
def _(ctx):
    from gaugeflow.sampling import sample
    _one_line(ValueError, "off the manifold", sample, _model(), _pts(4) * 2, steps=2)
    if torch.cuda.is_available():
        _one_line(ValueError, "the points are on cuda", sample, _model(), _pts(4).cuda(), steps=2)


@case("AP-11", "api", "`fit` with a seed beyond torch's range (2**64)", "ValueError: 'seed must be in [0, 2**64 - 1]'")
def _(ctx):
    from gaugeflow.data import wrapped_mixture
    from gaugeflow.training import fit
    m = _model()
    _one_line(ValueError, "seed must be in", fit, m, wrapped_mixture(m.manifold, n_train=50), steps=1, seed=2**64)


@case("AP-12", "api", "`read_checkpoint` of a missing file", "FileNotFoundError: 'checkpoint not found'")
def _(ctx):
    from gaugeflow.training import read_checkpoint
    _one_line(FileNotFoundError, "checkpoint not found", read_checkpoint, ctx.path("nope.safetensors"))


@case("AP-13", "api", "an unexpected exception inside a command (a bug)",
      "exit 70, the traceback, and one line saying it is a bug in gaugeflow (not dressed as a usage error)")
def _(ctx):
    from gaugeflow.training import trainer

    def broken(self):
        raise ValueError("internal invariant broken")
    ctx.monkeypatch.setattr(trainer.Trainer, "fit", broken)
    res = ctx.train(ctx.path("r"))
    assert res.code == 70 and "Traceback" in res.err and "internal error (a bug in gaugeflow" in res.err, res.err
    assert "internal invariant broken" in res.err.strip().splitlines()[-1]
