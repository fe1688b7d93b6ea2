"""Statistics of the equal-compute report: rows read from the part CSVs, means, paired tests, the runtime estimate."""
from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

from scipy import stats

TEXT = {"dataset", "size", "model", "label", "budget", "stream_hash", "stopped", "settings_key", "method",
        "solver_steps", "candidate", "measured_utc", "processor", "platform", "torch", "python", "git_commit"}
#: (a, b): a paired comparison of model a against model b (ΔNLL = NLL_a − NLL_b, negative: a is better)
COMPARISONS = (("gauge", "gauge-a0"), ("higher-gauge", "higher-gauge-a0"), ("tensor-gauge", "tensor-gauge-a0"),
               ("gauge", "plain-params"), ("higher-gauge", "plain-params"), ("tensor-gauge", "plain-params"),
               ("gauge", "plain-time"), ("higher-gauge", "plain-time"), ("tensor-gauge", "plain-time"),
               ("gauge", "plain"), ("higher-gauge", "gauge"), ("tensor-gauge", "gauge"),
               ("gauge-a0", "plain"), ("higher-gauge-a0", "plain"), ("tensor-gauge-a0", "plain"),
               ("plain-ot", "plain"), ("gauge-ot", "gauge"), ("gauge-ot", "plain-ot"))
LEVEL = 0.05
#: |ΔNLL| below which two runs count as the same model (float32 rounding of the likelihood solve)
SAME = 1e-6


def _num(key: str, value: str):
    if key in TEXT or value == "":
        return value
    try:
        return float(value)
    except ValueError:
        return value


