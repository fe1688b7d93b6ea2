"""Real non-Euclidean data: Plain, Gauge, HigherGauge and TensorGauge (r = 2) flows vs. the flow_matching peer (issue 7).

One command::

    python experiments/real/run.py            # full study (24 min wall on a loaded shared 2-core machine)
    python experiments/real/run.py --quick    # CI variant: subsampled data, few steps (< 3 min)
    python experiments/real/run.py --models plain-wide --out experiments/real/results_control
        # control: PlainFlow widened to GaugeFlow's parameter count (same budget)
    python experiments/real/run.py --models tensor-gauge --datasets world-cities quakes protein \
        --out experiments/real/results_tensor     # TensorGaugeFlow (issue 18) added to the study above

For every data set (world cities on S², Fiji earthquakes on S², adenylate-kinase φ/ψ on T²), every
model and every seed it trains with the *same* stream (batch indices, ``x0 ~`` uniform, ``t``), the
same optimiser (Adam, constant lr, no EMA, no clipping), steps and batch size, then reports

* test NLL (nats) with the exact divergence, rk4 with ``S`` steps, re-computed with rk4 and ``2S``
  steps (the solver check; the difference is reported);
* the uniform-baseline NLL (``−log p0``) and the margin ``uniform − NLL`` (positive = better);
* training seconds per step and seconds to draw ``n_sample`` samples (rk4, ``S`` steps).

The peer's velocity field is evaluated by the same ``gaugeflow.sampling.log_prob`` / ``sample``.
Outputs (``--out``): ``runs.csv`` (one row per run), ``summary.csv`` (mean ± std over seeds),
``summary.md`` (the tables), ``settings.json`` and figures ``real_<data>.png`` (seed-0 samples vs data).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peer import PeerField, flow_matching_version, train_peer  # noqa: E402
from plots import ramachandran_panels, sphere_density_panels  # noqa: E402

from gaugeflow.data import protein_angles, protein_frames, quakes, world_cities  # noqa: E402
from gaugeflow.models import GaugeFlow, HigherGaugeFlow, PlainFlow, TensorGaugeFlow, count_parameters  # noqa: E402
from gaugeflow.sampling import log_prob, sample  # noqa: E402
from gaugeflow.training import TrainConfig, Trainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("plain", "gauge", "higher-gauge", "fm-peer")
#: optional control: a PlainFlow whose width is raised until it has as many parameters as GaugeFlow
CONTROLS = ("plain-wide",)
#: further models, run with ``--models`` (outside the default set, which the quick CI variant's budget is sized for)
EXTRA = ("tensor-gauge",)
LABELS = {"plain": "PlainFlow", "gauge": "GaugeFlow", "higher-gauge": "HigherGaugeFlow",
          "tensor-gauge": "TensorGaugeFlow (r = 2)",
          "fm-peer": "flow_matching (peer)", "plain-wide": "PlainFlow, width matched to GaugeFlow's parameters"}
DATASETS = {
    "world-cities": {"load": world_cities, "extent": None},
    "quakes": {"load": quakes, "extent": (160.0, 195.0, -40.0, -8.0)},
    "protein": {"load": protein_angles, "extent": None},
    # residue orientations on SO(3) (issue 17); the flow_matching peer has no SO(3), so it is skipped there
    "protein-frames": {"load": protein_frames, "extent": None},
}
#: registry names of the manifolds, by ambient dimension
MANIFOLD_NAMES = {3: "sphere", 2: "torus", 9: "so3"}
FULL = {"steps": {"world-cities": 1000, "quakes": 800, "protein": 1000, "protein-frames": 1500}, "batch_size": 256, "hidden": 64,
        "lr": 1e-3, "seeds": [0, 1, 2], "max_points": None, "nll_points": 600, "ode_steps": 16,
        "n_sample": 5000}
QUICK = {"steps": {"world-cities": 30, "quakes": 30, "protein": 30, "protein-frames": 30}, "batch_size": 128, "hidden": 32,
         "lr": 1e-3, "seeds": [0, 1, 2], "max_points": 600, "nll_points": 40, "ode_steps": 6, "n_sample": 400}


def matched_width(manifold, hidden: int) -> int:
    """Smallest PlainFlow width whose parameter count reaches GaugeFlow(manifold, hidden)'s."""
    target = count_parameters(GaugeFlow(manifold, hidden=hidden))
    width = hidden
    while count_parameters(PlainFlow(manifold, hidden=width)) < target:
        width += 1
    return width


