"""Function evaluations against accuracy, with and without OT coupling (issue 19, deliverable 2).

One command (resumable: a part is one data set × coupling × seed; parts already in the CSVs are kept)::

    python experiments/nfe/run.py               # the study (~10 min on a shared 2-core CPU)
    python experiments/nfe/run.py --quick       # smoke test: tiny data, few steps (writes results_quick/)
    python experiments/nfe/report.py            # docs/results/nfe.md from the CSVs

For every part it trains a small flow (GaugeFlow, width 64, Adam with the trainer's defaults: EMA
0.999, clipping 1.0) with ``coupling`` independent or ot, then, in float64, on a fixed set of test points:

* the *converged* NLL: dopri5 with ``atol = rtol = 1e-9`` (exact divergence);
* the NLL of euler, midpoint and rk4 at 4, 8, 16, 32, 64, 100 steps and of dopri5 at its default
  tolerance (1e-5), each with its count of field evaluations (NFE) and its error against the converged NLL;
* sample quality at the same solver settings: mean geodesic distance of the samples from the
  converged samples of the same base points (dopri5, 1e-9), and the energy distance to the test set.

Outputs (``--out``, default ``experiments/nfe/results``): ``runs.csv`` (one row per part),
``solver.csv`` (one row per part and solver setting), ``settings.json`` (machine, versions, seeds).
"""
from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from pathlib import Path

import torch

from gaugeflow.data import protein_angles, quakes, world_cities
from gaugeflow.metrics import energy_distance
from gaugeflow.models import GaugeFlow, PlainFlow, count_parameters
from gaugeflow.sampling import log_prob, sample
from gaugeflow.training import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[2]
DATASETS = {"quakes": quakes, "protein": protein_angles, "world-cities": world_cities}
MANIFOLD_NAMES = {3: "sphere", 2: "torus"}
#: coupling variants: TrainConfig fields
VARIANTS = {"independent": {"coupling": "independent"}, "ot": {"coupling": "ot"},
            "ot-block32": {"coupling": "ot", "ot_batch": 32}}
METHODS = ("euler", "midpoint", "rk4")
STEPS = (4, 8, 16, 32, 64, 100)
CONVERGED_TOL = 1e-9
FULL = {"steps": 3000, "batch_size": 256, "hidden": 64, "lr": 1e-3, "seeds": [0, 1], "n_test": 400, "n_sample": 1000,
        "max_points": None}
QUICK = {"steps": 40, "batch_size": 64, "hidden": 16, "lr": 1e-3, "seeds": [0], "n_test": 20, "n_sample": 50,
         "max_points": 400}
RUN_KEYS = ("dataset", "variant", "seed")


