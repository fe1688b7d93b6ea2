"""Sampling and exact likelihood on S², ours against the references, on the same network.

* Sampling: ``gaugeflow.sampling.sample(model, x0, steps, method="rk4")`` against flow_matching's
  ``RiemannianODESolver(Sphere(), net).sample(x0, step_size=1/steps, method="rk4")`` (both project
  the velocity with ``proju`` on every evaluation and the state with ``projx`` on every stage).
* Exact log-likelihood: ``log_prob(model, x, steps, method="rk4", divergence="exact")`` (``D``
  forward-mode JVPs, vectorised with ``vmap``) against the straightforward per-coordinate
  ``autograd.grad`` loop driven by the same RK4 stepper and step count (:mod:`_peers`).

* Sampling floor (issue 19): ``sample(..., method="rk4")`` against its floor, the same ``4 · steps``
  evaluations of the same model at the same batch timed alone (``model(x, t)`` under
  ``torch.no_grad``, no solver); target ≤ 1.05; this thread's CPU time with one intra-op thread.

Each pair is also checked for agreement (the two RK4 tableaux differ — flow_matching uses the 3/8
rule — so samples agree to the solvers' truncation error, likelihoods to float32 round-off).
Run alone: ``python experiments/benchmarks/bench_sampling.py``.
"""
from __future__ import annotations

import torch

from _harness import Bench, Row, interleaved, peak_memory
from _peers import SharedMLP, autograd_loop_log_prob, flow_matching_parts
from gaugeflow.manifolds import Sphere
from gaugeflow.models import PlainFlow
from gaugeflow.sampling import log_prob, sample

__all__ = ["run"]

WIDTH = 64
FLOOR_TARGET = 1.05


def _trained_like(bench: Bench) -> PlainFlow:
    """A PlainFlow with non-trivial weights (scaled up so the flow actually moves points)."""
    torch.manual_seed(bench.seed)
    model = PlainFlow(Sphere(2), hidden=WIDTH).to(bench.device, bench.dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    return model.eval()


def _sampling_row(bench: Bench, model: PlainFlow, n: int, steps: int) -> Row:
    _, fm_sphere, Solver = flow_matching_parts()
    solver = Solver(fm_sphere, SharedMLP(model.velocity).eval())
    gen = torch.Generator().manual_seed(bench.seed + 7)
    x0 = Sphere(2).random_base(n, generator=gen, dtype=bench.dtype).to(bench.device)
    grid = torch.tensor([0.0, 1.0], dtype=bench.dtype)
    fns = {
        "ours": lambda: sample(model, x0, steps=steps, method="rk4"),
        "ref": lambda: solver.sample(x0, step_size=1.0 / steps, method="rk4", time_grid=grid),
    }
    gap = float(Sphere(2).dist(fns["ours"](), fns["ref"]()).max())  # doubles as the warm-up round
    med = interleaved(bench, fns, bench.reps_long, warmup=0)
    row = Row("sampling S2", f"n={n} rk4 x{steps}", med["ours"], med["ref"], "flow_matching RiemannianODESolver",
              1.0, note=f"max geodesic distance between the two samplers' outputs {gap:.1e}")
    if bench.memory:  # a 2-step solve: without autograd the live set is the same at every step
        row.ours_peak = peak_memory(bench, lambda: sample(model, x0, steps=2, method="rk4"))
        row.ref_peak = peak_memory(bench, lambda: solver.sample(x0, step_size=0.5, method="rk4", time_grid=grid))
    bench.log(row)
    return row


def _sampling_floor_row(bench: Bench, model: PlainFlow, n: int, steps: int) -> Row:
    """``sample`` with RK4 against ``4 · steps`` bare network evaluations at the same batch."""
    gen = torch.Generator().manual_seed(bench.seed + 5)
    x0 = Sphere(2).random_base(n, generator=gen, dtype=bench.dtype).to(bench.device)
    times = [k / (2 * steps) for k in range(2 * steps + 1)]  # the stage times of RK4 (c = 0, ½, ½, 1)
    stage_times = [times[2 * i + j] for i in range(steps) for j in (0, 1, 1, 2)]

    def floor():
        with torch.no_grad():
            for t in stage_times:
                v = model(x0, t)
        return v

    fns = {"ours": lambda: sample(model, x0, steps=steps, method="rk4"), "ref": floor}
    from bench_paths import interleaved_cpu  # CPU time of this thread with one intra-op thread

    med = interleaved_cpu(bench, fns, bench.reps_long, warmup=1)
    row = Row("sampling floor S2", f"n={n} rk4 x{steps}", med["ours"], med["ref"],
              f"floor ({4 * steps} model evaluations alone)", FLOOR_TARGET)
    bench.log(row)
    return row


def _likelihood_row(bench: Bench, model: PlainFlow, n: int, steps: int) -> Row:
    gen = torch.Generator().manual_seed(bench.seed + 11)
    M = Sphere(2)
    x1 = sample(model, M.random_base(n, generator=gen, dtype=bench.dtype).to(bench.device), steps=20)
    fns = {
        "ours": lambda: log_prob(model, x1, steps=steps, method="rk4", divergence="exact"),
        "ref": lambda: autograd_loop_log_prob(model, M, x1, steps),
    }
    gap = float((fns["ours"]() - fns["ref"]()).abs().max())  # doubles as the warm-up round
    med = interleaved(bench, fns, bench.reps_long, warmup=0)
    row = Row("log-likelihood S2", f"n={n} exact rk4 x{steps}", med["ours"], med["ref"], "autograd.grad loop",
              1.0, note=f"max |log p ours - log p loop| = {gap:.1e} nats")
    if bench.memory:  # a 2-step solve: each step frees its graph, so the peak does not grow with steps
        row.ours_peak = peak_memory(bench, lambda: log_prob(model, x1, steps=2, method="rk4", divergence="exact"))
        row.ref_peak = peak_memory(bench, lambda: autograd_loop_log_prob(model, M, x1, 2))
    bench.log(row)
    return row


def run(bench: Bench, n_sample: int = 100_000, sample_steps: int = 100, n_lik: int = 10_000, lik_steps: int = 100,
        floor_steps: int = 20) -> list[Row]:
    """The sampling row, the sampling-floor row (same batch, ``floor_steps`` RK4 steps) and the likelihood row."""
    if bench.quick:
        n_sample, n_lik, sample_steps, lik_steps = n_sample // 20, n_lik // 10, sample_steps // 5, lik_steps // 5
        floor_steps = min(floor_steps, sample_steps)
    model = _trained_like(bench)
    return [_sampling_row(bench, model, n_sample, sample_steps), _sampling_floor_row(bench, model, n_sample, floor_steps),
            _likelihood_row(bench, model, n_lik, lik_steps)]


if __name__ == "__main__":
    import sys

    from _harness import format_table

    b = Bench(torch.device("cpu"), reps_long=3)
    if "--floor-only" in sys.argv:  # the issue-19 floor row alone: python bench_sampling.py --floor-only [--threads 1]
        torch.set_num_threads(1 if "--threads" not in sys.argv else int(sys.argv[sys.argv.index("--threads") + 1]))
        b.reps_long = 5
        print(format_table([_sampling_floor_row(b, _trained_like(b), 100_000, 20)]))
        raise SystemExit(0)
    rows = run(b)
    print(format_table(rows))
    for r in rows:
        print(f"{r.group}: {r.note}")
