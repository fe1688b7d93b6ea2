"""Equal compute and convergence (issue 22): does the gauge field help, or only the extra networks?

One command, resumable by parts::

    python experiments/compute/run.py --workers 2           # full study -> docs/results/compute.md (≈ 2.1 h)
    python experiments/compute/run.py --workers 2 --long    # ... and the long stage (≈ 1.8 h more)
    python experiments/compute/run.py --parts 'gmm-*'        # only the parts whose id matches
    python experiments/compute/run.py --list                 # the plan: part ids, done or to do
    python experiments/compute/run.py --render-only          # report and figures from the CSVs
    python experiments/compute/run.py --quick --out DIR      # CI variant (< 3 min), also in the test suite

A learning-rate sweep runs before the parts (``compute_lr.py``, ``compute_lr.csv``). With ``--long``, after
a data set's parts, the *long stage* trains its best model further where it has not plateaued
(``long_plan``; parts ``<data set>__long__<model>__s<seed>``); the report shows every long part found
done, with or without the flag.

A *part* is one training trajectory ``<data set>__<size>__<model>__s<seed>`` (budgets: see
``compute_config.py``); it writes ``compute_parts/<id>.{curve,solver,runs}.csv`` atomically (the runs
file last: it marks the part done). A rerun skips finished parts whose settings key matches. Step
times are measured once per data set, interleaved, before its first part (``compute_calibration.csv``),
and reused by every later part and session so that the equal-seconds budgets stay fixed.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import fnmatch
import hashlib
import json
import math
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

import compute_report  # noqa: E402  (prefixed names: experiments/* folders share sys.path in one pytest run)
from compute_config import models_of, train_settings, variant  # noqa: E402
from compute_lr import chosen, sweep_jobs, sweep_one  # noqa: E402
from compute_models import calibrate  # noqa: E402
from compute_part import LONG, part_id, run_part  # noqa: E402
from compute_stats import best_by_val  # noqa: E402
from compute_study import load_data  # noqa: E402

TABLES = ("curve", "solver", "samples", "runs")


def plan(cfg: dict) -> list[tuple]:
    """Every part ``(data set, size, model, seed)`` of the settings, in run order."""
    return [(d, size, m, seed) for d in cfg["datasets"] for size in cfg["sizes"]
            for seed in cfg["seeds"] for m in models_of(cfg, d, size)]


def settings_key(cfg: dict, dname: str, model: str, size: str = "full") -> str:
    """Hash of everything that defines the result of ``model`` on ``dname``: the data set's settings, the
    model's training settings, the evaluation, the size fractions and the solver seed — not the seeds, nor
    which models or sizes are planned (adding a model to the plan keeps every finished part valid); for a
    part of the long stage also its long budget."""
    spec = {k: v for k, v in cfg["datasets"][dname].items() if k not in ("models", "sizes", "lr")}
    keep = {"train": train_settings(cfg, model, dname), "eval": cfg["eval"], "solver_seed": cfg["solver_seed"],
            "fractions": {k: v["fraction"] for k, v in cfg["sizes"].items()}}
    if size == LONG:
        keep["long"] = cfg["long"][dname]
    blob = json.dumps({"data": spec, **keep}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def write_rows(path: Path, rows: list[dict]) -> None:
    """Write a CSV atomically (temporary file in the same folder, then ``os.replace``)."""
    tmp = path.with_name(path.name + ".tmp")
    keys = list(dict.fromkeys(k for r in rows for k in r)) or ["empty"]
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def machine() -> dict:
    """What the numbers were measured on."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "platform": platform.platform(), "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "git_commit": commit}


