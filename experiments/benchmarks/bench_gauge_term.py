"""The price of the gauge terms (the cost contract, docs/math.md §5.6).

1. Whole training steps: ``GaugeFlow`` and ``HigherGaugeFlow`` against ``PlainFlow`` of the same
   width on S² (same batch, loss, Adam). The gauge models carry three more networks of that width
   (connection, direction, section/graded field), so the ratio is bounded below by ~4 at large
   width; what the library controls is the rest.
2. The gauge term alone — contraction with the direction field, the so(k)/L∞ action, and the
   projection ``Π_x`` (``model.contract``), networks excluded: fixed random network outputs are fed
   in — for ``k ∈ {4, 8, 16, 32, 64}`` on S² (``D = 3``), forward pass, no autograd. Per sample the
   contract is ``O(D·dim g + k²)`` for GaugeFlow (``dim g = k(k−1)/2``, so exponent 2 in ``k``)
   and ``O(D·dim L + k³)`` for HigherGaugeFlow (exponent 3). Beside each, a *naive dense-basis*
   version builds matrices as ``einsum('ba,aij->bij', ξ, T)`` with the materialised ``[dim g, k, k]``
   basis ``T`` (and reads coordinates back the same way): ``O(k⁴)`` per sample. The exponent is the
   log-log slope of the time per sample, fitted over ``k ≥ 16`` (at small ``k`` fixed per-call
   overheads dominate) and, for reference, over all ``k``.

Run alone: ``python experiments/benchmarks/bench_gauge_term.py``.
"""
from __future__ import annotations

import torch

from _harness import Bench, Row, fit_exponent, interleaved, peak_memory
from bench_training import BATCH, ours_step, sphere_pairs
from gaugeflow.algebra import so
from gaugeflow.manifolds import Sphere
from gaugeflow.models import GaugeFlow, HigherGaugeFlow, PlainFlow

__all__ = ["run_models", "run_terms", "CONTRACT"]

KS = (4, 8, 16, 32, 64)
FIT_FROM = 16
CONTRACT = {"GaugeFlow": 2, "HigherGaugeFlow": 3}
_WORK = 2**22  # target entries of the largest per-call tensor (keeps time and memory per call bounded)


def run_models(bench: Bench, widths=(64, 256)) -> list[Row]:
    """Training-step time of each gauge model over PlainFlow (S², batch 1024)."""
    x0, x1 = sphere_pairs(bench, BATCH)
    rows = []
    for w in widths:
        models = {}
        for name, cls in (("plain", PlainFlow), ("GaugeFlow", GaugeFlow), ("HigherGaugeFlow", HigherGaugeFlow)):
            torch.manual_seed(bench.seed)
            models[name] = cls(Sphere(2), hidden=w).to(bench.device, bench.dtype)
        fns = {name: ours_step(m, x0, x1) for name, m in models.items()}
        med = interleaved(bench, fns, bench.reps, warmup=3)
        peaks = {n: peak_memory(bench, f) for n, f in fns.items()} if bench.memory else {}
        for name in ("GaugeFlow", "HigherGaugeFlow"):
            rows.append(Row("gauge step S2", f"{name} w={w}", med[name], med["plain"], f"PlainFlow w={w}",
                            ours_peak=peaks.get(name), ref_peak=peaks.get("plain")))
            bench.log(rows[-1])
    return rows


# ---------------------------------------------------------------- naive dense-basis references
def _naive_hat(xi, basis):
    return torch.einsum("ba,aij->bij", xi, basis)


def _naive_vee(X, basis):
    return 0.5 * torch.einsum("aij,bij->ba", basis, X)  # <T_a, T_b>_F = 2 δ_ab


def naive_gauge(M, W, basis, x, A, d, s):
    """``Π_x(hat(A[d]) v_s)`` with the hat built from the dense basis. Shapes as ``GaugeFlow.contract``."""
    X = _naive_hat(torch.einsum("bma,bm->ba", A, d), basis)
    return M.proju(x, torch.einsum("bij,bj->bi", X, s) @ W.T)


def naive_higher(M, W, basis, c, x, A, d, v):
    """``Π_x(c1 l1(B) + c2 l2(B, v̂))`` for ``so_crossed_module`` with dense-basis hat/vee."""
    n = basis.shape[0]
    B = torch.einsum("bml,bm->bl", A, d)
    hB0, hB1, hV0, hV1 = (_naive_hat(z, basis) for z in (B[:, :n], B[:, n:2 * n], v[:, :n], v[:, n:2 * n]))
    top0 = _naive_vee(hB0 @ hV0 - hV0 @ hB0, basis)
    top1 = _naive_vee(hB0 @ hV1 - hV1 @ hB0 + hB1 @ hV0 - hV0 @ hB1, basis)
    G = torch.cat([c[0] * B[:, n:2 * n] + c[1] * top0, c[1] * top1, torch.zeros_like(B[:, :1])], dim=-1)
    return M.proju(x, G @ W.T)


