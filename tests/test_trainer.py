"""The trainer: determinism, exact in-process resume, schedules, EMA, clipping, the non-finite guard, logs."""
from __future__ import annotations

import csv
import math

import pytest
import torch

from gaugeflow.data import ManifoldData, wrapped_mixture
from gaugeflow.manifolds import Euclidean, Sphere
from gaugeflow.models import GaugeFlow, HigherGaugeFlow, PlainFlow
from gaugeflow.training import NonFiniteLossError, TrainConfig, Trainer, build_model, fit
from gaugeflow.training.tools import EMA, lr_factor
from gaugeflow.training.window import StepWindow

M = Sphere(2)
DATA = wrapped_mixture(M, n_train=200, n_val=40, n_test=40, seed=3)
SMALL = dict(batch_size=16, progress=False, val_size=0, hidden=8)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(cls=HigherGaugeFlow, seed=0):
    torch.manual_seed(seed)
    return cls(M, hidden=8)


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_same_seed_same_run_bit_for_bit_and_other_seed_differs():
    cfg = TrainConfig(model="higher-gauge", steps=12, ema_decay=0.9, **SMALL)
    h1, h2 = fit(build_model(cfg, M), DATA, cfg), fit(build_model(cfg, M), DATA, cfg)
    assert h1.loss == h2.loss and h1.grad_norm == h2.grad_norm
    h3 = fit(build_model(cfg, M), DATA, cfg.replace(seed=1))
    assert h3.loss != h1.loss
    assert all(math.isfinite(v) for v in h1.loss) and h1.skipped == 0


@pytest.mark.parametrize("cls", [PlainFlow, GaugeFlow, HigherGaugeFlow])
def test_in_process_resume_continues_exactly(tmp_path, cls):
    cfg = TrainConfig(steps=10, schedule="cosine", warmup_steps=3, ema_decay=0.9, grad_clip=0.5,
                      optimizer="adamw", weight_decay=1e-3, **SMALL)
    ref = Trainer(_model(cls), DATA, cfg)
    ref_hist = ref.fit()
    part = Trainer(_model(cls), DATA, cfg)
    for _ in range(4):
        part.train_step()
    part.save(tmp_path / "c.safetensors")
    resumed = Trainer(_model(cls, seed=99), DATA, cfg, resume=tmp_path / "c.safetensors")  # other init: overwritten
    assert resumed.step == 4
    hist = resumed.fit()
    assert hist.loss == ref_hist.loss and hist.lr == ref_hist.lr
    assert torch.equal(_params(resumed.model), _params(ref.model))
    assert all(torch.equal(resumed.ema.shadow[k], v) for k, v in ref.ema.shadow.items())


def test_resume_refuses_changed_training_settings(tmp_path):
    cfg = TrainConfig(steps=4, **SMALL)
    tr = Trainer(_model(), DATA, cfg)
    tr.train_step()
    tr.save(tmp_path / "c.safetensors")
    with pytest.raises(ValueError, match=r"cannot resume with different training settings \(lr=0.001 in checkpoint vs 0.01\)"):
        Trainer(_model(), DATA, cfg.replace(lr=1e-2), resume=tmp_path / "c.safetensors")
    # the pairing of x0 and x1 changes the updates too: a resume may not switch the coupling
    with pytest.raises(ValueError, match=r"cannot resume with different training settings \(coupling='independent' in checkpoint vs 'ot'\)"):
        Trainer(_model(), DATA, cfg.replace(coupling="ot"), resume=tmp_path / "c.safetensors")


