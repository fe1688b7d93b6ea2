"""The cost contract of TensorGaugeFlow's gauge term (docs/math.md §5.4): fitted exponents in r and k.

The gauge term alone — ``model.contract(x, A, a, d, T̂)``: the rank-``r`` contraction one direction
index at a time, the ``so(k)`` / L∞ action and ``Π_x``; networks excluded (fixed random outputs are fed
in), forward, no autograd. The contract per sample is

    O(r·S·D + S·D·dim g) + O(k²) (so(k))  or  + O(k³) (so_crossed_module brackets),

with ``S`` channels. Hence, at fixed ``S``, exponent ≤ 1 in ``r`` and, at fixed ``r``, exponent 2
in ``k`` for ``so(k)`` (``dim g = k(k−1)/2``) and 3 for ``so_crossed_module(k)``.

1. ``r ∈ {2, 4, 8, 16, 32}`` on S² (``D = 3``), ``so(3)``, ``S = 2``; beside it a *dense* reference
   that materialises the ``[B, D^r, dim g]`` field from the same factors and contracts it
   (``r ≤ 7``; its cost grows like ``D^r``: the printed factor per extra rank).
2. ``k ∈ {4, 8, 16, 32, 64}`` on S² at ``r = 2``, ``S = 2``, for ``so(k)`` and ``so_crossed_module(k)``;
   exponents fitted over ``k ≥ 16`` (below, per-call overheads dominate) and over all ``k``.

Run (heavy: under the shared lock): ``flock /tmp/gaugeflow-heavy.lock python
experiments/benchmarks/bench_tensor_gauge.py [--quick] [--device cuda] [--json out.json]``.
"""
from __future__ import annotations

import argparse
import json
import math

import torch

from _harness import Bench, fit_exponent, interleaved, machine_info
from gaugeflow.algebra import so_crossed_module
from gaugeflow.manifolds import Sphere
from gaugeflow.models import TensorGaugeFlow

RANKS, DENSE_RANKS, KS, FIT_FROM = (2, 4, 8, 16, 32), (2, 3, 4, 5, 6, 7), (4, 8, 16, 32, 64), 16
CONTRACT = {"r": 1.0, "so(k)": 2.0, "so_crossed_module(k)": 3.0}
SLACK = 0.5  # a fitted exponent passes when <= contract + SLACK
_WORK = 2**22  # target entries of the largest per-call tensor


def _fields(bench: Bench, model: TensorGaugeFlow, batch: int, gen: torch.Generator):
    """Random ``(x, A, a, d, T̂)`` with ``model.fields``' shapes on ``bench``'s device."""
    M, D, S, n = model.manifold, model.manifold.ambient_dim, model.channels, model.algebra.dim
    opts = dict(generator=gen, dtype=bench.dtype)
    x = M.random_base(batch, **opts)
    A, a = torch.randn(batch, D, S, n, **opts), torch.randn(batch, model.rank - 1, S, D, **opts)
    d = M.proju(x, torch.randn(batch, D, **opts))
    fibre = model.k if model.lie else n
    T = torch.randn(batch, fibre, **opts)
    x, A, a, d, T = (t.to(bench.device) for t in (x, A, a, d, T))
    return x, A, a, d, (T if model.lie else [T])


def dense_contract(model: TensorGaugeFlow, x, A, a, d, T):
    """The same term through the dense ``[B, D, …, D, dim g]`` field built from the factors (reference)."""
    B, D, S, n = A.shape
    dense = A.permute(0, 2, 1, 3)  # [B, S, D(μr), n]
    for j in range(a.shape[1]):  # prepend one direction index per factor slot: [B, S, D, …, D, n]
        dense = a[:, j].reshape(B, S, D, *([1] * (dense.dim() - 2))) * dense.unsqueeze(2)
    dense = dense.sum(1)  # [B, D^r as D × … × D, n]: the field, materialised
    for _ in range(model.rank):
        dense = (dense * d.reshape(B, D, *([1] * (dense.dim() - 2)))).sum(1)
    return model._act(x, dense, T)


def _model(bench: Bench, rank: int, algebra=None, k=None) -> TensorGaugeFlow:
    torch.manual_seed(bench.seed)
    return TensorGaugeFlow(Sphere(2), rank=rank, algebra=algebra, k=k, hidden=4, channels=2).to(bench.device, bench.dtype)


