"""The trainer's update (FlatAdam, multi-tensor clipping, flat EMA) is torch's per-tensor update bit for bit.

The reference, ``PerTensorTrainer`` of ``experiments/benchmarks/bench_update.py`` (the benchmark that
times the two), runs ``torch.optim.Adam``/``AdamW``'s per-tensor loop, per-tensor clipping and EMA lerps.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from gaugeflow.data import wrapped_mixture
from gaugeflow.manifolds import SO3, Sphere
from gaugeflow.models import GaugeFlow, HigherGaugeFlow, PlainFlow, TensorGaugeFlow
from gaugeflow.training import TrainConfig, Trainer
from gaugeflow.training.flat_adam import FlatAdam

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments" / "benchmarks"))
try:
    from bench_update import PerTensorTrainer, identical
finally:
    sys.path.pop(0)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = dict(batch_size=32, progress=False, val_size=0, ema_decay=0.9)
CASES = {
    "gauge-adam": (Sphere(2), GaugeFlow, dict(lr=3e-3)),
    # AdamW's decoupled decay, a schedule (the lr changes every step) and clipping that bites
    "higher-adamw-cosine-clip": (Sphere(2), HigherGaugeFlow,
                                 dict(optimizer="adamw", weight_decay=1e-2, schedule="cosine", warmup_steps=5,
                                      grad_clip=0.5, lr=1e-2)),
    "tensor-adam-l2": (Sphere(2), TensorGaugeFlow, dict(weight_decay=1e-3)),
    "so3-gauge": (SO3(), GaugeFlow, dict(grad_clip=1.0)),
}


def _trainer(cls_trainer, manifold, cls_model, extra, steps=30):
    torch.manual_seed(0)
    data = wrapped_mixture(manifold, n_train=256, n_val=8, n_test=8, seed=2)
    return cls_trainer(cls_model(manifold, hidden=16), data, TrainConfig(steps=steps, **SMALL, **extra))


@pytest.mark.parametrize("case", list(CASES))
def test_multi_tensor_update_is_the_per_tensor_update_bit_for_bit(case):
    manifold, cls, extra = CASES[case]
    ours, ref = _trainer(Trainer, manifold, cls, extra), _trainer(PerTensorTrainer, manifold, cls, extra)
    assert isinstance(ours.optimizer, FlatAdam)
    assert type(ref.optimizer) in (torch.optim.Adam, torch.optim.AdamW)
    assert all(g["foreach"] is False for g in ref.optimizer.param_groups)
    assert sum(1 for _ in ours.model.parameters()) > 20  # many tensors: the loop the route replaces
    h_ours, h_ref = ours.fit(), ref.fit()
    assert h_ours.loss == h_ref.loss and h_ours.grad_norm == h_ref.grad_norm and h_ours.lr == h_ref.lr
    if extra.get("grad_clip"):
        assert max(h_ours.grad_norm) > extra["grad_clip"]  # the clipping was exercised
    assert identical(ours, ref)
    moved = torch.cat([p.detach().flatten() for p in ours.model.parameters()])
    torch.manual_seed(0)
    init = torch.cat([p.detach().flatten() for p in cls(manifold, hidden=16).parameters()])
    assert not torch.equal(moved, init)  # it trained


def test_the_reference_differs_when_the_update_does():
    """The comparison can fail: one step more of Adam on one side is seen."""
    manifold, cls, extra = CASES["gauge-adam"]
    ours, ref = _trainer(Trainer, manifold, cls, extra), _trainer(PerTensorTrainer, manifold, cls, extra)
    for _ in range(3):
        ours.train_step()
        ref.train_step()
    assert identical(ours, ref)
    ref.optimizer.step()  # the same gradients applied once more
    assert not identical(ours, ref)


def test_a_resumed_run_keeps_its_own_route_and_continues_exactly(tmp_path):
    """A checkpoint written by torch's Adam resumes on FlatAdam (and keeps FlatAdam's route), bit for bit."""
    manifold, cls, extra = CASES["higher-adamw-cosine-clip"]
    straight = _trainer(Trainer, manifold, cls, extra, steps=12)
    straight.fit()
    first = _trainer(PerTensorTrainer, manifold, cls, extra, steps=12)
    for _ in range(5):
        first.train_step()
    first.save(tmp_path / "c.safetensors")
    torch.manual_seed(0)
    data = wrapped_mixture(manifold, n_train=256, n_val=8, n_test=8, seed=2)
    resumed = Trainer(cls(manifold, hidden=16), data, TrainConfig(steps=12, **SMALL, **extra),
                      resume=tmp_path / "c.safetensors")
    assert resumed.step == 5 and all(g["foreach"] is False for g in resumed.optimizer.param_groups)
    resumed.fit()
    assert identical(resumed, straight)


def test_plain_flow_is_unchanged_too():
    """Few tensors (6): the same result, whatever the route's speed."""
    ours = _trainer(Trainer, Sphere(2), PlainFlow, dict(grad_clip=1.0))
    ref = _trainer(PerTensorTrainer, Sphere(2), PlainFlow, dict(grad_clip=1.0))
    ours.fit()
    ref.fit()
    assert identical(ours, ref)