def read_table(folder: Path, table: str) -> list[dict]:
    """All rows of ``compute_parts/*.<table>.csv`` (numbers as floats), sorted by file name."""
    rows = []
    for path in sorted((folder / "compute_parts").glob(f"*.{table}.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            rows += [{k: _num(k, v) for k, v in r.items()} for r in csv.DictReader(fh)]
    return rows


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation over the finite values (NaN, NaN when none)."""
    v = [x for x in values if isinstance(x, float) and math.isfinite(x)]
    if not v:
        return math.nan, math.nan
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def paired(a: dict[int, float], b: dict[int, float]) -> dict | None:
    """Paired comparison over the seeds both have: ΔNLL mean ± std, paired t-test and Wilcoxon p."""
    seeds = sorted(s for s in set(a) & set(b) if math.isfinite(a[s]) and math.isfinite(b[s]))
    if len(seeds) < 2:
        return None
    d = [a[s] - b[s] for s in seeds]
    m, sd = mean_std(d)
    if all(abs(x) <= SAME for x in d):
        return {"n": len(d), "mean": m, "std": sd, "t_p": math.nan, "w_p": math.nan, "verdict": "identical"}
    # paired t-test on the differences (= scipy.stats.ttest_rel), written out so that nearly constant
    # differences give a tiny p instead of scipy's precision warning
    t_p = float(2 * stats.t.sf(abs(m) / (sd / math.sqrt(len(d))), len(d) - 1)) if sd > 0 else 0.0
    w_p = float(stats.wilcoxon(d).pvalue) if any(x != 0 for x in d) else math.nan
    verdict = "no clear difference" if not t_p < LEVEL else ("better" if m < 0 else "worse")
    return {"n": len(d), "mean": m, "std": sd, "t_p": t_p, "w_p": w_p, "verdict": verdict}


def comparisons(runs: list[dict]) -> list[dict]:
    """Every comparison of :data:`COMPARISONS` per (data set, size, budget) with ≥ 2 paired seeds, ids C1, C2, …"""
    by = {}
    for r in runs:
        by.setdefault((r["dataset"], r["size"], r["budget"], r["model"]), {})[int(r["seed"])] = r["test_nll"]
    from compute_config import FULL

    order, dsets = ("equal-steps", "equal-seconds", "converged"), list(FULL["datasets"])
    cells = sorted(dict.fromkeys((r["dataset"], r["size"], r["budget"]) for r in runs),
                   key=lambda c: (dsets.index(c[0]), c[1] != "full", c[1], order.index(c[2])))
    out = []
    for cell in cells:
        for a, b in COMPARISONS:
            if (*cell, a) in by and (*cell, b) in by:
                res = paired(by[(*cell, a)], by[(*cell, b)])
                if res is not None:
                    out.append({"id": f"C{len(out) + 1}", "dataset": cell[0], "size": cell[1], "budget": cell[2],
                                "a": a, "b": b, **res})
    return out


def best_by_val(curve: list[dict]) -> dict[tuple[str, str], str]:
    """``(data set, size) → model`` with the lowest seed-mean of its best validation NLL on the learning
    curve: the one choice of "the best model" (the long stage's, the verdict's, the sample figure's); the
    test split plays no part in it. A seed whose validation NLL is never finite counts as +∞."""
    best: dict[tuple, float] = {}
    for r in curve:
        k = (r["dataset"], r["size"], r["model"], int(r["seed"]))
        v = float(r["val_nll"])
        best[k] = min(best.get(k, math.inf), v if math.isfinite(v) else math.inf)
    means: dict[tuple, dict[str, list[float]]] = {}
    for (d, size, m, _), v in best.items():
        means.setdefault((d, size), {}).setdefault(m, []).append(v)
    return {c: min(ms, key=lambda m: sum(ms[m]) / len(ms[m])) for c, ms in means.items()}


def summary(runs: list[dict]) -> list[dict]:
    """Mean ± std over seeds per (data set, size, budget, model), ids R1, R2, …"""
    from compute_config import FULL, MODELS

    budgets, dsets = ("equal-steps", "equal-seconds", "converged"), list(FULL["datasets"])
    runs = sorted(runs, key=lambda r: (dsets.index(r["dataset"]), r["size"] != "full", r["size"], MODELS.index(r["model"]),
                                       budgets.index(r["budget"]), r["seed"]))
    groups = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["size"], r["budget"], r["model"]), []).append(r)
    out = []
    for (d, size, b, m), rs in groups.items():
        s = {"id": f"R{len(out) + 1}", "dataset": d, "size": size, "budget": b, "model": m, "label": rs[0]["label"],
             "n_seeds": len(rs), "params": int(rs[0]["params"]), "hidden": int(rs[0]["hidden"]),
             "seeds": ",".join(str(int(r["seed"])) for r in rs), "plateaued": sum(r["stopped"] == "plateau" for r in rs)}
        for key in ("test_nll", "test_fm", "energy_distance", "sliced_w2", "steps", "budget_s", "train_s",
                    "escaped_fraction", "nll_failures", "part_s"):
            s[key], s[key + "_std"] = mean_std([r[key] for r in rs])
        out.append(s)
    return out


def estimate(cfg: dict, calib: list[dict], runs: list[dict], curve: list[dict], timing: list[dict]) -> list[dict]:
    """Predicted seconds of every part of ``cfg`` from measurements, per data set: lower bound (the run
    stops at its last budget step), upper bound (it runs to ``max_steps``).

    seconds = steps · t_step (interleaved calibration) · r + evaluations · t_curve + 3 · t_eval + t_solver,
    with ``r`` the measured ratio of training seconds to calibrated seconds in the parts run so far
    (1 when none), ``t_curve``/``t_eval`` per (data set, model) from the parts run or the timing table,
    and ``t_solver`` the solver sweep's measured seconds. Timings measured with other point counts
    than ``cfg``'s are scaled linearly in the points (fixed-step solves cost the same per point):
    ``t_curve`` by the curve subset, ``t_solver`` by the solver subset, ``t_eval`` by the test split.
    The lower bound counts at least ``plateau_min_evals`` evaluations (the criterion needs them).
    """
    step = {(c["dataset"], c["model"]): c["step_s_median"] for c in calib}
    ratios = [r["train_s"] / r["budget_s"] for r in runs if r["budget"] == "equal-steps" and r["budget_s"] > 0]
    ratio = statistics.median(ratios) if ratios else 1.0
    from compute_config import models_of

    cost = {(t["dataset"], t["model"]): t for t in timing}
    out = []
    for dname, spec in cfg["datasets"].items():
        lo = hi = 0.0
        n_parts, missing = 0, set()
        for size in cfg["sizes"]:
            for m in models_of(cfg, dname, size):
                n_parts += len(cfg["seeds"])
                # an OT variant evaluates the very same network as its model: same evaluation cost
                ev_m = m if (dname, m) in cost or not m.endswith("-ot") else m[:-3]
                if (dname, m) not in step or (dname, "gauge") not in step or (dname, ev_m) not in cost:
                    missing.add(m)
                    continue
                t = step[(dname, m)]
                s_time = min(spec["max_steps"], round(spec["steps_eq"] * step[(dname, "gauge")] / t))
                first = max(spec["steps_eq"], s_time)
                c = _scaled(cost[(dname, ev_m)], cfg, dname)
                ev = {**cfg["eval"], **spec.get("eval", {})}
                first = min(spec["max_steps"], max(first, ev["plateau_min_evals"] * spec["eval_every"]))
                for steps, acc in ((first, "lo"), (spec["max_steps"], "hi")):
                    evals = math.ceil(steps / spec["eval_every"])
                    sec = (steps * t * ratio + evals * c["curve_eval_s"] + 3 * c["full_eval_s"]) * len(cfg["seeds"])
                    sec += c["solver_s"] if size == "full" and spec.get("solver", True) else 0.0
                    lo, hi = (lo + sec, hi) if acc == "lo" else (lo, hi + sec)
        out.append({"dataset": dname, "parts": n_parts, "lower_s": lo, "upper_s": hi, "step_ratio": ratio,
                    "missing": ",".join(sorted(missing))})
    return out


def _scaled(cost: dict, cfg: dict, dname: str) -> dict:
    """Evaluation seconds of ``cost`` rescaled to ``cfg``'s point counts (see :func:`estimate`)."""
    ev = {**cfg["eval"], **cfg["datasets"][dname].get("eval", {})}
    spec = cfg["datasets"][dname]
    out = dict(cost)
    if isinstance(cost.get("curve_points"), float):
        out["curve_eval_s"] = cost["curve_eval_s"] * ev["curve_points"] / cost["curve_points"]
        out["solver_s"] = cost["solver_s"] * ev["solver_points"] / cost["solver_points"]
    if isinstance(cost.get("n_test"), float) and spec["kind"] == "gmm":
        out["full_eval_s"] = cost["full_eval_s"] * spec["data"]["n_test"] / cost["n_test"]
    return out
