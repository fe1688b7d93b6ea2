"""Write ``compute.md`` from the part CSVs: every number is computed here from those files."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import compute_figures
from compute_models import LABELS
from compute_stats import SAME, best_by_val, comparisons, estimate, mean_std, read_table, summary

ROOT = Path(__file__).resolve().parents[2]
GAUGE = ("gauge", "higher-gauge", "tensor-gauge")
#: the verdict's questions: (title, budget, size, comparison partner of each gauge model)
QUESTIONS = (
    ("Is it the gauge structure? Gauge model against its own α ≡ 0 ablation (same networks, same cost), equal steps",
     "equal-steps", "full", "{m}-a0"),
    ("Is it more than capacity? Gauge model against PlainFlow with as many parameters, equal steps",
     "equal-steps", "full", "plain-params"),
    ("At equal compute: gauge model against PlainFlow matched in step time, equal seconds",
     "equal-seconds", "full", "plain-time"),
    ("At equal compute: gauge model against the papers' PlainFlow given the same seconds (more steps)",
     "equal-seconds", "full", "plain"),
    ("At the longest budget (`converged`: the plateau or `max_steps`, see Settings): gauge model against PlainFlow "
     "matched in parameters, best validation NLL",
     "converged", "full", "plain-params"),
    ("At the longest budget: gauge model against PlainFlow matched in step time", "converged", "full", "plain-time"),
    ("Data efficiency (a tenth of the training set): gauge model against PlainFlow matched in parameters, converged",
     "converged", "tenth", "plain-params"),
)


def _f(x: float, nd: int = 3) -> str:
    return "–" if not isinstance(x, float) or not math.isfinite(x) else f"{x:.{nd}f}"


def _p(x: float) -> str:
    return "–" if not math.isfinite(x) else (f"{x:.3f}" if x >= 1e-3 else f"{x:.0e}")


def _cref(c: dict) -> str:
    return f"{c['dataset']} ({c['id']}: ΔNLL {c['mean']:+.3f} ± {c['std']:.3f}, t-test p {_p(c['t_p'])}, n = {c['n']})"


def _grouped(cs: list[dict]) -> str:
    """Comparisons grouped by verdict: ``better on …; … — worse on …``, each with its row and spread."""
    parts = []
    for word, key in (("better on", "better"), ("worse on", "worse"), ("no clear difference on", "no clear difference"),
                      ("identical on", "identical")):
        hit = [c for c in cs if c["verdict"] == key]
        if hit:
            parts.append(f"{word} " + "; ".join(_cref(c) for c in hit))
    return " — ".join(parts)


#: the at-a-glance table's columns: (heading, budget, partner of each gauge model)
GLANCE = (("vs own α ≡ 0, equal steps", "equal-steps", "{m}-a0"),
          ("vs param-matched, equal steps", "equal-steps", "plain-params"),
          ("vs time-matched, equal seconds", "equal-seconds", "plain-time"),
          ("vs param-matched, longest", "converged", "plain-params"),
          ("vs time-matched, longest", "converged", "plain-time"))
_MARK = {"better": "better", "worse": "worse", "no clear difference": "tie", "identical": "identical"}


def best_rows(rows: list[dict], best: dict[tuple[str, str], str]) -> dict[tuple[str, str], dict]:
    """``(data set, size) → `` the `converged` summary row of the model :func:`best_by_val` picks there."""
    return {(r["dataset"], r["size"]): r for r in rows
            if r["budget"] == "converged" and best.get((r["dataset"], r["size"])) == r["model"]}


def glance(comps: list[dict], rows: list[dict], best: dict[tuple[str, str], str]) -> list[str]:
    """One row per data set (full training set): how the three gauge models (GFM, HGFM, TGFM, in that order)
    fare in each of the verdict's main comparisons, and the best model at the longest budget."""
    head = "| data | " + " | ".join(g[0] for g in GLANCE) + " | best at the longest budget (by validation) |"
    lines = ["At a glance (full training sets; each cell: GFM / HGFM / TGFM against the named partner, paired t-test "
             f"over seeds at p < 0.05, *tie* = no clear difference; the rows behind each cell are cited below):", "",
             head, "|---|" + "---|" * (len(GLANCE) + 1)]
    top = best_rows(rows, best)
    for d in dict.fromkeys(c["dataset"] for c in comps if c["size"] == "full"):
        cells = []
        for _, budget, partner in GLANCE:
            marks = []
            for m in GAUGE:
                hit = [c for c in comps if (c["dataset"], c["size"], c["budget"], c["a"], c["b"])
                       == (d, "full", budget, m, partner.format(m=m))]
                marks.append(_MARK[hit[0]["verdict"]] if hit else "–")
            cells.append(" / ".join(marks))
        b = top.get((d, "full"))
        cells.append(f"{b['label']} ({b['id']})" if b else "–")
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return lines + [""]


