"""Minibatch OT coupling (training/coupling.py): optimality, permutations, Sinkhorn's bound, the trainer's use."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from gaugeflow.data import wrapped_mixture
from gaugeflow.manifolds import SO3, FlatTorus, Hyperbolic, Product, Sphere
from gaugeflow.models import PlainFlow
from gaugeflow.training import TrainConfig, Trainer
from gaugeflow.training.coupling import (exact_pairing, ot_pairing, pairing_cost, sample_rows, sinkhorn_log_plan,
                                         squared_distances)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MANIFOLDS = [Sphere(2), FlatTorus(2), Hyperbolic(2), SO3(), Product(Sphere(2), FlatTorus(2))]
IDS = [str(m) for m in MANIFOLDS]


def _batch(M, n, seed):
    g = torch.Generator().manual_seed(seed)
    return M.random_base(n, generator=g, dtype=torch.float64), M.random_base(n, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("M", MANIFOLDS, ids=IDS)
def test_exact_pairing_is_a_permutation_that_never_costs_more(M):
    for seed in range(3):
        x0, x1 = _batch(M, 48, seed)
        j = ot_pairing(M, x0, x1)
        assert sorted(j.tolist()) == list(range(48))
        ot, independent = pairing_cost(M, x0, x1[j]), pairing_cost(M, x0, x1)
        assert ot <= independent + 1e-12
        assert ot < 0.8 * independent  # 48 random pairs: the optimum is far below the identity pairing


@pytest.mark.parametrize("M", MANIFOLDS, ids=IDS)
def test_exact_pairing_matches_brute_force(M):
    for seed in range(4):
        x0, x1 = _batch(M, 6, seed)
        cost = squared_distances(M, x0, x1)
        best = min(sum(cost[i, p[i]] for i in range(6)) for p in itertools.permutations(range(6)))
        j = ot_pairing(M, x0, x1)
        assert pairing_cost(M, x0, x1[j]) == pytest.approx(float(best), rel=1e-12)


def test_cost_matrix_is_the_squared_geodesic_distance():
    M = Sphere(2)
    x0, x1 = _batch(M, 5, 0)
    cost = squared_distances(M, x0, x1)
    assert cost.shape == (5, 5)
    assert cost[2, 3] == pytest.approx(float(M.dist(x0[2], x1[3]) ** 2), rel=1e-12)


@pytest.mark.parametrize("M", [Sphere(2), FlatTorus(2)], ids=str)
def test_sinkhorn_cost_within_the_entropic_bound_and_shrinking_with_epsilon(M):
    """``0 ≤ ⟨P_ε, C⟩ − OT ≤ ε log m`` (plans with uniform marginals have entropy in [log m, 2 log m],
    a permutation plan exactly log m); and the gap shrinks as ε does."""
    m = 64
    x0, x1 = _batch(M, m, 1)
    cost = squared_distances(M, x0, x1)[None]
    exact = float(cost[0, torch.arange(m), exact_pairing(cost)[0]].mean())
    gaps = []
    for epsilon in (0.1, 0.03, 0.01):
        plan = sinkhorn_log_plan(cost, epsilon, iters=2000).exp()
        assert plan.sum(-1).mul(m).sub(1).abs().max() < 1e-3 and plan.sum(-2).mul(m).sub(1).abs().max() < 1e-9
        gap = float((plan * cost).sum()) - exact
        eps_abs = epsilon * float(cost.mean())
        assert -1e-9 <= gap <= eps_abs * math.log(m)
        gaps.append(gap)
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.02 * (float(cost[0].diagonal().mean()) - exact)  # ε = 1 %: within 2 % of OT's saving


def test_sample_rows_is_the_inverse_cdf_of_each_row():
    probs = torch.tensor([[0.2, 0.5, 0.3], [0.0, 0.0, 1.0]], dtype=torch.float64)
    log_plan = (probs * 7).log()[None]  # unnormalised rows are normalised
    u = torch.tensor([[0.1, 0.5]]), torch.tensor([[0.25, 0.0]]), torch.tensor([[0.69, 0.99]]), torch.tensor([[0.71, 0.3]])
    got = [sample_rows(log_plan, v.double())[0].tolist() for v in u]
    assert got == [[0, 2], [1, 2], [1, 2], [2, 2]]


def test_sinkhorn_route_resamples_rows_within_blocks_deterministically(no_host_reads):
    M = Sphere(2)
    x0, x1 = _batch(M, 128, 2)
    with no_host_reads():  # the Sinkhorn route stays on the device
        j1 = ot_pairing(M, x0, x1, block=64, exact_max=32, generator=torch.Generator().manual_seed(5))
    j2 = ot_pairing(M, x0, x1, block=64, exact_max=32, generator=torch.Generator().manual_seed(5))
    assert torch.equal(j1, j2)
    assert bool(((j1 // 64) == torch.arange(128) // 64).all())  # partners stay in their block
    exact = ot_pairing(M, x0, x1, block=64)
    sink, exact_cost, independent = (pairing_cost(M, x0, x1[j]) for j in (j1, exact, torch.arange(128)))
    assert exact_cost <= sink < 0.3 * independent


def test_blocks_are_coupled_separately():
    M = FlatTorus(2)
    x0, x1 = _batch(M, 64, 3)
    j = ot_pairing(M, x0, x1, block=16)
    assert sorted(j.tolist()) == list(range(64))
    for k in range(4):
        part = slice(16 * k, 16 * (k + 1))
        alone = ot_pairing(M, x0[part], x1[part])
        assert torch.equal(j[part], alone + 16 * k)


class _NoDistance(Sphere):
    capabilities = frozenset({"exp", "log"})


class _Spectral(_NoDistance):
    calls = 0

    def spectral_distance(self, x, y):
        type(self).calls += 1
        return (x - y).norm(dim=-1)  # the chordal distance stands in for a mesh's spectral one


def test_manifold_without_exact_distance_uses_spectral_distance_or_refuses():
    x0, x1 = _batch(Sphere(2), 8, 0)
    with pytest.raises(ValueError, match=r"^coupling 'ot' needs squared geodesic distances.*use coupling 'independent'$"):
        ot_pairing(_NoDistance(2), x0, x1)
    j = ot_pairing(_Spectral(2), x0, x1)
    chordal = ((x0[:, None] - x1[None]) ** 2).sum(-1)
    assert _Spectral.calls >= 1
    assert torch.equal(j, exact_pairing(chordal[None])[0])


@pytest.mark.parametrize("kwargs, message", [
    ({"x1": torch.zeros(7, 3)}, r"same shape \[B, D\], got \(8, 3\) and \(7, 3\)"),
    ({"x0": torch.zeros(8)}, r"x0 must be a non-empty \[B, D\] tensor, got \(8,\)"),
    ({"block": 3}, r"block 3 must divide the batch size 8"),
    ({"block": 0}, r"block must be a positive integer, got 0"),
    ({"exact_max": 2.5}, r"exact_max must be a positive integer, got 2.5"),
    ({"epsilon": -1.0}, r"epsilon must be a positive finite number, got -1.0"),
])
def test_bad_input_is_one_clear_line(kwargs, message):
    M = Sphere(2)
    x0, x1 = _batch(M, 8, 0)
    args = {"x0": x0, "x1": x1, **kwargs}
    with pytest.raises(ValueError, match=message) as err:
        ot_pairing(M, args.pop("x0"), args.pop("x1"), **args)
    assert "\n" not in str(err.value)


def test_config_checks_coupling_settings():
    with pytest.raises(ValueError, match=r"coupling must be one of independent, ot, got 'sinkhorn'"):
        TrainConfig(coupling="sinkhorn")
    with pytest.raises(ValueError, match=r"ot_batch must divide batch_size 256, got 100"):
        TrainConfig(coupling="ot", ot_batch=100)
    assert TrainConfig.from_dict(TrainConfig(coupling="ot", ot_batch=64).to_dict()).ot_batch == 64


M = Sphere(2)
DATA = wrapped_mixture(M, n_train=200, n_val=40, n_test=40, seed=3)
SMALL = dict(batch_size=32, progress=False, val_size=0, hidden=8, steps=8)


def _trainer(**kw):
    torch.manual_seed(0)
    return Trainer(PlainFlow(M, hidden=8), DATA, TrainConfig(**{**SMALL, **kw}))


def test_trainer_draws_the_same_points_re_paired_at_lower_cost():
    ind, ot = _trainer().draw(), _trainer(coupling="ot").draw()
    assert torch.equal(ind[0], ot[0]) and torch.equal(ind[2], ot[2])  # x0 and t: the same stream
    key = lambda x: sorted(map(tuple, x.tolist()))  # noqa: E731
    assert key(ind[1]) == key(ot[1])  # the same data points, re-paired
    assert pairing_cost(M, ot[0], ot[1]) < 0.5 * pairing_cost(M, ind[0], ind[1])


@pytest.mark.parametrize("extra", [{}, {"ot_batch": 16, "ot_exact_max": 8}], ids=["exact", "sinkhorn"])
def test_ot_run_resumes_with_the_same_pairs(tmp_path, extra):
    ref = _trainer(coupling="ot", **extra)
    ref_hist = ref.fit()
    part = _trainer(coupling="ot", **extra)
    for _ in range(3):
        part.train_step()
    part.save(tmp_path / "c.safetensors")
    resumed = Trainer(PlainFlow(M, hidden=8), DATA, TrainConfig(**SMALL, coupling="ot", **extra),
                      resume=tmp_path / "c.safetensors")
    assert resumed.fit().loss == ref_hist.loss
    assert resumed.config.coupling == "ot"


def test_trainer_refuses_ot_on_a_manifold_without_distances():
    N = _NoDistance(2)
    data = wrapped_mixture(N, n_train=50, n_val=10, n_test=10, seed=0)
    with pytest.raises(ValueError, match=r"coupling 'ot' needs squared geodesic distances"):
        Trainer(PlainFlow(N, hidden=8), data, TrainConfig(**SMALL, coupling="ot"))


def test_command_line_records_the_coupling_and_refuses_bad_values(tmp_path, capsys):
    import json

    from gaugeflow.cli import main

    out = tmp_path / "run"
    assert main(["train", "--model", "plain", "--hidden", "8", "--steps", "2", "--batch-size", "32", "--val-size", "0",
                 "--coupling", "ot", "--ot-batch", "16", "--out", str(out)]) == 0
    stored = json.loads((out / "config.json").read_text())
    assert (stored["coupling"], stored["ot_batch"], stored["ot_exact_max"]) == ("ot", 16, 1024)
    capsys.readouterr()
    assert main(["train", "--coupling", "sinkhorn", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err == "gaugeflow train: error: config: coupling must be one of independent, ot, got 'sinkhorn'\n"
