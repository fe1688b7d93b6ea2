"""log_prob's default divergence estimator (issue 19): a rule on the manifold's dimension only, the
evidence behind its threshold, and Hutchinson's unbiasedness for the integrated log-density."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from gaugeflow.manifolds import FlatTorus, Sphere
from gaugeflow.models import PlainFlow
from gaugeflow.sampling import log_prob
from gaugeflow.sampling.divergence import HUTCHINSON_FROM_DIM, default_divergence

ROOT = Path(__file__).resolve().parents[1]
T = HUTCHINSON_FROM_DIM

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(M, seed=0, width=8, gain=2.0, dtype=torch.float64):
    """A PlainFlow with weights scaled up so the flow moves points (a non-trivial Jacobian)."""
    torch.manual_seed(seed)
    model = PlainFlow(M, hidden=width).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(gain)
    return model.eval()


@pytest.mark.parametrize("cls", [Sphere, FlatTorus])
def test_rule_is_exact_below_the_threshold_and_hutchinson_from_it(cls):
    assert [default_divergence(cls(n)) for n in (2, T - 1, T, 2 * T)] == ["exact", "exact", "hutchinson", "hutchinson"]


@pytest.mark.parametrize("n, expected", [(T - 1, "exact"), (T, "hutchinson")])
def test_log_prob_default_follows_the_rule_and_matches_the_explicit_choice(n, expected):
    M = Sphere(n)
    model = _model(M)
    x = M.random_base(5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    lp, info = log_prob(model, x, steps=2, generator=torch.Generator().manual_seed(7), return_info=True)
    same = log_prob(model, x, steps=2, divergence=expected, generator=torch.Generator().manual_seed(7))
    other = log_prob(model, x, steps=2, divergence={"exact": "hutchinson", "hutchinson": "exact"}[expected],
                     generator=torch.Generator().manual_seed(7))
    assert info.divergence == expected
    assert torch.equal(lp, same)
    assert not torch.allclose(lp, other, atol=1e-6)  # the two estimators really differ here


@pytest.mark.parametrize("n, explicit", [(2, "hutchinson"), (T, "exact")])
def test_an_explicit_choice_always_wins(n, explicit):
    M = FlatTorus(n)
    x = M.random_base(3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    _, info = log_prob(_model(M), x, steps=2, divergence=explicit, return_info=True)
    assert info.divergence == explicit


def test_the_rule_ignores_the_batch():
    M = Sphere(T)
    model = _model(M)
    for b in (1, 2, 33):
        x = M.random_base(b, generator=torch.Generator().manual_seed(b), dtype=torch.float64)
        assert log_prob(model, x, steps=1, return_info=True)[1].divergence == "hutchinson"


def test_log_prob_docstring_states_the_threshold():
    doc = " ".join(log_prob.__doc__.split())
    assert f"n = HUTCHINSON_FROM_DIM`` ({T})" in doc and "Hutchinson" in doc and "An explicit value always wins" in doc


def test_threshold_is_the_crossover_the_committed_benchmark_measured():
    """The constant is the evidence's verdict: the committed dimension tables give the same crossover."""
    sys.path.insert(0, str(ROOT / "experiments" / "benchmarks"))
    try:
        import dimension_report
    finally:
        sys.path.pop(0)
    out = json.loads((ROOT / "docs" / "results" / "dimension.json").read_text(encoding="utf-8"))
    assert out["settings"]["ns"] == [2, 4, 8, 16, 32, 64] and not out["settings"]["quick"]
    assert dimension_report.crossover(out) == T
    assert dimension_report.BEGIN in (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")


def test_default_divergence_rejects_a_non_manifold():
    with pytest.raises(TypeError, match="expected a gaugeflow Manifold, got int"):
        default_divergence(3)


@pytest.mark.parametrize("M, probe", [(Sphere(3), "rademacher"), (Sphere(3), "gaussian"), (FlatTorus(3), "rademacher")])
def test_hutchinson_log_prob_is_unbiased_against_exact(M, probe):
    """Each of 6 points repeated R times, one independent probe per copy, probes fixed along the solve:
    the mean over the copies is within 4.5 standard errors of the exact value at the same solver and
    steps (false alarm < 1e-4 over the 6 points), and the test has power: a 0.1-nat bias would fail it."""
    model = _model(M, seed=3, gain=1.0)
    x = M.random_base(6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    exact = log_prob(model, x, steps=4, divergence="exact")
    R = 4000
    est = log_prob(model, x.repeat(R, 1), steps=4, divergence="hutchinson", probe=probe,
                   generator=torch.Generator().manual_seed(5)).reshape(R, 6)
    mean, se = est.mean(0), est.std(0) / math.sqrt(R)
    assert (est.std(0) > 1e-3).all()  # there is noise to average: the estimator is not trivially exact here
    assert (4.5 * se < 0.1).all()  # power: a bias of 0.1 nat would be detected
    z = (mean - exact) / se
    assert (z.abs() < 4.5).all(), z


def test_evaluate_follows_the_default_and_the_flag_wins(tmp_path, capsys):
    from gaugeflow.cli import main

    run = tmp_path / "s2"
    assert main(["train", "--manifold", "sphere", "--data", "wrapped-mixture", "--model", "plain", "--steps", "5",
                 "--hidden", "8", "--batch-size", "16", "--n-data", "200", "--val-size", "16", "--no-progress",
                 "--out", str(run)]) == 0
    results = {}
    for flag in ([], ["--divergence", "hutchinson"], ["--divergence", "hutchinson"], ["--divergence", "exact"]):
        argv = ["evaluate", str(run), "--n-test", "40", "--n-samples", "40", "--steps", "2", *flag]
        assert main(argv) == 0
        result = json.loads((run / "evaluation.json").read_text())
        results.setdefault(result["divergence"], []).append(result["test_nll"])
    assert "exact divergence" in capsys.readouterr().out
    assert sorted(results) == ["exact", "hutchinson"] and len(results["exact"]) == 2  # S² (n = 2 < T): exact by default
    assert results["exact"][0] == results["exact"][1]
    assert results["hutchinson"][0] == results["hutchinson"][1]  # seeded probes: the same points, the same value
    assert results["hutchinson"][0] != results["exact"][0]
