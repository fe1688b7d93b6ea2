"""TensorGaugeFlow (docs/math.md §5.4; issue 18): reduction to GaugeFlow, gauge covariance, divergence,
normalisation, batch independence, the rank-r contraction, graded fields and l3 at initialisation, bad input."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from gaugeflow.algebra import so, so_crossed_module, string_lie2
from gaugeflow.manifolds import Euclidean, FlatTorus, Product, Sphere
from gaugeflow.models import GaugeFlow, HigherGaugeFlow, TensorGaugeFlow, count_parameters, tensor_contraction
from gaugeflow.models.gauge import folds
from gaugeflow.sampling import exact_divergence, log_prob
from gaugeflow.testing import check_gauge_covariance
from gaugeflow.training import rcfm_loss

F64 = torch.float64


def _points(M, n=16, dtype=F64, seed=0):
    return M.random_base(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _perturb_projection(model, seed=0):
    """Move ``W`` off its initialisation so ``Π`` is a generic linear map of the whole fibre."""
    with torch.no_grad():
        W = model.projection.weight
        W.add_(torch.randn(W.shape, generator=torch.Generator().manual_seed(seed), dtype=W.dtype))


# ------------------------------------------------------------------------------ r = 1 is GaugeFlow
@pytest.mark.parametrize("M, k", [(Sphere(2), None), (Euclidean(3), 5), (FlatTorus(2), 4)], ids=repr)
def test_rank_one_with_gaugeflows_weights_is_gaugeflow(M, k):
    torch.manual_seed(0)
    gauge = GaugeFlow(M, hidden=16, k=k).double()
    _perturb_projection(gauge)
    model = TensorGaugeFlow(M, rank=1, hidden=16, k=k).double()
    weights = {key: v for key, v in gauge.state_dict().items() if not key.startswith("alpha.")}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    assert unexpected == [] and all(key.startswith("alpha.") for key in missing)
    model.alpha.load_time_weight(gauge.alpha)  # α(x, t) restricted to depend on t only
    x, t = _points(M, 64), torch.rand(64, generator=torch.Generator().manual_seed(1), dtype=F64)
    with torch.no_grad():
        ref, got = gauge(x, t), model(x, t)
        assert (got - ref).abs().max() <= 1e-6
        h = gauge.inputs(x, t)[0]
        term = gauge.gauge_term(x, h)
        assert term.abs().max() > 1e-3 and (model.gauge_term(x, h) - term).abs().max() <= 1e-12 * term.abs().max()
        assert torch.allclose(model.alpha(x, t), gauge.alpha(t[:, None]), atol=1e-14)


def test_alpha_depends_on_x_and_t_and_starts_away_from_zero():
    M = Sphere(2)
    torch.manual_seed(0)
    model = TensorGaugeFlow(M, rank=2, hidden=8).double()
    x, t = _points(M, 32), torch.full((32,), 0.5, dtype=F64)
    a = model.alpha(x, t)
    assert a.shape in ((32,), (32, 1)) and a.min() > 0.3
    assert a.std() > 1e-3  # varies with x at a fixed t
    assert (model.alpha(x[:1], 0.1) - model.alpha(x[:1], 0.9)).abs().max() > 1e-4  # and with t
    with pytest.raises(ValueError, match="shape"):
        model.alpha(x[0], 0.5)


# ------------------------------------------------------------------------------ the rank-r contraction
def _dense_reference(A, a, d):
    """Build the dense symmetrised ``[B, D^r, n]`` field and contract it with ``d^{⊗r}`` (tests only)."""
    B, D, S, n = A.shape
    r = a.shape[1] + 1
    dense = torch.zeros((B,) + (D,) * r + (n,), dtype=A.dtype)
    for mus in itertools.product(range(D), repeat=r):
        w = torch.ones(B, S, dtype=A.dtype)
        for j, mu in enumerate(mus[:-1]):
            w = w * a[:, j, :, mu]
        dense[(slice(None),) + mus] = (w[:, :, None] * A[:, mus[-1]]).sum(1)
    sym = sum(dense.permute(0, *[1 + p for p in perm], r + 1) for perm in itertools.permutations(range(r)))
    sym = sym / math.factorial(r)
    for mus in itertools.permutations(range(r)):  # the symmetrised field is totally symmetric
        assert torch.allclose(sym.permute(0, *[1 + p for p in mus], r + 1), sym, atol=1e-12)
    out = sym
    for _ in range(r):
        out = (out * d.view(B, D, *([1] * (out.dim() - 2)))).sum(1)
    return out


@pytest.mark.parametrize("r, S, D", [(1, 1, 3), (2, 2, 3), (3, 2, 2), (3, 1, 4)])
def test_contraction_equals_the_dense_symmetric_field(r, S, D):
    g = torch.Generator().manual_seed(r * 10 + S)
    B, n = 5, 3
    A, a = torch.randn(B, D, S, n, generator=g, dtype=F64), torch.randn(B, r - 1, S, D, generator=g, dtype=F64)
    d = torch.randn(B, D, generator=g, dtype=F64)
    assert torch.allclose(tensor_contraction(A, a, d), _dense_reference(A, a, d), atol=1e-12)
    # homogeneous of degree r in d
    assert torch.allclose(tensor_contraction(A, a, 2.0 * d), 2.0**r * tensor_contraction(A, a, d), atol=1e-12)


@pytest.mark.parametrize("build", [
    lambda M: TensorGaugeFlow(M, rank=2, hidden=8),
    lambda M: TensorGaugeFlow(M, rank=3, hidden=8, k=6),  # S·dim so(6) = 45 > 8: folded
    lambda M: TensorGaugeFlow(M, rank=2, hidden=8, algebra=so_crossed_module(3)),
    lambda M: TensorGaugeFlow(M, rank=2, hidden=8, algebra=string_lie2(3, 2.0), n_fields=2),
], ids=["so3", "so6-folded", "crossed", "string"])
def test_gauge_term_equals_contract_of_fields_in_value_and_gradient(build):
    M = Sphere(2)
    torch.manual_seed(0)
    model = build(M).double()
    _perturb_projection(model)
    x = _points(M, 12)
    h, _ = model.inputs(x, 0.4)
    fields = model.fields(x, h)
    assert isinstance(fields, tuple) and len(fields) == 4
    ref, got = model.contract(x, *fields), model.gauge_term(x, h)
    assert torch.allclose(got, ref, atol=1e-14) and ref.abs().max() > 1e-5
    params = [p for p in model.parameters()]
    cot = torch.randn_like(ref)
    for ga, gb in zip(torch.autograd.grad(got, params, cot, allow_unused=True),
                      torch.autograd.grad(ref, params, cot, allow_unused=True)):
        assert (ga is None) == (gb is None) and (ga is None or torch.allclose(ga, gb, atol=1e-10))


# ------------------------------------------------------------------------------ gauge covariance
COV_MANIFOLDS = [Sphere(2), FlatTorus(2), Euclidean(4), Product(Sphere(2), FlatTorus(1))]


@pytest.mark.parametrize("M", COV_MANIFOLDS, ids=repr)
@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("algebra", ["so", "crossed"])
def test_gauge_covariance(M, rank, algebra):
    torch.manual_seed(rank)
    alg = None if algebra == "so" else so_crossed_module(max(M.ambient_dim, 3))
    model = TensorGaugeFlow(M, rank=rank, algebra=alg, hidden=8)
    _perturb_projection(model)
    report = check_gauge_covariance(model, n=32)
    assert report.passed and report.field_change > 1e-3 and report.gauge_scale > 1e-5, str(report)


def test_gauge_covariance_check_detects_a_non_covariant_field(monkeypatch):
    # a velocity that reads a fibre coordinate directly (not through W) is not gauge covariant
    M = Sphere(2)
    torch.manual_seed(0)
    model = TensorGaugeFlow(M, rank=2, hidden=8)
    original = TensorGaugeFlow._act

    def leaky(self, x, xi, T):
        return original(self, x, xi, T) + M.proju(x, xi[:, :3])

    monkeypatch.setattr(TensorGaugeFlow, "_act", leaky)
    assert not check_gauge_covariance(model, n=16, raise_on_failure=False).passed


# ------------------------------------------------------------------------------ divergence and density
@pytest.mark.parametrize("M", [FlatTorus(2), Euclidean(3)], ids=repr)
@pytest.mark.parametrize("algebra", [None, "crossed"])
def test_exact_divergence_matches_finite_differences(M, algebra):
    torch.manual_seed(0)
    alg = so_crossed_module(3) if algebra else None
    model = TensorGaugeFlow(M, rank=2, hidden=8, algebra=alg).double()
    _perturb_projection(model)
    x = _points(M, 8)
    field = lambda y: model(y, 0.6)  # noqa: E731
    _, div = exact_divergence(field, M, x)
    fd = torch.zeros(x.shape[0], dtype=F64)
    with torch.no_grad():
        for i in range(x.shape[1]):  # flat manifolds: the divergence is the ambient Jacobian trace
            e = torch.zeros_like(x)
            e[:, i] = 1e-5
            fd += (field(x + e)[:, i] - field(x - e)[:, i]) / 2e-5
    assert float((div - fd).abs().max()) < 1e-7 and float(div.abs().max()) > 1e-3


@pytest.mark.slow
def test_untrained_model_on_the_sphere_integrates_to_one():
    torch.manual_seed(0)
    model = TensorGaugeFlow(Sphere(2), rank=2, hidden=32)
    x = _points(Sphere(2), 8000, dtype=torch.float32)
    value = 4 * math.pi * float(log_prob(model, x, steps=16).double().exp().mean())
    assert abs(value - 1) < 0.05, value


# ------------------------------------------------------------------------------ batch independence
@pytest.mark.parametrize("build", [
    lambda M: TensorGaugeFlow(M, rank=2, hidden=16),
    lambda M: TensorGaugeFlow(M, rank=3, hidden=16, k=8),  # folded
    lambda M: TensorGaugeFlow(M, rank=2, hidden=16, algebra=so_crossed_module(4)),
    lambda M: TensorGaugeFlow(M, rank=2, hidden=16, algebra=string_lie2(3), n_fields=2),
], ids=["so3", "so8-folded", "crossed", "string"])
def test_a_points_velocity_does_not_depend_on_its_batch(build):
    M = Sphere(2)
    torch.manual_seed(0)
    model = build(M).double()
    _perturb_projection(model)
    x, t = _points(M, 1025, seed=3), torch.rand(1025, generator=torch.Generator().manual_seed(4), dtype=F64)
    with torch.no_grad():
        alone = model(x[:16], t[:16])
        scale = max(1.0, float(alone.abs().max()))
        for n in (1024, 1025, 17):
            assert (model(x[:n], t[:n])[:16] - alone).abs().max() <= 1e-15 * scale
        single = torch.cat([model(x[i:i + 1], t[i:i + 1]) for i in range(4)])
        assert (single - alone[:4]).abs().max() <= 1e-15 * scale


# ------------------------------------------------------------------------------ graded fields and l3
@pytest.mark.parametrize("cls", [HigherGaugeFlow, TensorGaugeFlow])
def test_string_l3_changes_the_velocity_at_initialisation(cls):
    M = Sphere(2)
    x = _points(M, 32)

    def build(kappa, n_fields, identity_start=False):
        torch.manual_seed(0)
        model = cls(M, algebra=string_lie2(3, kappa), n_fields=n_fields, hidden=16).double()  # Π as initialised
        if identity_start:  # the start before issue 18: W = I keeps L0 and drops the centre l3 writes
            with torch.no_grad():
                model.projection.weight.copy_(torch.eye(3, 4, dtype=F64))
        return model

    with torch.no_grad():
        distinct = (build(1.0, 2)(x, 0.5) - build(3.0, 2)(x, 0.5)).abs().max()
        reused = (build(1.0, 1)(x, 0.5) - build(3.0, 1)(x, 0.5)).abs().max()
        old = (build(1.0, 2, True)(x, 0.5) - build(3.0, 2, True)(x, 0.5)).abs().max()
    assert distinct > 1e-4  # distinct fields: l3 reaches V through Π's initial W
    assert reused < 1e-14 and old < 1e-14  # l3(B, v, v) = 0 by antisymmetry; W = I never reads the centre


def test_projection_reads_the_centre_only_for_algebras_with_l3():
    M = Sphere(2)
    W = TensorGaugeFlow(M, algebra=string_lie2(3), n_fields=2, hidden=8).projection.weight
    assert torch.equal(W[:, :3], torch.eye(3)) and torch.equal(W[:, 3], torch.tensor([1.0, 0.0, 0.0]))
    Wc = HigherGaugeFlow(M, hidden=8).projection.weight
    assert torch.equal(Wc, torch.eye(3, 7))  # the crossed module keeps the identity start


def test_several_graded_fields_are_distinct_networks():
    M = Sphere(2)
    model = TensorGaugeFlow(M, rank=2, algebra=string_lie2(3), n_fields=2, hidden=8).double()
    x = _points(M, 4)
    _, _, _, slots = model.fields(x, model.inputs(x, 0.2)[0])
    assert model.n_fields == 2 and len(slots) == 2 and not torch.allclose(slots[0], slots[1])
    single = TensorGaugeFlow(M, rank=2, algebra=string_lie2(3), hidden=8)
    assert count_parameters(model) - count_parameters(single) == count_parameters(model.graded_fields[1])


# ------------------------------------------------------------------------------ parameters, training, errors
def test_parameter_count_follows_the_parametrisation():
    M, H = Sphere(2), 16
    D, n = 3, 3

    def mlp(out):
        return (4 * H + H) + (H * H + H) + (H * out + out)

    for r, S in [(1, 1), (2, 2), (3, 2), (4, 1)]:
        model = TensorGaugeFlow(M, rank=r, channels=S, hidden=H)
        expected = mlp(D) * 2 + mlp(D * S * n) + mlp(3) + (4 * 16 + 16 + 17) + D * 3
        expected += mlp((r - 1) * S * D) if r > 1 else 0
        assert count_parameters(model) == expected, (r, S)
    assert count_parameters(TensorGaugeFlow(M, rank=1, hidden=H)) == count_parameters(GaugeFlow(M, hidden=H)) + 3 * 16


def test_rcfm_loss_reaches_every_parameter():
    M = Sphere(2)
    for model in (TensorGaugeFlow(M, rank=3, hidden=8), TensorGaugeFlow(M, rank=2, hidden=8, k=6),
                  TensorGaugeFlow(M, rank=2, hidden=8, algebra=string_lie2(3), n_fields=2)):
        rcfm_loss(model, _points(M, 8, torch.float32), _points(M, 8, torch.float32, seed=1)).backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_bad_input_says_what_was_expected():
    M = Sphere(2)
    for rank in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="rank"):
            TensorGaugeFlow(M, rank=rank)
    with pytest.raises(TypeError, match="so\\(k\\) or a gaugeflow LInfinityAlgebra"):
        TensorGaugeFlow(M, algebra="so3")
    with pytest.raises(TypeError, match="so\\(k\\) or a gaugeflow LInfinityAlgebra"):
        TensorGaugeFlow(M, algebra=torch.eye(3))
    with pytest.raises(ValueError, match="not both"):
        TensorGaugeFlow(M, algebra=so(3), k=3)
    with pytest.raises(ValueError, match="n_fields"):
        TensorGaugeFlow(M, n_fields=2)  # so(k) acts on one vector field
    with pytest.raises(ValueError, match="n_fields"):
        TensorGaugeFlow(M, algebra=so_crossed_module(3), n_fields=2)
    with pytest.raises(ValueError, match="channels"):
        TensorGaugeFlow(M, rank=1, channels=2)
    with pytest.raises(ValueError, match="coefficients"):
        TensorGaugeFlow(M, algebra=string_lie2(3), c=(1.0, 1.0))
    with pytest.raises(ValueError, match="k"):
        TensorGaugeFlow(Euclidean(1))
    with pytest.raises(TypeError, match="Manifold"):
        TensorGaugeFlow("sphere")
    model = TensorGaugeFlow(M, rank=2, hidden=8)
    with pytest.raises(ValueError):
        model(torch.randn(4, 4), 0.5)  # wrong ambient dimension
    assert folds(model.connection, model.channels * 3) is False


# ------------------------------------------------------------------------------ configs and the command line
def test_config_and_registry_build_a_tensor_gauge_flow():
    from gaugeflow.app import build_model, check_names
    from gaugeflow.training import TrainConfig

    model = build_model(TrainConfig(model="tensor-gauge", rank=3, hidden=8))
    assert isinstance(model, TensorGaugeFlow) and model.rank == 3 and model.channels == 3
    assert build_model(TrainConfig(model="tensor-gauge", hidden=8)).rank == 2  # the model's default
    assert TrainConfig(model="tensor-gauge", rank=2).model_spec()["rank"] == 2
    with pytest.raises(ValueError, match="rank applies to model tensor-gauge"):
        check_names(TrainConfig(model="gauge", rank=2))
    with pytest.raises(ValueError, match="rank must be >= 1"):
        TrainConfig(model="tensor-gauge", rank=0)


def test_command_line_trains_a_tensor_gauge_flow(tmp_path, capsys):
    import json

    from gaugeflow.cli import main

    out = tmp_path / "run"
    code = main(["train", "--manifold", "sphere", "--model", "tensor-gauge", "--rank", "3", "--hidden", "8",
                 "--steps", "3", "--batch-size", "16", "--val-size", "0", "--device", "cpu", "--no-progress",
                 "--out", str(out)])
    assert code == 0 and json.loads((out / "config.json").read_text())["rank"] == 3
    assert main(["train", "--model", "plain", "--rank", "2", "--steps", "1", "--out", str(tmp_path / "bad")]) == 2
    assert "rank applies to model tensor-gauge" in capsys.readouterr().err
