"""The text of ``compute.md``: status, settings, verdict, tables, figures, solver sweep and runtime."""
from __future__ import annotations

import math
import os
import statistics
from pathlib import Path

from compute_models import LABELS
from compute_report import _f, tables, today_best, verdict
from compute_stats import LEVEL, mean_std


def _status(cfg: dict, variant: str, planned: list[str], done: list[str], est: list[dict],
            runs: list[dict], lr_rows: list[dict] | None = None) -> list[str]:
    lo, hi = sum(e["lower_s"] for e in est), sum(e["upper_s"] for e in est)
    missing = [e["dataset"] for e in est if e["missing"]]
    lines = []
    left = {}
    for p in planned:
        if p not in done:
            left.setdefault(p.split("__")[0], []).append(p)
    if variant != "full":
        lines += [f"> **The `{variant}` variant, not the full study.** Tiny budgets, for the test suite: its numbers "
                  "say nothing about the models.", ">"]
    elif left:
        lines += [f"> **In progress.** {len(done)} of the {len(planned)} parts are done "
                  "(`python experiments/compute/run.py --workers 2`, resumable); still to run: "
                  + "; ".join(f"{d}: {len(v)}" for d, v in left.items()) + ".", ">"]
    which = "quick variant" if variant == "quick" else "full study"
    if runs:
        main = sum(r["part_s"] for r in runs if r["budget"] == "converged" and r["size"] != "long")
        long = sum(r["part_s"] for r in runs if r["budget"] == "converged" and r["size"] == "long")
        n_long = len({(r["dataset"], r["seed"]) for r in runs if r["size"] == "long"})
        sweep = sum(float(r["sweep_s"]) for r in lr_rows or [])
        lines += [f"> Measured runtime (part time: training and every evaluation, summed over parts; two workers run "
                  f"two parts at once): the {which} — the learning-rate sweep, {len(lr_rows or [])} trainings, "
                  f"**{sweep / 3600:.2f} h**, and its {len(done) - n_long} parts, **{main / 3600:.2f} h** — takes "
                  f"**{(sweep + main) / 7200:.2f} h** on two workers"
                  + (f"; the long stage (`--long`, {n_long} parts) adds **{long / 3600:.2f} h** of part time, "
                     f"**{long / 7200:.2f} h** on two workers" if n_long else "")
                  + ". The parts ran on a shared machine over several sessions; other jobs' load is included.", ">"]
    lines += [f"> Estimated runtime of the {which}, from the measurements below: **{lo / 3600:.1f}–{hi / 3600:.1f} h** "
              f"serial (one thread), **{lo / 7200:.1f}–{hi / 7200:.1f} h** with `--workers 2` on two cores, plus the "
              "step-time calibration (lower: every run stops at its last budget step or at the plateau criterion's "
              "first chance; upper: every run goes to `max_steps`)"
              + (f"; not measured yet for {', '.join(missing)}" if missing else "") + ".", ""]
    return lines


def _lr_table(cfg: dict, lr_rows: list[dict]) -> list[str]:
    """The learning-rate sweep: validation NLL per (data set, base model) and rate, the chosen rate in bold."""
    if "lr_grid" not in cfg:
        return []
    from compute_lr import chosen

    pick = chosen(lr_rows)
    grid = cfg["lr_grid"]
    lines = ["", f"Learning-rate sweep (seed {cfg['lr_seed']}, full training set, `steps_eq` steps, validation NLL of "
             "the EMA weights on the curve subset; **bold**: the rate the model trains with; ∞: non-finite):", "",
             "| data | model | " + " | ".join(f"lr {g:g}" for g in grid) + " |", "|---|---|" + "---:|" * len(grid)]
    cell = {(r["dataset"], r["model"], float(r["lr"])): float(r["val_nll"]) for r in lr_rows}
    for d, m in dict.fromkeys((r["dataset"], r["model"]) for r in lr_rows):
        vals = []
        for g in grid:
            v = cell.get((d, m, float(g)))
            txt = "–" if v is None else "∞" if not math.isfinite(v) else f"{v:.3f}"
            vals.append(f"**{txt}**" if pick.get((d, m)) == float(g) else txt)
        lines.append(f"| {d} | {LABELS[m]} | " + " | ".join(vals) + " |")
    return lines


