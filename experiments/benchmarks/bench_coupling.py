"""Cost of minibatch OT coupling in a training step (issue 19 acceptance: ≤ 1.2× the independent step).

A full ``Trainer`` step (draw, coupling, geodesic path, forward, loss, backward, clipping, Adam, EMA)
with ``coupling="ot"`` is timed against the same trainer with ``coupling="independent"``: same model
class, width 64, batch 256, float32 — the setting of the NFE study (``experiments/nfe/run.py``).
Cases: S², T² and SO(3); PlainFlow and GaugeFlow; OT over the whole batch (one 256-pair exact
assignment) and over blocks of 32 pairs (``ot_batch=32``, eight exact 32-pair assignments). Each
repetition runs ``STEPS_PER_REP`` steps of every contender, in rotating order; reported: medians of the
process CPU time on CPU (wall time on CUDA, synchronised), so waiting for a core on a shared machine does
not count. Ratio = OT step / independent step.

:func:`run_routes` takes the OT step apart (blocks of 32): ours (a chunk's batches paired in one call, the
manifold's cost override), the same pairing step by step (``pairs_in_chunks`` off: one cost product and
one host step per step, the trainer before this change) and, on SO(3), also with the cost through ``dist``
on the broadcast pairs; each against the independent step, interleaved in one run.

:func:`run_cost` times the cost matrix alone (eight ``32 × 32`` blocks, as ``ot_batch=32`` builds it): each
manifold's :meth:`~gaugeflow.geometry.Manifold.pairwise_sq_dist` against the base class's default, ``dist``
on the ``m·n`` broadcast pairs. On SO(3) the override is one product of unit quaternions
(``cos(θ/2) = |⟨q, p⟩|``) in place of ``m·n`` ``3 × 3`` products; SE(3) and products of manifolds add
their parts' costs. Ratio = override / default (wall time, medians).

Run: ``python experiments/benchmarks/bench_coupling.py [--reps N] [--threads T] [--device cuda] [--csv FILE]``
(about a minute on one CPU core); also the ``coupling`` section of ``run_all.py``.
"""
from __future__ import annotations

import argparse
import csv
import sys

import torch

from _harness import Bench, Row, format_table, interleaved, interleaved_steps, machine_info
from gaugeflow.data import wrapped_mixture
from gaugeflow.geometry import Manifold
from gaugeflow.manifolds import SE3, SO3, FlatTorus, Product, Sphere
from gaugeflow.models import GaugeFlow, PlainFlow
from gaugeflow.training import TrainConfig, Trainer

__all__ = ["run", "run_routes", "run_cost", "TARGET", "VARIANTS", "COST_CASES", "StepByStepTrainer", "DistCostSO3"]

TARGET = 1.2
BATCH, WIDTH, STEPS_PER_REP = 256, 64, 5
#: label -> TrainConfig fields of the OT contender
VARIANTS = {"ot (whole batch)": {"coupling": "ot"}, "ot (blocks of 32)": {"coupling": "ot", "ot_batch": 32}}


def _trainer(bench: Bench, manifold, cls, trainer=Trainer, **coupling) -> Trainer:
    torch.manual_seed(bench.seed)
    data = wrapped_mixture(manifold, n_train=4096, n_val=16, n_test=16, seed=0)
    cfg = TrainConfig(steps=10**9, batch_size=BATCH, hidden=WIDTH, val_size=0, progress=False,
                      device=str(bench.device), dtype=str(bench.dtype).removeprefix("torch."), **coupling)
    return trainer(cls(manifold, hidden=WIDTH), data, cfg)


def run(bench: Bench) -> list[Row]:
    """One row per manifold, model and OT variant: OT step time / independent step time."""
    rows = []
    reps = 5 if bench.quick else bench.reps
    for manifold in (Sphere(2), FlatTorus(2), SO3()):
        for cls in (PlainFlow, GaugeFlow):
            trainers = {"independent": _trainer(bench, manifold, cls)}
            trainers.update({label: _trainer(bench, manifold, cls, **kw) for label, kw in VARIANTS.items()})
            try:
                med = interleaved_steps(bench, trainers, reps, STEPS_PER_REP, warmup=3)
            finally:
                for t in trainers.values():
                    t.close()
            for label in VARIANTS:
                row = Row("coupling", f"{manifold} {cls.__name__} {label}", med[label], med["independent"],
                          "independent", target=TARGET)
                rows.append(row)
                bench.log(row)
    return rows


class StepByStepTrainer(Trainer):
    """Pairs each step's batch on its own (one cost product and one host step per step)."""

    pairs_in_chunks = False