def verdict(comps: list[dict], rows: list[dict], runs: list[dict], best: dict[tuple[str, str], str],
            today: float | None) -> list[str]:
    """Plain-words verdict; each claim cites a comparison (C…) or summary (R…) row with its spread; ``best``:
    :func:`best_by_val` of the learning curves."""
    lines = glance(comps, rows, best)
    for title, budget, size, partner in QUESTIONS:
        out = []
        for m in GAUGE:
            b = partner.format(m=m)
            cs = [c for c in comps if c["a"] == m and c["b"] == b and c["budget"] == budget and c["size"] == size]
            if not cs:
                continue
            out.append(f"  - {LABELS[m]} vs {LABELS[b]}: " + _grouped(cs) + ".")
        if out:
            lines += [f"- **{title}.**"] + out
    lines += _ot_verdict(comps)
    # the ablation is PlainFlow at the gauge model's rate: the identity below holds where that is PlainFlow's own
    rate = {(r["dataset"], r["model"]): r.get("lr", math.nan) for r in runs}

    def own_rate(d: str, m: str) -> bool:
        a, b = rate.get((d, m), math.nan), rate.get((d, "plain"), math.nan)
        return a == b or (math.isnan(a) and math.isnan(b))  # the one-rate study has no lr column

    zero = [c for c in comps if c["a"].endswith("-a0") and c["b"] == "plain" and c["budget"] == "equal-steps"]
    other = sorted({(c["dataset"], c["a"]) for c in zero if not own_rate(c["dataset"], c["a"])})
    zero = [c for c in zero if own_rate(c["dataset"], c["a"])]
    if other:
        lines.append("- **Where a gauge model's tuned rate differs from PlainFlow's**, its α ≡ 0 ablation is PlainFlow "
                     "trained at the gauge model's rate, not the papers' PlainFlow: " + "; ".join(
                         f"{LABELS[m]} on {d} (lr {_g(rate[(d, m)])} against {_g(rate[(d, 'plain')])})" for d, m in other)
                     + ". There the comparison with the ablation still isolates the gauge term (same networks, same "
                     "rate, same cost).")
    if zero:
        same = [c for c in zero if c["verdict"] == "identical"]
        fm = {(r["dataset"], r["size"], r["seed"]): r["test_fm"] for r in runs
              if r["model"] == "plain" and r["budget"] == "equal-steps"}
        a0 = [r for r in runs if r["model"].endswith("-a0") and r["budget"] == "equal-steps"
              and (r["dataset"], r["size"], r["seed"]) in fm and own_rate(r["dataset"], r["model"])]
        fm_same = sum(r["test_fm"] == fm[(r["dataset"], r["size"], r["seed"])] for r in a0)
        fm_gap = max((abs(r["test_fm"] - fm[(r["dataset"], r["size"], r["seed"])]) for r in a0), default=math.nan)
        lines.append(f"- **The α ≡ 0 ablation trains nothing but the velocity network.** With α ≡ 0 the loss does not "
                     f"depend on the connection, direction, section or α networks: they receive exactly zero gradient, "
                     f"and the ablation is the papers' PlainFlow (same seed, same initial velocity network) run at the "
                     f"gauge model's cost. At equal steps{' (where the rates agree)' if other else ''} its test FM loss equals PlainFlow's bit for bit in {fm_same} "
                     f"of {len(a0)} runs and within {fm_gap:.1e} in all (float32 rounding: gradient clipping sums "
                     f"the zero gradients too), and its test NLL within {SAME:g} nats in {len(same)} of {len(zero)} "
                     f"paired comparisons (" + ", ".join(
                         f"{c['id']} {c['a']} on {c['dataset']}/{c['size']}: {c['mean']:+.1e} ± {c['std']:.1e}"
                         for c in zero[:4]) + (", …" if len(zero) > 4 else "") + "). So the ablation answers "
                     "\"is it the extra networks?\" directly: the extra networks alone add nothing (they "
                     "learn only through the gauge term), so a gauge model's difference from its ablation is the "
                     "gauge term's.")
    conv = [r for r in rows if r["budget"] == "converged" and r["size"] == "full"]
    top = best_rows(rows, best)
    for dname in dict.fromkeys(r["dataset"] for r in conv):
        b = top.get((dname, "full"))
        by_test = min((r for r in conv if r["dataset"] == dname and math.isfinite(r["test_nll"])),
                      key=lambda r: r["test_nll"], default=None)
        if b is not None:
            extra = ""
            if by_test is not None and by_test["model"] != b["model"]:
                extra += (f"; the lowest test NLL is {by_test['label']}'s ({by_test['id']}: "
                          f"{_f(by_test['test_nll'])} ± {_f(by_test['test_nll_std'])})")
            if dname == "world-cities" and today is not None:
                extra += (f"; the acceptance target is ≤ {today - 0.3:.3f} (today's best {today:.3f} on the real-data "
                          f"page's 600-point test subset, minus 0.3): " + ("met" if b["test_nll"] <= today - 0.3 else "not met"))
            lines.append(f"- Best at the longest budget on {dname} (lowest seed-mean validation NLL): {b['label']} "
                         f"({b['id']}: test NLL {_f(b['test_nll'])} ± {_f(b['test_nll_std'])}, {b['n_seeds']} seeds; "
                         f"{_plateau(b)}){extra}.")
        for r in rows:  # the long stage: the data set's best model trained up to its long budget
            if r["budget"] == "converged" and r["size"] == "long" and r["dataset"] == dname:
                lines.append(f"  - Trained longer (the long stage, see Settings): {r['label']} "
                             f"({r['id']}: test NLL {_f(r['test_nll'])} ± {_f(r['test_nll_std'])} after "
                             f"{_f(r['steps'], 0)} ± {_f(r['steps_std'], 0)} steps, {r['n_seeds']} seeds; {_plateau(r)}).")
    return lines