def load_calibration(path: Path, cfg: dict, dnames: list[str], log) -> dict:
    """``(data set, model) → row``; data sets not yet in ``path`` are measured now and appended.

    A data set measured before some of its planned models existed gets those models measured now,
    interleaved with GaugeFlow again, and their times rescaled by GaugeFlow's stored over its new time,
    so every ratio to the reference keeps the first measurement's machine state."""
    rows = read_rows(path) if path.is_file() else []
    # a data set's step times stay valid while its width and batch do (they fix the models timed)
    stale = {r["dataset"] for r in rows if r["model"] == "gauge" and r["dataset"] in cfg["datasets"] and (
        int(r["hidden"]) != cfg["datasets"][r["dataset"]]["hidden"]
        or int(r.get("batch_size") or cfg["train"]["batch_size"]) != cfg["train"]["batch_size"])}
    rows = [r for r in rows if r["dataset"] not in stale]
    for dname in dnames:
        spec = cfg["datasets"][dname]
        planned = list(dict.fromkeys(["gauge"] + [m for size in cfg["sizes"] for m in models_of(cfg, dname, size)]))
        have = {r["model"]: r for r in rows if r["dataset"] == dname}
        missing = [m for m in planned if m not in have]
        if not missing:
            continue
        data = load_data(dname, spec, 1.0)
        start = time.perf_counter()
        trains = {m: train_settings(cfg, m) for m in planned}
        new = calibrate(dname, data.manifold, data, spec["hidden"], ["gauge"] + missing if "gauge" in have else planned,
                        trains, cfg["calibration"])
        if "gauge" in have:  # top-up: rescale to the stored reference, keep only the missing models
            scale = float(have["gauge"]["step_s_median"]) / next(r["step_s_median"] for r in new if r["model"] == "gauge")
            new = [dict(r, step_s_median=r["step_s_median"] * scale, step_s_min=r["step_s_min"] * scale,
                        step_s_max=r["step_s_max"] * scale, rescaled=scale) for r in new if r["model"] in missing]
        for r in new:
            r.update(settings_key=settings_key(cfg, dname, r["model"]) if r["model"] in planned else "",
                     batch_size=cfg["train"]["batch_size"],
                     measured_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **machine())
        rows += [{k: str(v) for k, v in r.items()} for r in new]
        write_rows(path, rows)
        log(f"calibrated {dname} in {time.perf_counter() - start:.0f}s: " + ", ".join(
            f"{r['model']}={1000 * float(r['step_s_median']):.2f}ms(w{r['hidden']})" for r in new if r["candidate"] is False))
    return {(r["dataset"], r["model"]): {"hidden": int(r["hidden"]), "step_s_median": float(r["step_s_median"])}
            for r in rows}


def apply_lr(cfg: dict, out: Path) -> None:
    """Fill ``spec["lr"]`` (base model → rate) of every data set from ``out/compute_lr.csv``: a base model
    gets its rate once every rate of the grid has a row (settings without ``lr_grid``: nothing to do)."""
    if "lr_grid" not in cfg:
        return
    path = out / "compute_lr.csv"
    rows = read_rows(path) if path.is_file() else []
    for dname, spec in cfg["datasets"].items():
        mine = [r for r in rows if r["dataset"] == dname and int(r["steps"]) == spec["steps_eq"]
                and float(r["lr"]) in cfg["lr_grid"]]
        complete = [r for r in mine if {float(x["lr"]) for x in mine if x["model"] == r["model"]} == set(cfg["lr_grid"])]
        spec["lr"] = {m: lr for (_, m), lr in chosen(complete).items()}


def run_sweep(cfg: dict, out: Path, dnames: list[str], calib: dict, log, workers: int = 1) -> None:
    """Run the learning-rate sweep's missing trainings for ``dnames`` (``compute_lr.py``), appending each to
    ``out/compute_lr.csv`` atomically as it finishes, then fill the chosen rates into ``cfg``."""
    path = out / "compute_lr.csv"
    rows = read_rows(path) if path.is_file() else []
    have = {(r["dataset"], r["model"], float(r["lr"]), int(r["steps"])) for r in rows}
    jobs = []
    for d in dnames:
        models = [m for size in cfg["sizes"] for m in models_of(cfg, d, size)]
        jobs += [j for j in sweep_jobs(cfg, d, models) if (*j, cfg["datasets"][d]["steps_eq"]) not in have]
    if jobs:
        log(f"learning-rate sweep: {len(jobs)} trainings to run")
    for i, (job, row) in enumerate(_map(sweep_one, jobs, cfg, calib, workers)):
        rows.append({k: str(v) for k, v in row.items()})
        write_rows(path, rows)
        log(f"[lr {i + 1}/{len(jobs)}] {job[0]} {job[1]} lr {job[2]:g}: val NLL {row['val_nll']:.4f} "
            f"({row['stopped']}, {row['sweep_s']:.0f}s)")
    apply_lr(cfg, out)


