"""Models of the equal-compute study, the α ≡ 0 ablation, and the interleaved step-time calibration.

Models (``name → builder``): PlainFlow at the gauge models' width (``plain``, the papers' baseline),
PlainFlow with its width solved to GaugeFlow's parameter count (``plain-params``) or to GaugeFlow's
measured training-step time (``plain-time``), GaugeFlow, HigherGaugeFlow, TensorGaugeFlow (r = 2),
each gauge model with ``α ≡ 0`` (``*-a0``), and PlainFlow and GaugeFlow at the papers' width trained with
minibatch-OT coupling (``*-ot``: the same networks; ``compute_config.MODEL_TRAIN`` sets the coupling).

The ablation keeps every network of the gauge model and computes it in every forward pass (same
parameters, same cost): only the weight of the gauge term is multiplied by zero,
``V = v_θ − 0 · α · Π_x(G)``. Consequence (a finding, not a bug): the FM loss then does not depend on
the connection, direction, section and α networks, so they receive exactly zero gradient and Adam
leaves them at their initial values; the velocity network is initialised first from the same seed as
the plain model's, so the ablation trains exactly the papers' plain network, at the gauge model's cost.
"""
from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from gaugeflow.models import GaugeFlow, HigherGaugeFlow, PlainFlow, TensorGaugeFlow, count_parameters
from gaugeflow.training import TrainConfig, Trainer

LABELS = {"plain": "Plain (papers' width)", "plain-params": "Plain (param-matched to GFM)",
          "plain-time": "Plain (step-time-matched to GFM)", "gauge": "GFM", "higher-gauge": "HGFM",
          "tensor-gauge": "TGFM (r = 2)", "gauge-a0": "GFM, α ≡ 0", "higher-gauge-a0": "HGFM, α ≡ 0",
          "tensor-gauge-a0": "TGFM (r = 2), α ≡ 0", "plain-ot": "Plain (papers' width), OT coupling",
          "gauge-ot": "GFM, OT coupling"}
TENSOR_RANK = 2


class ZeroWeight(nn.Module):
    """``0 · α``: wraps a gauge model's ``alpha`` (``TimeWeight`` or ``SpaceTimeWeight``), computing it.

    ``[B, 1] -> [B, 1]`` zeros (``forward``) and ``from_inputs(h)`` likewise, so ``α(t) · Π_x(G)``
    is still evaluated (same cost) but contributes ``0``.
    """

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, *args):
        return self.inner(*args) * 0.0

    def from_inputs(self, h: torch.Tensor) -> torch.Tensor:
        return self.inner.from_inputs(h) * 0.0


def _gauge(name: str, manifold, hidden: int) -> nn.Module:
    if name == "gauge":
        return GaugeFlow(manifold, hidden=hidden)
    if name == "higher-gauge":
        return HigherGaugeFlow(manifold, hidden=hidden)
    if name == "tensor-gauge":
        return TensorGaugeFlow(manifold, rank=TENSOR_RANK, hidden=hidden)
    raise ValueError(f"unknown model {name!r}; expected one of {list(LABELS)}")


def build(name: str, manifold, widths: dict[str, int], seed: int) -> nn.Module:
    """Model ``name`` with weights from ``seed`` (global RNG untouched); ``widths[name]`` its hidden width."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name.startswith("plain"):
            return PlainFlow(manifold, hidden=widths[name])
        base = name[:-3] if name.endswith(("-a0", "-ot")) else name
        model = _gauge(base, manifold, widths[name])
    if name.endswith("-a0"):
        model.alpha = ZeroWeight(model.alpha)
    return model


def params_width(manifold, hidden: int) -> int:
    """PlainFlow width whose parameter count is closest to ``GaugeFlow(manifold, hidden)``'s."""
    target = count_parameters(GaugeFlow(manifold, hidden=hidden))
    count = lambda w: count_parameters(PlainFlow(manifold, hidden=w))  # noqa: E731
    w = hidden
    while count(w) < target:
        w += 1
    return w if abs(count(w) - target) <= abs(count(w - 1) - target) else w - 1


def _trainer(model: nn.Module, data, train: dict, seed: int) -> Trainer:
    cfg = TrainConfig(seed=seed, steps=1, device="cpu", progress=False, val_size=0, **train)
    return Trainer(model, data, cfg)


def time_steps(entries: dict[str, nn.Module], data, trains: dict[str, dict], cal: dict) -> dict[str, list[float]]:
    """Seconds per training step of each model, measured *interleaved*: ``rounds`` times, every model
    in turn runs ``steps`` steps (after ``warmup`` untimed ones), so slow drifts of the machine's load
    hit all models alike. ``trains[name]``: its training settings. Returns ``name → [seconds per step
    of each round]``.
    """
    trainers = {name: _trainer(m, data, trains[name], 0) for name, m in entries.items()}
    for tr in trainers.values():
        for _ in range(cal["warmup"]):
            tr.train_step()
    times = {name: [] for name in entries}
    for _ in range(cal["rounds"]):
        for name, tr in trainers.items():
            start = time.perf_counter()
            for _ in range(cal["steps"]):
                tr.train_step()  # the checked step the parts run
            times[name].append((time.perf_counter() - start) / cal["steps"])
    return times


def calibrate(dname: str, manifold, data, hidden: int, models: list[str], trains: dict[str, dict],
              cal: dict) -> list[dict]:
    """Widths and measured step times of every model on one data set (one row per model or candidate).

    ``trains[m]``: model ``m``'s training settings. ``plain-time``'s width (when it is among ``models``)
    is the candidate ``round(f · hidden)`` (``f`` in ``width_factors``) whose median step time is
    closest to GaugeFlow's, all candidates timed in the same interleaved rounds.
    """
    widths = {m: hidden for m in models}
    widths["plain-params"] = params_width(manifold, hidden)
    entries = {m: build(m, manifold, widths, 0) for m in models if m != "plain-time"}
    cands = {}
    if "plain-time" in models:
        cands = {f"plain-w{max(1, round(f * hidden))}": max(1, round(f * hidden)) for f in cal["width_factors"]}
    for cname, w in cands.items():
        entries[cname] = PlainFlow(manifold, hidden=w)
    # candidates (and any model without an entry) train with GaugeFlow's settings, the common ones
    times = time_steps(entries, data, {n: trains.get(n, trains["gauge"]) for n in entries}, cal)
    med = {name: statistics.median(v) for name, v in times.items()}
    if cands:
        best = min(cands, key=lambda c: abs(med[c] - med["gauge"]))
        widths["plain-time"] = cands[best]
    rows = []
    for name in list(models) + list(cands):
        key = best if name == "plain-time" else name
        v = times[key]
        rows.append({"dataset": dname, "model": name, "hidden": widths.get(name, cands.get(name)),
                     "params": count_parameters(entries[key]), "step_s_median": med[key],
                     "step_s_min": min(v), "step_s_max": max(v), "rounds": len(v), "steps_per_round": cal["steps"],
                     "candidate": name.startswith("plain-w")})
    return rows