class DistCostSO3(SO3):
    """SO(3) with the base class's cost matrix, ``dist`` on the broadcast pairs (no quaternion product)."""

    pairwise_sq_dist = Manifold.pairwise_sq_dist


def run_routes(bench: Bench) -> list[Row]:
    """One row per manifold, model and OT route (blocks of 32): OT step / independent step."""
    rows, reps = [], 5 if bench.quick else bench.reps
    kw = VARIANTS["ot (blocks of 32)"]
    for manifold in (Sphere(2), SO3()):
        for cls in (PlainFlow, GaugeFlow):
            trainers = {"independent": _trainer(bench, manifold, cls), "ours": _trainer(bench, manifold, cls, **kw),
                        "paired step by step": _trainer(bench, manifold, cls, trainer=StepByStepTrainer, **kw)}
            if isinstance(manifold, SO3):
                trainers["step by step, cost through dist"] = _trainer(bench, DistCostSO3(), cls, trainer=StepByStepTrainer, **kw)
            try:
                med = interleaved_steps(bench, trainers, reps, STEPS_PER_REP, warmup=3)
            finally:
                for t in trainers.values():
                    t.close()
            for label in list(trainers)[1:]:
                row = Row("OT route", f"{manifold} {cls.__name__} blocks of 32, {label}", med[label], med["independent"],
                          "independent", target=TARGET)
                rows.append(row)
                bench.log(row)
    return rows


#: manifolds whose cost matrix :func:`run_cost` times (an override of ``pairwise_sq_dist`` each)
COST_CASES = (lambda: SO3(), lambda: SE3(), lambda: Product(SO3(), Sphere(2)), lambda: Sphere(2))


def run_cost(bench: Bench, blocks: int = 8, block: int = 32, calls: int = 20) -> list[Row]:
    """One row per manifold: ``pairwise_sq_dist`` on ``[blocks, block, D]`` batches / the default (``dist`` on
    the broadcast pairs), with the largest difference of the two costs in the note."""
    rows, reps = [], 5 if bench.quick else bench.reps
    for make in COST_CASES:
        M = make()
        g = torch.Generator().manual_seed(bench.seed)
        x0, x1 = (M.random_base(blocks * block, generator=g, dtype=bench.dtype).to(bench.device)
                  .reshape(blocks, block, -1) for _ in range(2))

        def many(fn):
            def go():
                for _ in range(calls):
                    fn(x0, x1)
            return go

        med = interleaved(bench, {"override": many(M.pairwise_sq_dist),
                                  "default": many(lambda a, b: Manifold.pairwise_sq_dist(M, a, b))}, reps)
        gap = float((M.pairwise_sq_dist(x0, x1) - Manifold.pairwise_sq_dist(M, x0, x1)).abs().max())
        row = Row("cost matrix", f"{M} {blocks}×{block}×{block}", med["override"] / calls, med["default"] / calls,
                  "dist on broadcast pairs", note=f"largest |difference| {gap:.1e} ({str(bench.dtype).removeprefix('torch.')})")
        rows.append(row)
        bench.log(row)
    return rows


def write_csv(path: str, rows: list[Row], info: dict) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["case", "ot_ms", "independent_ms", "ratio", "target", "batch", "width", "device", "cpu",
                    "threads", "clock"])
        for r in rows:
            w.writerow([r.case, f"{1e3 * r.ours_s:.4f}", f"{1e3 * r.ref_s:.4f}", f"{r.ratio:.4f}", TARGET, BATCH,
                        WIDTH, info["device"], info.get("cpu", ""), info.get("torch_threads", ""),
                        "process CPU time" if info["device"] == "cpu" else "wall (synchronised)"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--csv", default=None, help="also write the rows to this CSV file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    bench = Bench(torch.device(args.device), reps=args.reps, quick=args.quick)
    info = machine_info(bench)
    print("coupling benchmark  " + "  ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    rows = run(bench)
    print(f"\nOT coupling: training step / independent step (target <= {TARGET}; batch {BATCH}, width {WIDTH}):")
    print(format_table(rows))
    route_rows = run_routes(bench)
    print("\nOT routes, blocks of 32: training step / independent step:")
    print(format_table(route_rows))
    cost_rows = run_cost(bench)
    print("\nOT cost matrix alone: override / dist on broadcast pairs (median wall time per call):")
    print(format_table(cost_rows))
    for r in cost_rows:
        print(f"  {r.case}: {r.note}")
    if args.csv:
        write_csv(args.csv, rows, {**info, "device": bench.device.type})
    return 0


if __name__ == "__main__":
    sys.exit(main())
