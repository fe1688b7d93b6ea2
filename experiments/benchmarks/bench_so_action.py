"""Micro-benchmark: the so(k) vector action ``act(ξ, v) = hat(ξ) v`` against the dense-basis einsum.

gaugeflow builds ``hat(ξ)`` by an index gather (``O(k²)`` per sample) and applies it with one batched
mat-vec; the naive reference contracts the coordinates with a materialised basis tensor
``T ∈ ℝ^{dim × k × k}`` (``einsum('na,aij,nj->ni')``, ``O(k⁴)`` per sample, ``O(k⁴)`` memory for T).

For each k the script times both on the same random batch, interleaving the two methods in every
repetition, and reports the median time per 10⁵ actions (batches are capped at ~2²² matrix entries
and the time is scaled to 10⁵) and the ratio naive / gaugeflow. Runs in well under two minutes on a
laptop CPU.

Usage:
    python experiments/benchmarks/bench_so_action.py [--ks 4 8 16 32 64] [--reps 7] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from gaugeflow.algebra import so

PER = 100_000


def _timer(device: torch.device):
    def now() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    return now


def bench_k(k: int, reps: int, device: torch.device, dtype: torch.dtype) -> dict:
    """Median seconds per 10⁵ actions for gaugeflow and the naive einsum at one ``k``."""
    g = so(k)
    n = int(min(PER, max(256, 2**22 // (k * k))))
    gen = torch.Generator(device=device).manual_seed(k)
    xi = torch.randn(n, g.dim, generator=gen, device=device, dtype=dtype)
    v = torch.randn(n, k, generator=gen, device=device, dtype=dtype)
    basis = g.basis(dtype=dtype, device=device)  # materialised once, outside the timed region

    def ours():
        return g.act(xi, v)

    def naive():
        return torch.einsum("na,aij,nj->ni", xi, basis, v)

    ref, out = naive(), ours()
    scale = float(ref.abs().max())
    if not torch.allclose(out, ref, atol=1e-4 * scale, rtol=1e-4):
        raise RuntimeError(f"k={k}: gaugeflow and naive disagree by {float((out - ref).abs().max()):.3e}")
    now, times = _timer(device), {"gaugeflow": [], "naive": []}
    for _ in range(reps):
        for name, fn in (("gaugeflow", ours), ("naive", naive)):
            t0 = now()
            fn()
            times[name].append((now() - t0) * PER / n)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    return {"k": k, "dim": g.dim, "batch": n, **med, "ratio": med["naive"] / med["gaugeflow"]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ks", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = p.parse_args(argv)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    print(f"so(k) action, time per 1e5 actions (median of {args.reps} interleaved reps), "
          f"{args.dtype} on {device} (torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print(f"{'k':>4} {'dim':>6} {'batch':>7} {'gaugeflow [ms]':>15} {'naive einsum [ms]':>18} {'naive/gaugeflow':>16}")
    for k in args.ks:
        r = bench_k(k, args.reps, device, dtype)
        print(f"{r['k']:>4} {r['dim']:>6} {r['batch']:>7} {1e3 * r['gaugeflow']:>15.2f} "
              f"{1e3 * r['naive']:>18.2f} {r['ratio']:>16.1f}")


if __name__ == "__main__":
    main()
