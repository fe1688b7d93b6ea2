"""Evaluation costs of data sets not yet run (``run.py --probe``): the runtime estimate's missing inputs.

For every model of a data set, a freshly initialised model is evaluated once as a part would evaluate
it: one full evaluation (:func:`compute_study.full_eval`) and one learning-curve evaluation (NLL on the
validation and test subsets). Fixed-step solves cost the same for any weights, so these times carry
over to trained models. The solver sweep is not run: its cost is scaled from the curve evaluation,
``t_curve / 2 · (solver_points / curve_points) · (Σ solver_steps + 100) / nll_steps · 2`` (rk4 steps
of the sweep plus an allowance of 100 steps for dopri5; NLL and sampling), and marked ``probe``.
An α ≡ 0 model costs what its gauge model costs (same networks), so it is not timed twice.
"""
from __future__ import annotations

import time

from compute_config import eval_settings, models_of
from compute_models import build
from compute_part import curve_subset
from compute_study import full_eval, load_data, nll


def probe(cfg: dict, dname: str, calib: dict) -> list[dict]:
    """One row per model of ``dname``: ``full_eval_s``, ``curve_eval_s``, ``solver_s`` (seconds)."""
    spec, ev = cfg["datasets"][dname], eval_settings(cfg, dname)
    data = load_data(dname, spec, 1.0)
    models = list(dict.fromkeys(m for size in cfg["sizes"] for m in models_of(cfg, dname, size)))
    measured = {}
    for m in (m for m in models if not m.endswith("-a0")):
        model = build(m, data.manifold, {m: calib[(dname, m)]["hidden"]}, 0).eval()
        start = time.perf_counter()
        full_eval(model, data, ev, spec["kind"] == "gmm")
        full_s = time.perf_counter() - start
        start = time.perf_counter()
        for x in (data.val, data.test):
            nll(model, curve_subset(x, ev["curve_points"]), ev["nll_steps"])
        curve_s = time.perf_counter() - start
        steps = sum(ev["solver_steps"]) + 100
        solver_s = curve_s / 2 * ev["solver_points"] / ev["curve_points"] * steps / ev["nll_steps"] * 2
        measured[m] = {"full_eval_s": full_s, "curve_eval_s": curve_s,
                       "solver_s": solver_s if spec.get("solver", True) else 0.0, "n_test": len(data.test),
                       "curve_points": ev["curve_points"], "solver_points": ev["solver_points"]}
    return [{"dataset": dname, "model": m, **measured[m[:-3] if m.endswith("-a0") else m]} for m in models]
