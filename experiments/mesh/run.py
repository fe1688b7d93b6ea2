"""GaugeFlow on a triangle mesh (issue 20): the RFM eigenfunction mixture on the bumpy mesh.

One command (also ``gaugeflow reproduce mesh [--quick]``)::

    python experiments/mesh/run.py            # 3 seeds -> docs/results/mesh_results.csv, mesh.md, figures/mesh.png
    python experiments/mesh/run.py --quick    # smoke variant (1 seed, few steps) -> runs/mesh-quick

For each seed: the data set ``mesh-eigen`` on ``Mesh.bumpy()`` (eigenfunctions 3, 8, 15 of the
cotangent Laplacian thresholded at 0.6 of their maximum; drawn with that seed), a ``GaugeFlow``
trained by ``fit`` with the premetric conditional path (biharmonic, chosen automatically because the
mesh has no closed-form ``log``), its test NLL (exact divergence), and the checks that ``log_prob`` is
the density of its samples (``mesh_checks``: log Z by one and by four quadrature points per face,
``log_prob`` at 12 vs 48 RK4 steps at 2 000 area-uniform points). Baselines without training:
the area-uniform density (``log area``) and the data's exact entropy (the best reachable NLL).
``report.py`` renders ``docs/results/mesh.md`` from the CSV alone.
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import mesh_checks  # noqa: E402  (prefixed names: experiments/* folders share sys.path in one pytest run)
import mesh_report  # noqa: E402

from gaugeflow.data.mesh import named_set  # noqa: E402
from gaugeflow.manifolds import Mesh  # noqa: E402
from gaugeflow.models import GaugeFlow  # noqa: E402
from gaugeflow.training import PremetricPath, Trainer, TrainConfig  # noqa: E402
from gaugeflow.training.trainer import validation_nll  # noqa: E402

SETTINGS = {
    "full": {"seeds": [0, 1, 2], "steps": 1000, "batch_size": 128, "hidden": 64, "lr": 3e-3, "n_test": 500,
             "nll_steps": 12, "path_steps": 4, "path_corrections": 2, "gap_points": 2000, "gap_steps": 48},
    "quick": {"seeds": [0], "steps": 20, "batch_size": 32, "hidden": 16, "lr": 3e-3, "n_test": 40,
              "nll_steps": 4, "path_steps": 2, "path_corrections": 2, "gap_points": 50, "gap_steps": 8},
}
FIELDS = ["seed", "model", "test_nll", "log_z", "test_nll_normalized", "log_z_4pt", "gap_within", "gap_q99",
          "gap_max", "uniform_nll", "entropy", "steps", "train_seconds", "git_commit"]
#: the seed-0 EMA weights, for tangent_check.py (evaluates the same weights under other tangent maps)
MODEL_PATH = ROOT / "runs" / "mesh" / "seed0_ema.pt"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_seed(M: Mesh, seed: int, s: dict) -> tuple[dict, GaugeFlow, object]:
    """Train one GaugeFlow on ``mesh-eigen`` drawn with ``seed``; returns (CSV row, EMA model, data)."""
    data = named_set("mesh-eigen", M, seed=seed)
    torch.manual_seed(seed)
    model = GaugeFlow(M, hidden=s["hidden"])
    cfg = TrainConfig(manifold="mesh", data="mesh-eigen", model="gauge", hidden=s["hidden"], steps=s["steps"],
                      batch_size=s["batch_size"], lr=s["lr"], schedule="cosine", warmup_steps=s["steps"] // 20,
                      ema_decay=0.99, seed=seed, val_size=0, progress=False)
    trainer = Trainer(model, data, cfg)
    # the premetric path of the trainer, with the cheaper simulation settings of this study
    trainer.path = PremetricPath(M, steps=s["path_steps"], corrections=s["path_corrections"])
    started = time.perf_counter()
    try:
        trainer.fit()
    finally:
        trainer.close()
    seconds = time.perf_counter() - started
    ema = trainer.ema_model()
    nll = validation_nll(ema, data.test[: s["n_test"]], steps=s["nll_steps"], divergence="exact")
    ema64 = copy.deepcopy(ema).double()  # the likelihood checks in float64
    log_z = math.log(mesh_checks.total_mass(ema64, s["nll_steps"]))
    log_z4 = math.log(mesh_checks.total_mass(ema64, s["nll_steps"], m=2))
    gap = mesh_checks.step_gap(ema64, s["gap_points"], (s["nll_steps"], s["gap_steps"]))
    row = {"seed": seed, "model": "gauge", "test_nll": nll, "log_z": log_z, "test_nll_normalized": nll + log_z,
           "log_z_4pt": log_z4, "gap_within": gap["frac_within"], "gap_q99": gap["q99"], "gap_max": gap["max"],
           "uniform_nll": data.meta["uniform_nll"],
           "entropy": data.meta["entropy"], "steps": s["steps"], "train_seconds": seconds, "git_commit": _commit()}
    return row, ema, data


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the smoke variant")
    parser.add_argument("--out", type=Path, help="output folder (default docs/results, or runs/mesh-quick)")
    args = parser.parse_args(argv)
    variant = "quick" if args.quick else "full"
    s = SETTINGS[variant]
    out = args.out or (ROOT / "runs" / "mesh-quick" if args.quick else ROOT / "docs" / "results")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    M = Mesh.bumpy()
    rows, first = [], None
    for seed in s["seeds"]:
        row, model, data = run_seed(M, seed, s)
        rows.append(row)
        first = first or (model, data)
        print(f"seed {seed}: test NLL {row['test_nll']:.3f} nats, log Z {row['log_z']:.3f} / {row['log_z_4pt']:.3f} "
              f"(1 / 4 points per face), {s['nll_steps']} vs {s['gap_steps']} steps within 0.05 at "
              f"{100 * row['gap_within']:.1f} % (max {row['gap_max']:.3f}) (uniform {row['uniform_nll']:.3f}, "
              f"entropy {row['entropy']:.3f}), {row['train_seconds']:.0f} s", flush=True)
    with open(out / "mesh_results.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    settings = {"variant": variant, **s, "mesh": str(M), "faces": len(M.faces), "data": "mesh-eigen",
                "torch": torch.__version__, "python": platform.python_version()}
    (out / "mesh_settings.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    if variant == "full":
        MODEL_PATH.parent.mkdir(parents=True, exist_ok=True)
        torch.save(first[0].state_dict(), MODEL_PATH)
    mesh_report.figure(first[0], first[1], out / "figures" / "mesh.png", steps=s["nll_steps"])
    mesh_report.render(out)
    print(f"wrote {out / 'mesh_results.csv'}, {out / 'mesh.md'}, {out / 'figures' / 'mesh.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
