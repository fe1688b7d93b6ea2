"""Model ensembling with ``torch.func``: several flows of one class stacked and evaluated in one ``vmap``.

The pattern of PyTorch's ensembling recipe (``stack_module_state`` + ``vmap(functional_call)``, then an
ordinary ``backward`` or ``vmap(grad(...))``) must give every member's own velocity, gradient and
forward-mode derivative. The custom autograd Functions of the gauge models (``generate_vmap_rule``) are
where it can break: torch keeps one record of the saved tensors' batch dimensions for
``save_for_backward`` and ``save_for_forward``, so the two must save the same tensors.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch.func import functional_call, grad, jvp, stack_module_state, vmap

from gaugeflow.manifolds import SO3, Euclidean, FlatTorus, Sphere
from gaugeflow.models import GaugeFlow, HigherGaugeFlow, PlainFlow, TensorGaugeFlow

MANIFOLDS = {"sphere": lambda: Sphere(2), "torus": lambda: FlatTorus(2), "euclidean": lambda: Euclidean(3),
             "so3": lambda: SO3()}
MODELS = {"plain": PlainFlow, "gauge": GaugeFlow, "higher": HigherGaugeFlow,
          "tensor": lambda M, hidden: TensorGaugeFlow(M, rank=2, hidden=hidden)}
MEMBERS, N = 3, 5


def _ensemble(mname: str, mfd: str):
    torch.manual_seed(0)
    M = MANIFOLDS[mfd]()
    models = [MODELS[mname](M, hidden=8).double() for _ in range(MEMBERS)]
    gen = torch.Generator().manual_seed(1)
    x = torch.stack([M.random_base(N, generator=gen, dtype=torch.float64) for _ in range(MEMBERS)])
    t = torch.rand(MEMBERS, N, generator=gen, dtype=torch.float64)
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    call = lambda p, b, y, s: functional_call(base, (p, b), (y, s))  # noqa: E731
    return M, models, params, buffers, call, x, t


@pytest.mark.parametrize("mfd", list(MANIFOLDS))
@pytest.mark.parametrize("mname", list(MODELS))
def test_vmapped_members_match_each_model(mname, mfd):
    M, models, params, buffers, call, x, t = _ensemble(mname, mfd)
    names = list(params)
    out = vmap(call)(params, buffers, x, t)
    ref = torch.stack([m(x[i], t[i]) for i, m in enumerate(models)])
    assert torch.allclose(out, ref, atol=1e-12), float((out - ref).abs().max())

    # the recipe's training step: vmapped forward, one ordinary backward through every member
    out.square().sum().backward()
    per_model = [torch.autograd.grad(m(x[i], t[i]).square().sum(), list(m.parameters()))
                 for i, m in enumerate(models)]
    for i in range(MEMBERS):
        for j, k in enumerate(names):
            assert torch.allclose(params[k].grad[i], per_model[i][j], atol=1e-10), (k, i)

    # per-member gradients by vmap(grad(...))
    detached = {k: v.detach() for k, v in params.items()}
    grads = vmap(grad(lambda p, b, y, s: call(p, b, y, s).square().sum()))(detached, buffers, x, t)
    for i in range(MEMBERS):
        for j, k in enumerate(names):
            assert torch.allclose(grads[k][i], per_model[i][j], atol=1e-10), (k, i)

    # forward mode through every member at once (the Functions' jvp under the generated vmap rule)
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    tangents = vmap(lambda p, b, y, dy, s: jvp(lambda z: call(p, b, z, s), (y,), (dy,))[1])(detached, buffers, x, v, t)
    for i, m in enumerate(models):
        ref_t = jvp(lambda z: m(z, t[i]), (x[i],), (v[i],))[1]
        assert torch.allclose(tangents[i], ref_t, atol=1e-10), float((tangents[i] - ref_t).abs().max())


@pytest.mark.parametrize("mname", ["plain", "higher"])
def test_stacked_training_steps_are_each_members_own(mname):
    # experiments/benchmarks/bench_ensemble.py's two routes: one vmapped loss, one backward and one Adam
    # step over the stacked parameters take, member by member, the steps of separate models (float64)
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments" / "benchmarks"))
    try:
        from _harness import Bench
        from bench_ensemble import Separate, Stacked, paths
    finally:
        sys.path.pop(0)
    bench = Bench(device=torch.device("cpu"), dtype=torch.float64)
    M = Sphere(2)
    torch.manual_seed(0)
    models = [MODELS[mname](M, hidden=8).double() for _ in range(MEMBERS)]
    steps = paths(bench, M, MEMBERS, n=2)
    a, b = Separate(copy.deepcopy(models), M, steps), Stacked(copy.deepcopy(models), M, steps)
    for _ in range(4):
        a(), b()
    wa, wb = a.weights(), b.weights()
    moved = max(float((wb[k] - torch.stack([dict(m.named_parameters())[k].detach() for m in models])).abs().max()) for k in wb)
    assert moved > 1e-3  # the steps did change the weights
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-10, rtol=0), (k, float((wa[k] - wb[k]).abs().max()))