def _settings(cfg: dict, calib: list[dict], lr_rows: list[dict] | None = None) -> list[str]:
    ev, tr = cfg["eval"], cfg["train"]
    rate = (f"lr tuned per (data set, model) over {', '.join(f'{g:g}' for g in cfg['lr_grid'])} (table below; "
            "α ≡ 0 and OT variants take their base model's)" if "lr_grid" in cfg else f"lr {tr['lr']}")
    ref = {c["dataset"]: c["step_s_median"] for c in calib if c["model"] == "gauge"}
    m = calib[0] if calib else {}
    lines = ["## Settings", "",
             f"- Seeds {cfg['seeds']}; every model of a (data set, size, seed) sees the same batches, base points "
             "and times (the `stream_hash` column of the part CSVs is equal across models, checked by the test).",
             f"- Training: Adam, {rate}, constant, batch {tr['batch_size']}, weight EMA {tr['ema_decay']} "
             f"(evaluated), gradient clip {tr['grad_clip']}; one thread. Training-set sizes: " + ", ".join(
                 f"`{k}` = {v['fraction']:g} of the train split ({len(v['models'])} models)" for k, v in cfg["sizes"].items()) + ".",
             f"- Evaluation: exact-divergence test NLL on the **full test split** (rk4, {ev['nll_steps']} steps), "
             f"test FM loss on fixed (x0, x1, t) triples ({ev['fm_points']} test points × {ev['fm_repeats']}), energy "
             f"distance (geodesic) and sliced W2 of {ev['n_samples']} samples to the test split. Learning curves: "
             f"NLL on a fixed subset of {ev['curve_points']} test points (and of validation points, for the "
             f"plateau) every `eval_every` steps.",
             f"- Plateau criterion: with n ≥ {ev['plateau_min_evals']} validation evaluations, the best validation NLL "
             f"of the last ⌈n/4⌉ is not lower than the best before them by more than {ev['plateau_tol']} nats; the "
             "`converged` budget evaluates the weights with the best validation NLL (a run never stops before its "
             "other budgets).",
             *([f"- Long stage (`run.py --long`, opt-in, so that the one command stays well inside 3 hours; its "
                "measured cost is at the top of the page): where a data set's best model (lowest seed-mean best "
                "validation NLL, full training "
                "set) has not met the plateau criterion at `max_steps` in every seed, it trains again from step 0 on "
                "the same seeds (the same stream: its first `max_steps` steps repeat the full-size run) up to "
                + ", ".join(f"{d} {v['max_steps']} steps (evaluated every {v['eval_every']})" for d, v in cfg["long"].items())
                + ", stopping at the plateau criterion; rows of size `long`."] if cfg.get("long") else []),
             f"- Paired tests over seeds: ΔNLL = NLL(A) − NLL(B) per seed; *better*/*worse* when the paired t-test "
             f"gives p < {LEVEL} (Wilcoxon signed-rank p beside it; with 5 seeds its smallest two-sided p is 0.0625).",
             f"- Machine: {m.get('processor', '?')}, {int(m.get('cpu_count', 0))} CPUs, torch {m.get('torch', '?')}, "
             f"step times measured {m.get('measured_utc', '?')} on a shared machine.", "",
             "| data | steps (equal-steps) | equal seconds T | max steps | eval every |", "|---|---:|---:|---:|---:|"]
    for d, s in cfg["datasets"].items():
        t = s["steps_eq"] * ref[d] if d in ref else math.nan
        lines.append(f"| {d} | {s['steps_eq']} | {_f(t, 2)} s | {s['max_steps']} | {s['eval_every']} |")
    lines += _lr_table(cfg, lr_rows or [])
    lines += ["", "Widths, parameters and training-step times (interleaved rounds, median and range):", "",
              "| data | model | width | params | ms / step (median) | range |", "|---|---|---:|---:|---:|---|"]
    for c in calib:
        lines.append(f"| {c['dataset']} | {LABELS[c['model']]} | {int(c['hidden'])} | {int(c['params'])} | "
                     f"{1000 * c['step_s_median']:.2f} | {1000 * c['step_s_min']:.2f}–{1000 * c['step_s_max']:.2f} |")
    return lines + [""]


def _plateau_counts(runs: list[dict]) -> list[str]:
    """How many `converged` runs met the plateau criterion, per data set and size (the rest hit `max_steps`)."""
    cells = {}
    for r in runs:
        if r["budget"] == "converged":
            c = cells.setdefault((r["dataset"], r["size"]), [0, 0])
            c[0] += r["stopped"] == "plateau"
            c[1] += 1
    if not cells:
        return []
    return ["", "`converged` runs that met the plateau criterion (the others stopped at `max_steps`, their validation "
            "NLL still falling by more than the tolerance): " + "; ".join(
                f"{d}/{size} {p} of {n}" for (d, size), (p, n) in cells.items()) + ".", ""]