def _g(x: float) -> str:
    return f"{x:g}"


def _plateau(row: dict) -> str:
    """Whether a converged summary row's validation NLL met the plateau criterion, in words."""
    n, p = row["n_seeds"], row["plateaued"]
    if p == n:
        return "plateaued in every seed"
    return (f"plateaued in {p} of {n} seeds; the rest stopped at `max_steps`, so the NLL is an upper bound on the "
            "converged one")


def _ot_verdict(comps: list[dict]) -> list[str]:
    """Does minibatch-OT coupling help at equal seconds and at convergence? (each claim cites its C row)"""
    out = []
    for budget in ("equal-seconds", "converged"):
        for a, b in (("plain-ot", "plain"), ("gauge-ot", "gauge")):
            cs = [c for c in comps if c["a"] == a and c["b"] == b and c["budget"] == budget and c["size"] == "full"]
            if cs:
                out.append(f"  - {LABELS[a]} vs {LABELS[b]}, {budget}: " + _grouped(cs) + ".")
    return (["- **Does OT coupling help? Each model with minibatch-OT pairs (blocks of 32) against itself with "
             "independent pairs (its own step time: equal seconds counts OT's cost).**"] + out) if out else []


def today_best(dname: str = "world-cities") -> float | None:
    """The best mean test NLL of ``dname`` in the committed real-data study summaries (experiments/real)."""
    vals = []
    for path in (ROOT / "experiments" / "real").glob("results*/summary.csv"):
        with open(path, newline="", encoding="utf-8") as fh:
            vals += [float(r["test_nll"]) for r in csv.DictReader(fh) if r["dataset"] == dname]
    return min(vals) if vals else None


