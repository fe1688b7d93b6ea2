"""Adam and AdamW computed on one flat vector per parameter group: torch's update, bit for bit, in ~10 operations.

A gauge model has 29–35 small parameter tensors (four networks). ``torch.optim.Adam`` updates them one
at a time on CPU (its per-tensor loop: about fifteen dispatched operations per tensor, scalar step
tensors included), or in ``foreach`` lists whose CPU fallback is the same loop in C++; for a width-64
GaugeFlow that is a quarter of a training step. :class:`FlatAdam` keeps the two moment estimates and the
step counts of a group in three flat tensors (the per-parameter state entries are views into them,
so ``state_dict`` has torch's layout and checkpoints are interchangeable with ``torch.optim.Adam``'s),
gathers parameters and gradients with one ``torch.cat`` each, runs torch's non-capturable update
formula once on the flat vectors and copies the result back. Every operation is elementwise, so each
entry sees exactly the arithmetic of the per-tensor loop: the result is torch's bit for bit
(``tests/test_flat_adam.py`` checks it against ``torch.optim.Adam`` and ``AdamW`` in float32 and float64,
with weight decay, schedules and several groups; ``tests/test_trainer_route.py`` whole training runs).

Whenever a group does not fit the flat form — a parameter without gradient this step, mixed dtypes or
devices, complex or sparse tensors, ``amsgrad``, ``maximize``, ``capturable``, ``differentiable``,
``fused``, tensor-valued hyperparameters, unequal step counts — the step is torch's own per-tensor
update (``torch.optim.Adam.step``), which writes into the same state; the flat form resumes on the next
step that fits (a parameter that missed a step keeps a lower step count, so its group stays on torch's
update). The first step always runs torch's, which creates the state exactly as torch does.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Optional

import torch

__all__ = ["FlatAdam"]

#: group settings under which the flat form is torch's update (any other value: torch's own step)
_PLAIN = {"amsgrad": False, "maximize": False, "capturable": False, "differentiable": False}


def _torch_adam_step(opt: torch.optim.Adam) -> None:
    """``torch.optim.Adam.step`` without the step-hook wrapper torch puts on a class once it has an instance:
    this step already runs inside FlatAdam's own wrapper, so hooks and profiler records fire once."""
    step = inspect.unwrap(torch.optim.Adam.step, stop=lambda f: not getattr(f, "hooked", False))
    step(opt)


@dataclass
class _Flat:
    params: tuple[torch.Tensor, ...]
    sizes: list[int]
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    steps: torch.Tensor
    #: the group's step count as a Python number, kept beside ``steps`` so that a step reads nothing back;
    #: equal to torch's tensor count while it is an exact integer in the count's dtype (``_fits``)
    count: float
    #: the first count that the counts' dtype no longer holds exactly (2²⁴ in float32)
    exact_below: float