def _map(fn, jobs: list, cfg: dict, calib: dict, workers: int):
    """``(job, fn(job, cfg, calib))`` as the jobs finish: in this process or in ``workers`` one-thread processes."""
    if workers <= 1:
        for job in jobs:
            yield job, fn(job, cfg, calib)
        return
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_one_thread) as pool:
        futures = {pool.submit(fn, job, cfg, calib): job for job in jobs}
        for fut in cf.as_completed(futures):
            yield futures[fut], fut.result()


def _one_thread() -> None:
    torch.set_num_threads(1)


def run_parts(cfg: dict, out: Path, selected: list[tuple], log, workers: int = 1) -> int:
    """Run the selected parts not yet done (in ``workers`` processes); returns how many ran."""
    parts = out / "compute_parts"
    parts.mkdir(parents=True, exist_ok=True)
    todo = [k for k in selected if not is_done(parts, k, cfg)]
    log(f"{len(selected)} parts selected, {len(selected) - len(todo)} done, {len(todo)} to run")
    if not todo:
        return 0
    calib = load_calibration(out / "compute_calibration.csv", cfg, list(dict.fromkeys(k[0] for k in todo)), log)
    if "lr_grid" in cfg:  # the rates first; a part found done under its tuned rate is not run again
        run_sweep(cfg, out, list(dict.fromkeys(k[0] for k in todo)), calib, log, workers)
        todo = [k for k in todo if not is_done(parts, k, cfg)]
    for i, (key, tables) in enumerate(_map(run_part, todo, cfg, calib, workers)):
        sk = settings_key(cfg, key[0], key[2], key[1])
        for name in TABLES:  # runs last: its presence marks the part done
            write_rows(parts / f"{part_id(*key)}.{name}.csv", [{**r, "settings_key": sk} for r in tables[name]])
        r = {row["budget"]: row for row in tables["runs"]}
        short = "".join(f"{b.split('-')[1]} {r[b]['test_nll']:.3f} " for b in ("equal-steps", "equal-seconds") if b in r)
        log(f"[{i + 1}/{len(todo)}] {part_id(*key)}: NLL {short}conv {r['converged']['test_nll']:.3f} "
            f"(stop {r['converged']['stop_step']}, {r['converged']['stopped']}) {r['converged']['part_s']:.0f}s")
    return len(todo)


def run_probe(cfg: dict, out: Path, log) -> None:
    """Calibrate every data set of ``cfg`` and time its evaluations, once (``compute_timing.csv``)."""
    from compute_probe import probe

    dnames = list(cfg["datasets"])
    calib = load_calibration(out / "compute_calibration.csv", cfg, dnames, log)
    path = out / "compute_timing.csv"
    rows = read_rows(path) if path.is_file() else []
    for dname in dnames:
        if any(r["dataset"] == dname for r in rows):
            continue
        start = time.perf_counter()
        rows += probe(cfg, dname, calib)
        write_rows(path, rows)
        log(f"probed {dname} in {time.perf_counter() - start:.0f}s")


def is_done(parts: Path, key: tuple, cfg: dict) -> bool:
    path = parts / f"{part_id(*key)}.runs.csv"
    if not path.is_file():
        return False
    rows = read_rows(path)
    return bool(rows) and rows[0].get("settings_key") == settings_key(cfg, key[0], key[2], key[1])


def long_plan(cfg: dict, out: Path) -> list[tuple]:
    """The long stage's parts, ``(data set, "long", model, seed)``: for each data set of ``cfg["long"]`` whose
    full-size parts are all done, its best model (lowest seed-mean of the best validation NLL on the learning
    curve) trained again, every seed, to the long budget, unless that model met the plateau criterion at
    ``max_steps`` in every seed (then it has converged already and nothing is planned)."""
    keys, parts, planned = [], out / "compute_parts", plan(cfg)
    for dname in cfg.get("long", {}):
        full = [k for k in planned if k[0] == dname and k[1] == "full"]
        if not full or not all(is_done(parts, k, cfg) for k in full):
            continue
        curve = [c for k in full for c in read_rows(parts / f"{part_id(*k)}.curve.csv")]
        best = best_by_val(curve)[(dname, "full")]
        stopped = [read_rows(parts / f"{part_id(*k)}.runs.csv")[-1]["stopped"] for k in full if k[2] == best]
        if any(s != "plateau" for s in stopped):
            keys += [(dname, LONG, best, seed) for seed in cfg["seeds"]]
    return keys


