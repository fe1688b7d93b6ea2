"""One (R)CFM training step — loss, backward, Adam — ours against the peers, on the same MLP.

* S²: ``PlainFlow(Sphere(2))`` + ``rcfm_loss`` (closed-form geodesic path, Riemannian norm) against
  flow_matching's ``GeodesicProbPath(CondOTScheduler(), Sphere())`` (path by ``vmap(jvp)``) + MSE.
* ℝ^N: ``PlainFlow(Euclidean(N))`` + ``rcfm_loss`` against torchcfm's
  ``ConditionalFlowMatcher(sigma=0)`` + MSE.

Both sides: batch 1024 of fixed ``(x0, x1)`` pairs, fresh ``t ~ U(0, 1)`` every step, Adam(lr 1e-3),
networks with identical layers and initial weights (:class:`_peers.SharedMLP`), two SiLU hidden
layers of the given width. Run alone: ``python experiments/benchmarks/bench_training.py``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from _harness import Bench, Row, interleaved, peak_memory
from _peers import SharedMLP, flow_matching_parts, torchcfm_matcher
from gaugeflow.manifolds import Euclidean, Sphere
from gaugeflow.models import PlainFlow
from gaugeflow.training import rcfm_loss

__all__ = ["run", "sphere_pairs", "ours_step"]

BATCH = 1024
TARGETS_S2 = {64: 0.8, 256: 0.9}
EUCLID_N = 8


def sphere_pairs(bench: Bench, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x0`` uniform on S², ``x1`` from four concentrated clusters (a stand-in for data). ``[n, 3]`` each."""
    gen = torch.Generator().manual_seed(bench.seed)
    M = Sphere(2)
    x0 = M.random_base(n, generator=gen, dtype=bench.dtype)
    centres = M.random_base(4, generator=gen, dtype=bench.dtype)
    x1 = M.projx(centres[torch.arange(n) % 4] + 0.3 * torch.randn(n, 3, generator=gen, dtype=bench.dtype))
    return x0.to(bench.device), x1.to(bench.device)


def _gaussian_pairs(bench: Bench, n: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(bench.seed + 1)
    x0 = torch.randn(n, dim, generator=gen, dtype=bench.dtype)
    x1 = 4.0 * torch.sign(torch.randn(n, dim, generator=gen, dtype=bench.dtype)) + 0.5 * torch.randn(n, dim, generator=gen, dtype=bench.dtype)
    return x0.to(bench.device), x1.to(bench.device)


def ours_step(model, x0, x1, lr: float = 1e-3):
    """A closure doing one RCFM step of ``model`` (``zero_grad``, loss, backward, Adam)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = rcfm_loss(model, x0, x1)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def _fm_step(net, path, x0, x1, lr: float = 1e-3):
    opt = torch.optim.Adam(net.parameters(), lr=lr)

    def step():
        opt.zero_grad(set_to_none=True)
        t = torch.rand(x0.shape[0], dtype=x0.dtype, device=x0.device)
        ps = path.sample(x_0=x0, x_1=x1, t=t)
        loss = F.mse_loss(net(ps.x_t, ps.t), ps.dx_t)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def _cfm_step(net, matcher, x0, x1, lr: float = 1e-3):
    opt = torch.optim.Adam(net.parameters(), lr=lr)

    def step():
        opt.zero_grad(set_to_none=True)
        t, xt, ut = matcher.sample_location_and_conditional_flow(x0, x1)
        loss = torch.mean((net(xt, t) - ut) ** 2)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def _race(bench: Bench, group: str, case: str, ref_name: str, fns: dict, target) -> Row:
    med = interleaved(bench, fns, bench.reps, warmup=3)
    row = Row(group, case, med["ours"], med["ref"], ref_name, target)
    if bench.memory:
        row.ours_peak, row.ref_peak = peak_memory(bench, fns["ours"]), peak_memory(bench, fns["ref"])
    for name, fn in fns.items():
        if name not in ("ours", "ref"):
            row.extra[name] = med[name]
    bench.log(row)
    return row


def run(bench: Bench, widths=(64, 256)) -> list[Row]:
    """The S² rows (vs flow_matching) and the ℝ^N rows (vs torchcfm), one per width."""
    rows = []
    path, _, _ = flow_matching_parts()
    x0, x1 = sphere_pairs(bench, BATCH)
    for w in widths:
        torch.manual_seed(bench.seed)
        model = PlainFlow(Sphere(2), hidden=w).to(bench.device, bench.dtype)
        fns = {"ours": ours_step(model, x0, x1), "ref": _fm_step(SharedMLP(model.velocity), path, x0, x1)}
        if bench.compile:
            cmodel = PlainFlow(Sphere(2), hidden=w).to(bench.device, bench.dtype)
            fns["ours+compile"] = ours_step(torch.compile(cmodel), x0, x1)
        rows.append(_race(bench, "train step S2", f"B={BATCH} w={w}", "flow_matching", fns, TARGETS_S2.get(w)))
    matcher = torchcfm_matcher()
    e0, e1 = _gaussian_pairs(bench, BATCH, EUCLID_N)
    for w in widths:
        torch.manual_seed(bench.seed)
        model = PlainFlow(Euclidean(EUCLID_N), hidden=w).to(bench.device, bench.dtype)
        fns = {"ours": ours_step(model, e0, e1), "ref": _cfm_step(SharedMLP(model.velocity), matcher, e0, e1)}
        rows.append(_race(bench, f"train step R^{EUCLID_N}", f"B={BATCH} w={w}", "torchcfm", fns, 1.0))
    return rows


if __name__ == "__main__":
    import argparse

    from _harness import format_table

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=20, help="timed repetitions per side (medians reported)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(format_table(run(Bench(torch.device("cpu"), reps=args.reps))))
