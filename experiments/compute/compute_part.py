"""Run one part of the study: one training trajectory, its three budget rows, learning curve and solver sweep."""
from __future__ import annotations

import copy
import math
import time

import torch

from gaugeflow.models import count_parameters
from gaugeflow.sampling import log_prob
from gaugeflow.training import NonFiniteLossError, TrainConfig

from compute_config import eval_settings, train_settings
from compute_models import LABELS, build
from compute_study import PairedTrainer, full_eval, load_data, nll, plateaued, sample_distances, samples

BUDGETS = ("equal-steps", "equal-seconds", "converged")
#: the training-set "size" of the long stage's parts (run.py's ``long_plan``): full training set, one budget
LONG = "long"
#: samples of the converged model kept for the report's sample figure (solver seed, full size, real data);
#: drawn from fixed base points after every result is computed, so they change no number of the part
FIGURE_SAMPLES = 1000


def part_id(dname: str, size: str, model: str, seed: int) -> str:
    """The file stem of a part: ``<data set>__<size>__<model>__s<seed>``."""
    return f"{dname}__{size}__{model}__s{seed}"


def curve_subset(x: torch.Tensor, n: int) -> torch.Tensor:
    """A fixed (seed 1234) subset of at most ``n`` rows, the same for every model and seed."""
    if len(x) <= n:
        return x
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(1234))[:n]]


def _budget_steps(cfg: dict, spec: dict, calib: dict, dname: str, model: str) -> dict[str, int]:
    t_ref = calib[(dname, "gauge")]["step_s_median"]
    t_m = calib[(dname, model)]["step_s_median"]
    return {"equal-steps": spec["steps_eq"],
            "equal-seconds": min(spec["max_steps"], max(1, round(spec["steps_eq"] * t_ref / t_m)))}


