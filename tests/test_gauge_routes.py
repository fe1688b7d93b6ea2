"""One route per gauge operation: batch independence, the public bracket sums, and the shared ``fields`` contract.

* A point's velocity does not depend on the batch it arrives in (the route rule reads shapes only).
* ``gaugeflow.algebra.bracket_sums`` is plain PyTorch: equal to ``so(k).bracket``, with gradients of
  every order, batched cotangents, ``torch.func.jvp`` and ``vmap``.
* ``model.fields(x, h)`` is the same kind of object in every model, and ``contract(x, *fields)``
  equals the model's gauge term.
"""
from __future__ import annotations

import inspect
import pathlib

import pytest
import torch

from gaugeflow.algebra import bracket_sums, so, so_crossed_module
from gaugeflow.manifolds import Euclidean, Sphere
from gaugeflow.models import GaugeFlow, HigherGaugeFlow, PlainFlow

F64 = torch.float64
CM = ((0, 0, 0, 1.0), (1, 0, 1, 1.0), (1, 1, 0, 1.0))  # l2 of the crossed module
ODD = ((0, 1, 0, -0.5), (2, 0, 1, 2.0), (0, 0, 0, 1.0), (2, 1, 1, -1.0))  # 3 output blocks, block 1 empty


def _model(cls, M, k, seed=0):
    torch.manual_seed(seed)
    model = cls(M, hidden=32, k=k).double()
    with torch.no_grad():  # move W off its identity start so every fibre coordinate is read
        model.projection.weight.add_(torch.randn(model.projection.weight.shape, dtype=F64))
    return model


BATCH_CASES = [(cls, M, k) for k in (3, 8, 16) for M in (Sphere(2), Euclidean(k)) for cls in (GaugeFlow, HigherGaugeFlow)]


@pytest.mark.parametrize("cls, M, k", BATCH_CASES, ids=[f"{c.__name__}-{M}-k{k}" for c, M, k in BATCH_CASES])
def test_a_points_velocity_does_not_depend_on_its_batch(cls, M, k):
    # the first 16 points alone and inside a batch of 1024 (and 1025: no size is special) get the same
    # velocity: every route is chosen by shapes and computes each row from that row only
    model = _model(cls, M, k)
    x = M.random_base(1025, generator=torch.Generator().manual_seed(k), dtype=F64)
    t = torch.rand(1025, generator=torch.Generator().manual_seed(1), dtype=F64)
    with torch.no_grad():
        alone = model(x[:16], t[:16])
        for n in (1024, 1025, 17):
            together = model(x[:n], t[:n])[:16]
            assert (alone - together).abs().max() <= 1e-15 * max(1.0, float(alone.abs().max()))
        single = torch.cat([model(x[i:i + 1], t[i:i + 1]) for i in range(4)])
        assert (single - alone[:4]).abs().max() <= 1e-15 * max(1.0, float(alone.abs().max()))
    if cls is HigherGaugeFlow and isinstance(M, Sphere):  # S² with k = 16 takes the feature form, 3 and 8 the brackets
        assert model._feature_form() == (k == 16)


def _reference(g, x, y, terms, blocks):
    out = torch.zeros(*x.shape[:-2], blocks, g.dim, dtype=x.dtype)
    for r, a, b, s in terms:
        out[..., r, :] += s * g.bracket(x[..., a, :], y[..., b, :])
    return out


@pytest.mark.parametrize("k", [2, 3, 5, 8, 13])
def test_bracket_sums_equal_the_algebra_bracket(k):
    g = so(k)
    gen = torch.Generator().manual_seed(k)
    for N, terms, P, Q, R in [(13, CM, 2, 2, 2), (9, ODD, 2, 2, 3), (1, ((0, 0, 0, 1.0),), 1, 1, 1)]:
        x = torch.randn(N, P, g.dim, generator=gen, dtype=F64)
        y = torch.randn(N, Q, g.dim, generator=gen, dtype=F64)
        got = bracket_sums(g, x, y, terms, R)
        assert got.shape == (N, R, g.dim)
        assert torch.allclose(got, _reference(g, x, y, terms, R), atol=1e-12)
        assert torch.allclose(bracket_sums(g, x.float(), y.float(), terms, R).double(), got, atol=1e-4)
    x4, y4 = torch.randn(3, 5, 2, g.dim, dtype=F64), torch.randn(3, 5, 2, g.dim, dtype=F64)  # more leading axes
    assert torch.allclose(bracket_sums(g, x4, y4, CM, 2), _reference(g, x4, y4, CM, 2), atol=1e-12)
    xt = torch.randn(2, 7, g.dim, dtype=F64).transpose(0, 1)  # non-contiguous blocks
    assert torch.allclose(bracket_sums(g, xt, xt, CM, 2), _reference(g, xt, xt, CM, 2), atol=1e-12)
    assert bracket_sums(g, x4[:0], y4[:0], CM, 2).shape == (0, 5, 2, g.dim)


