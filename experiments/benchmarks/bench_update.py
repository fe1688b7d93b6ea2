"""The trainer's update (Adam, gradient clipping, weight EMA) against torch's per-tensor update.

``Trainer`` runs :class:`gaugeflow.training.flat_adam.FlatAdam` — torch's Adam/AdamW formula once on
one flat vector of all parameters, gradients and moments — ``clip_grad_norm_(foreach=True)`` and one
flat EMA lerp. The reference, :class:`PerTensorTrainer`, is the update as torch's optimiser
runs it on CPU by default: ``torch.optim.Adam``'s per-tensor loop (~15 dispatched operations per
parameter tensor, the scalar step tensors included), per-tensor clipping and one ``lerp_`` per tensor
for the EMA. A gauge model has 29–35 parameter tensors. The two produce the same weights, optimiser
state and EMA *bit for bit* (checked after every case, and in ``tests/test_trainer_route.py``), so only
the time differs.

A full ``Trainer`` step (draw, geodesic path, forward, loss, backward, clipping, Adam, EMA) is timed for
the compute study's setting — batch 256, width 64, float32 — on S² (PlainFlow, GaugeFlow,
HigherGaugeFlow, TensorGaugeFlow) and on SO(3) (GaugeFlow). Both trainers start from the same weights
and stream and take the same steps, ``STEPS_PER_REP`` at a time, in rotating order; medians of the
process CPU time on CPU (wall time on CUDA, synchronised). Ratio = our step / per-tensor step.

:func:`run_optimizer` times ``step()`` alone on GaugeFlow's parameters: torch's per-tensor loop,
``foreach=True``, FlatAdam, and torch's Adam on one flat parameter (the floor of any flat update).

Run: ``python experiments/benchmarks/bench_update.py [--reps N] [--threads T] [--device cuda] [--quick]``
(about a minute on one CPU core); also the ``update`` section of ``run_all.py``.
"""
from __future__ import annotations

import argparse
import sys

import torch

from _harness import Bench, Row, format_table, interleaved, interleaved_steps, machine_info
from gaugeflow.data import wrapped_mixture
from gaugeflow.manifolds import SO3, Sphere
from gaugeflow.models import GaugeFlow, HigherGaugeFlow, PlainFlow, TensorGaugeFlow
from gaugeflow.training import TrainConfig, Trainer
from gaugeflow.training.flat_adam import FlatAdam
from gaugeflow.training.tools import EMA

__all__ = ["run", "run_optimizer", "PerTensorTrainer", "PerTensorEMA", "CASES", "identical"]

BATCH, WIDTH, STEPS_PER_REP = 256, 64, 5
#: (label, manifold factory, model class)
CASES = (("S2 PlainFlow", lambda: Sphere(2), PlainFlow), ("S2 GaugeFlow", lambda: Sphere(2), GaugeFlow),
         ("S2 HigherGaugeFlow", lambda: Sphere(2), HigherGaugeFlow),
         ("S2 TensorGaugeFlow", lambda: Sphere(2), TensorGaugeFlow), ("SO3 GaugeFlow", SO3, GaugeFlow))


class PerTensorEMA(EMA):
    """The EMA with one ``lerp_`` per tensor (the reference of the multi-tensor update)."""

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                self.shadow[name].lerp_(value, 1.0 - d)
            else:
                self.shadow[name].copy_(value)
        self.updates += 1


class PerTensorTrainer(Trainer):
    """``Trainer`` with ``torch.optim.Adam``/``AdamW``'s per-tensor loop, per-tensor clipping and per-tensor
    EMA (not resumable)."""

    def _make_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config
        opt = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        return opt(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False)

    def _clip_gradients(self) -> torch.Tensor:
        clip = self.config.grad_clip if self.config.grad_clip is not None else float("inf")
        return torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip, foreach=False)

    def _setup(self, model, data, resume, overwrite) -> None:
        if resume:
            raise ValueError("PerTensorTrainer: a benchmark reference, it does not resume")
        super()._setup(model, data, resume, overwrite)
        self.ema = PerTensorEMA(self.model, self.config.ema_decay)


def _trainer(bench: Bench, cls_trainer, manifold, cls_model) -> Trainer:
    torch.manual_seed(bench.seed)
    data = wrapped_mixture(manifold, n_train=4096, n_val=16, n_test=16, seed=0)
    cfg = TrainConfig(steps=10**9, batch_size=BATCH, val_size=0, progress=False, grad_clip=1.0, lr=3e-3,
                      device=str(bench.device), dtype=str(bench.dtype).removeprefix("torch."))
    return cls_trainer(cls_model(manifold, hidden=WIDTH), data, cfg)


