"""Flow models (docs/math.md §5; issue 4, acceptance on models and gauge covariance)."""
import math

import pytest
import torch
from torch import nn

from gaugeflow.algebra import so, so_crossed_module, string_lie2
from gaugeflow.manifolds import Euclidean, FlatTorus, Hyperbolic, Product, Sphere
from gaugeflow.models import GaugeFlow, HigherGaugeFlow, PlainFlow, count_parameters, gauge_contraction
from gaugeflow.models import higher, higher_gauge_contraction
from gaugeflow.models.crossed_module import crossed_module_features, crossed_module_projected, feature_form_pays
from gaugeflow.models.gauge import contract_direction, folds
from gaugeflow.models.networks import MLP
from gaugeflow.sampling.divergence import exact_divergence
from gaugeflow.testing import check_gauge_covariance, random_rotation
from gaugeflow.training import rcfm_loss

MANIFOLDS = [Euclidean(3), Sphere(2), FlatTorus(2), Hyperbolic(2), Product(Sphere(2), FlatTorus(1))]
MODELS = [PlainFlow, GaugeFlow, HigherGaugeFlow]


def _points(M, n=16, dtype=torch.float64, seed=0):
    return M.random_base(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _assert_parameter_grads_match(model, got, ref, tol):
    """``got`` and ``ref`` pull one random cotangent back to the same parameter gradients (unused alike)."""
    params = [p for p in model.parameters() if p.requires_grad]
    cot = torch.randn_like(got)
    for a, b in zip(torch.autograd.grad(got, params, cot, allow_unused=True),
                    torch.autograd.grad(ref, params, cot, allow_unused=True)):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, atol=tol * (1 + float(b.abs().max()))), float((a - b).abs().max())


