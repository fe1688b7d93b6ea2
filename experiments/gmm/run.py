"""The papers' Gaussian-mixture experiment, reproduced with seeds, error bars and paired comparisons.

One command (also ``gaugeflow reproduce gmm [--quick]``)::

    python experiments/gmm/run.py            # full study -> docs/results/gmm.md (+ CSV, figures)
    python experiments/gmm/run.py --quick    # CI variant (N ∈ {2, 4}, 2 seeds, 40 steps) -> runs/gmm-quick

It trains, on the mixture of docs/math.md §8 in ℝ^N, for every N and seed of ``config.yaml``: PlainFlow at the
gauge models' width (the papers' baseline), PlainFlow with its width solved to match the
HigherGaugeFlow parameter count, GaugeFlow, HigherGaugeFlow and TensorGaugeFlow (rank 2). All models of a cell (N, seed) see
the same batches and (x0, t) draws; the FM losses of all models are computed on the same fixed
(x0, x1, t) triples (see ``gmm_study.py``). Outputs in ``--out``: ``gmm_results.csv`` (one row per
model × N × seed), ``gmm_settings.json``, ``figures/gmm_*.png`` and the report ``gmm.md``, whose
every number is computed from the CSV by ``gmm_report.py``.

``--only-models M …`` trains just those models and merges their rows into the CSV already in
``--out`` (rows of the other models are kept as they are, each with its own ``git_commit``), then
re-renders the report: how a model is added to a finished study without retraining the others.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import hashlib
import json
import multiprocessing as mp
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import gmm_figures  # noqa: E402  (prefixed names: experiments/* folders share sys.path in one pytest run)
import gmm_report  # noqa: E402
from gmm_study import MODELS, build, matched_width, run_job, width_for  # noqa: E402

import gaugeflow  # noqa: E402
from gaugeflow.models import count_parameters  # noqa: E402

DEFAULT_OUT = {"full": ROOT / "docs" / "results", "quick": ROOT / "runs" / "gmm-quick"}


def load_config(path: Path, variant: str) -> dict[str, Any]:
    """The ``variant`` (``"full"`` or ``"quick"``) section of the YAML config."""
    with open(path, encoding="utf-8") as fh:
        table = yaml.safe_load(fh)
    if not isinstance(table, dict) or variant not in table:
        raise ValueError(f"{path}: expected a mapping with a {variant!r} section")
    cfg = table[variant]
    unknown = sorted(set(cfg["models"]) - set(MODELS))
    if unknown:
        raise ValueError(f"{path}: unknown models {unknown}; expected a subset of {list(MODELS)}")
    return cfg


def plan(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """One job per (model, N, seed), most expensive first (widths solved once per N)."""
    jobs = []
    for n_dim in cfg["dims"]:
        w = width_for(n_dim, cfg["width"])
        hg_params = count_parameters(build("higher-gauge", n_dim, w, cfg["gauge_k"], 0))
        hidden = {"plain": w, "gauge": w, "higher-gauge": w, "tensor-gauge": w,
                  "plain-matched": matched_width(n_dim, hg_params)}
        for seed in cfg["seeds"]:
            for model in cfg["models"]:
                jobs.append({"model": model, "n_dim": n_dim, "seed": seed, "hidden": hidden[model],
                             "k": None if model.startswith("plain") else cfg["gauge_k"], "cfg": cfg})
    cost = {"tensor-gauge": 4, "higher-gauge": 4, "plain-matched": 3, "gauge": 2, "plain": 1}
    return sorted(jobs, key=lambda j: (-j["n_dim"], -cost[j["model"]], j["seed"]))


def _job_key(job: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()[:16]


def run_jobs(jobs: list[dict[str, Any]], workers: int, cache: Path, resume: bool) -> list[dict[str, Any]]:
    """Run (or, with ``resume``, reload finished) jobs; every result is cached as JSON in ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, Any]] = {}
    todo = []
    for i, job in enumerate(jobs):
        path = cache / f"{job['model']}_N{job['n_dim']}_s{job['seed']}.json"
        stored = json.loads(path.read_text()) if resume and path.is_file() else None
        if stored is not None and stored.get("key") == _job_key(job):
            results[i] = stored["result"]
        else:
            todo.append((i, job, path))

    def done(i, job, path, result):
        results[i] = result
        path.write_text(json.dumps({"key": _job_key(job), "result": result}))
        r = result["row"]
        print(f"[gmm] {len(results)}/{len(jobs)} {r['model']:>13s} N={r['N']:<2d} seed={r['seed']} "
              f"test_fm={r['test_fm']:.4f} nll={r['test_nll']:.3f} ({r['train_seconds']:.0f}+{r['eval_seconds']:.0f} s)",
              flush=True)

    if workers <= 1:
        for i, job, path in todo:
            done(i, job, path, run_job(job))
    else:
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(run_job, job): (i, job, path) for i, job, path in todo}
            for fut in cf.as_completed(futures):
                done(*futures[fut], fut.result())
    return [results[i] for i in range(len(jobs))]


