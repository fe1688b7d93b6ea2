"""gaugeflow benchmark suite: speed and memory against the peers, in one process (``make bench``).

Sections (each a module of this folder, runnable alone):

* ``bench_training``  — one RCFM training step on S² vs flow_matching and on ℝ^8 vs torchcfm.
* ``bench_paths``     — the RCFM step over its floor (same network, loss and Adam on precomputed
  ``x_t, u_t``) on S², T², H² and SO(3), the default call and the trainer's (target ≤ 1.10).
* ``bench_sampling``  — sampling 10⁵ points (100 RK4 steps) vs flow_matching's RiemannianODESolver,
  and the exact log-likelihood of 10⁴ points vs the per-coordinate ``autograd.grad`` loop.
* ``bench_gauge_term`` — GaugeFlow / HigherGaugeFlow step time over PlainFlow, and the gauge term
  alone for k ∈ {4, …, 64} with fitted exponents and a naive dense-basis version beside it.
* ``bench_gauge_overhead`` — the gauge term's share of a training step, k ∈ {4, 8, 16}, against the
  same networks with the gauge algebra replaced by a no-op (target ≤ 1.30).
* ``bench_coupling`` — a training step with minibatch OT coupling over the independent step, on S² and
  T², whole batch and blocks of 32 (target ≤ 1.2).
* ``bench_update``   — a training step with the trainer's update (flat Adam, multi-tensor clipping and
  EMA) over torch's per-tensor update, on S² and SO(3); the two are checked bit for bit.
* ``bench_ensemble`` — five members of one model stacked with ``torch.func`` (one vmapped loss, one
  backward, one Adam step) over five separate training steps, on S² and SO(3).
* ``bench_dimension`` — training step, sampling and exact vs Hutchinson likelihood on S^n and T^n for
  n ∈ {2, …, 64} (one thread), fitted exponents, Hutchinson's error per number of probes and the
  dimension from which Hutchinson is the default; a full CPU run rewrites ``docs/results/dimension.*``
  and its docs/performance.md section (``dimension_report``); about 6 more minutes.
* ``bench_mesh`` — premetric paths (1 024 pairs) and the training step on torus meshes of 10k, 40k and
  160k faces against the sphere's closed-form step, and the cost against the eigenpair count (issue 20).

Every comparison interleaves the contenders repetition by repetition and reports medians; the ratio
column is ours / reference (below 1: ours is faster). Peak memory is the peak of the bytes allocated
during one call (CPU: replayed from torch.profiler's allocation events; CUDA: max_memory_allocated).

Usage:
    python experiments/benchmarks/run_all.py [--quick] [--threads N] [--device cpu|cuda]
        [--reps 30] [--reps-long 3] [--compile] [--no-memory] [--only train paths sampling gauge overhead terms coupling update ensemble dimension mesh]
        [--json results.json]

The full run takes about 5–8 minutes on a 2-core CPU; ``--quick`` is a smoke test (sizes shrunk,
numbers not comparable). Needs the ``bench`` extra (flow-matching==1.0.10, torchcfm==1.0.7).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import asdict

import torch

from _harness import Bench, format_table, load_average, machine_info

SECTIONS = ("train", "paths", "sampling", "gauge", "overhead", "terms", "coupling", "update", "ensemble", "dimension",
            "mesh")


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes and few repetitions (smoke test)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--reps", type=int, default=None, help="repetitions of the short cases (default 30; quick 5)")
    p.add_argument("--reps-long", type=int, default=None, help="repetitions of sampling/likelihood (default 3; quick 2)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd variants of our models")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--json", default=None, help="also write all results to this JSON file")
    return p.parse_args(argv)


def _bench_from(args) -> Bench:
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but torch.cuda.is_available() is False")
    reps = args.reps if args.reps is not None else (5 if args.quick else 30)
    reps_long = args.reps_long if args.reps_long is not None else (2 if args.quick else 3)
    if reps < 1 or reps_long < 1:
        raise SystemExit("--reps and --reps-long must be >= 1")
    return Bench(device, getattr(torch, args.dtype), reps, reps_long, args.quick, not args.no_memory, args.compile)


def _print_compiled(rows) -> None:
    for r in rows:
        for name, secs in r.extra.items():
            print(f"  {r.group}: {r.case}: {name} {1e3 * secs:.2f} ms = {secs / r.ref_s:.2f} x {r.ref_name} "
                  f"({secs / r.ours_s:.2f} x ours eager)")


def _run_sections(bench: Bench, only, results: dict) -> list:
    """Run the selected sections, printing their tables; returns the result rows."""
    rows = []
    if "train" in only:
        import bench_training

        rows += bench_training.run(bench)
        _print_compiled(rows)
    if "paths" in only:
        import bench_paths

        path_rows = bench_paths.run(bench)
        print("\nRCFM step over its floor (same network, loss and Adam on precomputed x_t, u_t; "
              f"target <= {bench_paths.TARGET}):")
        print(bench_paths.format_rows(path_rows))
        rows += path_rows
    if "sampling" in only:
        import bench_sampling

        rows += bench_sampling.run(bench)
    if rows:
        print("\nOurs against the peers (median wall time per call; ratio = ours / reference):")
        print(format_table(rows))
        for r in rows:
            if r.note:
                print(f"  {r.group}: {r.note}")
    if "gauge" in only or "terms" in only:
        import bench_gauge_term
    if "gauge" in only:
        gauge_rows = bench_gauge_term.run_models(bench)
        print("\nGauge models against PlainFlow of the same width (training step, S2, batch 1024):")
        print(format_table(gauge_rows))
        rows += gauge_rows
    if "overhead" in only:
        import bench_gauge_overhead

        overhead_rows = bench_gauge_overhead.run(bench, ks=(4, 8) if bench.quick else bench_gauge_overhead.KS)
        print("\nGauge-term overhead in a training step (same networks, gauge algebra replaced by a no-op; "
              f"target <= {bench_gauge_overhead.TARGET}; CPU time on CPU):")
        print(format_table(overhead_rows))
        for r in overhead_rows:
            print(f"  {r.case}: {r.note}")
        rows += overhead_rows
    if "coupling" in only:
        import bench_coupling

        coupling_rows = bench_coupling.run(bench)
        print(f"\nOT coupling: training step / independent step (target <= {bench_coupling.TARGET}):")
        print(format_table(coupling_rows))
        cost_rows = bench_coupling.run_cost(bench)
        print("\nOT cost matrix alone: override / dist on broadcast pairs:")
        print(format_table(cost_rows))
        for r in cost_rows:
            print(f"  {r.case}: {r.note}")
        rows += coupling_rows + cost_rows
    if "update" in only:
        import bench_update

        update_rows = bench_update.run(bench)
        print("\nTraining step, our update / torch's per-tensor update (batch 256, width 64):")
        print(format_table(update_rows))
        for r in update_rows:
            print(f"  {r.case}: {r.note}")
        optimizer_rows = bench_update.run_optimizer(bench)
        print("\nOptimiser step alone (median wall time per step; ratio = route / per-tensor Adam):")
        print(format_table(optimizer_rows))
        rows += update_rows + optimizer_rows
    if "ensemble" in only:
        import bench_ensemble

        ensemble_rows = bench_ensemble.run(bench)
        print(f"\nTraining step of {bench_ensemble.MEMBERS} members stacked (torch.func) / as many separate steps:")
        print(format_table(ensemble_rows))
        for r in ensemble_rows:
            print(f"  {r.case}: {r.note}")
        rows += ensemble_rows
    if "terms" in only:
        results["terms"] = bench_gauge_term.run_terms(bench)
        print("\n" + bench_gauge_term.format_terms(results["terms"]))
    if "dimension" in only:
        import bench_dimension

        print("\nCost growth with dimension (S^n, T^n; one thread):", flush=True)
        dim = bench_dimension.run(bench, ns=bench_dimension.NS[:3] if bench.quick else bench_dimension.NS)
        results["dimension"] = dict(dim, machine=dict(results["machine"], torch_threads=1))
        print(bench_dimension.format_summary(dim))
        if bench.device.type == "cpu" and not bench.quick:  # the docs' tables come from a full CPU run
            bench_dimension.publish(results["dimension"])
    if "mesh" in only:
        import bench_mesh

        print("\nMeshes: premetric path (1024 pairs) and training step vs the sphere's closed-form path:", flush=True)
        results["mesh"] = bench_mesh.run(bench)
        print(bench_mesh.format_summary(results["mesh"]))
    return rows


def main(argv=None) -> dict:
    """Run the suite; returns (and with ``--json`` writes) every number with the machine and load."""
    args = _parse(argv)
    bench = _bench_from(args)
    warnings.filterwarnings("ignore", category=FutureWarning)  # torchcfm's deprecated torch.jit.script
    t_start, info = time.perf_counter(), machine_info(bench)
    print("gaugeflow benchmarks  " + "  ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    if bench.device.type == "cpu" and torch.get_num_threads() > 1 and info["load_1min"] > 1.5:
        print(f"warning: 1-min load {info['load_1min']} on {info['cores']} cores: multi-threaded CPU timings are "
              "dominated by scheduling under load; prefer --threads 1 (or a quiet machine)", flush=True)
    results = {"machine": info, "args": vars(args)}
    rows = _run_sections(bench, args.only, results)
    results["rows"] = [dict(asdict(r), ratio=r.ratio, ok=r.ok) for r in rows]
    results["elapsed_s"] = time.perf_counter() - t_start
    results["load_1min_end"] = round(load_average(), 2)
    print(f"\ntotal {results['elapsed_s']:.0f} s; 1-min load average at start {info['load_1min']}, "
          f"at end {results['load_1min_end']}")
    missed = [f"{r.group}: {r.case}" for r in rows if r.ok is False]
    if missed:
        print("targets missed: " + "; ".join(missed))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1, default=str)
    return results


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
