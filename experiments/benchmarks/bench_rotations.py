"""Cost of an RCFM training step on SO(3) against the same step on S² (issue 17 acceptance).

Same model class, same width (64), same fibre rank ``k = 3`` for the gauge models, batch 1024,
float32: the step (geodesic path, forward, loss, backward, Adam) on ``SO3()`` (``D = 9``: Rodrigues
exp/log with 3×3 products) against ``Sphere(2)`` (``D = 3``). Target: ratio ≤ 1.5 for every family.
For information (no target) the gauge models are also timed with their default fibre rank
``k = ambient_dim`` (``k = 9`` on SO(3) against ``k = 3`` on S²: a bigger model, not the same networks).

Reported: medians over interleaved repetitions (the two manifolds alternate, so background load hits
both alike) of the wall time per step; run it on an idle machine (or under the shared lock).

Run: ``python experiments/benchmarks/bench_rotations.py [--reps N] [--threads T] [--device cuda]``
(about a minute on one CPU core with the default 30 repetitions).
"""
from __future__ import annotations

import argparse
import sys

import torch

from _harness import Bench, Row, format_table, interleaved, machine_info
from bench_training import ours_step
from gaugeflow.manifolds import SO3, Sphere
from gaugeflow.models import GaugeFlow, HigherGaugeFlow, PlainFlow

__all__ = ["run", "TARGET"]

TARGET = 1.5
BATCH = 1024
WIDTH = 64
FAMILIES = {"plain": (PlainFlow, {}), "gauge": (GaugeFlow, {"k": 3}), "higher-gauge": (HigherGaugeFlow, {"k": 3}),
            "gauge (default k)": (GaugeFlow, {}), "higher-gauge (default k)": (HigherGaugeFlow, {})}


def _step(bench: Bench, M, cls, kwargs):
    torch.manual_seed(bench.seed)
    model = cls(M, hidden=WIDTH, **kwargs).to(device=bench.device, dtype=bench.dtype)
    g = torch.Generator().manual_seed(bench.seed)
    x0 = M.random_base(BATCH, generator=g, dtype=bench.dtype).to(bench.device)
    x1 = M.random_base(BATCH, generator=g, dtype=bench.dtype).to(bench.device)
    return ours_step(model, x0, x1)


def run(bench: Bench) -> list[Row]:
    """One row per model family: SO(3) step time against the S² step time."""
    rows = []
    for name, (cls, kwargs) in FAMILIES.items():
        fns = {"so3": _step(bench, SO3(), cls, kwargs), "s2": _step(bench, Sphere(2), cls, kwargs)}
        t = interleaved(bench, fns, bench.reps)
        target = None if "default k" in name else TARGET
        row = Row("rcfm step SO(3) vs S²", f"{name}, B={BATCH}, w={WIDTH}", t["so3"], t["s2"], "S² step", target)
        bench.log(row)
        rows.append(row)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    bench = Bench(device=torch.device(args.device), reps=args.reps, memory=False)
    print(machine_info(bench))
    rows = run(bench)
    print(format_table(rows))
    missed = [r for r in rows if r.ok is False]
    print("target (SO(3) step <= 1.5x the S² step, same networks): " + ("met" if not missed else
          "MISSED for " + ", ".join(r.case for r in missed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