def _perturb_projection(model, seed=0):
    """Move ``W`` away from its identity initialisation so ``Π`` is a generic linear map."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        W = model.projection.weight
        W.add_(torch.randn(W.shape, generator=g, dtype=W.dtype))


@pytest.mark.parametrize("M", MANIFOLDS, ids=repr)
@pytest.mark.parametrize("cls", MODELS)
def test_models_give_tangent_vectors_on_every_manifold(M, cls):
    torch.manual_seed(0)
    model = cls(M, hidden=16).double()
    x = _points(M)
    for t in (0.3, torch.tensor(0.3, dtype=torch.float64), torch.full((16,), 0.3, dtype=torch.float64)):
        v = model(x, t).detach()
        assert v.shape == x.shape and torch.isfinite(v).all()
        M.check_tangent(x, v)
    assert torch.equal(model(x, 0.3), model(x, torch.full((16,), 0.3, dtype=torch.float64)))
    assert model.manifold is M


@pytest.mark.parametrize("cls", MODELS)
def test_model_front_door(cls):
    M = Sphere(2)
    model = cls(M, hidden=8)
    x = _points(M, 4, torch.float32)
    with pytest.raises(ValueError, match="shape"):
        model(x, torch.rand(3))
    with pytest.raises(TypeError):
        model(x, "0.5")
    with pytest.raises(ValueError, match="last axis"):
        model(torch.zeros(4, 2), 0.5)
    with pytest.raises(ValueError, match="shape"):
        model(x[0], 0.5)
    with pytest.raises(TypeError, match="Manifold"):
        cls("sphere")
    with pytest.raises(ValueError, match="hidden"):
        cls(M, hidden=0)


def test_parameter_counts_and_free_width():
    M = Sphere(2)  # D = 3, features 3, inputs 4

    def mlp(i, o, h):
        return (i * h + h) + (h * h + h) + (h * o + o)

    alpha = (1 * 16 + 16) + (16 + 1)
    assert count_parameters(PlainFlow(M, hidden=32)) == mlp(4, 3, 32)
    k, dim_g = 3, 3
    expected = mlp(4, 3, 32) + mlp(4, 3 * dim_g, 32) + mlp(4, 3, 32) + mlp(4, k, 32) + alpha + 3 * k
    assert count_parameters(GaugeFlow(M, hidden=32)) == expected
    dim_l = 7  # so_crossed_module(3): (3, 4)
    expected = mlp(4, 3, 32) + mlp(4, 3 * dim_l, 32) + mlp(4, 3, 32) + mlp(4, dim_l, 32) + alpha + 3 * dim_l
    assert count_parameters(HigherGaugeFlow(M, hidden=32)) == expected
    widths = [count_parameters(PlainFlow(M, hidden=h)) for h in (16, 64, 91)]
    assert widths == sorted(widths) and len(set(widths)) == 3
    model = GaugeFlow(M, hidden=8)
    model.velocity.requires_grad_(False)
    assert count_parameters(model) == count_parameters(GaugeFlow(M, hidden=8)) - mlp(4, 3, 8)
    assert count_parameters(model, trainable_only=False) == count_parameters(GaugeFlow(M, hidden=8))


def test_networks_follow_the_papers():
    model = GaugeFlow(FlatTorus(2), hidden=24, k=4)
    layers = list(model.connection.net)
    assert [type(m) for m in layers] == [nn.Linear, nn.SiLU, nn.Linear, nn.SiLU, nn.Linear]
    assert layers[0].in_features == 2 * 2 + 1 and layers[2].in_features == 24 and layers[-1].out_features == 2 * 6
    assert [m.out_features for m in model.alpha.net if isinstance(m, nn.Linear)] == [16, 1]
    assert model.projection.weight.shape == (2, 4) and model.section.out_layer.out_features == 4


def test_torus_models_are_periodic():
    M = FlatTorus(2)
    torch.manual_seed(0)
    for cls in MODELS:
        model = cls(M, hidden=16).double()
        x = _points(M)
        assert torch.allclose(model(x, 0.2), model(x + 2 * math.pi, 0.2), atol=1e-12)


def test_gauge_contraction_matches_the_slow_reference():
    g = so(4)
    gen = torch.Generator().manual_seed(0)
    A, d, v = (torch.randn(*s, generator=gen, dtype=torch.float64) for s in ((5, 3, 6), (5, 3), (5, 4)))
    T = g.basis(dtype=torch.float64)  # [dim, k, k]: the reference materialises it, the model must not
    ref = torch.einsum("bma,bm,aij,bj->bi", A, d, T, v)
    assert torch.allclose(gauge_contraction(g, A, d, v), ref, atol=1e-13)


def test_higher_contraction_matches_the_crossed_module_formula():
    # docs/math.md §5.3: l1(B) = B1,  l2(B, v̂) = [B0, V0] ⊕ ([B0, V1] + [B1, V0], 0)
    k = 3
    L, g = so_crossed_module(k), so(k)
    gen = torch.Generator().manual_seed(1)
    A = torch.randn(4, 2, L.dim, generator=gen, dtype=torch.float64)
    d = torch.randn(4, 2, generator=gen, dtype=torch.float64)
    V = torch.randn(4, L.dim, generator=gen, dtype=torch.float64)
    B = torch.einsum("bml,bm->bl", A, d)
    n = g.dim
    B0, B1, V0, V1 = B[:, :n], B[:, n:2 * n], V[:, :n], V[:, n:2 * n]

    def br(x, y):
        X, Y = g.hat(x), g.hat(y)
        return g.vee(X @ Y - Y @ X)

    expected = torch.cat([B1 + 0.5 * br(B0, V0), 0.5 * (br(B0, V1) + br(B1, V0)), torch.zeros(4, 1, dtype=B.dtype)], -1)
    got = higher_gauge_contraction(L, torch.tensor([1.0, 0.5], dtype=torch.float64), A, d, [V])
    assert torch.allclose(got, expected, atol=1e-13)


@pytest.mark.parametrize("k, c", [(2, (1.0, 1.0)), (3, (0.5, 2.0)), (5, (1.0, 1.0))])
def test_fused_crossed_module_path_matches_the_generic_brackets(k, c):
    M = Sphere(2)
    torch.manual_seed(0)
    model = HigherGaugeFlow(M, hidden=8, k=k, c=c).double()
    _perturb_projection(model)
    x = _points(M, 8)
    h, _ = model.inputs(x, 0.4)
    A, d, slots = model.fields(x, h)
    fused = model.contract(x, A, d, slots)
    generic = model.projection(x, higher_gauge_contraction(model.algebra, model.c, A, d, slots))
    assert torch.allclose(fused, generic, atol=1e-12), float((fused - generic).abs().max())
    W = model.projection.weight
    B, V = torch.randn(8, model.algebra.dim, dtype=W.dtype), torch.randn(8, model.algebra.dim, dtype=W.dtype)
    ref = (c[0] * model.algebra.bracket(B) + c[1] * model.algebra.bracket(B, V)) @ W.T
    assert torch.allclose(crossed_module_projected(model.algebra, model.c, B, V, W), ref, atol=1e-12)


@pytest.mark.parametrize("k, D", [(2, 3), (3, 3), (4, 2), (6, 5), (3, 9)])  # (3, 9): more outputs than samples
def test_crossed_module_brackets_match_the_algebra_brackets_in_value_and_gradient(k, D):
    # the brackets route must equal W(c1 l1(B) + c2 l2(B, V)) with its gradients of every kind
    L = so_crossed_module(k)
    gen = torch.Generator().manual_seed(k * 10 + D)
    B, V = (torch.randn(7, L.dim, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(2))
    W = torch.randn(D, L.dim, generator=gen, dtype=torch.float64, requires_grad=True)
    c = torch.tensor([0.6, 1.7], dtype=torch.float64)

    def kernel(B, V, W):
        return crossed_module_projected(L, c, B, V, W)

    def generic(B, V, W):
        return (c[0] * L.bracket(B) + c[1] * L.bracket(B, V)) @ W.T

    got, ref = kernel(B, V, W), generic(B, V, W)
    assert torch.allclose(got, ref, atol=1e-12), float((got - ref).abs().max())
    cot = torch.randn(7, D, generator=gen, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(got, (B, V, W), cot, retain_graph=True),
                    torch.autograd.grad(ref, (B, V, W), cot, retain_graph=True)):
        assert torch.allclose(a, b, atol=1e-11), float((a - b).abs().max())
    assert torch.autograd.gradgradcheck(kernel, (B, V, W))
    # batched cotangents (the exact divergence), forward mode (jvp) and vmap agree with the generic brackets
    cots = torch.randn(3, 7, D, generator=gen, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(got, (B, V, W), cots, is_grads_batched=True),
                    torch.autograd.grad(ref, (B, V, W), cots, is_grads_batched=True)):
        assert torch.allclose(a, b, atol=1e-11), float((a - b).abs().max())
    tangents = tuple(torch.randn(t.shape, generator=gen, dtype=torch.float64) for t in (B, V, W))
    primals = tuple(t.detach() for t in (B, V, W))
    assert torch.allclose(torch.func.jvp(kernel, primals, tangents)[1], torch.func.jvp(generic, primals, tangents)[1], atol=1e-11)
    stacked = torch.stack([primals[0], tangents[0]])
    assert torch.allclose(torch.func.vmap(kernel, in_dims=(0, None, None))(stacked, *primals[1:]),
                          torch.stack([generic(t, *primals[1:]) for t in stacked]), atol=1e-11)


def test_crossed_module_projected_takes_any_strides():
    # column-major and strided inputs give the same values as contiguous ones
    L = so_crossed_module(8)
    gen = torch.Generator().manual_seed(5)
    B = torch.randn(L.dim, 12, generator=gen, dtype=torch.float64).T  # column-major [12, dim L]
    V = torch.randn(12, 2 * L.dim, generator=gen, dtype=torch.float64)[:, ::2]  # every other column
    W = torch.randn(3, L.dim, generator=gen, dtype=torch.float64)
    c = torch.tensor([0.4, 1.1], dtype=torch.float64)
    ref = (c[0] * L.bracket(B) + c[1] * L.bracket(B, V)) @ W.T
    assert torch.allclose(crossed_module_projected(L, c, B, V, W), ref, atol=1e-12)


@pytest.mark.parametrize("k, D, H, Hf", [(2, 3, 3, 4), (5, 3, 4, 3), (4, 2, 6, 5)])
def test_feature_form_equals_the_brackets_in_value_and_gradient(k, D, H, Hf):
    # W(c1 l1(B) + c2 l2(B, V)) from the hidden features must equal the brackets on A[d] and V,
    # with gradients for every input and every weight, and second derivatives (exact divergence)
    L = so_crossed_module(k)
    gen = torch.Generator().manual_seed(k + 10 * D + 100 * H)
    conn, field = nn.Linear(H, D * L.dim).double(), nn.Linear(Hf, L.dim).double()
    with torch.no_grad():
        for p in (*conn.parameters(), *field.parameters()):
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
    z, d, f = (torch.randn(6, n, generator=gen, dtype=torch.float64, requires_grad=True) for n in (H, D, Hf))
    W = torch.randn(D, L.dim, generator=gen, dtype=torch.float64, requires_grad=True)
    c = torch.tensor([0.6, 1.7], dtype=torch.float64)
    got = crossed_module_features(L, c, z, d, f, conn, field, W)
    A = conn(z).unflatten(-1, (D, L.dim))
    ref = (c[0] * L.bracket(contract_direction(A, d)) + c[1] * L.bracket(contract_direction(A, d), field(f))) @ W.T
    assert torch.allclose(got, ref, atol=1e-11 * float(ref.detach().abs().max())), float((got - ref).detach().abs().max())
    inputs = (z, d, f, W, conn.weight, conn.bias, field.weight, field.bias)
    cot = torch.randn(6, D, generator=gen, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(got, inputs, cot), torch.autograd.grad(ref, inputs, cot)):
        assert torch.allclose(a, b, atol=1e-10 * float(b.abs().max())), float((a - b).abs().max())
    assert torch.autograd.gradgradcheck(lambda z, d, f, W: crossed_module_features(L, c, z, d, f, conn, field, W), (z, d, f, W))


def test_feature_form_rule_counts_multiply_adds_on_shapes_only():
    # the rule reads (D, widths, k, dim L) and nothing else: no batch size, no device
    import inspect

    assert list(inspect.signature(feature_form_pays).parameters) == ["D", "H", "Hf", "k", "dim_l"]

    def pays(D, w, k):
        return feature_form_pays(D, w, w, k, so_crossed_module(k).dim)

    # S² at width 64: the feature form from k = 12 on; ℝ^k keeps the brackets (D² (w+1)² grows with D)
    assert [k for k in range(3, 33) if pays(3, 64, k)] == list(range(12, 33))
    assert not any(pays(k, 64, k) for k in (3, 8, 16, 32))
    assert pays(3, 256, 32) and not pays(3, 256, 16) and not pays(3, 128, 16)
    assert pays(3, 32, 9) and not pays(3, 32, 8)
    # the counts themselves: feature D²(H+1)(Hf+1) against (D·H + Hf)·dim L + 3k³ + 2k²D
    assert feature_form_pays(3, 64, 64, 16, 241) == (9 * 65 * 65 < 256 * 241 + 3 * 16**3 + 2 * 256 * 3)


def test_model_takes_the_feature_form_and_agrees_with_contract(monkeypatch):
    # S², k = 16, width 8, 64 points: the model's gauge term goes through the feature form; its value,
    # parameter gradients and forward-mode derivative equal the reference route's
    M = Sphere(2)
    torch.manual_seed(4)
    model = HigherGaugeFlow(M, hidden=8, k=16).double()
    _perturb_projection(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = _points(M, 64)
    h, _ = model.inputs(x, 0.4)
    calls = []
    original = higher.crossed_module_features
    monkeypatch.setattr(higher, "crossed_module_features", lambda *a: calls.append(1) or original(*a))
    got = model.gauge_term(x, h)
    assert calls == [1]
    ref = model.contract(x, *model.fields(x, h))
    assert torch.allclose(got, ref, atol=1e-11 * float(ref.detach().abs().max())), float((got - ref).detach().abs().max())
    _assert_parameter_grads_match(model, got, ref, 1e-10)
    v = M.proju(x, _points(M, 64, seed=9))
    _, tangent = torch.func.jvp(lambda y: model(y, 0.4), (x,), (v,))
    eps = 1e-6
    with torch.no_grad():
        fd = (model(x + eps * v, 0.4) - model(x - eps * v, 0.4)) / (2 * eps)
    assert torch.allclose(tangent, fd, atol=1e-6 * (1 + float(fd.abs().max()))), float((tangent - fd).abs().max())


def test_exact_divergence_through_the_feature_form(monkeypatch):
    # the likelihood's exact divergence (batched cotangents over a tangent frame) through the feature
    # form equals the one through the brackets
    M = Sphere(2)
    torch.manual_seed(5)
    model = HigherGaugeFlow(M, hidden=16, k=16).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = _points(M, 256)
    assert model._feature_form()
    v_feature, div_feature = exact_divergence(lambda y: model(y, 0.3), M, x)
    monkeypatch.setattr(higher, "feature_form_pays", lambda *a: False)
    v_brackets, div_brackets = exact_divergence(lambda y: model(y, 0.3), M, x)
    assert torch.allclose(v_feature, v_brackets, atol=1e-12)
    assert torch.allclose(div_feature, div_brackets, atol=1e-12) and float(div_brackets.abs().max()) > 1e-2


def test_contract_direction_gradients_batched_and_second_order():
    gen = torch.Generator().manual_seed(3)
    A = torch.randn(5, 3, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    d = torch.randn(5, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(contract_direction(A, d), torch.einsum("bmn,bm->bn", A, d), atol=1e-14)
    assert torch.autograd.gradcheck(contract_direction, (A, d))
    assert torch.autograd.gradgradcheck(contract_direction, (A, d))
    cots = torch.randn(4, 5, 7, generator=gen, dtype=torch.float64)
    gA, gd = torch.autograd.grad(contract_direction(A, d), (A, d), cots, is_grads_batched=True)
    for r in range(4):
        eA, ed = torch.autograd.grad(torch.einsum("bmn,bm->bn", A, d), (A, d), cots[r])
        assert torch.allclose(gA[r], eA, atol=1e-14) and torch.allclose(gd[r], ed, atol=1e-14)
    with pytest.raises(ValueError, match="expected A"):
        contract_direction(A, d[:, :2])


@pytest.mark.parametrize("cls, k, dim, hidden", [(GaugeFlow, 5, 3, 8), (HigherGaugeFlow, 3, 3, 8), (HigherGaugeFlow, 6, 6, 8),
                                                 (HigherGaugeFlow, 13, 3, 32), (HigherGaugeFlow, 12, 3, 8)])
def test_forward_mode_derivative_of_every_gauge_route(cls, k, dim, hidden):
    # torch.func.jvp through the model (contraction, folded layer, the crossed-module brackets and
    # the feature form) against a central finite difference in float64
    M = Euclidean(dim)
    torch.manual_seed(2)
    model = cls(M, hidden=hidden, k=k).double()
    _perturb_projection(model)
    x, v = _points(M, 5), _points(M, 5, seed=7)
    _, tangent = torch.func.jvp(lambda y: model(y, 0.3), (x,), (v,))
    eps = 1e-6
    fd = (model(x + eps * v, 0.3) - model(x - eps * v, 0.3)) / (2 * eps)
    assert torch.allclose(tangent, fd, atol=1e-7), float((tangent - fd).abs().max())


def test_mlp_contracted_equals_contracting_the_output():
    torch.manual_seed(0)
    net = MLP(4, 3 * 11, hidden=5).double()
    h = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    d = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    ref = (net(h).unflatten(-1, (3, 11)) * d.unsqueeze(-1)).sum(-2)
    got = net.contracted(h, d)
    assert torch.allclose(got, ref, atol=1e-13)
    assert torch.autograd.gradcheck(lambda h, d: net.contracted(h, d), (h, d))
    with torch.no_grad():  # the in-place SiLU path gives the same numbers
        assert torch.allclose(net.contracted(h, d), ref, atol=1e-13)
    with pytest.raises(ValueError, match="dividing 33"):
        net.contracted(h, d[:, :2])


@pytest.mark.parametrize("cls, k, hidden", [(GaugeFlow, 5, 4), (GaugeFlow, 5, 16), (HigherGaugeFlow, 4, 8),
                                            (HigherGaugeFlow, 4, 32)])
def test_folded_gauge_term_equals_the_unfolded_path(cls, k, hidden):
    # A[d] folded into the connection's output layer (dim > hidden) must change nothing but speed
    M = Sphere(2)
    torch.manual_seed(1)
    model = cls(M, hidden=hidden, k=k).double()
    _perturb_projection(model)
    dim = model.group.dim if cls is GaugeFlow else model.algebra.dim
    assert folds(model.connection, dim) == (dim > hidden)
    x = _points(M, 9)
    h, _ = model.inputs(x, 0.6)
    values = model.fields(x, h)
    unfolded = model.contract(x, *values)
    folded = model.gauge_term(x, h)
    assert torch.allclose(folded, unfolded, atol=1e-12), float((folded - unfolded).abs().max())
    _assert_parameter_grads_match(model, folded, unfolded, 1e-11)


def test_no_basis_tensor_in_the_forward_pass(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the [dim g, k, k] basis must not be built in a forward pass")

    monkeypatch.setattr(so, "basis", forbidden)
    monkeypatch.setattr(so, "structure_constants", forbidden)
    M = Sphere(2)
    for model in (GaugeFlow(M, hidden=8, k=5), HigherGaugeFlow(M, hidden=8, k=4),
                  HigherGaugeFlow(M, algebra=string_lie2(4, 1.5), n_fields=2, hidden=8)):
        x0, x1 = _points(M, 8, torch.float32), _points(M, 8, torch.float32, seed=1)
        rcfm_loss(model, x0, x1).backward()
        assert all(p.grad is not None for p in model.parameters())


def test_string_algebra_l3_needs_distinct_fields():
    M = Sphere(2)
    x = _points(M)

    def build(kappa, n_fields):
        torch.manual_seed(0)
        model = HigherGaugeFlow(M, algebra=string_lie2(3, kappa), n_fields=n_fields, hidden=16).double()
        _perturb_projection(model)  # the identity W ignores L1 = ℝ, where l3 lands
        return model

    # one field reused: l3(B, v, v) = κ⟨B0, [v0, v0]⟩ = 0, so κ has no effect
    assert torch.allclose(build(1.0, 1)(x, 0.5), build(5.0, 1)(x, 0.5), atol=1e-14)
    # distinct fields: l3 contributes
    assert not torch.allclose(build(1.0, 2)(x, 0.5), build(5.0, 2)(x, 0.5), atol=1e-6)


def test_higher_gauge_flow_validates_its_configuration():
    M = Sphere(2)
    with pytest.raises(ValueError, match="n_fields"):
        HigherGaugeFlow(M, n_fields=2)  # the crossed module has m_max = 2: one slot
    with pytest.raises(ValueError, match="coefficients"):
        HigherGaugeFlow(M, c=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="not both"):
        HigherGaugeFlow(M, algebra=so_crossed_module(3), k=3)
    with pytest.raises(TypeError, match="LInfinityAlgebra"):
        HigherGaugeFlow(M, algebra=so(3))
    with pytest.raises(ValueError, match="k"):
        GaugeFlow(Euclidean(1))  # SO(1) is trivial: k defaults to D = 1
    assert HigherGaugeFlow(M, algebra=string_lie2(3)).m_max == 3 and HigherGaugeFlow(M).m_max == 2
    assert GaugeFlow(Euclidean(1), k=2).k == 2


COVARIANCE_CASES = [
    (Sphere(2), lambda M: GaugeFlow(M, hidden=16)),
    (Sphere(2), lambda M: GaugeFlow(M, hidden=16, k=5)),
    (Euclidean(4), lambda M: GaugeFlow(M, hidden=16)),
    (FlatTorus(3), lambda M: HigherGaugeFlow(M, hidden=16)),
    (Sphere(2), lambda M: HigherGaugeFlow(M, hidden=16, k=4)),
    (Hyperbolic(2), lambda M: HigherGaugeFlow(M, hidden=16)),
    (Product(Sphere(2), FlatTorus(1)), lambda M: GaugeFlow(M, hidden=16)),
    (Sphere(2), lambda M: HigherGaugeFlow(M, algebra=string_lie2(3, 2.0), n_fields=2, hidden=16)),
    (Sphere(2), lambda M: HigherGaugeFlow(M, hidden=8, k=16)),  # 64 points: the feature form
]


@pytest.mark.parametrize("M, build", COVARIANCE_CASES, ids=[f"{M}-{i}" for i, (M, _) in enumerate(COVARIANCE_CASES)])
def test_gauge_covariance(M, build):
    torch.manual_seed(0)
    model = build(M)
    _perturb_projection(model)
    report = check_gauge_covariance(model, n=64)
    print(report)
    assert report.passed and report.deviation < 1e-10
    assert report.field_change > 1e-2 and report.gauge_scale > 1e-3  # a real transformation of a term that matters
    assert model.projection.weight.dtype == torch.float32  # the user's model is left alone


def test_gauge_covariance_detects_a_broken_construction(monkeypatch):
    M = Sphere(2)
    torch.manual_seed(0)
    model = GaugeFlow(M, hidden=16)
    _perturb_projection(model)
    # a non-covariant gauge term: the section enters through |v_s|, which g does not commute with
    monkeypatch.setattr(GaugeFlow, "contract", lambda self, x, A, d, s: self.projection(x, gauge_contraction(self.group, A, d, s.abs())))
    report = check_gauge_covariance(model, raise_on_failure=False)
    assert not report.passed and report.deviation > 1e-4
    with pytest.raises(AssertionError, match="not gauge covariant"):
        report.raise_if_failed()
    with pytest.raises(TypeError, match="GaugeFlow or HigherGaugeFlow"):
        check_gauge_covariance(PlainFlow(M))


def test_random_rotation_is_special_orthogonal():
    g = random_rotation(5, torch.Generator().manual_seed(0))
    assert torch.allclose(g @ g.T, torch.eye(5, dtype=g.dtype), atol=1e-13) and abs(float(torch.det(g)) - 1) < 1e-12