def select(keys: list[tuple], patterns: list[str] | None) -> list[tuple]:
    """Parts whose id matches any of the shell patterns (all with ``None``)."""
    if not patterns:
        return keys
    chosen = [k for k in keys if any(fnmatch.fnmatch(part_id(*k), p) for p in patterns)]
    if not chosen:
        raise SystemExit(f"--parts {patterns}: no part matches; ids look like {part_id(*keys[0])} (see --list)")
    return chosen


def parse_args(argv):
    p = argparse.ArgumentParser(prog="experiments/compute/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="CI variant: tiny budgets, 2 seeds, gmm-2 + quakes (< 3 min)")
    p.add_argument("--long", action="store_true",
                   help="also run the long stage: each data set's best model trained further where it has not plateaued")
    p.add_argument("--out", type=Path, help="folder of the CSVs (default docs/results; runs/compute-quick with --quick)")
    p.add_argument("--report", type=Path, help="report path (default docs/results/compute.md; OUT/compute.md with --out)")
    p.add_argument("--parts", nargs="+", metavar="GLOB", help="run only parts whose id matches, e.g. 'quakes__*__s0'")
    p.add_argument("--list", action="store_true", help="print the plan (part ids, done or to do) and exit")
    p.add_argument("--render-only", action="store_true", help="write the report from the CSVs; no training")
    p.add_argument("--probe", action="store_true",
                   help="measure step times and evaluation costs of data sets without parts (for the estimate); no training")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--workers", type=int, default=1,
                   help="parts run in this many one-thread processes at once (2 on a 2-core machine; step times "
                        "are measured before, alone, so the budgets do not depend on it)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    name = "quick" if args.quick else "full"
    cfg = variant(name)
    out = args.out or (ROOT / "runs" / "compute-quick" if args.quick else ROOT / "docs" / "results")
    report = args.report or out / "compute.md"
    torch.set_num_threads(args.threads)
    (out / "compute_parts").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[compute {time.perf_counter() - start:7.1f}s] {msg}", flush=True)

    apply_lr(cfg, out)
    keys = plan(cfg)
    if args.list:
        parts = out / "compute_parts"
        for k in keys + long_plan(cfg, out):
            print(("done  " if is_done(parts, k, cfg) else "todo  ") + part_id(*k) + ("  (--long)" if k[1] == LONG else ""))
        return 0
    if args.probe:
        run_probe(cfg, out, log)
    elif not args.render_only:
        run_parts(cfg, out, select(keys, args.parts), log, args.workers)
        # the long stage, for the data sets whose full-size parts are now all done (see long_plan)
        longs = [k for k in long_plan(cfg, out) if not args.parts or any(
            fnmatch.fnmatch(part_id(*k), p) for p in args.parts)]
        if longs and not args.long:
            todo = sum(not is_done(out / "compute_parts", k, cfg) for k in longs)
            if todo:
                log(f"long stage: {todo} parts planned, not run (add --long)")
        elif longs:
            run_parts(cfg, out, longs, log, args.workers)
    # the report's plan: the main stage, and the long stage of the data sets where it ran (or was asked for)
    longs = long_plan(cfg, out)
    began = {k[0] for k in longs if is_done(out / "compute_parts", k, cfg)}
    keys += [k for k in longs if args.long or k[0] in began]
    done = [k for k in keys if is_done(out / "compute_parts", k, cfg)]
    (out / "compute_settings.json").write_text(json.dumps(
        {"variant": name, "config": cfg, "machine": machine(), "parts_planned": len(keys), "parts_done": len(done)},
        indent=2), encoding="utf-8")
    path = compute_report.write_report(out, report, cfg, name, [part_id(*k) for k in keys])
    log(f"report {path} ({len(done)}/{len(keys)} parts done)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
