"""Learning-rate tuning of the equal-compute study: one rate per (data set, model), chosen on validation.

The first full study trained every model at Adam's customary ``1e-3``. Probes on world cities (seed 0,
validation subset) showed that rate to be far too small for these flows: PlainFlow at width 64 reached
1.10 nats after 20 000 steps at ``1e-3`` and 0.81 at ``1e-2`` (0.94 / 0.79 / 0.72 / 0.80 after 40 000 steps at
``1e-3 / 3e-3 / 1e-2 / 3e-2``); GaugeFlow 0.70 after 20 000 steps at ``1e-2`` against 0.89 at ``1e-3``; a
cosine decay to zero made every run worse (0.85 against 0.81 at ``1e-2``, 20 000 steps). So "trained to
convergence" at one untuned rate measures the optimiser as much as the model. The grid stops at ``1e-2``:
``3e-2`` wins short runs but loses long ones (above), and the sweep's budget is short. Every *base* model (``plain``,
``plain-params``, ``plain-time``, ``gauge``, ``higher-gauge``, ``tensor-gauge``) of a data set is trained
at each rate of ``lr_grid`` for the data set's ``steps_eq`` steps (seed ``lr_seed``, full training set,
constant rate, the study's other settings), and keeps the rate whose EMA weights have the lowest NLL on
the validation subset (non-finite counts as worse than any finite value; ties go to the smaller rate).
The α ≡ 0 ablations and the OT variants take their base model's rate (``compute_config.lr_model``), and
the ``tenth`` training size the full size's. The test split is never used.

Rows: ``dataset, model, lr, steps, val_nll, stopped, sweep_s``; written to ``compute_lr.csv``.
"""
from __future__ import annotations

import math
import time

from compute_config import eval_settings, lr_model, train_settings
from compute_models import build
from compute_part import curve_subset
from compute_study import PairedTrainer, load_data, nll

from gaugeflow.training import NonFiniteLossError, TrainConfig


def sweep_jobs(cfg: dict, dname: str, models: list[str]) -> list[tuple[str, str, float]]:
    """``(data set, base model, rate)`` for every base model of ``models`` and every rate of the grid."""
    bases = list(dict.fromkeys(lr_model(m) for m in models))
    return [(dname, m, lr) for m in bases for lr in cfg["lr_grid"]]


def sweep_one(job: tuple[str, str, float], cfg: dict, calib: dict) -> dict:
    """Train base model ``job[1]`` on data set ``job[0]`` at rate ``job[2]``; its validation NLL."""
    dname, mname, lr = job
    start = time.perf_counter()
    spec = cfg["datasets"][dname]
    ev = eval_settings(cfg, dname)
    data = load_data(dname, spec, 1.0)
    seed = cfg["lr_seed"]
    model = build(mname, data.manifold, {mname: calib[(dname, mname)]["hidden"]}, seed)
    train = {**train_settings(cfg, mname), "lr": lr}
    tr = PairedTrainer(model, data, TrainConfig(seed=seed, steps=spec["steps_eq"], device="cpu", progress=False,
                                                val_size=0, **train))
    stopped = "steps"
    try:
        for _ in range(spec["steps_eq"]):
            tr.train_step()
    except NonFiniteLossError:
        stopped = "non-finite"
    value = math.inf
    if stopped == "steps":
        value, _ = nll(tr.ema_model(), curve_subset(data.val, ev["curve_points"]), ev["nll_steps"])
        value = value if math.isfinite(value) else math.inf
    return {"dataset": dname, "model": mname, "lr": lr, "steps": spec["steps_eq"], "val_nll": value,
            "stopped": stopped, "sweep_s": time.perf_counter() - start}


def chosen(rows: list[dict]) -> dict[tuple[str, str], float]:
    """``(data set, base model) → rate`` with the lowest validation NLL (ties: the smaller rate)."""
    best: dict[tuple[str, str], tuple[float, float]] = {}
    for r in rows:
        key, cand = (r["dataset"], r["model"]), (float(r["val_nll"]), float(r["lr"]))
        if key not in best or cand < best[key]:
            best[key] = cand
    return {k: v[1] for k, v in best.items()}
