"""The equal-compute study (experiments/compute, issue 22): its pieces, and the --quick variant end to end."""
from __future__ import annotations

import csv
import importlib.util
import math
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load_run():
    spec = importlib.util.spec_from_file_location("compute_run", ROOT / "experiments" / "compute" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # puts experiments/compute on sys.path, so the imports below resolve
    return module


run = _load_run()
import compute_config  # noqa: E402
import compute_models  # noqa: E402
import compute_stats  # noqa: E402
import compute_study  # noqa: E402


def test_the_alpha_zero_ablation_is_the_plain_model_at_the_gauge_models_cost():
    from gaugeflow.manifolds import Sphere
    from gaugeflow.models import count_parameters
    from gaugeflow.training import rcfm_loss

    M = Sphere(2)
    for gauge in ("gauge", "higher-gauge", "tensor-gauge"):
        widths = {"plain": 8, gauge: 8, gauge + "-a0": 8}
        plain, full, a0 = (compute_models.build(n, M, widths, 3) for n in ("plain", gauge, gauge + "-a0"))
        assert count_parameters(a0) == count_parameters(full) > count_parameters(plain)
        x, t = M.random_base(32, generator=torch.Generator().manual_seed(0)), torch.rand(32)
        assert torch.equal(a0(x, t), plain(x, t))  # V = v_θ exactly: the gauge term is computed, times 0
        assert not torch.allclose(full(x, t), plain(x, t))
        x0 = M.random_base(32, generator=torch.Generator().manual_seed(1))
        rcfm_loss(a0, x0, x, t).backward()
        for name, p in a0.named_parameters():
            if name.startswith("velocity."):
                assert p.grad is not None and p.grad.abs().sum() > 0, name
            else:  # the finding the report states: the gauge networks get exactly zero gradient
                assert p.grad is None or torch.count_nonzero(p.grad) == 0, name


def test_plateau_criterion():
    ev = {"plateau_min_evals": 8, "plateau_tol": 0.01}
    assert not compute_study.plateaued([8, 7, 6, 5, 4, 3, 2, 1], ev)  # still falling in the last quarter
    assert compute_study.plateaued([5, 4, 3, 2, 1, 1, 1, 1], ev)  # flat over the last quarter
    assert compute_study.plateaued([5, 4, 3, 2, 1.0, 0.999, 0.995, 0.998], ev)  # gain of 0.005 < 0.01
    assert not compute_study.plateaued([5, 4, 3, 2, 1, 1, 0.98, 1], ev)  # gain of 0.02 in the last 25 %
    assert not compute_study.plateaued([1.0] * 7, ev)  # too few evaluations


def test_paired_comparison_reads_the_sign_and_the_spread():
    a = {0: 1.0, 1: 1.1, 2: 0.9, 3: 1.05, 4: 0.95}
    better = compute_stats.paired(a, {s: v + 0.2 + 0.01 * s for s, v in a.items()})
    assert better["verdict"] == "better" and better["mean"] == pytest.approx(-0.22) and better["n"] == 5
    assert compute_stats.paired({s: v + 0.3 for s, v in a.items()}, a)["verdict"] == "worse"
    noisy = compute_stats.paired(a, {0: 1.2, 1: 0.8, 2: 1.1, 3: 0.9, 4: 1.0})
    assert noisy["verdict"] == "no clear difference" and noisy["t_p"] > 0.05
    assert compute_stats.paired(a, dict(a))["verdict"] == "identical"
    assert compute_stats.paired({0: 1.0}, {0: 2.0}) is None  # one seed is no comparison


def test_parts_selection_and_plan():
    cfg = compute_config.variant("full")
    keys = run.plan(cfg)
    assert len(keys) == len(set(keys))
    assert {k[3] for k in keys} == set(cfg["seeds"]) and len(cfg["seeds"]) >= 5
    assert {k[2] for k in keys} == set(compute_config.MODELS)
    assert {k[0] for k in keys} == {"gmm-2", "gmm-8", "gmm-32", "world-cities", "quakes", "protein", "protein-frames"}
    assert {k[1] for k in keys} == {"full", "tenth"}
    chosen = run.select(keys, ["quakes__full__*__s0"])
    assert len(chosen) == len(compute_config.MODELS) and all(k[0] == "quakes" and k[3] == 0 for k in chosen)
    with pytest.raises(SystemExit, match="no part matches"):
        run.select(keys, ["nope*"])
    with pytest.raises(ValueError, match="expected one of"):
        compute_config.variant("medium")


def test_learning_rate_choice_and_its_part_settings(tmp_path):
    import compute_lr

    cfg = compute_config.variant("full")
    assert cfg["lr_grid"] == sorted(cfg["lr_grid"]) and len(cfg["lr_grid"]) >= 3
    # the lowest validation NLL wins; non-finite loses to anything; ties go to the smaller rate
    rows = [{"dataset": "quakes", "model": "gauge", "lr": lr, "val_nll": v}
            for lr, v in ((1e-3, 1.0), (3e-3, 0.5), (1e-2, math.inf))]
    rows += [{"dataset": "quakes", "model": "plain", "lr": lr, "val_nll": 0.7} for lr in (1e-3, 3e-3, 1e-2)]
    assert compute_lr.chosen(rows) == {("quakes", "gauge"): 3e-3, ("quakes", "plain"): 1e-3}
    # one job per base model and rate: the ablations and OT variants are not swept, they take their base's rate
    jobs = compute_lr.sweep_jobs(cfg, "quakes", compute_config.models_of(cfg, "quakes", "full"))
    assert len(jobs) == len(compute_config.CORE) * len(cfg["lr_grid"])
    assert compute_config.lr_model("gauge-a0") == "gauge" and compute_config.lr_model("plain-ot") == "plain"

    # compute_lr.csv -> the rates; a base model is tuned only when every rate of the grid has a row
    path = tmp_path / "compute_lr.csv"
    steps = cfg["datasets"]["quakes"]["steps_eq"]
    table = [dict(r, steps=steps, stopped="steps") for r in rows]
    run.write_rows(path, table[:-1])  # plain lacks its last rate
    run.apply_lr(cfg, tmp_path)
    assert cfg["datasets"]["quakes"]["lr"] == {"gauge": 3e-3}
    assert compute_config.train_settings(cfg, "gauge-a0", "quakes")["lr"] == 3e-3
    assert compute_config.train_settings(cfg, "plain-ot", "quakes")["lr"] is None
    untuned = run.settings_key(cfg, "quakes", "plain")
    run.write_rows(path, table)
    run.apply_lr(cfg, tmp_path)
    assert compute_config.train_settings(cfg, "plain-ot", "quakes")["lr"] == 1e-3
    assert run.settings_key(cfg, "quakes", "plain") != untuned  # a part keyed untuned never counts as done
    # a part whose rate is not tuned yet refuses to run, and says why
    from compute_part import run_part

    with pytest.raises(ValueError, match="learning rate is not tuned"):
        run_part(("quakes", "full", "tensor-gauge", 0), cfg, {("quakes", "tensor-gauge"): {"hidden": 8, "step_s_median": 1.0},
                                                               ("quakes", "gauge"): {"hidden": 8, "step_s_median": 1.0}})


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _child_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _check_parts(out: Path, cfg: dict) -> list[dict]:
    """Every planned part is there with its three budgets; returns all budget rows."""
    keys = run.plan(cfg)
    runs = []
    for k in keys:
        rows = _rows(out / "compute_parts" / f"{run.part_id(*k)}.runs.csv")
        assert [r["budget"] for r in rows] == ["equal-steps", "equal-seconds", "converged"], k
        runs += rows
    assert len(runs) == 3 * len(keys)
    return runs


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_study_end_to_end(tmp_path):
    cpu0 = _child_cpu_seconds()
    cmd = [sys.executable, str(ROOT / "experiments" / "compute" / "run.py"), "--quick", "--out", str(tmp_path)]
    proc = subprocess.run(cmd + ["--long"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _child_cpu_seconds() - cpu0 < 180, "the quick variant must stay under 3 minutes of compute"
    cfg = compute_config.variant("quick")
    runs = _check_parts(tmp_path, cfg)
    for r in runs:
        assert math.isfinite(float(r["test_nll"])) and math.isfinite(float(r["test_fm"])), r
        assert int(r["nll_failures"]) == 0 and int(r["steps"]) > 0

    # paired seeds: one training stream per (data set, size, seed), the same for every model
    streams = {}
    for r in runs:
        streams.setdefault((r["dataset"], r["size"], r["seed"]), set()).add(r["stream_hash"])
    assert all(len(v) == 1 and "" not in v for v in streams.values())
    assert len({next(iter(v)) for v in streams.values()}) == len(streams)  # seeds differ

    # the budgets: equal steps for all; equal seconds from the interleaved step times
    calib = {(c["dataset"], c["model"]): float(c["step_s_median"]) for c in _rows(tmp_path / "compute_calibration.csv")}
    for r in runs:
        spec = cfg["datasets"][r["dataset"]]
        if r["budget"] == "equal-steps":
            assert int(r["steps"]) == spec["steps_eq"]
        if r["budget"] == "equal-seconds":
            want = round(spec["steps_eq"] * calib[(r["dataset"], "gauge")] / calib[(r["dataset"], r["model"])])
            assert int(r["steps"]) == min(spec["max_steps"], max(1, want))

    # the learning-rate sweep ran first: every base model of each data set at every rate of the grid
    sweep = _rows(tmp_path / "compute_lr.csv")
    assert {(r["dataset"], r["model"], float(r["lr"])) for r in sweep} == {
        (d, m, lr) for d in cfg["datasets"] for m in compute_config.CORE for lr in cfg["lr_grid"]}
    import compute_lr

    rate = compute_lr.chosen([dict(r, val_nll=float(r["val_nll"]), lr=float(r["lr"])) for r in sweep])

    # the α ≡ 0 ablation trains the plain network: same FM loss and NLL up to float32 rounding (gradient
    # clipping's norm also sums the ablation's zero gradients, which can move the last bit), when its gauge
    # model's tuned rate is the plain model's
    by = {(r["dataset"], r["size"], r["budget"], r["model"], r["seed"]): r for r in runs}
    compared = 0
    for (d, size, b, m, s), r in by.items():
        if m.endswith("-a0") and b == "equal-steps" and rate[(d, m[:-3])] == rate[(d, "plain")]:
            compared += 1
            p = by[(d, size, b, "plain", s)]
            assert abs(float(r["test_fm"]) - float(p["test_fm"])) < 1e-6
            assert abs(float(r["test_nll"]) - float(p["test_nll"])) < 1e-6
    assert compared or len({rate[(d, m)] for d in cfg["datasets"] for m in ("plain", "gauge")}) > 1

    # the report: generated, every verdict claim points to an existing row
    text = (tmp_path / "compute.md").read_text(encoding="utf-8")
    ids = set(re.findall(r"^\| ([CR]\d+) \|", text, flags=re.M))
    verdict = text.split("## Verdict", 1)[1].split("## Settings", 1)[0]
    claims = [line for line in verdict.splitlines() if line.strip().startswith("- ") and "vs" in line or "Best at" in line]
    assert claims
    for line in claims:
        refs = re.findall(r"\b([CR]\d+)\b", line)
        assert refs and set(refs) <= ids, line
        assert "±" in line, line  # every claim carries its spread
    for name in ("compute_curves_gmm-2_full.png", "compute_curves_quakes_full.png", "compute_solver.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 5000
    solver = [r for p in (tmp_path / "compute_parts").glob("*.solver.csv") for r in _rows(p)]
    assert {r["method"] for r in solver} == {"rk4", "dopri5"}
    assert all(int(r["nll_nfe"]) == 4 * int(r["solver_steps"]) for r in solver if r["method"] == "rk4")

    # the long stage: the best model of quakes (lowest seed-mean best validation NLL) trained again up to the
    # long budget, one `converged` row per seed, unless it had plateaued in every seed at max_steps
    run.apply_lr(cfg, tmp_path)  # the tuned rates are part of every settings key
    longs = run.long_plan(cfg, tmp_path)
    best_val = {}
    for k in (k for k in run.plan(cfg) if k[:2] == ("quakes", "full")):
        vals = [float(c["val_nll"]) for c in _rows(tmp_path / "compute_parts" / f"{run.part_id(*k)}.curve.csv")]
        best_val.setdefault(k[2], []).append(min(vals))
    best = min(best_val, key=lambda m: sum(best_val[m]))
    plateaued = all(_rows(tmp_path / "compute_parts" / f"quakes__full__{best}__s{s}.runs.csv")[-1]["stopped"] == "plateau"
                    for s in cfg["seeds"])
    assert longs == ([] if plateaued else [("quakes", "long", best, s) for s in cfg["seeds"]])
    for k in longs:
        (row,) = _rows(tmp_path / "compute_parts" / f"{run.part_id(*k)}.runs.csv")
        assert row["budget"] == "converged" and row["size"] == "long"
        assert 0 < int(row["steps"]) <= int(row["stop_step"]) <= cfg["long"]["quakes"]["max_steps"]
        assert run.is_done(tmp_path / "compute_parts", k, cfg)
    if longs:
        assert "Trained longer (the long stage" in text

    # resumable by parts: a rerun skips finished parts; a lost part is redone and nothing else is touched; the
    # long stage runs only when asked for (--long)
    lost = tmp_path / "compute_parts" / "quakes__full__gauge__s1.runs.csv"
    kept = tmp_path / "compute_parts" / "quakes__full__plain__s1.runs.csv"
    before, stamp = lost.read_text(), kept.stat().st_mtime_ns
    lost.unlink()
    for k in longs[1:2]:
        (tmp_path / "compute_parts" / f"{run.part_id(*k)}.runs.csv").unlink()
    again = subprocess.run(cmd + ["--parts", "quakes__*__s1", "--workers", "2"], capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "1 to run" in again.stdout and kept.stat().st_mtime_ns == stamp
    for k in longs[1:2]:
        assert "long stage: 1 parts planned, not run (add --long)" in again.stdout
        assert not run.is_done(tmp_path / "compute_parts", k, cfg)
    assert _rows(lost)[0]["test_fm"] == _rows_from_text(before)[0]["test_fm"]  # same stream, same result


def _rows_from_text(text: str) -> list[dict]:
    return list(csv.DictReader(text.splitlines()))


def test_committed_report_is_generated_from_the_committed_csvs(tmp_path):
    """docs/results/compute.md is exactly what the renderer writes from the committed CSVs (no hand edits),
    and it covers the whole full-study plan."""
    import shutil

    src = ROOT / "docs" / "results"
    for f in src.glob("compute_*"):
        (shutil.copytree if f.is_dir() else shutil.copy)(f, tmp_path / f.name)
    cmd = [sys.executable, str(ROOT / "experiments" / "compute" / "run.py"), "--out", str(tmp_path), "--render-only"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)  # as a user runs it (own sys.path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    committed = (src / "compute.md").read_text(encoding="utf-8")
    assert (tmp_path / "compute.md").read_text(encoding="utf-8") == committed
    cfg = compute_config.variant("full")
    run.apply_lr(cfg, tmp_path)  # the tuned rates are part of every part's settings key
    assert all(run.is_done(tmp_path / "compute_parts", k, cfg) for k in run.plan(cfg) + run.long_plan(cfg, tmp_path))
    assert "In progress" not in committed and "variant, not the full study" not in committed


def test_the_readme_and_the_real_data_page_quote_the_rows_they_cite():
    """Every "mean ± std … (R…)" in the README and the real-data page is that row's test NLL, and every cited
    R/C id is on the page: a row added to the study renumbers the rows after it, and the prose must follow."""
    page = (ROOT / "docs" / "results" / "compute.md").read_text(encoding="utf-8")
    ids = set(re.findall(r"^\| ([RC]\d+) \|", page, flags=re.M))
    nll = {m.group(1): m.group(2) for m in re.finditer(r"^\| (R\d+) \|(?:[^|]*\|){6} ([^|]+?) \|", page, flags=re.M)}
    quoted = 0
    for doc in ("README.md", "docs/results/real.md"):
        text = (ROOT / doc).read_text(encoding="utf-8")
        prose = " ".join(text.replace("\n>", "\n").replace("−", "-").replace("**", "").split())
        for cited in re.findall(r"\b([RC]\d+)\b", prose):
            assert cited in ids, f"{doc} cites {cited}, which docs/results/compute.md does not have"
        for m in re.finditer(r"(-?\d+\.\d+ ± \d+\.\d+)[^()]{0,80}?\((R\d+)\b", prose):
            assert nll.get(m.group(2)) == m.group(1), (doc, m.group(0), nll.get(m.group(2)))
            quoted += 1
    assert quoted >= 8