def _late_slopes(rows: list[dict], curve, top: dict[tuple[str, str], str], tol: float) -> list[str]:
    """How fast the best longest-budget model's validation NLL still falls at the end: the slope of each
    seed's curve against log2(step) over the second half of that seed's steps (runs stopped by the plateau
    criterion end at different steps), averaged over the seeds, in nats per doubling; where every seed ran to
    the same step this is the slope of the seed-mean curve. With a
    log-linear fall of ``b`` per doubling the last quarter gains ``b·log2(4/3) ≈ 0.415 b``, so the
    plateau criterion (tolerance ``tol`` nats) needs ``b`` flatter than about ``−tol / 0.415``."""
    out = []
    conv = {(r["dataset"], r["size"], r["model"]): r for r in rows if r["budget"] == "converged"}
    for d, size in dict.fromkeys((r["dataset"], r["size"]) for r in rows):
        best = conv.get((d, size, top.get((d, size))))
        if best is None:
            continue
        per_seed = {}
        for c in curve:
            if (c["dataset"], c["size"], c["model"]) == (d, size, best["model"]) and math.isfinite(c["val_nll"]):
                per_seed.setdefault(c["seed"], {})[c["step"]] = c["val_nll"]
        slopes = []
        for pts in per_seed.values():
            xs = sorted(s for s in pts if s >= max(pts) / 2)
            if len(xs) >= 2:
                slopes.append(statistics.linear_regression([math.log2(s) for s in xs], [pts[s] for s in xs]).slope)
        if slopes:
            out.append(f"{d}/{size} {best['label']} {statistics.fmean(slopes):+.3f}")
    if not out:
        return []
    gain = math.log2(4 / 3)  # what a fall of 1 nat per doubling gains over the last quarter of the steps
    return ["How fast the best model's validation NLL still falls at the end of the longest budget (slope of the "
            "validation curve against log₂ steps over the second half of each seed's run, mean over seeds, nats "
            f"per doubling of steps; the plateau criterion needs roughly −{tol / gain:.3f} or flatter, since a "
            f"log-linear fall gains {gain:.3f}× the slope over the last quarter; on a noisy validation split a run "
            "that the criterion stopped early can still show a steep slope over its short second half: the plateau "
            "counts above are the criterion itself): "
            + "; ".join(out) + ".", ""]


def _steps_needed(solver: list[dict], tol: float = 0.01) -> list[str]:
    """Per data set and model: the fewest rk4 steps whose NLL is within ``tol`` nats of dopri5's."""
    lines = [f"Fewest rk4 steps whose test NLL is within {tol} nats of dopri5's (the reference), and dopri5's "
             "evaluation count: does a gauge model need fewer steps?", "",
             "| data | model | rk4 steps needed | dopri5 NFE (NLL) | dopri5 NFE (samples) |", "|---|---|---:|---:|---:|"]
    for d, m in dict.fromkeys((r["dataset"], r["model"]) for r in solver):
        rows = [r for r in solver if (r["dataset"], r["model"]) == (d, m)]
        ref = next((r for r in rows if r["method"] == "dopri5"), None)
        if ref is None or not math.isfinite(ref["test_nll_subset"]):
            continue
        ok = [int(r["solver_steps"]) for r in rows if r["method"] == "rk4"
              and abs(r["test_nll_subset"] - ref["test_nll_subset"]) <= tol]
        lines.append(f"| {d} | {LABELS[m]} | {min(ok) if ok else '> ' + str(max(int(r['solver_steps']) for r in rows if r['method'] == 'rk4'))} "
                     f"| {int(ref['nll_nfe'])} | {int(ref['sample_nfe'])} |")
    return lines + [""]