class FlatAdam(torch.optim.Adam):
    """``torch.optim.Adam`` (``decoupled_weight_decay=True``: ``AdamW``) with the flat update of the module doc.

    Args:
        params, lr, betas, eps, weight_decay, decoupled_weight_decay: as for ``torch.optim.Adam``.

    Checkpoints name it ``Adam`` (``AdamW`` when decoupled): its state is torch's, entry for entry.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled_weight_decay: bool = False):
        self._flat: dict[int, _Flat] = {}
        #: whether the last step ran the flat form (``False``: torch's per-tensor update; see the module doc)
        self.last_step_flat = False
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False,
                         decoupled_weight_decay=decoupled_weight_decay)

    @property
    def checkpoint_name(self) -> str:
        """The torch optimiser whose state (and checkpoint entry) this one's is."""
        return "AdamW" if self.defaults["decoupled_weight_decay"] else "Adam"

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self._flat = {}
        super().add_param_group(param_group)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._flat = {}  # loaded state tensors are torch's own again: gathered anew on the next step
        super().load_state_dict(state_dict)

    @torch.no_grad()
    def step(self, closure=None):
        """One update; ``closure`` as in torch (re-evaluates the loss with gradients enabled first)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        flats = [self._flat.get(i) or self._gather(group) for i, group in enumerate(self.param_groups)]
        if any(f is None or not self._fits(f, group) for f, group in zip(flats, self.param_groups)):
            self._flat, self.last_step_flat = {}, False
            _torch_adam_step(self)  # torch's per-tensor update, in place on the same state
            return loss
        self._flat, self.last_step_flat = dict(enumerate(flats)), True
        for f, group in zip(flats, self.param_groups):
            self._update(f, group)
        return loss

    # ------------------------------------------------------------------ the flat form
    @staticmethod
    def _fits(f: _Flat, group: dict[str, Any]) -> bool:
        """Whether the flat form is torch's update for this group on this step (cheap per-step checks)."""
        params = group["params"]
        return (len(params) == len(f.params) and all(p is q and p.grad is not None for p, q in zip(params, f.params))
                and params[0].dtype == f.exp_avg.dtype and params[0].device == f.exp_avg.device
                and f.count < f.exact_below  # beyond, torch's count in its dtype stops adding 1
                and all(group[k] == v for k, v in _PLAIN.items()) and not group["fused"]
                and not any(torch.is_tensor(group[k]) for k in ("lr", "eps", "weight_decay"))
                and not any(torch.is_tensor(b) for b in group["betas"]))

    def _gather(self, group: dict[str, Any]) -> Optional[_Flat]:
        """Move the group's state into flat tensors (its entries become views); ``None`` if it does not fit."""
        params = tuple(group["params"])
        if not params or any(p.grad is None or p.grad.is_sparse or p.is_complex() for p in params):
            return None
        states = [self.state.get(p, {}) for p in params]
        if not all({"step", "exp_avg", "exp_avg_sq"} <= s.keys() for s in states):
            return None  # no state yet: torch's first step creates it
        if len({(p.dtype, p.device) for p in params}) != 1 or len({s["step"].dtype for s in states}) != 1:
            return None
        steps = torch.stack([s["step"] for s in states])  # host tensors (torch's, capturable=False): no device sync
        counts = set(steps.tolist())
        if len(counts) != 1:
            return None
        sizes = [p.numel() for p in params]
        f = _Flat(params, sizes, torch.cat([s["exp_avg"].reshape(-1) for s in states]),
                  torch.cat([s["exp_avg_sq"].reshape(-1) for s in states]), steps, counts.pop(),
                  2.0 / torch.finfo(steps.dtype).eps)
        for j, (p, s, m, v) in enumerate(zip(params, states, f.exp_avg.split(sizes), f.exp_avg_sq.split(sizes))):
            s["exp_avg"], s["exp_avg_sq"], s["step"] = m.view_as(p), v.view_as(p), f.steps[j]
        return f

    @staticmethod
    def _update(f: _Flat, group: dict[str, Any]) -> None:
        """torch's non-capturable Adam/AdamW formula (``_single_tensor_adam``) on the flat vectors."""
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        param = torch.cat([p.reshape(-1) for p in f.params])
        grad = torch.cat([p.grad.reshape(-1) for p in f.params])
        f.steps += 1  # the state's counts (views), as torch's step_t += 1
        f.count += 1.0
        step = f.count
        if wd != 0:
            if group["decoupled_weight_decay"]:
                param.mul_(1 - lr * wd)
            else:
                grad = grad.add(param, alpha=wd)
        f.exp_avg.lerp_(grad, 1 - beta1)
        f.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step_size = lr / (1 - beta1 ** step)
        denom = (f.exp_avg_sq.sqrt() / (1 - beta2 ** step) ** 0.5).add_(eps)
        param.addcdiv_(f.exp_avg, denom, value=-step_size)
        for p, new in zip(f.params, param.split(f.sizes)):
            p.copy_(new.view_as(p))
