"""docs/results/nfe.md from the CSVs of experiments/nfe/run.py and bench_coupling.py (no number typed by hand).

    python experiments/nfe/report.py [--results experiments/nfe/results] [--out docs/results/nfe.md]

Reads ``runs.csv``, ``solver.csv``, ``settings.json`` and, if present, ``coupling_cost.csv`` (written by
``python experiments/benchmarks/bench_coupling.py --csv experiments/nfe/results/coupling_cost.csv``).
"""
from __future__ import annotations

import argparse
import csv
import inspect
import json
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOL = 0.01  # nats: "within 0.01 nat of the converged NLL"


def _read(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _setting(r: dict) -> str:
    return f"{r['method']} {r['steps']}" if r["steps"] else f"{r['method']} (tol 1e-5)"


def cheapest(rows: list[dict]) -> dict | None:
    """The solver row of one run with the fewest NFE whose NLL is within TOL of converged."""
    ok = [r for r in rows if float(r["nll_error"]) <= TOL]
    return min(ok, key=lambda r: (int(r["nfe"]), float(r["nll_error"]))) if ok else None


def interpolated_nfe(rows: list[dict], key: str = "nll_error", tol: float = TOL) -> tuple[float, bool] | None:
    """``(NFE, is_bound)``: the NFE at which ``key`` falls to ``tol``, by log-log interpolation between the two
    grid settings of one fixed-step method that bracket it; the smallest over methods (``None``: none does).

    A method already within ``tol`` at its coarsest grid setting gives that setting's NFE as an upper bound
    (``is_bound`` true): the grid does not resolve below it.
    """
    best = None
    for (method,), group in _by([r for r in rows if r["steps"]], "method").items():
        pts = sorted((int(r["nfe"]), max(float(r[key]), 1e-300)) for r in group)
        found = (pts[0][0], True) if pts[0][1] <= tol else None
        for (n0, e0), (n1, e1) in zip(pts, pts[1:]):
            if found is None and e0 > tol >= e1:
                found = (math.exp(math.log(n0) + (math.log(e0) - math.log(tol)) / (math.log(e0) - math.log(e1))
                                  * (math.log(n1) - math.log(n0))), False)
        if found is not None and (best is None or found[0] < best[0]):
            best = found
    return best


def _by(rows: list[dict], *keys: str) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in keys), []).append(r)
    return out


def nfe_table(runs: list[dict], solver: list[dict]) -> tuple[str, dict]:
    """Per data set and coupling: the cheapest setting within TOL, per seed and on average."""
    per_run = _by(solver, "dataset", "variant", "seed")
    lines = ["| data | coupling | seed | fewest NFE within 0.01 nat | setting | its error (nat) | dopri5 (tol 1e-5) NFE, error "
             "| converged NLL | converged NFE (dopri5 1e-9) |", "|---|---|---:|---:|---|---:|---|---:|---:|"]
    means: dict = {}
    for run in runs:
        key = (run["dataset"], run["variant"], run["seed"])
        rows = per_run[key]
        best = cheapest(rows)
        dop = next(r for r in rows if r["method"] == "dopri5")
        nfe = int(best["nfe"]) if best else None
        means.setdefault(key[:2], []).append(nfe)
        found = f"{nfe} | {_setting(best)} | {float(best['nll_error']):.4f}" if best else "> grid | — | —"
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {found} | {dop['nfe']}, {float(dop['nll_error']):.4f} | "
                     f"{float(run['nll_converged']):.4f} | {run['converged_nfe']} |")
    return "\n".join(lines) + "\n", means


def _interp_means(solver: list[dict], key: tuple) -> tuple:
    """Mean over seeds of the interpolated NFE to 0.01 nat and to sample error 0.01 (``None`` if any is missing)."""
    runs = _by([r for r in solver if (r["dataset"], r["variant"]) == key], "seed").values()
    out = []
    for metric in ("nll_error", "sample_err"):
        vals = [interpolated_nfe(rows, metric) for rows in runs]
        ok = vals and None not in vals
        out.append((statistics.fmean(v[0] for v in vals), any(v[1] for v in vals)) if ok else None)
    return tuple(out)