def identical(a: Trainer, b: Trainer) -> bool:
    """Whether two trainers hold the same weights, EMA and Adam state, bit for bit."""
    opt_a, opt_b = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    return (all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))
            and all(torch.equal(a.ema.shadow[k], b.ema.shadow[k]) for k in a.ema.shadow)
            and opt_a.keys() == opt_b.keys()
            and all(torch.equal(opt_a[i][k], opt_b[i][k]) for i in opt_a for k in ("step", "exp_avg", "exp_avg_sq")))


def run(bench: Bench) -> list[Row]:
    """One row per case: our step time / torch's per-tensor step time, with the bit-for-bit check."""
    rows, reps = [], 5 if bench.quick else bench.reps
    for label, make_manifold, cls in CASES:
        manifold = make_manifold()
        trainers = {"per-tensor": _trainer(bench, PerTensorTrainer, manifold, cls),
                    "multi-tensor": _trainer(bench, Trainer, manifold, cls)}
        try:
            med = interleaved_steps(bench, trainers, reps, STEPS_PER_REP, warmup=STEPS_PER_REP)
            same = identical(trainers["multi-tensor"], trainers["per-tensor"])
            taken = int(trainers["multi-tensor"].optimizer.state_dict()["state"][0]["step"])
        finally:
            for t in trainers.values():
                t.close()
        n_tensors = sum(1 for _ in trainers["multi-tensor"].model.parameters())
        row = Row("update", label, med["multi-tensor"], med["per-tensor"], "per-tensor update",
                  note=f"{n_tensors} parameter tensors; after {taken} steps each, weights, "
                       f"EMA and Adam state {'bit-identical' if same else 'DIFFER'}",
                  extra={"identical": same, "parameter_tensors": n_tensors})
        rows.append(row)
        bench.log(row)
    return rows


def run_optimizer(bench: Bench, steps: int = 20) -> list[Row]:
    """``step()`` alone on the parameters of ``GaugeFlow(S², hidden=64)`` (fixed gradients), per route:
    torch's per-tensor loop (the reference), torch's ``foreach=True``, :class:`FlatAdam`, and torch's Adam on
    *one* flat parameter holding every entry — the floor of a flat update, with no gathering or copying back."""
    torch.manual_seed(bench.seed)
    model = GaugeFlow(Sphere(2), hidden=WIDTH).to(bench.device)
    init = [p.detach().clone() for p in model.parameters()]

    def params():
        out = [torch.nn.Parameter(x.clone()) for x in init]
        for p in out:
            p.grad = torch.randn_like(p)
        return out

    flat = torch.nn.Parameter(torch.cat([x.reshape(-1) for x in init]))
    flat.grad = torch.randn_like(flat)
    opts = {"per-tensor": torch.optim.Adam(params(), foreach=False), "foreach": torch.optim.Adam(params(), foreach=True),
            "FlatAdam": FlatAdam(params()), "one flat parameter": torch.optim.Adam([flat], foreach=False)}

    def steps_of(opt):
        def fn():
            for _ in range(steps):
                opt.step()
        return fn

    med = interleaved(bench, {k: steps_of(o) for k, o in opts.items()}, 5 if bench.quick else bench.reps)
    rows = []
    for name in ("foreach", "FlatAdam", "one flat parameter"):
        row = Row("optimiser step", f"GaugeFlow S2 ({len(init)} tensors, {flat.numel()} entries): {name}",
                  med[name] / steps, med["per-tensor"] / steps, "per-tensor Adam")
        rows.append(row)
        bench.log(row)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    if args.reps < 1 or args.threads < 1:
        raise SystemExit(f"--reps and --threads must be >= 1, got {args.reps} and {args.threads}")
    torch.set_num_threads(args.threads)
    bench = Bench(torch.device(args.device), reps=args.reps, quick=args.quick)
    info = machine_info(bench)
    print("update benchmark  " + "  ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    rows = run(bench)
    print(f"\nTraining step, our update / torch's per-tensor update (batch {BATCH}, width {WIDTH}):")
    print(format_table(rows))
    for r in rows:
        print(f"  {r.case}: {r.note}")
    print("\nOptimiser step alone (median wall time per step; ratio = route / per-tensor Adam):")
    print(format_table(run_optimizer(bench)))
    return 0 if all(r.extra["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