def test_lr_schedules():
    assert [lr_factor(s, 10, "constant", warmup=4) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert lr_factor(0, 10, "cosine") == 1.0 and lr_factor(10, 10, "cosine", final=0.1) == pytest.approx(0.1)
    assert lr_factor(5, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(5, 10, "linear", final=0.0) == pytest.approx(0.5)
    cfg = TrainConfig(steps=6, schedule="linear", warmup_steps=2, lr=0.1, **SMALL)
    hist = fit(_model(PlainFlow), DATA, cfg)
    assert hist.lr == pytest.approx([0.05, 0.1, 0.1, 0.075, 0.05, 0.025])


def test_ema_tracks_average_and_is_used_for_evaluation():
    model = _model(PlainFlow)
    ema = EMA(model, decay=0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)  # first update: d = min(0.5, 1/10) = 0.1
    for k, v in model.state_dict().items():
        assert torch.allclose(ema.shadow[k], 0.1 * before[k] + 0.9 * v)
    tr = Trainer(_model(), DATA, TrainConfig(steps=5, ema_decay=0.0, **SMALL))
    tr.fit()
    assert torch.equal(_params(tr.ema_model()), _params(tr.model))  # decay 0: EMA == weights
    tr = Trainer(_model(), DATA, TrainConfig(steps=5, ema_decay=0.99, **SMALL))
    tr.fit()
    assert not torch.equal(_params(tr.ema_model()), _params(tr.model))


def test_gradient_clipping_bounds_the_applied_gradient():
    tr = Trainer(_model(), DATA, TrainConfig(steps=3, grad_clip=1e-3, **SMALL))
    tr.train_step()
    total = torch.cat([p.grad.flatten() for p in tr.model.parameters()]).norm()
    assert tr.history.grad_norm[0] > 1e-2  # the recorded norm is the one before clipping
    assert float(total) <= 1e-3 * (1 + 1e-5)


class _Poisoned(torch.nn.Module):
    """A real flow whose output is NaN on the training steps listed in ``bad`` (1-based).

    A step is recognised by its batch (the n-th distinct batch is step n), so the model stays a
    function of its inputs: a step that ``fit`` replays (see gaugeflow.training.window) is poisoned again.
    """

    def __init__(self, bad):
        super().__init__()
        self.inner, self.manifold, self.bad, self.seen = _model(PlainFlow), M, set(bad), {}

    def forward(self, x, t):
        step = self.seen.setdefault(x.detach().numpy().tobytes(), len(self.seen) + 1)
        v = self.inner(x, t)
        return v * float("nan") if step in self.bad else v


def test_non_finite_steps_are_skipped_and_counted():
    model = _Poisoned(bad={2, 3})
    tr = Trainer(model, DATA, TrainConfig(steps=5, max_nonfinite=3, **SMALL))
    tr.train_step()
    after_one = _params(model).clone()
    tr.train_step()
    tr.train_step()
    assert torch.equal(_params(model), after_one)  # skipped steps do not move the weights
    tr.train_step()
    assert tr.history.skipped == 2 and tr.consecutive_nonfinite == 0
    assert math.isnan(tr.history.loss[1]) and math.isfinite(tr.history.loss[3])


def test_persistent_non_finite_loss_stops_with_a_clear_message():
    model = _Poisoned(bad=set(range(2, 100)))
    with pytest.raises(NonFiniteLossError, match=r"stopped at step 5: .*non-finite for 4 consecutive steps"):
        fit(model, DATA, TrainConfig(steps=20, max_nonfinite=4, **SMALL))


def test_validation_nll_and_metrics_csv(tmp_path):
    cfg = TrainConfig(steps=6, val_every=3, log_every=2, batch_size=16, progress=False, hidden=8, val_size=8,
                      val_steps=2)
    hist = fit(_model(), DATA, cfg, out=tmp_path)
    assert [s for s, _ in hist.val] == [3, 6] and all(math.isfinite(v) and v > 0 for _, v in hist.val)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [2, 3, 4, 6]
    for r in rows:
        assert float(r["loss"]) == hist.loss[int(r["step"]) - 1]  # repr round-trips exactly
    assert float(rows[1]["val_nll"]) == hist.val[0][1] and rows[0]["val_nll"] == ""
    assert (tmp_path / "checkpoint.safetensors").is_file() and (tmp_path / "config.json").is_file()


def test_fit_rejects_bad_arguments():
    with pytest.raises(TypeError, match="ManifoldData"):
        fit(_model(), DATA.train, steps=1)
    flat = ManifoldData("flat", Euclidean(3), DATA.train, DATA.val, DATA.test)
    with pytest.raises(ValueError, match="model lives on Sphere"):
        fit(_model(), flat, steps=1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        fit(_model(), DATA, steps=1, lr=-1.0)
    with pytest.raises(ValueError, match="unknown setting"):
        TrainConfig.from_dict({"stepz": 3})


def test_trains_in_the_models_own_precision():
    model = _model(PlainFlow).double()
    tr = Trainer(model, DATA, TrainConfig(steps=2, **SMALL))  # config says float32, the model is float64
    tr.fit()
    assert tr.config.dtype == "float64" and tr.train_x.dtype == torch.float64
    assert all(p.dtype == torch.float64 for p in model.parameters())


def _run(model, cfg, check_every):
    tr = Trainer(model, DATA, cfg)
    tr.check_every = check_every
    hist = tr.fit()
    return ([repr(v) for v in hist.loss], [repr(v) for v in hist.grad_norm], hist.lr, hist.skipped,
            _params(tr.model), torch.cat([v.flatten() for v in tr.ema.shadow.values()]))


def test_windows_of_unread_steps_equal_checked_steps_bit_for_bit_even_with_non_finite_steps():
    cfg = TrainConfig(steps=12, max_nonfinite=3, ema_decay=0.9, schedule="cosine", **SMALL)
    ref = _run(_Poisoned(bad={4, 9, 10}), cfg, check_every=1)  # per step: the reference semantics
    assert ref[3] == 3 and ref[0][3] == "nan" and ref[0][4] != "nan"
    for check_every in (5, 32):  # windows [0, 5), [5, 10), [10, 12) and one window: replayed at the NaN
        got = _run(_Poisoned(bad={4, 9, 10}), cfg, check_every)
        assert got[:4] == ref[:4] and torch.equal(got[4], ref[4]) and torch.equal(got[5], ref[5])


def test_fit_reads_losses_once_per_window_not_per_step(monkeypatch):
    def per_step(self):
        raise AssertionError("fit took a checked (host-synchronising) step although every loss was finite")

    cfg = TrainConfig(steps=12, **SMALL)
    expected = _run(_model(), cfg, check_every=1)
    reads = []
    monkeypatch.setattr(Trainer, "train_step", per_step)
    monkeypatch.setattr(StepWindow, "settle", lambda self, tr, _settle=StepWindow.settle: reads.append(self.pending)
                        or _settle(self, tr))
    got = _run(_model(), cfg, check_every=5)
    assert [n for n in reads if n] == [5, 5, 2]  # one read of the losses per window
    assert got[:4] == expected[:4] and torch.equal(got[4], expected[4])


@pytest.mark.parametrize("manifold", ["sphere", "torus", "hyperbolic"])
def test_a_training_step_reads_nothing_back_from_the_device(manifold, no_host_reads):
    """Batch draw, path, loss, backward, clipping and EMA of every model family stay on the device.

    The optimiser step is outside the guard: torch keeps Adam's step count on the host
    (``capturable=False``), so reading it is not a device synchronisation.
    """
    import gaugeflow as gf

    M = {"sphere": gf.Sphere(2), "torus": gf.FlatTorus(2), "hyperbolic": gf.Hyperbolic(2)}[manifold]
    data = gf.wrapped_mixture(M, n_components=3, seed=0)
    for cls, chunk in ((gf.PlainFlow, 1), (gf.GaugeFlow, 3), (gf.HigherGaugeFlow, 8)):
        tr = Trainer(cls(M, hidden=8), data, TrainConfig(steps=4, batch_size=32, path_chunk=chunk))
        for _ in range(chunk):  # the guarded step below draws and builds the next chunk's paths
            tr.unchecked_step()
        with no_host_reads():
            loss, gnorm, _ = tr._gradients()
            tr.ema.update(tr.model)
        assert loss.dim() == 0 and gnorm.dim() == 0 and tr._paths.pending == chunk - 1