@pytest.mark.parametrize("k", [3, 7])
def test_bracket_sums_gradients_second_order_batched_jvp_and_vmap(k):
    g = so(k)
    gen = torch.Generator().manual_seed(k)
    x = torch.randn(5, 2, g.dim, generator=gen, dtype=F64, requires_grad=True)
    y = torch.randn(5, 2, g.dim, generator=gen, dtype=F64, requires_grad=True)
    for terms, R in [(CM, 2), (ODD, 3)]:
        def f(x, y, terms=terms, R=R):
            return bracket_sums(g, x, y, terms, R)

        assert torch.autograd.gradcheck(f, (x, y)) and torch.autograd.gradgradcheck(f, (x, y))
        cots = torch.randn(4, 5, R, g.dim, generator=gen, dtype=F64)
        for a, b in zip(torch.autograd.grad(f(x, y), (x, y), cots, is_grads_batched=True),
                        torch.autograd.grad(_reference(g, x, y, terms, R), (x, y), cots, is_grads_batched=True)):
            assert torch.allclose(a, b, atol=1e-12)
        dx, dy = (torch.randn(5, 2, g.dim, generator=gen, dtype=F64) for _ in range(2))
        xd, yd = x.detach(), y.detach()
        _, tangent = torch.func.jvp(f, (xd, yd), (dx, dy))
        assert torch.allclose(tangent, _reference(g, dx, yd, terms, R) + _reference(g, xd, dy, terms, R), atol=1e-12)
        batched = torch.func.vmap(f, in_dims=(0, None))(torch.stack([xd, dx]), yd)
        assert torch.allclose(batched[1], _reference(g, dx, yd, terms, R), atol=1e-12)


def test_bracket_sums_bad_input_says_what_was_expected():
    g = so(4)
    x = torch.zeros(3, 2, g.dim)
    with pytest.raises(ValueError, match=r"expected x \[\.\.\., P, 6\]"):
        bracket_sums(g, x[..., :5], x, CM, 2)
    with pytest.raises(ValueError, match="same leading shape"):
        bracket_sums(g, x, x[:2], CM, 2)
    with pytest.raises(ValueError, match="terms must be"):
        bracket_sums(g, x, x, ((2, 0, 0, 1.0),), 2)
    with pytest.raises(ValueError, match="terms must be"):
        bracket_sums(g, x, x, (), 2)
    with pytest.raises(ValueError, match="blocks must be"):
        bracket_sums(g, x, x, CM, 0)
    with pytest.raises(TypeError, match=r"so\(k\)"):
        bracket_sums(so_crossed_module(4), x, x, CM, 2)


@pytest.mark.parametrize("build", [lambda M: PlainFlow(M, hidden=8), lambda M: GaugeFlow(M, hidden=8, k=4),
                                   lambda M: HigherGaugeFlow(M, hidden=8, k=4), lambda M: HigherGaugeFlow(M, hidden=8, k=16)],
                         ids=["plain", "gauge", "higher", "higher-feature-form"])
def test_fields_mean_the_same_in_every_model(build):
    # fields(x, h) is a tuple of network outputs with one row per point; contract(x, *fields) is the gauge term
    M = Sphere(2)
    model = build(M).double()
    x = M.random_base(6, generator=torch.Generator().manual_seed(0), dtype=F64)
    h, _ = model.inputs(x, 0.3)
    fields = model.fields(x, h)
    assert inspect.ismethod(model.fields) and isinstance(fields, tuple)
    flat = [t for f in fields for t in (f if isinstance(f, list) else [f])]
    assert all(isinstance(t, torch.Tensor) and t.shape[0] == 6 for t in flat)
    ref, got = model.contract(x, *fields), model.gauge_term(x, h)
    if isinstance(model, PlainFlow):
        assert fields == () and ref is None and got is None
    else:
        assert len(fields) == 3 and torch.allclose(got, ref, atol=1e-12)


def test_higher_gauge_flow_loads_state_dicts_saved_before_the_rename():
    # the graded-field networks were saved as "fields.*"; such state dicts still load, and field_values warns
    M = Sphere(2)
    model = HigherGaugeFlow(M, hidden=8).double()
    old = {key.replace("graded_fields.", "fields."): value.clone() + 1 for key, value in model.state_dict().items()}
    assert any(key.startswith("fields.0.") for key in old)
    fresh = HigherGaugeFlow(M, hidden=8).double()
    fresh.load_state_dict(old)
    assert torch.equal(fresh.graded_fields[0].out_layer.bias, old["fields.0.net.4.bias"])
    x = M.random_base(4, dtype=F64)
    h, _ = fresh.inputs(x, 0.5)
    with pytest.deprecated_call(match="use model.fields"):
        values = fresh.field_values(x, h)
    assert all(torch.equal(a, b) for a, b in zip(values[:2], fresh.fields(x, h)[:2]))


def test_no_native_code_or_private_torch_api_in_the_library():
    import gaugeflow
    import gaugeflow.manifolds

    src, manifolds = (pathlib.Path(m.__file__).parent for m in (gaugeflow, gaugeflow.manifolds))
    assert not list(src.rglob("*.c")) and not (src / "_native").exists()
    for path in [*src.rglob("*.py"), *manifolds.rglob("*.py")]:
        text = path.read_text()
        for banned in ("ctypes", "torch._C", "torch._functorch", "torch.autograd.function._"):
            assert banned not in text, f"{path.name} uses {banned}"


@pytest.mark.slow
def test_torch_compile_of_a_gauge_model_matches_eager():
    # plain PyTorch routes: torch.compile traces them; value and parameter gradients match eager
    torch.manual_seed(0)
    model = HigherGaugeFlow(Euclidean(9), hidden=16, k=9)  # the brackets route with the folded connection
    x = torch.randn(64, 9)
    ref = model(x, 0.3)
    grads_ref = torch.autograd.grad(ref.sum(), list(model.parameters()))
    out = torch.compile(model)(x, 0.3)
    grads = torch.autograd.grad(out.sum(), list(model.parameters()))
    assert torch.allclose(out, ref, atol=1e-6)
    for a, b in zip(grads, grads_ref):
        assert torch.allclose(a, b, atol=1e-4 * (1 + float(b.abs().max())))
