"""The reference implementations the suite races against, built on the *same* network.

* ``flow_matching`` 1.0.10 (facebookresearch, CC BY-NC 4.0: used through its public API only,
  nothing copied): ``GeodesicProbPath(CondOTScheduler(), Sphere())`` + MSE, ``RiemannianODESolver``.
* ``torchcfm`` 1.0.7: ``ConditionalFlowMatcher(sigma=0)`` on ℝ^N. Only
  ``torchcfm.conditional_flow_matching`` is imported (its package ``__init__`` is not needed, and
  torchvision, which it pulls in, is never imported here).
* The straightforward exact likelihood: the divergence as a loop of ``D`` ``autograd.grad`` calls
  (one per ambient coordinate, the textbook way and flow_matching's ``exact_divergence=True``),
  integrated with *our* RK4 stepper, so the solver and step count are identical and only the
  divergence differs.

:class:`SharedMLP` is what a user of those libraries writes: a plain ``nn.Sequential`` of the same
layers (Linear, SiLU, Linear, SiLU, Linear), loaded with a copy of our model's weights, so both
sides compute the same function from the same parameters; any speed difference comes from the
libraries (paths, solvers, divergence, and our ``MLP``'s own execution), not from the network.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from gaugeflow.sampling import RK4

__all__ = ["SharedMLP", "require_peer", "flow_matching_parts", "torchcfm_matcher", "autograd_loop_log_prob"]


def require_peer(name: str):
    """Import a peer module or fail with the command that installs it."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as err:  # the bench extra was not installed
        raise SystemExit(f"benchmark peer {name!r} is missing ({err}); run `pip install -e '.[bench]'` "
                         f"(flow-matching==1.0.10, torchcfm==1.0.7) or `make bench`") from err


class SharedMLP(nn.Module):
    """``(x [B, D], t [] | [B] | [B, 1]) -> mlp(x ⊕ t)``: the peers' copy of our velocity network.

    Args:
        mlp: the ``gaugeflow.models.MLP`` of our model; its ``Linear`` layers are deep-copied into
            a plain ``nn.Sequential`` with ``nn.SiLU`` between them (own parameters and optimiser
            state, identical initial weights).
    """

    def __init__(self, mlp: nn.Module):
        super().__init__()
        linears = [copy.deepcopy(m) for m in mlp.modules() if isinstance(m, nn.Linear)]
        layers = []
        for i, lin in enumerate(linears):
            layers += [lin] if i == len(linears) - 1 else [lin, nn.SiLU()]
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1, 1).expand(x.shape[0], 1)
        return self.mlp(torch.cat([x, t], dim=-1))


def flow_matching_parts():
    """``(GeodesicProbPath(CondOTScheduler(), Sphere()), Sphere(), RiemannianODESolver)`` of flow_matching."""
    path_mod = require_peer("flow_matching.path")
    sched = require_peer("flow_matching.path.scheduler")
    mani = require_peer("flow_matching.utils.manifolds")
    solver = require_peer("flow_matching.solver")
    sphere = mani.Sphere()
    return path_mod.GeodesicProbPath(sched.CondOTScheduler(), sphere), sphere, solver.RiemannianODESolver


def torchcfm_matcher():
    """``ConditionalFlowMatcher(sigma=0.0)`` (straight paths, the ℝ^N counterpart of our RCFM)."""
    cfm = require_peer("torchcfm.conditional_flow_matching")
    return cfm.ConditionalFlowMatcher(sigma=0.0)


def _autograd_loop_field(model: nn.Module, manifold):
    """``f(t, x) -> (V(x, t), tr ∂(V∘projx)/∂y)`` with the trace as ``D`` ``autograd.grad`` calls.

    On the unit sphere the ambient divergence of ``V∘projx`` equals the Riemannian one (docs/math.md §7.2),
    so this is the same quantity as our ``divergence="exact"``.
    """

    def field(t, x):
        with torch.enable_grad():
            y = x.detach().requires_grad_(True)
            v = model(manifold.projx(y), t)
            div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            for i in range(x.shape[-1]):
                (g,) = torch.autograd.grad(v[:, i].sum(), y, retain_graph=i < x.shape[-1] - 1)
                div = div + g[:, i]
        return v.detach(), div

    return field


def autograd_loop_log_prob(model: nn.Module, manifold, x1: torch.Tensor, steps: int) -> torch.Tensor:
    """``log p1(x1)``: RK4 from t = 1 to 0 (our stepper), divergence by the per-coordinate loop. ``[B]``."""
    field, solver = _autograd_loop_field(model, manifold), RK4()
    h = -1.0 / steps
    x, acc = x1, torch.zeros(x1.shape[0], dtype=x1.dtype, device=x1.device)
    with torch.no_grad():
        for n in range(steps):
            x, acc = solver.step(field, manifold, 1.0 + n * h, h, x, acc)
        return manifold.base_log_prob(manifold.projx(x)) + acc
