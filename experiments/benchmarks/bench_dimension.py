"""How training, sampling and likelihood costs grow with the manifold's dimension (issue 19, part 3).

On ``S^n`` and ``T^n`` for ``n ∈ {2, 4, 8, 16, 32, 64}``, one CPU thread, float32, width 64:

* **training step** (``zero_grad``, ``rcfm_loss``, ``backward``, ``Adam``; batch 1024) of
  ``PlainFlow``, ``GaugeFlow`` and ``HigherGaugeFlow`` with their default fibre ``k = D`` (the ambient
  dimension: ``n + 1`` on ``S^n``, ``n`` on ``T^n``), the three interleaved;
* **sampling** 10⁴ points with 50 RK4 steps (200 evaluations of ``PlainFlow``);
* **likelihood** of 10³ points, RK4 with :data:`LIK_STEPS` steps, exact divergence against
  Hutchinson with 1, 4 and 16 Rademacher probes, interleaved;
* **Hutchinson's error**: a ``PlainFlow`` trained for :data:`TRAIN_STEPS` steps on a 4-component
  wrapped mixture at each ``n`` (so the Jacobians are those of a flow that moves mass, not of an
  initialisation); per test point the Hutchinson estimate minus the exact value (same solver, same
  steps, so the difference is the estimator's noise alone): its mean (bias) and root mean square
  (the per-point standard deviation), and the spread of the exact ``log p`` over the test points.

Times are medians of the process's CPU time (``time.process_time``, one thread: on the shared 2-core
machine this leaves out the time other processes hold the core), the cases of a cell interleaved.
Fitted exponents are least-squares slopes of ``log time`` on ``log n`` over ``n ≥ FIT_FROM`` and over
all ``n``. Repetitions: ``reps`` (``reps_long``) up to ``n = 16`` and 2–3 above, since one case there
takes seconds; the JSON records the count of every cell. The criterion
for Hutchinson as the default and the tables are in :mod:`dimension_report`, which writes the section
of docs/performance.md from the JSON this module writes.

Run alone: ``python experiments/benchmarks/bench_dimension.py [--quick] [--reps 10] [--reps-long 3]``
(writes ``docs/results/dimension.json`` and ``.csv``, then the docs section; about 6 minutes here).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import time
from pathlib import Path

import torch

from _harness import Bench, fit_exponent, load_average, machine_info
from bench_training import ours_step
from gaugeflow.data import wrapped_mixture
from gaugeflow.manifolds import FlatTorus, Sphere
from gaugeflow.models import GaugeFlow, HigherGaugeFlow, PlainFlow
from gaugeflow.sampling import log_prob, sample
from gaugeflow.training import rcfm_loss

__all__ = ["run", "NS", "PROBES", "LIK_STEPS", "write_tables", "publish", "format_summary"]

NS = (2, 4, 8, 16, 32, 64)
MANIFOLDS = {"sphere": Sphere, "torus": FlatTorus}
MODELS = {"PlainFlow": PlainFlow, "GaugeFlow": GaugeFlow, "HigherGaugeFlow": HigherGaugeFlow}
WIDTH, BATCH = 64, 1024
N_SAMPLE, SAMPLE_STEPS = 10_000, 50
N_LIK, LIK_METHOD, LIK_STEPS = 1000, "rk4", 20
PROBES = (1, 4, 16)
TRAIN_STEPS, TRAIN_BATCH, TRAIN_LR = 400, 512, 2e-3
FIT_FROM = 8
RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"


def interleaved(bench: Bench, fns: dict, reps: int, warmup: int = 1) -> dict[str, float]:
    """Median time of each callable over ``reps`` rotating rounds (as ``_harness.interleaved``), timed by
    the process's CPU time on CPU (``time.process_time``: with one thread it does not count the time
    other processes of a shared machine hold the core) and by wall time on CUDA."""
    clock, names = (time.perf_counter if bench.device.type == "cuda" else time.process_time), list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(reps):
        for name in names[r % len(names):] + names[:r % len(names)]:
            bench.sync()
            t0 = clock()
            fns[name]()
            bench.sync()
            times[name].append(clock() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _reps(base: int, n: int) -> int:
    """``base`` repetitions up to ``n = 16``; above, where one case takes seconds, 2 or 3."""
    return base if n <= 16 else max(2, min(3, base // 3))


def _pairs(M, n_pts: int, gen) -> tuple[torch.Tensor, torch.Tensor]:
    """``x0`` from the base distribution, ``x1`` around four random centres (a stand-in for data)."""
    x0 = M.random_base(n_pts, generator=gen)
    centres = M.random_base(4, generator=gen)[torch.arange(n_pts) % 4]
    return x0, M.exp(centres, M.proju(centres, 0.3 * torch.randn(centres.shape, generator=gen)))


def _on(bench: Bench, *items):
    return [t.to(bench.device, bench.dtype) for t in items]


def _train_row(bench: Bench, M, n: int) -> dict:
    gen = torch.Generator().manual_seed(bench.seed + n)
    x0, x1 = _on(bench, *_pairs(M, BATCH, gen))
    models = {}
    for name, cls in MODELS.items():
        torch.manual_seed(bench.seed)
        models[name] = cls(M, hidden=WIDTH).to(bench.device, bench.dtype)
    reps = _reps(bench.reps, n)
    med = interleaved(bench, {name: ours_step(m, x0, x1) for name, m in models.items()}, reps, warmup=1)
    return {**med, "reps": reps, "k": models["GaugeFlow"].k}


def _trained_flow(bench: Bench, M, n: int):
    """``PlainFlow`` after :data:`TRAIN_STEPS` RCFM steps on a wrapped mixture, and 10³ test points."""
    data = wrapped_mixture(M, n_components=4, n_train=8 * TRAIN_BATCH, n_val=1, n_test=N_LIK, scale=0.25,
                           seed=bench.seed + n)
    torch.manual_seed(bench.seed)
    model = PlainFlow(M, hidden=WIDTH).to(bench.device, bench.dtype)
    train, test = _on(bench, data.train, data.test)
    opt = torch.optim.Adam(model.parameters(), lr=TRAIN_LR)
    gen = torch.Generator().manual_seed(bench.seed)
    for _ in range(TRAIN_STEPS):
        idx = torch.randint(0, len(train), (TRAIN_BATCH,), generator=gen)
        opt.zero_grad(set_to_none=True)
        (x0,) = _on(bench, M.random_base(TRAIN_BATCH, generator=gen))
        rcfm_loss(model, x0, train[idx.to(bench.device)]).backward()
        opt.step()
    return model.eval(), test


def _likelihood_fns(model, x, steps: int, seed: int) -> dict:
    def hutch(p):
        gen = torch.Generator(device=x.device).manual_seed(seed + p)
        return lambda: log_prob(model, x, steps=steps, method=LIK_METHOD, divergence="hutchinson", n_probes=p,
                                generator=gen)

    fns = {"exact": lambda: log_prob(model, x, steps=steps, method=LIK_METHOD, divergence="exact")}
    fns.update({f"hutchinson_{p}": hutch(p) for p in PROBES})
    return fns


def _error_stats(lp: torch.Tensor, exact: torch.Tensor) -> dict:
    err = (lp - exact).double()
    return {"bias": err.mean().item(), "bias_se": (err.std() / math.sqrt(len(err))).item(),
            "std": err.pow(2).mean().sqrt().item()}


def _likelihood_row(bench: Bench, M, n: int, steps: int) -> dict:
    model, x = _trained_flow(bench, M, n)
    fns = _likelihood_fns(model, x, steps, bench.seed)
    values = {name: fn() for name, fn in fns.items()}  # the estimates, and the warm-up round
    exact = values["exact"]
    reps = _reps(bench.reps_long, n)
    med = interleaved(bench, fns, reps, warmup=0)
    gen = torch.Generator().manual_seed(bench.seed + 1)
    (x0,) = _on(bench, M.random_base(N_SAMPLE // (20 if bench.quick else 1), generator=gen))
    s_steps = SAMPLE_STEPS // (5 if bench.quick else 1)
    samp = interleaved(bench, {"sample": lambda: sample(model, x0, steps=s_steps, method="rk4")}, reps, warmup=1)
    return {
        "times": med, "reps": reps, "sample": samp["sample"],
        "nll": -exact.mean().item(), "nll_uniform": -M.base_log_prob(x[:1]).item(),
        "sd_logp": exact.double().std().item(),
        "errors": {str(p): _error_stats(values[f"hutchinson_{p}"], exact) for p in PROBES},
    }


def run(bench: Bench, ns=NS) -> dict:
    """Every measurement on both manifolds; one intra-op thread for the duration (restored after)."""
    threads, started = torch.get_num_threads(), time.perf_counter()
    torch.set_num_threads(1)
    steps = max(2, LIK_STEPS // (5 if bench.quick else 1))
    out = {"settings": {"ns": list(ns), "width": WIDTH, "batch": BATCH, "n_sample": N_SAMPLE // (20 if bench.quick else 1),
                        "sample_steps": SAMPLE_STEPS // (5 if bench.quick else 1), "n_lik": N_LIK,
                        "lik_method": LIK_METHOD, "lik_steps": steps, "probes": list(PROBES),
                        "train_steps": TRAIN_STEPS, "fit_from": FIT_FROM, "threads": 1, "clock": "process_time", "quick": bench.quick,
                        "reps": bench.reps, "reps_long": bench.reps_long}}
    try:
        for mname, cls in MANIFOLDS.items():
            rows = []
            for n in ns:
                M = cls(n)
                row = {"n": n, "train": _train_row(bench, M, n), **_likelihood_row(bench, M, n, steps)}
                rows.append(row)
                t = row["train"]
                print(f"  [{mname} n={n}] step plain {1e3 * t['PlainFlow']:.1f} / gauge {1e3 * t['GaugeFlow']:.1f} / "
                      f"higher {1e3 * t['HigherGaugeFlow']:.1f} ms; sample {row['sample']:.2f} s; "
                      f"exact {row['times']['exact']:.2f} s, hutch(1) {row['times']['hutchinson_1']:.2f} s, "
                      f"std(1) {row['errors']['1']['std']:.3f} nat", flush=True)
            out[mname] = rows
    finally:
        torch.set_num_threads(threads)
    out["exponents"] = exponents(out)
    out["elapsed_s"], out["load_1min_end"] = round(time.perf_counter() - started, 1), round(load_average(), 2)
    return out


def _series(out: dict, mname: str) -> dict[str, list[float]]:
    """Every timed quantity of one manifold as a list over ``n``."""
    rows = out[mname]
    series = {f"train {name}": [r["train"][name] for r in rows] for name in MODELS}
    series["sample"] = [r["sample"] for r in rows]
    for key in rows[0]["times"]:
        series[f"log_prob {key}"] = [r["times"][key] for r in rows]
    return series


def exponents(out: dict) -> dict:
    """Log-log least-squares slopes of time on ``n``: over ``n ≥ FIT_FROM`` and over every ``n``."""
    ns = out["settings"]["ns"]
    big = [i for i, n in enumerate(ns) if n >= FIT_FROM]
    res = {}
    for mname in MANIFOLDS:
        if mname not in out:
            continue
        res[mname] = {}
        for key, ts in _series(out, mname).items():
            res[mname][key] = {"all": fit_exponent(ns, ts)}
            if len(big) >= 2:
                res[mname][key][f"n>={FIT_FROM}"] = fit_exponent([ns[i] for i in big], [ts[i] for i in big])
    return res


def write_tables(out: dict, folder: Path = RESULTS, stem: str = "dimension") -> tuple[Path, Path]:
    """``<stem>.json`` (everything) and ``<stem>.csv`` (one row per manifold, n and quantity)."""
    folder.mkdir(parents=True, exist_ok=True)
    js, cs = folder / f"{stem}.json", folder / f"{stem}.csv"
    js.write_text(json.dumps(out, indent=1, default=str) + "\n", encoding="utf-8")
    with cs.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["manifold", "n", "quantity", "value", "unit", "reps"])
        for mname in MANIFOLDS:
            for i, r in enumerate(out.get(mname, [])):
                for key, ts in _series(out, mname).items():
                    reps = r["train"]["reps"] if key.startswith("train") else r["reps"]
                    w.writerow([mname, r["n"], key, f"{ts[i]:.6g}", "s", reps])
                for p, e in r["errors"].items():
                    for stat in ("bias", "bias_se", "std"):
                        w.writerow([mname, r["n"], f"hutchinson_{p} error {stat}", f"{e[stat]:.6g}", "nat", 1])
                for key in ("nll", "nll_uniform", "sd_logp"):
                    w.writerow([mname, r["n"], key, f"{r[key]:.6g}", "nat", 1])
    return js, cs


def format_summary(out: dict) -> str:
    """The fitted exponents and the crossover, for the console."""
    import dimension_report

    lines = [f"Cost growth with dimension: fitted exponents (n >= {FIT_FROM} / all n)"]
    for mname, fits in out["exponents"].items():
        lines += [f"  {mname}: {key}: " + " / ".join(f"{v:.2f}" for v in reversed(list(f.values())))
                  for key, f in fits.items()]
    lines.append(f"Hutchinson (1 probe) the better default from n = {dimension_report.crossover(out)} "
                 f"(criterion: docs/performance.md)")
    return "\n".join(lines)


def publish(out: dict, folder: Path = RESULTS) -> None:
    """Write ``dimension.json`` / ``.csv`` and regenerate the docs/performance.md section from them."""
    import dimension_report

    js, cs = write_tables(out, folder)
    print(f"wrote {js} and {cs}")
    dimension_report.main([str(js)])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="n up to 8, fewer points and steps (smoke test; tables "
                   "go to dimension_quick.json, the docs are left alone)")
    p.add_argument("--reps", type=int, default=10, help="repetitions of the training step (n <= 16)")
    p.add_argument("--reps-long", type=int, default=3, help="repetitions of sampling and likelihood (n <= 16)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=str(RESULTS), help="folder for dimension.json / .csv")
    args = p.parse_args(argv)
    bench = Bench(torch.device(args.device), reps=args.reps, reps_long=args.reps_long, quick=args.quick)
    out = {"machine": machine_info(bench)}
    out.update(run(bench, ns=NS[:3] if args.quick else NS))
    out["machine"]["torch_threads"] = 1
    print(format_summary(out))
    if args.quick or bench.device.type != "cpu":
        js, cs = write_tables(out, Path(args.out), f"dimension_{'quick' if args.quick else bench.device.type}")
        print(f"wrote {js} and {cs} (the docs section is generated from a full CPU run only)")
    else:
        publish(out, Path(args.out))
    return out


if __name__ == "__main__":
    main()