def _inputs(bench: Bench, k: int, fibre: int, width: int, batch: int, gen):
    M = Sphere(2)
    opts = dict(dtype=bench.dtype)
    x = M.random_base(batch, generator=gen, **opts)
    A = torch.randn(batch, 3, width, generator=gen, **opts)
    d = M.proju(x, torch.randn(batch, 3, generator=gen, **opts))
    s = torch.randn(batch, fibre, generator=gen, **opts)
    return [t.to(bench.device) for t in (x, A, d, s)]


def _term_case(bench: Bench, name: str, k: int, gen):
    """``(ours_fn, naive_fn, batch_ours, batch_naive)`` for one model and k."""
    g = so(k)
    if name == "GaugeFlow":
        model = GaugeFlow(Sphere(2), hidden=4, k=k)
        width, fibre = g.dim, k
    else:
        model = HigherGaugeFlow(Sphere(2), hidden=4, k=k)
        width = fibre = model.algebra.dim
    model = model.to(bench.device, bench.dtype)
    W, basis = model.projection.weight.detach(), g.basis(dtype=bench.dtype, device=bench.device)
    b_ours = int(min(8192, max(256, _WORK // (3 * width))))
    b_naive = int(min(b_ours, max(16, _WORK // (g.dim * k))))
    x, A, d, s = _inputs(bench, k, fibre, width, b_ours, gen)
    xs, As, ds, ss = (t[:b_naive] for t in (x, A, d, s))
    if name == "GaugeFlow":
        ours = lambda: model.contract(x, A, d, s)  # noqa: E731
        naive = lambda: naive_gauge(model.manifold, W, basis, xs, As, ds, ss)  # noqa: E731
    else:
        ours = lambda: model.contract(x, A, d, [s])  # noqa: E731
        naive = lambda: naive_higher(model.manifold, W, basis, model.c, xs, As, ds, ss)  # noqa: E731
    with torch.no_grad():
        ref, got = naive(), ours()[:b_naive]
        err = float((ref - got).abs().max() / ref.abs().max())
    if err > 1e-4:
        raise RuntimeError(f"{name} k={k}: contract and naive dense-basis disagree (relative error {err:.1e})")
    return ours, naive, b_ours, b_naive


def run_terms(bench: Bench, ks=KS) -> dict:
    """Per-sample seconds of ours and naive for each model and k, and the fitted exponents."""
    gen = torch.Generator().manual_seed(bench.seed)
    out = {}
    for name in CONTRACT:
        per = {"k": list(ks), "ours": [], "naive": [], "batch": [], "batch_naive": [], "peak_ours": [], "peak_naive": []}
        for k in ks:
            ours, naive, b_o, b_n = _term_case(bench, name, k, gen)
            with torch.no_grad():
                med = interleaved(bench, {"ours": ours, "naive": naive}, bench.reps, warmup=2)
                if bench.memory:
                    per["peak_ours"].append(peak_memory(bench, ours))
                    per["peak_naive"].append(peak_memory(bench, naive))
            per["ours"].append(med["ours"] / b_o)
            per["naive"].append(med["naive"] / b_n)
            per["batch"].append(b_o)
            per["batch_naive"].append(b_n)
            print(f"  {name} gauge term k={k}: ours {1e6 * per['ours'][-1]:.3f} us/sample, "
                  f"naive {1e6 * per['naive'][-1]:.3f} us/sample", flush=True)
        big = [i for i, k in enumerate(ks) if k >= FIT_FROM]
        for who in ("ours", "naive"):
            per[f"exp_{who}"] = fit_exponent([ks[i] for i in big], [per[who][i] for i in big])
            per[f"exp_{who}_all"] = fit_exponent(ks, per[who])
        per["contract"] = CONTRACT[name]
        out[name] = per
    return out


def format_terms(terms: dict) -> str:
    """Table of µs per sample (ours, naive) per k, then the fitted exponents against the contract."""
    lines = []
    for name, per in terms.items():
        lines.append(f"{name} gauge term alone (contract + projection, forward), time per sample:")
        lines.append(f"  {'k':>3} {'batch':>6} {'ours [us]':>10} {'naive [us]':>11} {'naive/ours':>10}")
        for i, k in enumerate(per["k"]):
            lines.append(f"  {k:>3} {per['batch'][i]:>6} {1e6 * per['ours'][i]:>10.3f} {1e6 * per['naive'][i]:>11.3f}"
                         f" {per['naive'][i] / per['ours'][i]:>10.1f}")
        ok = per["exp_ours"] <= per["contract"] + 0.5
        lines.append(f"  fitted exponent in k (k >= {FIT_FROM}): ours {per['exp_ours']:.2f} "
                     f"(contract {per['contract']}, limit {per['contract'] + 0.5}: {'ok' if ok else 'EXCEEDED'}), "
                     f"naive dense-basis {per['exp_naive']:.2f}; over all k: ours {per['exp_ours_all']:.2f}, "
                     f"naive {per['exp_naive_all']:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    from _harness import format_table

    b = Bench(torch.device("cpu"), reps=10)
    print(format_table(run_models(b)))
    print(format_terms(run_terms(b)))