def build(name: str, manifold, hidden: int, seed: int) -> torch.nn.Module:
    """A freshly initialised model (weights from ``seed``, global RNG state untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == "fm-peer":
            return PeerField(manifold, hidden)
        if name == "plain-wide":
            return PlainFlow(manifold, hidden=matched_width(manifold, hidden))
        if name == "tensor-gauge":
            return TensorGaugeFlow(manifold, rank=2, hidden=hidden)
        cls = {"plain": PlainFlow, "gauge": GaugeFlow, "higher-gauge": HigherGaugeFlow}[name]
        return cls(manifold, hidden=hidden)


def train(name: str, model, data, steps: int, cfg: dict, seed: int) -> dict:
    """Train one model; returns seconds per step, final loss (mean of the last 10 %) and skipped steps."""
    if name == "fm-peer":
        return train_peer(model, data.train, steps=steps, batch_size=cfg["batch_size"], lr=cfg["lr"], seed=seed)
    tc = TrainConfig(manifold=MANIFOLD_NAMES[data.manifold.ambient_dim], dim=2, steps=steps,
                     batch_size=cfg["batch_size"], lr=cfg["lr"], ema_decay=0.0, grad_clip=None, seed=seed,
                     hidden=cfg["hidden"], progress=False, device="cpu")
    trainer = Trainer(model, data, tc)
    start = time.perf_counter()
    losses = [trainer.train_step() for _ in range(steps)]
    elapsed = time.perf_counter() - start
    tail = [v for v in losses[-max(1, steps // 10):] if math.isfinite(v)]
    return {"train_s": elapsed, "s_per_step": elapsed / steps, "final_loss": sum(tail) / max(len(tail), 1),
            "nonfinite_steps": trainer.history.skipped}


def evaluate(model, x_test: torch.Tensor, cfg: dict, seed: int) -> tuple[dict, torch.Tensor]:
    """Test NLL (rk4 S and 2S steps, exact divergence), sampling time and samples."""
    S = cfg["ode_steps"]
    nll = -log_prob(model, x_test, steps=S, method="rk4", divergence="exact").double()
    nll2 = -log_prob(model, x_test, steps=2 * S, method="rk4", divergence="exact").double()
    x0 = model.manifold.random_base(cfg["n_sample"], generator=torch.Generator().manual_seed(10_000 + seed),
                                    dtype=x_test.dtype)
    start = time.perf_counter()
    xs = sample(model, x0, steps=S, method="rk4")
    sample_s = time.perf_counter() - start
    return {"test_nll": float(nll.mean()), "test_nll_sem": float(nll.std() / math.sqrt(len(nll))),
            "test_nll_2x": float(nll2.mean()), "solver_diff": float((nll.mean() - nll2.mean()).abs()),
            "solver_diff_max_point": float((nll - nll2).abs().max()), "sample_s": sample_s}, xs


def nll_subset(test: torch.Tensor, n: int) -> torch.Tensor:
    """A fixed (seed 1234) subset of at most ``n`` test points, shared by every model and seed."""
    if len(test) <= n:
        return test
    return test[torch.randperm(len(test), generator=torch.Generator().manual_seed(1234))[:n]]


def run_dataset(dname: str, cfg: dict, out: Path, log, models=MODELS) -> list[dict]:
    spec = DATASETS[dname]
    data = spec["load"](seed=0, max_points=cfg["max_points"])
    M = data.manifold
    uniform = float(-M.base_log_prob(data.test[:1]).double())
    x_test = nll_subset(data.test, cfg["nll_points"])
    steps = cfg["steps"][dname]
    rows, panels = [], {f"data (train, n={len(data.train)})": data.train}
    for name in models:
        if name == "fm-peer" and M.ambient_dim == 9:
            continue
        for seed in cfg["seeds"]:
            model = build(name, M, cfg["hidden"], seed)
            tr = train(name, model, data, steps, cfg, seed)
            ev, xs = evaluate(model, x_test, cfg, seed)
            row = {"dataset": dname, "model": name, "seed": seed, "n_params": count_parameters(model),
                   "steps": steps, "n_train": len(data.train), "n_test_eval": len(x_test), **tr, **ev,
                   "uniform_nll": uniform, "margin": uniform - ev["test_nll"]}
            rows.append(row)
            log(f"{dname:12s} {name:12s} seed {seed}: NLL {ev['test_nll']:.4f} (2x steps {ev['test_nll_2x']:.4f}) "
                f"uniform {uniform:.4f}  {1000 * tr['s_per_step']:.1f} ms/step  sample {ev['sample_s']:.2f}s")
            if seed == cfg["seeds"][0]:
                panels[LABELS[name]] = xs
    fig = out / f"real_{dname.replace('-', '_')}.png"
    title = f"{dname}: training data vs. {cfg['n_sample']} samples (seed {cfg['seeds'][0]}, rk4 {cfg['ode_steps']} steps)"
    if M.ambient_dim == 9:
        from gaugeflow.viz import rotation_figure
        last = [LABELS[n] for n in models if LABELS[n] in panels][-1]
        rotation_figure(data.train, panels[last], fig, f"{title}; right: {last}")
    elif M.ambient_dim == 3:
        sphere_density_panels(panels, fig, title, extent=spec["extent"], bins=72 if spec["extent"] is None else 40)
    else:
        ramachandran_panels(panels, fig, title)
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Mean ± std (over seeds) per data set and model."""
    out = []
    for dname in dict.fromkeys(r["dataset"] for r in rows):
        for name in MODELS + CONTROLS + EXTRA:
            rs = [r for r in rows if r["dataset"] == dname and r["model"] == name]
            if not rs:
                continue
            s = {"dataset": dname, "model": name, "n_seeds": len(rs), "n_params": rs[0]["n_params"],
                 "uniform_nll": rs[0]["uniform_nll"]}
            for key in ("test_nll", "margin", "solver_diff", "s_per_step", "sample_s", "train_s"):
                vals = [r[key] for r in rs]
                s[key] = statistics.fmean(vals)
                s[key + "_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
            s["solver_diff_max"] = max(r["solver_diff"] for r in rs)
            out.append(s)
    return out


def markdown(summary: list[dict], cfg: dict) -> str:
    lines = ["| data | model | params | test NLL (nats) | uniform NLL | margin | |ΔNLL| rk4 S vs 2S (max) "
             "| ms / train step | sample s |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summary:
        lines.append(
            f"| {s['dataset']} | {LABELS[s['model']]} | {s['n_params']} | {s['test_nll']:.3f} ± {s['test_nll_std']:.3f} "
            f"| {s['uniform_nll']:.3f} | {s['margin']:.3f} ± {s['margin_std']:.3f} | {s['solver_diff_max']:.1e} "
            f"| {1000 * s['s_per_step']:.1f} ± {1000 * s['s_per_step_std']:.1f} | {s['sample_s']:.2f} |")
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="CI variant: subsampled data, few steps")
    p.add_argument("--out", type=Path, default=None, help="output folder (default experiments/real/results[_quick])")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS + CONTROLS + EXTRA))
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = p.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    out = args.out or ROOT / "experiments" / "real" / ("results_quick" if args.quick else "results")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)  # flow_matching's torch.jit.script notice
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f}s] {msg}", flush=True)

    rows = []
    for dname in args.datasets:
        rows += run_dataset(dname, cfg, out, log, tuple(args.models))
        write_csv(out / "runs.csv", rows)
    summary = summarise(rows)
    write_csv(out / "summary.csv", summary)
    (out / "summary.md").write_text(markdown(summary, cfg), encoding="utf-8")
    wall = time.perf_counter() - start
    settings = {**cfg, "quick": args.quick, "datasets": args.datasets, "models": args.models,
                "cpu_s": time.process_time(), "threads": args.threads, "wall_s": wall,
                "torch": torch.__version__, "flow_matching": flow_matching_version(), "python": platform.python_version(),
                "split_seed": 0, "solver": "rk4, exact divergence; check rk4 with 2x steps"}
    (out / "settings.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
    log(f"done in {wall:.0f}s; results in {out}")
    print(markdown(summary, cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