def train(name: str, data, variant: str, seed: int, cfg: dict, model_name: str):
    """Train one model; returns ``(EMA model in float64, {train_s_per_step, final_loss, ...})``."""
    M = data.manifold
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = (GaugeFlow if model_name == "gauge" else PlainFlow)(M, hidden=cfg["hidden"])
    tc = TrainConfig(manifold=MANIFOLD_NAMES[M.ambient_dim], dim=2, model=model_name, steps=cfg["steps"],
                     batch_size=cfg["batch_size"], hidden=cfg["hidden"], lr=cfg["lr"], seed=seed, val_size=0,
                     progress=False, device="cpu", **VARIANTS[variant])
    trainer = Trainer(model, data, tc)
    try:
        start = time.perf_counter()
        history = trainer.fit()
        elapsed = time.perf_counter() - start
        ema = trainer.ema_model().double()
    finally:
        trainer.close()
    tail = history.loss[-max(1, len(history.loss) // 10):]
    return ema, {"train_s_per_step": elapsed / cfg["steps"], "final_loss": sum(tail) / len(tail),
                 "n_params": count_parameters(model), "coupling": tc.coupling, "ot_batch": tc.ot_batch or ""}


def solver_rows(model, x_test: torch.Tensor, x0: torch.Tensor, test_all: torch.Tensor) -> tuple[dict, list[dict]]:
    """The converged reference and one row per solver setting (see the module docstring)."""
    M = model.manifold
    tight = {"atol": CONVERGED_TOL, "rtol": CONVERGED_TOL}
    lp, info = log_prob(model, x_test, method="dopri5", return_info=True, **tight)
    conv = float(-lp.mean())
    ref, sinfo = sample(model, x0, method="dopri5", return_info=True, **tight)
    reference = {"nll_converged": conv, "converged_nfe": info.nfe, "converged_sample_nfe": sinfo.nfe,
                 "energy_converged": energy_distance(ref, test_all, M)}
    settings = [(m, s) for m in METHODS for s in STEPS] + [("dopri5", None)]
    rows = []
    for method, steps in settings:
        kw = {"steps": steps} if steps else {}
        start = time.perf_counter()
        lp, info = log_prob(model, x_test, method=method, return_info=True, **kw)
        seconds = time.perf_counter() - start
        xs, sinfo = sample(model, x0, method=method, return_info=True, **kw)
        nll = float(-lp.mean())
        rows.append({"method": method, "steps": steps or "", "nfe": info.nfe, "sample_nfe": sinfo.nfe,
                     "nll": nll, "nll_error": abs(nll - conv), "logprob_s": seconds,
                     "sample_err": float(M.dist(xs, ref).mean()), "energy": energy_distance(xs, test_all, M)})
    return reference, rows


def run_part(dname: str, variant: str, seed: int, cfg: dict, model_name: str, log) -> tuple[dict, list[dict]]:
    data = DATASETS[dname](seed=0, max_points=cfg["max_points"])
    test = data.manifold.projx(data.test.double())  # float32 points, re-projected at float64 precision
    x_test = test[torch.randperm(len(test), generator=torch.Generator().manual_seed(1234))[:cfg["n_test"]]]
    x0 = data.manifold.random_base(cfg["n_sample"], generator=torch.Generator().manual_seed(10_000 + seed),
                                   dtype=torch.float64)
    model, tr = train(dname, data, variant, seed, cfg, model_name)
    start = time.perf_counter()
    reference, rows = solver_rows(model, x_test, x0, test)
    key = {"dataset": dname, "variant": variant, "seed": seed}
    run = {**key, "model": model_name, "hidden": cfg["hidden"], "steps": cfg["steps"], "batch_size": cfg["batch_size"],
           "n_train": len(data.train), "n_test_eval": len(x_test), **tr, **reference,
           "eval_s": time.perf_counter() - start}
    log(f"{dname:12s} {variant:12s} seed {seed}: converged NLL {reference['nll_converged']:.4f} "
        f"({reference['converged_nfe']} NFE), {1000 * tr['train_s_per_step']:.2f} ms/step, eval {run['eval_s']:.0f}s")
    return run, [{**key, **r} for r in rows]


def read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_csv(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)  # a killed run never leaves half a CSV


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _machine() -> dict:
    return {"machine": platform.machine(), "processor": _cpu_model(),
            "cpu_count": __import__("os").cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: tiny data and models")
    p.add_argument("--out", type=Path, default=None, help="output folder (default experiments/nfe/results[_quick])")
    p.add_argument("--datasets", nargs="+", default=["quakes", "protein"], choices=list(DATASETS))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--model", default="gauge", choices=("gauge", "plain"))
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = p.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    out = args.out or ROOT / "experiments" / "nfe" / ("results_quick" if args.quick else "results")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    runs, solver = read_csv(out / "runs.csv"), read_csv(out / "solver.csv")
    done = {tuple(r[k] for k in RUN_KEYS) for r in runs}
    solver = [r for r in solver if tuple(r[k] for k in RUN_KEYS) in done]  # rows of an unfinished part go
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f}s] {msg}", flush=True)

    for dname in args.datasets:
        for seed in cfg["seeds"]:
            for variant in args.variants:
                if (dname, variant, str(seed)) in done:
                    log(f"{dname} {variant} seed {seed}: already in {out / 'runs.csv'}, kept")
                    continue
                run, rows = run_part(dname, variant, seed, cfg, args.model, log)
                runs.append(run)
                solver += rows
                write_csv(out / "solver.csv", solver)  # rows first: a part counts as done once runs.csv has it
                write_csv(out / "runs.csv", runs)
    settings = {**cfg, "quick": args.quick, "model": args.model, "datasets": list(dict.fromkeys(r["dataset"] for r in runs)), "methods": METHODS, "grid": STEPS,
                "converged": f"dopri5, atol = rtol = {CONVERGED_TOL:g}, float64, exact divergence",
                "split_seed": 0, "test_subset_seed": 1234, "sample_seed": "10000 + seed", **_machine()}
    (out / "settings.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
    log(f"done; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