def versions() -> dict[str, str]:
    """Software versions and the git commit of the checkout (``"unknown"`` outside a git tree)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {"torch_version": torch.__version__, "gaugeflow_version": gaugeflow.__version__,
            "python_version": platform.python_version(), "git_commit": commit}


def add_normalised(rows: list[dict[str, Any]]) -> None:
    """``train_fm_norm``/``test_fm_norm``: loss divided by the HGFM loss of the same (N, seed), in place."""
    ref = {(r["N"], r["seed"]): r for r in rows if r["model"] == "higher-gauge"}
    for r in rows:
        hg = ref.get((r["N"], r["seed"]))
        r["train_fm_norm"] = r["train_fm"] / hg["train_fm"] if hg else float("nan")
        r["test_fm_norm"] = r["test_fm"] / hg["test_fm"] if hg else float("nan")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys = list(rows[0])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def render(out: Path, cache: Path) -> int:
    """Figures and report from ``out/gmm_results.csv`` and ``out/gmm_settings.json`` (settings untouched)."""
    settings = json.loads((out / "gmm_settings.json").read_text())
    rows = gmm_report.read_rows(out / "gmm_results.csv")
    samples = {}
    for path in sorted(cache.glob("*_N2_s*.json")):
        result = json.loads(path.read_text())["result"]
        samples[(result["row"]["model"], result["row"]["seed"])] = result["samples"]
    files = gmm_figures.make_all(rows, samples, out / "figures", settings["config"])
    print(gmm_report.write_report(out / "gmm_results.csv", out / "gmm_settings.json", out / "gmm.md", files))
    return 0


def add_models(cfg: dict[str, Any], args: argparse.Namespace, out: Path, cache: Path) -> int:
    """Train ``args.only_models`` only and merge their rows into ``out/gmm_results.csv`` (``--only-models``)."""
    unknown = sorted(set(args.only_models) - set(cfg["models"]))
    if unknown:
        raise SystemExit(f"--only-models: {unknown} are not in the config's models {cfg['models']}")
    if not (out / "gmm_results.csv").is_file():
        raise SystemExit(f"--only-models: no study to add to in {out} (run the whole study first)")
    start = time.perf_counter()
    jobs = [j for j in plan(cfg) if j["model"] in args.only_models]
    print(f"[gmm] adding {args.only_models}: {len(jobs)} jobs, {cfg['workers']} worker(s), out={out}", flush=True)
    results = run_jobs(jobs, cfg["workers"], cache, args.resume)
    ver = versions()
    kept = [r for r in gmm_report.read_rows(out / "gmm_results.csv") if r["model"] not in args.only_models]
    new = [{**r["row"], **ver} for r in results]
    keys = list(kept[0] if kept else new[0])
    rows = [{key: r.get(key, "") for key in keys} for r in kept + new]
    add_normalised(rows)
    rows = sorted(rows, key=lambda r: (r["N"], MODELS.index(r["model"]), r["seed"]))
    write_csv(out / "gmm_results.csv", rows)
    settings = json.loads((out / "gmm_settings.json").read_text())
    settings["config"]["models"] = [m for m in MODELS if any(r["model"] == m for r in rows)]
    settings.setdefault("additions", []).append(
        {"models": list(args.only_models), "command": "python experiments/gmm/run.py --only-models "
         + " ".join(args.only_models), "wall_seconds": time.perf_counter() - start,
         "job_seconds_sum": sum(r["row"]["train_seconds"] + r["row"]["eval_seconds"] for r in results), **ver})
    (out / "gmm_settings.json").write_text(json.dumps(settings, indent=2))
    samples = {}
    for path in sorted(cache.glob("*_N2_s*.json")):
        result = json.loads(path.read_text())["result"]
        samples[(result["row"]["model"], result["row"]["seed"])] = result["samples"]
    complete = {m for m, _ in samples} >= set(settings["config"]["models"])
    files = gmm_figures.make_all(rows, samples if complete else {}, out / "figures", settings["config"])
    old_samples = out / "figures" / "gmm_samples_N2.png"
    if not complete and old_samples.is_file():  # keep the earlier samples figure rather than draw a partial one
        files.append(old_samples)
    gmm_report.write_report(out / "gmm_results.csv", out / "gmm_settings.json", out / "gmm.md", files)
    print(f"[gmm] added {args.only_models} in {time.perf_counter() - start:.0f} s: {out / 'gmm.md'}", flush=True)
    return 0


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="experiments/gmm/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="CI variant: N in {2,4}, 2 seeds, few steps (< 3 min)")
    p.add_argument("--out", type=Path, help="output folder (default docs/results, or runs/gmm-quick with --quick)")
    p.add_argument("--config", type=Path, default=HERE / "config.yaml", help="YAML with 'full' and 'quick' sections")
    p.add_argument("--workers", type=int, help="worker processes (default from the config)")
    p.add_argument("--cache", type=Path, help="folder of per-job results (default runs/gmm-jobs[-quick])")
    p.add_argument("--resume", action="store_true", help="reuse cached job results with identical settings")
    p.add_argument("--dims", type=int, nargs="+", help="override the list of N")
    p.add_argument("--seeds", type=int, nargs="+", help="override the list of seeds")
    p.add_argument("--steps", type=int, help="override the number of training steps")
    p.add_argument("--only-models", nargs="+", metavar="MODEL",
                   help="train only these models and merge their rows into the existing CSV in --out")
    p.add_argument("--render-only", action="store_true",
                   help="redraw figures and gmm.md from the CSV (and cached N=2 samples) in --out; no training")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the study; returns 0. ``argv`` defaults to ``sys.argv[1:]``."""
    args = parse_args(argv)
    variant = "quick" if args.quick else "full"
    cfg = load_config(args.config, variant)
    for key in ("dims", "seeds"):
        if getattr(args, key):
            cfg[key] = getattr(args, key)
    if args.steps is not None:
        cfg["train"]["steps"] = args.steps
    if args.workers is not None:
        cfg["workers"] = args.workers
    out = args.out or DEFAULT_OUT[variant]
    cache = args.cache or (ROOT / "runs" / f"gmm-jobs-{variant}" if args.out is None else out / "gmm_jobs")
    (out / "figures").mkdir(parents=True, exist_ok=True)
    if args.render_only:
        return render(out, cache)
    if args.only_models:
        return add_models(cfg, args, out, cache)
    start = time.perf_counter()
    jobs = plan(cfg)
    print(f"[gmm] {variant}: {len(jobs)} jobs, {cfg['workers']} worker(s), out={out}", flush=True)
    results = run_jobs(jobs, cfg["workers"], cache, args.resume)
    rows = [r["row"] for r in results]
    add_normalised(rows)
    ver = versions()
    rows = [{**r, **ver} for r in sorted(rows, key=lambda r: (r["N"], MODELS.index(r["model"]), r["seed"]))]
    write_csv(out / "gmm_results.csv", rows)
    samples = {(r["row"]["model"], r["row"]["seed"]): r["samples"] for r in results if r["samples"] is not None}
    fig_files = gmm_figures.make_all(rows, samples, out / "figures", cfg)
    wall = time.perf_counter() - start
    settings = {"variant": variant, "config": cfg, "command": "python experiments/gmm/run.py" + (" --quick" if args.quick else ""),
                "argv": list(argv) if argv is not None else sys.argv[1:], "wall_seconds": wall,
                "job_seconds_sum": sum(r["train_seconds"] + r["eval_seconds"] for r in rows),
                "job_cpu_seconds_sum": sum(r["train_cpu_seconds"] + r["eval_cpu_seconds"] for r in rows),
                "cpu_count": mp.cpu_count(), "platform": platform.platform(), **ver}
    (out / "gmm_settings.json").write_text(json.dumps(settings, indent=2))
    gmm_report.write_report(out / "gmm_results.csv", out / "gmm_settings.json", out / "gmm.md", fig_files)
    print(f"[gmm] done in {wall:.0f} s: {out / 'gmm.md'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
