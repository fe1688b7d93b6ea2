"""The Gaussian-mixture study (experiments/gmm): pairing helpers, and the --quick pipeline end to end."""
import csv
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load_run():
    spec = importlib.util.spec_from_file_location("gmm_run", ROOT / "experiments" / "gmm" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # puts experiments/gmm on sys.path, so gmm_study imports below
    return module


run = _load_run()
import gmm_report  # noqa: E402
import gmm_study  # noqa: E402


def test_all_models_of_a_cell_see_the_same_training_stream():
    from gaugeflow.data import gaussian_mixture
    from gaugeflow.training import TrainConfig, Trainer

    data = gaussian_mixture(3, n_train=300, n_val=10, n_test=10)
    cfg = TrainConfig(manifold="euclidean", dim=3, data="gaussian-mixture", model="plain", seed=5, batch_size=16,
                      device="cpu", progress=False)
    a = Trainer(gmm_study.build("plain", 3, 8, None, 5), data, cfg)
    b = Trainer(gmm_study.build("higher-gauge", 3, 8, None, 5), data, cfg)
    for _ in range(3):
        for u, v in zip(a.draw(), b.draw()):
            assert torch.equal(u, v)
        a.train_step(), b.train_step()  # training one model must not shift the other's stream
    c = Trainer(gmm_study.build("plain", 3, 8, None, 6), data, cfg.replace(seed=6))
    assert not torch.equal(a.draw()[0], c.draw()[0])


def test_matched_width_is_the_closest_parameter_count():
    from gaugeflow.manifolds import Euclidean
    from gaugeflow.models import PlainFlow, count_parameters

    target = count_parameters(gmm_study.build("higher-gauge", 8, 64, None, 0))
    w = gmm_study.matched_width(8, target)
    counts = {v: count_parameters(PlainFlow(Euclidean(8), hidden=v)) for v in (w - 1, w, w + 1)}
    assert abs(counts[w] - target) <= min(abs(counts[w - 1] - target), abs(counts[w + 1] - target))
    assert abs(counts[w] - target) / target < 0.01


def test_evaluation_triples_are_fixed_and_paired():
    x1 = torch.randn(50, 4)
    t1, t2 = gmm_study.fm_triples(x1, 3, seed=11), gmm_study.fm_triples(x1, 3, seed=11)
    assert all(torch.equal(u, v) for u, v in zip(t1, t2))
    assert t1[0].shape == (150, 4) and torch.equal(t1[1][:50], x1) and torch.equal(t1[1][100:], x1)
    assert not torch.equal(t1[0][:50], t1[0][50:100])  # each repeat draws fresh (x0, t)


def test_paired_verdict_rules():
    rows = [{"model": m, "N": 2, "seed": s, "v": v} for m, vals in
            (("gauge", (2.0, 2.1, 2.2)), ("higher-gauge", (1.0, 1.1, 1.15))) for s, v in enumerate(vals)]
    p = gmm_report.paired(rows, "higher-gauge", "gauge", 2, "v")
    assert p["agree"] == 3 and p["verdict"] == "supported" and p["mean"] == pytest.approx(3.05 / 3, abs=1e-9)
    q = gmm_report.paired(rows, "gauge", "higher-gauge", 2, "v")
    assert q["agree"] == 0 and q["verdict"] == "contradicted"
    rows[0]["v"] = 0.5  # one seed now disagrees
    assert gmm_report.paired(rows, "higher-gauge", "gauge", 2, "v")["verdict"] == "inconclusive"
    assert gmm_report.fmt(1.23456, 0.0123) == "1.235 ± 0.012"


@pytest.mark.slow
def test_quick_study_end_to_end(tmp_path):
    assert run.main(["--quick", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "gmm_results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    cfg = run.load_config(ROOT / "experiments" / "gmm" / "config.yaml", "quick")
    assert len(rows) == len(cfg["dims"]) * len(cfg["seeds"]) * len(cfg["models"])
    finite = ("train_fm", "test_fm", "train_fm_norm", "test_fm_norm", "test_nll", "energy_distance",
              "sliced_wasserstein", "mode_coverage", "mode_tv", "train_seconds", "params")
    for r in rows:
        assert all(math.isfinite(float(r[key])) for key in finite), r
        assert r["torch_version"] == torch.__version__ and r["gaugeflow_version"] and r["seed"] != ""
        if r["model"] == "higher-gauge":
            assert float(r["test_fm_norm"]) == 1.0
    assert {r["nll_divergence"] for r in rows} == {"exact", "hutchinson-4"}
    for n in cfg["dims"]:  # parameter counts depend on N and the model only
        for m in cfg["models"]:
            assert len({r["params"] for r in rows if r["model"] == m and int(r["N"]) == n}) == 1
    for name in ("fm_loss_normalised", "params", "nll", "sample_quality", "samples_N2"):
        png = tmp_path / "figures" / f"gmm_{name}.png"
        assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    settings = json.loads((tmp_path / "gmm_settings.json").read_text())
    assert settings["wall_seconds"] > 0 and settings["variant"] == "quick"
    text = (tmp_path / "gmm.md").read_text()
    assert "## Verdict" in text and "nan" not in text.lower() and "figures/gmm_params.png" in text