def run_ranks(bench: Bench, ranks=RANKS, dense_ranks=DENSE_RANKS) -> dict:
    """µs per sample of ours over ``ranks`` and of the dense reference over ``dense_ranks``."""
    gen = torch.Generator().manual_seed(bench.seed)
    out = {"r": list(ranks), "ours": [], "r_dense": list(dense_ranks), "dense": [], "ours_at_dense": []}
    batch = 4096 if not bench.quick else 512
    for r in sorted(set(ranks) | set(dense_ranks)):
        model = _model(bench, r)
        f = _fields(bench, model, batch, gen)
        fns = {"ours": lambda: model.contract(*f)}
        if r in dense_ranks:
            b_dense = max(16, min(batch, _WORK // (3**r * model.algebra.dim * model.channels)))
            fd = [t[:b_dense] if isinstance(t, torch.Tensor) else t for t in f]
            fns["dense"] = lambda: dense_contract(model, *fd)
            with torch.no_grad():
                err = float((fns["dense"]() - model.contract(*fd)).abs().max())
            if err > 1e-3:
                raise RuntimeError(f"r={r}: dense reference and contract disagree ({err:.1e})")
        with torch.no_grad():
            med = interleaved(bench, fns, bench.reps, warmup=2)
        us = 1e6 * med["ours"] / batch
        if r in ranks:
            out["ours"].append(us)
        if r in dense_ranks:
            out["dense"].append(1e6 * med["dense"] / b_dense)
            out["ours_at_dense"].append(us)
        print(f"  r={r}: ours {us:.3f} us/sample" + (f", dense {out['dense'][-1]:.3f} us/sample" if "dense" in fns else ""),
              flush=True)
    out["exp_ours"] = fit_exponent(ranks, out["ours"])
    slope = fit_exponent([math.e ** r for r in dense_ranks], out["dense"])  # log t against r
    out["dense_factor_per_rank"] = math.exp(slope)
    return out


def run_ks(bench: Bench, ks=KS, rank: int = 2) -> dict:
    """µs per sample for ``so(k)`` and ``so_crossed_module(k)`` over ``ks``, and fitted exponents."""
    gen = torch.Generator().manual_seed(bench.seed)
    out = {}
    for name in ("so(k)", "so_crossed_module(k)"):
        per = {"k": list(ks), "us": [], "batch": []}
        for k in ks:
            model = _model(bench, rank, k=k) if name == "so(k)" else _model(bench, rank, algebra=so_crossed_module(k))
            batch = int(min(8192, max(128, _WORK // (3 * model.channels * model.algebra.dim + k * k))))
            f = _fields(bench, model, batch, gen)
            with torch.no_grad():
                med = interleaved(bench, {"ours": lambda: model.contract(*f)}, bench.reps, warmup=2)
            per["us"].append(1e6 * med["ours"] / batch)
            per["batch"].append(batch)
            print(f"  {name} k={k}: {per['us'][-1]:.3f} us/sample (batch {batch})", flush=True)
        big = [i for i, k in enumerate(ks) if k >= FIT_FROM]
        big = big if len(big) >= 2 else list(range(len(ks)))
        per["exp"] = fit_exponent([ks[i] for i in big], [per["us"][i] for i in big])
        per["exp_all"] = fit_exponent(ks, per["us"])
        out[name] = per
    return out


def report(ranks: dict, ks: dict) -> str:
    ok = ranks["exp_ours"] <= CONTRACT["r"] + SLACK
    lines = ["TensorGaugeFlow gauge term alone (contract + Π, forward), S² (D = 3), S = 2 channels, time per sample:",
             f"  rank: {', '.join(f'r={r}: {u:.3f} us' for r, u in zip(ranks['r'], ranks['ours']))}",
             f"  fitted exponent in r: {ranks['exp_ours']:.2f} (contract {CONTRACT['r']:.0f}, limit "
             f"{CONTRACT['r'] + SLACK}: {'ok' if ok else 'EXCEEDED'})",
             f"  dense [B, D^r, dim g] reference: {', '.join(f'r={r}: {u:.3f} us' for r, u in zip(ranks['r_dense'], ranks['dense']))}"
             f"; x{ranks['dense_factor_per_rank']:.2f} per extra rank (D = 3); dense/ours at r = {ranks['r_dense'][-1]}: "
             f"{ranks['dense'][-1] / ranks['ours_at_dense'][-1]:.1f}"]
    for name, per in ks.items():
        ok = per["exp"] <= CONTRACT[name] + SLACK
        lines.append(f"  {name}, r = 2: {', '.join(f'k={k}: {u:.3f} us' for k, u in zip(per['k'], per['us']))}")
        lines.append(f"  fitted exponent in k (k >= {FIT_FROM}): {per['exp']:.2f} (contract {CONTRACT[name]:.0f}, limit "
                     f"{CONTRACT[name] + SLACK}: {'ok' if ok else 'EXCEEDED'}); over all k: {per['exp_all']:.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--quick", action="store_true", help="small sizes, few repetitions (smoke run)")
    p.add_argument("--json", metavar="FILE", help="also write the figures and the machine as JSON")
    args = p.parse_args(argv)
    bench = Bench(torch.device(args.device), reps=3 if args.quick else args.reps, quick=args.quick, memory=False)
    ranks = run_ranks(bench, (2, 4, 8) if args.quick else RANKS, (2, 3, 4) if args.quick else DENSE_RANKS)
    ks = run_ks(bench, (8, 16, 32) if args.quick else KS)
    print(report(ranks, ks))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine_info(bench), "ranks": ranks, "ks": ks, "contract": CONTRACT}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