def _solver(solver: list[dict]) -> list[str]:
    if not solver:
        return []
    from compute_config import MODELS

    solver = sorted(solver, key=lambda r: (r["dataset"], MODELS.index(r["model"])))
    lines = ["## Sampling: NLL and sample quality against solver steps", "",
             "Seed-0 converged models; NLL on a fixed test subset; rk4 uses 4 velocity evaluations per step, "
             "dopri5 its own count (−1: the solve failed).", ""] + _steps_needed(solver) + [
             "| data | model | method | steps | NFE (NLL) | test NLL (subset) | NFE (samples) | energy dist. |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in solver:
        lines.append(f"| {r['dataset']} | {LABELS[r['model']]} | {r['method']} | {r['solver_steps'] or '–'} | "
                     f"{int(r['nll_nfe'])} | {_f(r['test_nll_subset'])} | {int(r['sample_nfe'])} | {_f(r['energy_distance'], 4)} |")
    return lines + ["", "![solver](figures/compute_solver.png)", ""]


def _runtime(runs: list[dict], timing: list[dict], est: list[dict]) -> list[str]:
    lines = ["## Runtime (measured)", "", "Seconds per part (training + all its evaluations), mean over its seeds:", "",
             "| data | size | model | parts | s / part | training s | steps run |", "|---|---|---|---:|---:|---:|---:|"]
    from compute_config import MODELS

    cells = sorted(dict.fromkeys((r["dataset"], r["size"], r["model"]) for r in runs if r["budget"] == "converged"),
                   key=lambda c: (c[0], c[1] != "full", MODELS.index(c[2])))
    for d, size, m in cells:
        rs = [r for r in runs if (r["dataset"], r["size"], r["model"], r["budget"]) == (d, size, m, "converged")]
        lines.append(f"| {d} | {size} | {LABELS[m]} | {len(rs)} | {_f(mean_std([r['part_s'] for r in rs])[0], 1)} | "
                     f"{_f(mean_std([r['train_s'] for r in rs])[0], 1)} | {_f(mean_std([r['stop_step'] for r in rs])[0], 0)} |")
    lines += ["", "Evaluation costs used by the estimate (`parts`: measured in the runs above; `probe`: one timed "
              "evaluation of a freshly initialised model):", "",
              "| data | model | full evaluation s | curve evaluation s | solver sweep s | source |", "|---|---|---:|---:|---:|---|"]
    for t in timing:
        lines.append(f"| {t['dataset']} | {LABELS[t['model']]} | {_f(t['full_eval_s'], 2)} | {_f(t['curve_eval_s'], 2)} | "
                     f"{_f(t['solver_s'], 1)} | {t['source']} |")
    lines += ["", "Estimate of the runtime (settings of `compute_config.FULL`, or of `QUICK` for the quick variant):", "",
              "| data | parts | lower h | upper h | training-time ratio | not measured |", "|---|---:|---:|---:|---:|---|"]
    for e in est:
        lines.append(f"| {e['dataset']} | {e['parts']} | {e['lower_s'] / 3600:.2f} | {e['upper_s'] / 3600:.2f} | "
                     f"{e['step_ratio']:.2f} | {e['missing'] or '–'} |")
    return lines + [""]


def render(cfg, variant, planned, done, rows, comps, calib, solver, files, report: Path, est, timing, runs,
           curve, best, lr_rows: list[dict] | None = None) -> str:
    """The whole page."""
    lines = ["# Equal compute and convergence: does the gauge field help? (issue 22)", "",
             "<!-- generated by experiments/compute/run.py from the compute_*.csv beside it; do not edit -->", ""]
    lines += _status(cfg, variant, planned, done, est, runs, lr_rows)
    lines += ["A gauge model runs four networks where PlainFlow runs one. This study compares, on paired seeds, the "
              "gauge models with PlainFlow at the papers' width, PlainFlow matched in parameters, PlainFlow matched "
              "in training-step time, and each gauge model with its gauge term switched off (α ≡ 0, all networks "
              "present and computed), at equal steps, equal seconds and at convergence (docs/math.md §5).", ""]
    lines += ["## Verdict", "", "Generated from the tables below; each claim names its row (C… paired comparison, R… "
              "summary row) and its spread (mean ± std over seeds).", ""]
    lines += verdict(comps, rows, runs, best, today_best()) + [""]
    lines += _settings(cfg, calib, lr_rows)[:-1] + _plateau_counts(runs) + _late_slopes(rows, curve, best, cfg["eval"]["plateau_tol"]) + [""]
    lines += ["## Results", "", "ΔNLL < 0: model A has the lower (better) test NLL. Steps, seconds and metrics are "
              "means ± std over seeds.", ""] + tables(rows, comps)
    lines += ["## Learning curves", ""]
    for f in files:
        if f.name.startswith("compute_curves_"):
            lines += [f"![{f.stem}]({os.path.relpath(f, report.parent)})", ""]
    shots = [f for f in files if f.name.startswith("compute_samples_")]
    if shots:
        lines += ["## Samples at convergence", "", "The test split beside 1 000 samples (rk4, the NLL's steps, fixed "
                  "base points) of the best model at convergence and of the papers' PlainFlow, seed 0, full training "
                  "set.", ""]
        lines += [x for f in shots for x in (f"![{f.stem}]({os.path.relpath(f, report.parent)})", "")]
    lines += _solver(solver) + _runtime(runs, timing, est)
    return "\n".join(lines) + "\n"
