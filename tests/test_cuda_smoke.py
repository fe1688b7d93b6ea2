"""Smoke test on every device at hand: train 20 steps, sample and ``log_prob`` for each model family.

The same test runs on the CPU (so its code path is exercised everywhere) and on CUDA whenever
``torch.cuda.is_available()``; without CUDA the CUDA cases are skipped with a visible reason. On
CUDA it also trains the same run on the CPU (float64, the same batches: the random stream lives on
the CPU) and holds the two loss histories together.
"""
from __future__ import annotations

import math

import pytest
import torch

import gaugeflow as gf

NO_CUDA = "CUDA is not available on this machine (torch.cuda.is_available() is False)"
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA))]
MODELS = [gf.PlainFlow, gf.GaugeFlow, gf.HigherGaugeFlow]
M = gf.Sphere(2)


def _data():
    return gf.wrapped_mixture(M, n_train=256, n_val=32, n_test=32, seed=0, dtype=torch.float64)


def _train(cls, device: str):
    torch.manual_seed(0)
    model = cls(M, hidden=16).double()
    cfg = gf.TrainConfig(steps=20, batch_size=64, val_size=0, progress=False, device=device, dtype="float64")
    history = gf.fit(model, _data(), cfg)
    return model, history


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("device", DEVICES)
def test_train_sample_log_prob_on_device(device, cls):
    model, history = _train(cls, device)
    dev = torch.device(device)
    assert all(p.device.type == dev.type for p in model.parameters())
    assert history.steps == 20 and history.skipped == 0 and all(math.isfinite(v) for v in history.loss)
    x0 = M.random_base(128, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dev)
    x1 = gf.sample(model, x0, steps=10)
    assert x1.device.type == dev.type and x1.shape == (128, 3)
    assert torch.allclose(x1.norm(dim=-1), torch.ones(128, dtype=torch.float64, device=dev), atol=1e-10)
    lp = gf.log_prob(model, _data().test.to(dev), steps=10)
    assert lp.device.type == dev.type and lp.shape == (32,) and bool(torch.isfinite(lp).all())
    if dev.type == "cuda":  # the same run on the CPU: same batches, float64, so the histories agree closely
        _, cpu = _train(cls, "cpu")
        assert history.loss == pytest.approx(cpu.loss, rel=1e-6, abs=1e-9)