def _marks(step: int, every: int, budget: dict[str, int], max_steps: int) -> int:
    """The next step at which the trajectory is evaluated."""
    nxt = (step // every + 1) * every
    return min([nxt, max_steps] + [s for s in budget.values() if s > step])


def _evaluated(budgets: dict[str, dict], step: int) -> dict | None:
    """A budget row already evaluated at ``step`` (same EMA weights), as a copy that took no evaluation time."""
    same = next((r for r in budgets.values() if r["steps"] == step), None)
    return {**same, "eval_s": 0.0} if same else None


def train_trajectory(tr, ev: dict, spec: dict, budget: dict[str, int], data, eval_fn) -> dict:
    """Train, evaluating the EMA weights at every ``eval_every`` steps (learning curve, plateau) and at
    the budget steps (``eval_fn``). Returns the budget results, the curve and the best-validation state."""
    val_x, test_x = curve_subset(data.val, ev["curve_points"]), curve_subset(data.test, ev["curve_points"])
    step, train_s, vals, curve, out = 0, 0.0, [], [], {}
    best = {"val": math.inf, "state": None, "step": 0, "train_s": 0.0}
    stopped = "max_steps"
    while step < spec["max_steps"]:
        nxt = _marks(step, spec["eval_every"], budget, spec["max_steps"])
        start = time.perf_counter()
        try:
            for _ in range(nxt - step):
                tr.train_step()
        except NonFiniteLossError:
            stopped = "non-finite"
            break
        train_s += time.perf_counter() - start
        step = nxt
        ema = tr.ema_model()
        for name, s in budget.items():
            if s == step:  # two budgets at one step (GaugeFlow's equal seconds are its equal steps): one evaluation
                out[name] = _evaluated(out, step) or {"steps": step, "train_s": train_s, **eval_fn(ema)}
        if step % spec["eval_every"] == 0 or step == spec["max_steps"]:
            start = time.perf_counter()
            v = nll(ema, val_x, ev["nll_steps"])[0]
            c = nll(ema, test_x, ev["nll_steps"])[0]
            vals.append(v if math.isfinite(v) else math.inf)
            curve.append({"step": step, "train_s": train_s, "val_nll": v, "test_nll_curve": c,
                          "eval_s": time.perf_counter() - start})
            if vals[-1] < best["val"]:
                best = {"val": v, "state": copy.deepcopy(ema.state_dict()), "step": step, "train_s": train_s}
            if step >= max(budget.values(), default=0) and plateaued(vals, ev):
                stopped = "plateau"
                break
    return {"budgets": out, "curve": curve, "best": best, "stop_step": step, "stopped": stopped}


def solver_sweep(model, data, ev: dict, euclidean: bool) -> list[dict]:
    """NLL (exact divergence) and sample distances against the solver: rk4 with each of
    ``solver_steps`` steps, and dopri5 (atol = rtol = ``dopri5_tol``) with its evaluation count."""
    x = curve_subset(data.test, ev["solver_points"])
    rows = []
    for method, steps in [("rk4", s) for s in ev["solver_steps"]] + [("dopri5", None)]:
        tol = ev["dopri5_tol"]
        start = time.perf_counter()
        value, fails = nll(model, x, steps or 1, method, tol)
        nll_s = time.perf_counter() - start
        nll_nfe = 4 * steps if method == "rk4" else _dopri_nfe(model, x, tol)
        xs, nfe = samples(model, ev["solver_samples"], steps or 1, method, tol)
        rows.append({"method": method, "solver_steps": steps if steps else "", "nll_nfe": nll_nfe,
                     "sample_nfe": nfe, "test_nll_subset": value, "nll_failures": fails, "nll_s": nll_s,
                     **sample_distances(xs, data, euclidean), "solver_s": time.perf_counter() - start})
    return rows


def _dopri_nfe(model, x: torch.Tensor, tol: float) -> int:
    """Velocity evaluations of one dopri5 likelihood solve of ``x`` (−1 if it failed)."""
    try:
        return log_prob(model, x, method="dopri5", atol=tol, rtol=tol, return_info=True)[1].nfe
    except Exception:  # noqa: BLE001 - a failed solve is reported as -1, the row is kept
        return -1


def run_part(key: tuple, cfg: dict, calib: dict) -> dict[str, list[dict]]:
    """Train and evaluate one part ``(data set, size, model, seed)``; returns its rows by table."""
    dname, size, mname, seed = key
    wall = time.perf_counter()
    spec, ev = cfg["datasets"][dname], eval_settings(cfg, dname)
    if size == LONG:  # the long stage: the full training set, the data set's long budget, no other budget
        spec = {**spec, **cfg["long"][dname]}
    data = load_data(dname, spec, 1.0 if size == LONG else cfg["sizes"][size]["fraction"])
    euclid = spec["kind"] == "gmm"
    widths = {mname: calib[(dname, mname)]["hidden"]}
    model = build(mname, data.manifold, widths, seed)
    train = train_settings(cfg, mname, dname)
    if train["lr"] is None:
        raise ValueError(f"part {part_id(*key)}: its learning rate is not tuned yet (run the sweep first: run.py "
                         "runs it before the parts; compute_lr.csv holds it)")
    tc = TrainConfig(seed=seed, steps=spec["max_steps"], device="cpu", progress=False, val_size=0, **train)
    tr = PairedTrainer(model, data, tc)
    budget = {} if size == LONG else _budget_steps(cfg, spec, calib, dname, mname)
    run = train_trajectory(tr, ev, spec, budget, data, lambda m: full_eval(m, data, ev, euclid))
    best = build(mname, data.manifold, widths, seed)
    if run["best"]["state"] is not None:
        best.load_state_dict(run["best"]["state"])
        # the best weights are a budget's (same step, same EMA state): its evaluation, not a second one
        run["budgets"]["converged"] = (_evaluated(run["budgets"], run["best"]["step"]) or
                                       {"steps": run["best"]["step"], "train_s": run["best"]["train_s"],
                                        **full_eval(best.eval(), data, ev, euclid)})
    head = {"dataset": dname, "size": size, "n_train": len(data.train), "model": mname, "label": LABELS[mname],
            "seed": seed, "hidden": widths[mname], "params": count_parameters(model), "lr": train["lr"]}
    base = float(-data.manifold.base_log_prob(data.test).double().mean())
    stream = tr.digest.hexdigest()[:16] if hasattr(tr, "digest") else ""
    step_s = calib[(dname, mname)]["step_s_median"]
    rows = []
    for b in (("converged",) if size == LONG else BUDGETS):
        r = run["budgets"].get(b)
        if r is None:  # the run stopped (non-finite losses) before this budget
            r = {"steps": -1, "train_s": math.nan, "test_nll": math.nan, "nll_failures": -1, "test_fm": math.nan,
                 "energy_distance": math.nan, "sliced_w2": math.nan, "escaped_fraction": math.nan, "eval_s": 0.0}
        rows.append({**head, "budget": b, **r, "calib_step_s": step_s, "budget_s": r["steps"] * step_s,
                     "base_nll": base, "stream_hash": stream, "stop_step": run["stop_step"],
                     "stopped": run["stopped"], "skipped_steps": tr.history.skipped})
    curve = [{**head, **c, "calib_s": c["step"] * step_s} for c in run["curve"]]
    solver = []
    if seed == cfg["solver_seed"] and size == "full" and spec.get("solver", True) and run["best"]["state"] is not None:
        solver = [{**head, "steps_trained": run["best"]["step"], **s} for s in solver_sweep(best, data, ev, euclid)]
    kept = []  # the converged model's samples (solver seed, full size or long stage, real data): the sample figure
    if seed == cfg["solver_seed"] and size in ("full", LONG) and not euclid and run["best"]["state"] is not None:
        xs, _ = samples(best, FIGURE_SAMPLES, ev["nll_steps"])
        kept = [{**head, **{f"x{i}": round(float(v), 5) for i, v in enumerate(row)}} for row in xs.tolist()]
    part_s = time.perf_counter() - wall
    for r in rows:
        r["part_s"] = part_s
    return {"runs": rows, "curve": curve, "solver": solver, "samples": kept}
