"""End-to-end run of the real-data study's quick variant (experiments/real/run.py --quick)."""
from __future__ import annotations

import csv
import json
import math
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"plain", "gauge", "higher-gauge", "fm-peer"}
DATASETS = {"world-cities", "quakes", "protein", "protein-frames"}  # protein-frames: SO(3), no peer there


def _child_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_real_quick_end_to_end(tmp_path):
    cpu0 = _child_cpu_seconds()
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "real" / "run.py"), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    cpu = _child_cpu_seconds() - cpu0
    assert proc.returncode == 0, proc.stderr[-3000:]
    # CI budget: under 3 minutes of compute (CPU time, so a loaded shared machine does not make it flaky)
    assert cpu < 180, f"quick variant used {cpu:.0f} CPU seconds"

    for name in ("runs.csv", "summary.csv", "summary.md", "settings.json",
                 "real_world_cities.png", "real_quakes.png", "real_protein.png"):
        assert (tmp_path / name).is_file() and (tmp_path / name).stat().st_size > 100, name

    rows = list(csv.DictReader(open(tmp_path / "runs.csv", encoding="utf-8")))
    assert len(rows) == (3 * 4 + 1 * 3) * 3  # flow_matching has no SO(3): three models on protein-frames
    assert {r["dataset"] for r in rows} == DATASETS and {r["model"] for r in rows} == MODELS
    assert {r["model"] for r in rows if r["dataset"] == "protein-frames"} == MODELS - {"fm-peer"}
    for r in rows:
        for key in ("test_nll", "test_nll_2x", "solver_diff", "uniform_nll", "margin", "s_per_step", "sample_s"):
            assert math.isfinite(float(r[key])), (key, r)
        assert float(r["solver_diff"]) < 0.05
        assert abs(float(r["margin"]) - (float(r["uniform_nll"]) - float(r["test_nll"]))) < 1e-9
    uniform = {r["dataset"]: float(r["uniform_nll"]) for r in rows}
    assert abs(uniform["world-cities"] - math.log(4 * math.pi)) < 1e-5
    assert abs(uniform["protein"] - 2 * math.log(2 * math.pi)) < 1e-5
    assert abs(uniform["protein-frames"] - math.log(8 * math.pi ** 2)) < 1e-5  # Haar on SO(3), vol 8π²

    summary = list(csv.DictReader(open(tmp_path / "summary.csv", encoding="utf-8")))
    assert len(summary) == 3 * 4 + 3 and all(int(s["n_seeds"]) == 3 for s in summary)
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings["quick"] is True and settings["seeds"] == [0, 1, 2]