def tables(rows: list[dict], comps: list[dict]) -> list[str]:
    lines = []
    for dname in dict.fromkeys(r["dataset"] for r in rows):
        lines += [f"### {dname}", "", "| row | size | budget | model | params | steps | budget s | test NLL | test FM "
                  "| energy dist. | escaped | seeds (plateaued) |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in (r for r in rows if r["dataset"] == dname):
            lines.append(f"| {r['id']} | {r['size']} | {r['budget']} | {r['label']} | {r['params']} | {_f(r['steps'], 0)} "
                         f"| {_f(r['budget_s'], 1)} | {_f(r['test_nll'])} ± {_f(r['test_nll_std'])} | {_f(r['test_fm'])} ± "
                         f"{_f(r['test_fm_std'])} | {_f(r['energy_distance'], 4)} ± {_f(r['energy_distance_std'], 4)} "
                         f"| {_f(r['escaped_fraction'])} | {r['seeds']} ({r['plateaued']}) |")
        lines += ["", "| row | size | budget | A | B | ΔNLL = A − B (mean ± std) | n | paired t p | Wilcoxon p | reading |",
                  "|---|---|---|---|---|---:|---:|---:|---:|---|"]
        for c in (c for c in comps if c["dataset"] == dname):
            lines.append(f"| {c['id']} | {c['size']} | {c['budget']} | {LABELS[c['a']]} | {LABELS[c['b']]} | "
                         f"{c['mean']:+.3f} ± {c['std']:.3f} | {c['n']} | {_p(c['t_p'])} | {_p(c['w_p'])} | {c['verdict']} |")
        lines.append("")
    return lines


def timing_rows(runs: list[dict], curve: list[dict], solver: list[dict], probe: list[dict]) -> list[dict]:
    """Per (data set, model): measured seconds of a full evaluation, a curve evaluation and the solver sweep."""
    out = {(p["dataset"], p["model"]): dict(p, source="probe") for p in probe}
    for key in dict.fromkeys((r["dataset"], r["model"]) for r in runs):
        ev = mean_std([r["eval_s"] for r in runs if (r["dataset"], r["model"]) == key])[0]
        cv = mean_std([r["eval_s"] for r in curve if (r["dataset"], r["model"]) == key])[0]
        sv = [r["solver_s"] for r in solver if (r["dataset"], r["model"]) == key]
        prev = out.get(key, {})
        out[key] = {"dataset": key[0], "model": key[1], "full_eval_s": ev, "curve_eval_s": cv,
                    "solver_s": sum(sv) if sv else prev.get("solver_s", 0.0), "source": "parts"}
    return list(out.values())


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: (v if k in ("dataset", "model", "source", "candidate", "processor", "platform", "measured_utc",
                                "settings_key", "stopped", "git_commit", "torch", "python") else float(v) if v != "" else math.nan)
                 for k, v in r.items()}
                for r in csv.DictReader(fh)]


def _sample_inputs(samples: list[dict], best: dict[tuple[str, str], str], cfg: dict) -> tuple[list[dict], dict, dict]:
    """The sample figure's inputs: the kept samples, each data set's test split as rows ``x0, x1, …``,
    and its best model at convergence (full size, by validation: :func:`best_by_val`)."""
    from compute_study import load_data

    full = {d: m for (d, size), m in best.items() if size == "full"}
    tests = {}
    for dname in dict.fromkeys(r["dataset"] for r in samples):
        x = load_data(dname, cfg["datasets"][dname], 1.0).test
        tests[dname] = [{f"x{i}": float(v) for i, v in enumerate(row)} for row in x[:1000].tolist()]
    return samples, tests, full


def write_report(out: Path, report: Path, cfg: dict, variant: str, planned: list[str]) -> Path:
    """Render ``report`` (and its figures beside it in ``figures/``) from the CSVs in ``out``."""
    from compute_part import part_id
    from compute_render import render
    from run import settings_key  # the one definition of a part's settings

    wanted = set(planned)  # parts of another plan left in the folder (same settings key) are not this report's
    keys: dict[tuple, str] = {}

    def key(r: dict) -> str | None:
        cell = (r["dataset"], r["model"], "long" if r["size"] == "long" else "full")
        if cell not in keys:
            known = cell[0] in cfg["datasets"] and (cell[2] != "long" or cell[0] in cfg.get("long", {}))
            keys[cell] = settings_key(cfg, *cell) if known else None
        return keys[cell]

    def pick(rows: list[dict]) -> list[dict]:
        return [r for r in rows if part_id(r["dataset"], r["size"], r["model"], int(r["seed"])) in wanted
                and key(r) == r.get("settings_key")]

    runs, curve, solver = (pick(read_table(out, t)) for t in ("runs", "curve", "solver"))
    calib = [c for c in _read(out / "compute_calibration.csv") if c["candidate"] == "False"]
    rows, comps, best = summary(runs), comparisons(runs), best_by_val(curve)
    done = sorted({part_id(r["dataset"], r["size"], r["model"], int(r["seed"])) for r in runs})
    figs = report.parent / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    files = compute_figures.learning_curves(curve, figs) + compute_figures.solver_figure(solver, figs)
    files += compute_figures.sample_figures(*_sample_inputs(pick(read_table(out, "samples")), best, cfg), figs)
    probed = _read(out / "compute_timing.csv")
    timing = timing_rows(runs, curve, solver, probed)
    est = estimate(cfg, calib, runs, curve, timing)
    lr_rows = _read(out / "compute_lr.csv") if "lr_grid" in cfg else []
    text = render(cfg, variant, planned, done, rows, comps, calib, solver, files, report, est, timing, runs, curve,
                  best, lr_rows)
    report.write_text(text, encoding="utf-8")
    (out / "compute_estimate.json").write_text(json.dumps(est, indent=2), encoding="utf-8")
    return report
