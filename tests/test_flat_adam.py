"""FlatAdam is torch.optim.Adam / AdamW bit for bit, on its flat form and on its per-tensor fallback."""
from __future__ import annotations

import copy

import pytest
import torch

from gaugeflow.training.flat_adam import FlatAdam

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHAPES = [(64, 3), (64,), (64, 64), (64,), (3, 64), (3,), (7,), (1, 1), (5, 2, 3)] * 3


def _pair(settings: dict, dtype=torch.float32, groups: int = 1):
    """The same parameters under FlatAdam and under torch's per-tensor Adam/AdamW."""
    g = torch.Generator().manual_seed(0)
    init = [torch.randn(s, generator=g, dtype=dtype) for s in SHAPES]
    ours = [torch.nn.Parameter(x.clone()) for x in init]
    ref = [torch.nn.Parameter(x.clone()) for x in init]
    decoupled = settings.pop("decoupled_weight_decay", False)
    torch_cls = torch.optim.AdamW if decoupled else torch.optim.Adam

    def split(ps):
        k = len(ps) // groups
        return [{"params": ps[i * k:(i + 1) * k if i < groups - 1 else None], "lr": 1e-3 * (i + 1)}
                for i in range(groups)]

    opt = FlatAdam(split(ours), decoupled_weight_decay=decoupled, **settings)
    opt_ref = torch_cls(split(ref), foreach=False, **settings)
    return ours, ref, opt, opt_ref


def _grads(ours, ref, step: int, skip: int | None = None):
    g = torch.Generator().manual_seed(100 + step)
    for i, (p, q) in enumerate(zip(ours, ref)):
        grad = None if i == skip else torch.randn(p.shape, generator=g, dtype=p.dtype)
        p.grad, q.grad = grad, None if grad is None else grad.clone()


def _same(ours, ref, opt, opt_ref) -> bool:
    s, r = opt.state_dict()["state"], opt_ref.state_dict()["state"]
    return (all(torch.equal(p, q) for p, q in zip(ours, ref)) and s.keys() == r.keys()
            and all(torch.equal(s[i][k], r[i][k]) for i in s for k in ("step", "exp_avg", "exp_avg_sq")))


@pytest.mark.parametrize("settings", [{}, {"weight_decay": 1e-2}, {"weight_decay": 1e-2, "decoupled_weight_decay": True},
                                      {"betas": (0.5, 0.9), "eps": 1e-6}])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_flat_form_is_torchs_adam_bit_for_bit(settings, dtype):
    ours, ref, opt, opt_ref = _pair(dict(settings), dtype, groups=2)
    for step in range(40):
        for o in (opt, opt_ref):
            for j, group in enumerate(o.param_groups):
                group["lr"] = 1e-2 * (j + 1) / (1 + step)  # a schedule: the lr changes every step
        _grads(ours, ref, step)
        opt.step()
        opt_ref.step()
        assert opt.last_step_flat is (step > 0)  # torch's first step creates the state, then the flat form
        assert _same(ours, ref, opt, opt_ref), f"differs after step {step}"


def test_a_parameter_without_gradient_falls_back_to_torchs_update():
    ours, ref, opt, opt_ref = _pair({})
    for step in range(12):
        _grads(ours, ref, step, skip=4 if step == 5 else None)
        opt.step()
        opt_ref.step()
        assert opt.last_step_flat is (0 < step < 5)  # from step 5 on the step counts differ: torch's update
        assert _same(ours, ref, opt, opt_ref)
    assert opt.state[ours[4]]["step"].item() == 11 and opt.state[ours[0]]["step"].item() == 12


def test_state_moves_between_flatadam_and_torch_adam_both_ways():
    ours, ref, opt, opt_ref = _pair({"weight_decay": 1e-3})
    for step in range(6):
        _grads(ours, ref, step)
        opt.step()
        opt_ref.step()
    ours2 = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    torch_from_flat = torch.optim.Adam(ours2, foreach=False, weight_decay=1e-3)
    torch_from_flat.load_state_dict(copy.deepcopy(opt.state_dict()))  # state_dict() holds references
    flat_from_torch = FlatAdam([torch.nn.Parameter(p.detach().clone()) for p in ref], weight_decay=1e-3)
    flat_from_torch.load_state_dict(copy.deepcopy(opt_ref.state_dict()))
    ours3 = flat_from_torch.param_groups[0]["params"]
    for step in range(6, 12):
        _grads(ours, ref, step)
        for p, q, r in zip(ours, ours2, ours3):
            q.grad, r.grad = p.grad.clone(), p.grad.clone()
        for o in (opt, opt_ref, torch_from_flat, flat_from_torch):
            o.step()
        assert flat_from_torch.last_step_flat
    assert _same(ours, ref, opt, opt_ref)
    assert _same(ours2, ref, torch_from_flat, opt_ref) and _same(ours3, ref, flat_from_torch, opt_ref)
    assert opt.checkpoint_name == "Adam" and FlatAdam(ours, decoupled_weight_decay=True).checkpoint_name == "AdamW"


def test_the_comparison_sees_one_ulp():
    """The check can fail: a single entry nudged by one ulp is seen."""
    ours, ref, opt, opt_ref = _pair({})
    for step in range(3):
        _grads(ours, ref, step)
        opt.step()
        opt_ref.step()
    assert _same(ours, ref, opt, opt_ref)
    with torch.no_grad():
        ours[2].view(-1)[7] = torch.nextafter(ours[2].view(-1)[7], torch.tensor(float("inf")))
    assert not _same(ours, ref, opt, opt_ref)


def test_closure_is_evaluated_with_gradients():
    p = torch.nn.Parameter(torch.ones(3))
    opt = FlatAdam([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p ** 2).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure).detach()) == 3.0 and float(p.detach()[0]) < 1.0


def test_step_hooks_fire_once_on_both_forms():
    """torch hooks ``Adam.step`` once an ``Adam`` exists; FlatAdam's fallback must not run the hooks twice."""
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])  # hooks the Adam class, as any torch Adam does
    ours, ref, opt, opt_ref = _pair({})
    calls = []
    opt.register_step_post_hook(lambda *_: calls.append(opt.last_step_flat))
    for step in range(4):
        _grads(ours, ref, step, skip=1 if step == 2 else None)
        opt.step()
        opt_ref.step()
    assert calls == [False, True, False, False]  # torch's first step, flat, fallback (a missing gradient), torch's
    assert _same(ours, ref, opt, opt_ref)