def summary_table(means: dict, runs: list[dict], solver: list[dict]) -> str:
    """Mean NFE to 0.01 nat per data set and coupling, and the ratio to independent."""
    lines = ["| data | coupling | fewest grid NFE within 0.01 nat (mean) | / independent | interpolated NFE to 0.01 nat "
             "| / independent | interpolated NFE to sample error 0.01 | / independent | dopri5 1e-9 NFE | / independent "
             "| mean converged NLL | ms per training step (in the study) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    interp = {k: _interp_means(solver, k) for k in means}
    for (dname, variant), vals in means.items():
        rs = [r for r in runs if r["dataset"] == dname and r["variant"] == variant]
        ok = [v for v in vals if v is not None]
        mean = statistics.fmean(ok) if len(ok) == len(vals) else None
        base = means.get((dname, "independent"), [])
        base_mean = statistics.fmean(base) if base and None not in base else None
        ratio = f"{mean / base_mean:.2f}" if mean and base_mean else "—"
        nll = statistics.fmean(float(r["nll_converged"]) for r in rs)
        ms = statistics.fmean(1000 * float(r["train_s_per_step"]) for r in rs)
        cells = []
        for i in range(2):
            mine, ref = interp[(dname, variant)][i], interp.get((dname, "independent"), (None, None))[i]
            cells += [f"{'≤ ' if mine[1] else ''}{mine[0]:.1f}" if mine else "> grid",
                      f"{mine[0] / ref[0]:.2f}" if mine and ref else "—"]
        conv = statistics.fmean(int(r["converged_nfe"]) for r in rs)
        conv_ref = statistics.fmean(int(r["converged_nfe"]) for r in runs
                                    if r["dataset"] == dname and r["variant"] == "independent")
        cells += [f"{conv:.0f}", f"{conv / conv_ref:.2f}"]
        lines.append(f"| {dname} | {variant} | {f'{mean:.1f}' if mean else '> grid'} | {ratio} | {' | '.join(cells)} "
                     f"| {nll:.4f} | {ms:.2f} |")
    return "\n".join(lines) + "\n"


def error_tables(solver: list[dict]) -> str:
    """|NLL − converged| (mean over seeds) and sample error against solver steps, one table per data set."""
    out = []
    for (dname,), rows in _by(solver, "dataset").items():
        variants = list(dict.fromkeys(r["variant"] for r in rows))
        head = " | ".join(f"{v}: NLL err / sample err" for v in variants)
        lines = [f"**{dname}** (mean over seeds; NLL error in nats, sample error = mean geodesic distance to the "
                 f"converged samples)", "", f"| setting | NFE | {head} |", "|---|---:|" + "---:|" * len(variants)]
        for (method, steps), group in _by(rows, "method", "steps").items():
            cells = []
            for v in variants:
                g = [r for r in group if r["variant"] == v]
                err = statistics.fmean(float(r["nll_error"]) for r in g)
                serr = statistics.fmean(float(r["sample_err"]) for r in g)
                cells.append(f"{'**' if err <= TOL else ''}{err:.4f}{'**' if err <= TOL else ''} / {serr:.1e}")
            nfe = statistics.fmean(int(r["nfe"]) for r in group)
            lines.append(f"| {_setting(group[0])} | {nfe:.0f} | " + " | ".join(cells) + " |")
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def verdict(solver: list[dict], variant: str) -> str:
    """One generated sentence per data set: does ``variant`` reach 0.01 nat with fewer grid NFE than independent?"""
    out = []
    for (dname,), rows in _by(solver, "dataset").items():
        pairs = []
        for group in _by([r for r in rows if r["variant"] in (variant, "independent")], "seed").values():
            a = cheapest([r for r in group if r["variant"] == variant])
            b = cheapest([r for r in group if r["variant"] == "independent"])
            if a is not None and b is not None:
                pairs.append((int(a["nfe"]), int(b["nfe"])))
        if not pairs:
            continue
        fewer = sum(a < b for a, b in pairs)
        word = "fewer in every seed" if fewer == len(pairs) else (
            f"fewer in {fewer} of {len(pairs)} seeds" if fewer else "not fewer in any seed")
        shown = ", ".join(f"{a} vs {b}" for a, b in pairs)
        out.append(f"{dname}: `{variant}` reaches 0.01 nat at {shown} grid NFE (per seed, vs `independent`) — {word}")
    return "; ".join(out) + "."


def choose_default(solver: list[dict]) -> tuple[str, list[str]]:
    """The setting whose *worst* error over every run is within TOL with the fewest (worst-case) NFE."""
    lines = ["| setting | NFE (max over runs) | worst NLL error (nat) | within 0.01 nat in every run |",
             "|---|---:|---:|---|"]
    cands = []
    for (method, steps), group in _by(solver, "method", "steps").items():
        worst = max(float(r["nll_error"]) for r in group)
        nfe = max(int(r["nfe"]) for r in group)
        cands.append((nfe, worst, _setting(group[0]), worst <= TOL))
    for nfe, worst, name, ok in sorted(cands):
        lines.append(f"| {name} | {nfe} | {worst:.4f} | {'yes' if ok else 'no'} |")
    ok = [c for c in sorted(cands) if c[3]]
    return (ok[0][2] if ok else "none of the grid"), lines


def code_defaults() -> str:
    from gaugeflow.sampling import log_prob, sample

    parts = []
    for fn in (sample, log_prob):
        sig = inspect.signature(fn).parameters
        parts.append(f"`{fn.__name__}`: {sig['method'].default} {sig['steps'].default}")
    from gaugeflow.cli import build_parser
    ev = build_parser().parse_args(["evaluate", "RUN"])
    parts.append(f"`gaugeflow evaluate`: {getattr(ev, 'method', 'rk4')} {ev.steps}")
    return "; ".join(parts)


def cost_table(path: Path) -> str:
    if not path.is_file():
        return "(bench_coupling.py has not written coupling_cost.csv yet.)\n"
    rows = _read(path)
    lines = ["| case | OT step (ms) | independent step (ms) | ratio | ≤ 1.2 |", "|---|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {float(r['ot_ms']):.2f} | {float(r['independent_ms']):.2f} | "
                     f"{float(r['ratio']):.2f} | {'yes' if float(r['ratio']) <= 1.2 else 'no'} |")
    r = rows[0]
    lines.append(f"\nBatch {r['batch']}, width {r['width']}, device {r['device']} ({r['cpu']}), {r['threads'] or 'unrecorded'} torch thread(s), "
                 f"medians of {r['clock']}.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=ROOT / "experiments" / "nfe" / "results")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "nfe.md")
    args = p.parse_args(argv)
    runs, solver = _read(args.results / "runs.csv"), _read(args.results / "solver.csv")
    s = json.loads((args.results / "settings.json").read_text())
    per_run, means = nfe_table(runs, solver)
    choice, choice_lines = choose_default(solver)
    text = TEMPLATE.format(
        model=s["model"], hidden=s["hidden"], steps=s["steps"], batch=s["batch_size"], seeds=s["seeds"],
        n_test=s["n_test"], n_sample=s["n_sample"], converged=s["converged"], machine=s["processor"],
        cores=s["cpu_count"], torch=s["torch"], threads=s["threads"], python=s["python"],
        summary=summary_table(means, runs, solver), per_run=per_run, errors=error_tables(solver),
        choice=choice, datasets=", ".join(f"`{d}`" for d in dict.fromkeys(r["dataset"] for r in runs)),
        verdict="**Verdict (generated).** " + " ".join(verdict(solver, v) for v in ("ot", "ot-block32")), choice_table="\n".join(choice_lines), code=code_defaults(),
        cost=cost_table(args.results / "coupling_cost.csv"), grid=", ".join(map(str, s["grid"])))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}; chosen default: {choice}; code defaults: {code_defaults()}")
    return 0


TEMPLATE = """# Solver steps, likelihood accuracy and OT coupling

Generated by `experiments/nfe/report.py` from the CSVs of `experiments/nfe/run.py` and
`experiments/benchmarks/bench_coupling.py` (in `experiments/nfe/results/`); rerun both to refresh.

**Setup.** Models are small: {model} flows of width {hidden}, trained {steps} steps at batch {batch}
(Adam, lr 1e-3, EMA 0.999, clipping 1.0), seeds {seeds}, on real data sets {datasets} (`quakes`: Fiji
earthquakes on S²; `protein`: adenylate-kinase φ/ψ on T²; `world-cities`: GeoNames cities on S²; see
docs/guide.md §8). Couplings: `independent`
(pairs as drawn), `ot` (exact minibatch OT over the whole batch of {batch} by squared geodesic distance,
docs/math.md §6, `gaugeflow.training.coupling`) and `ot-block32` (exact OT within blocks of 32 pairs,
`ot_batch=32`). Evaluation in float64 on {n_test} fixed test points, exact divergence. The converged
NLL is {converged}. Solvers: euler, midpoint, rk4 at {grid} steps, and dopri5 at its default
tolerance. NFE counts velocity-field evaluations (each with its divergence). Sample error: {n_sample}
base points pushed forward; mean geodesic distance to the converged (dopri5 1e-9) end points.
Machine: {machine}, {cores} cores, {threads} torch thread(s), torch {torch}, Python {python}; no GPU.

## Function evaluations to reach 0.01 nat of the converged NLL

The NFE grid is coarse (steps {grid}): "fewest NFE" is the cheapest grid setting within 0.01 nat.

{summary}
{verdict}

Per run:

{per_run}
## Training-step cost of OT coupling

{cost}
## NLL error and sample error against solver steps

Bold: within 0.01 nat.

{errors}
## Defaults

Rule: among the settings above, the one whose worst NLL error over *every* run (both data sets, all
couplings, all seeds) is within 0.01 nat, with the fewest evaluations (worst case over runs).

{choice_table}

Chosen: **{choice}**. Defaults in the code now: {code}.
"""

if __name__ == "__main__":
    sys.exit(main())
