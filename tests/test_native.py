"""The native bracket kernel (gaugeflow._native) and its differentiable front door, bracket_sums.

The suite needs a C compiler (the README's set-up machines have gcc): the first test fails, with
the loader's reason, where the kernel cannot be built, instead of letting the native path go
untested. Every value is checked against so(k).bracket, the PyTorch form of the same sum.
"""
from __future__ import annotations

import pytest
import torch

from gaugeflow import _native
from gaugeflow.algebra import so, so_crossed_module
from gaugeflow.algebra.bracket_sums import _evaluate_torch, bracket_sums
from gaugeflow.models import crossed_module

CM = ((0, 0, 0, 1.0), (1, 0, 1, 1.0), (1, 1, 0, 1.0))  # l2 of the crossed module
ODD = ((0, 1, 0, -0.5), (2, 0, 1, 2.0), (0, 0, 0, 1.0), (2, 1, 1, -1.0))  # 3 output blocks, block 1 empty


def _reference(g, x, y, terms, blocks):
    out = torch.zeros(*x.shape[:-2], blocks, g.dim, dtype=x.dtype)
    for r, a, b, s in terms:
        out[..., r, :] += s * g.bracket(x[..., a, :], y[..., b, :])
    return out


def test_the_native_kernel_builds_and_loads():
    assert _native.library() is not None, _native.status()
    assert "loaded" in _native.status()


@pytest.mark.parametrize("k", [2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 16, 17, 32])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_bracket_sums_equal_the_algebra_bracket(k, dtype):
    # every compiled row width (k padded to 4, 8, 10, 12; chunks of 8 beyond), batch sizes that leave
    # partial vector groups, and a pattern with signs, scales and an empty output block
    g = so(k)
    gen = torch.Generator().manual_seed(k)
    for N, terms, P, Q, R in [(13, CM, 2, 2, 2), (9, ODD, 2, 2, 3), (1, ((0, 0, 0, 1.0),), 1, 1, 1)]:
        x = torch.randn(N, P, g.dim, generator=gen, dtype=torch.float64)
        y = torch.randn(N, Q, g.dim, generator=gen, dtype=torch.float64)
        ref = _reference(g, x, y, terms, R)
        got = bracket_sums(g, x.to(dtype), y.to(dtype), terms, R)
        tol = 1e-12 if dtype == torch.float64 else 2e-5 * k
        assert got.dtype == dtype and got.shape == (N, R, g.dim)
        assert torch.allclose(got.double(), ref, atol=tol), float((got.double() - ref).abs().max())
        assert torch.allclose(_evaluate_torch(x, y, g, terms, R), ref, atol=1e-12)


def test_strided_views_leading_shapes_and_empty_batches():
    g = so(6)
    gen = torch.Generator().manual_seed(1)
    B = torch.randn(11, 2 * g.dim + 1, generator=gen, dtype=torch.float64)  # a crossed-module row: [B0 | B1 | c]
    V = torch.randn(11, 2 * g.dim + 1, generator=gen, dtype=torch.float64)
    x, y = B[:, : 2 * g.dim].view(11, 2, g.dim), V[:, : 2 * g.dim].view(11, 2, g.dim)  # strided rows, no copy
    assert torch.allclose(bracket_sums(g, x, y, CM, 2), _reference(g, x, y, CM, 2), atol=1e-12)
    x4, y4 = torch.randn(3, 5, 2, g.dim, dtype=torch.float64), torch.randn(3, 5, 2, g.dim, dtype=torch.float64)
    assert torch.allclose(bracket_sums(g, x4, y4, CM, 2), _reference(g, x4, y4, CM, 2), atol=1e-12)
    xt = torch.randn(2, 7, g.dim, dtype=torch.float64).transpose(0, 1)  # non-contiguous blocks
    assert torch.allclose(bracket_sums(g, xt, xt, CM, 2), _reference(g, xt, xt, CM, 2), atol=1e-12)
    assert bracket_sums(g, x[:0], y[:0], CM, 2).shape == (0, 2, g.dim)


def test_threads_split_the_batch_without_changing_a_bit():
    g = so(9)
    x, y = torch.randn(2000, 2, g.dim), torch.randn(2000, 2, g.dim)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = bracket_sums(g, x, y, CM, 2)
        torch.set_num_threads(2)
        two = bracket_sums(g, x, y, CM, 2)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)


@pytest.mark.parametrize("k", [3, 7])
def test_gradients_second_order_batched_and_forward_mode(k):
    # backward, double backward (the divergence of a trained model's field), batched cotangents
    # (is_grads_batched: the exact divergence), vmap and torch.func.jvp all run the same primitive
    g = so(k)
    gen = torch.Generator().manual_seed(k)
    x = torch.randn(5, 2, g.dim, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 2, g.dim, generator=gen, dtype=torch.float64, requires_grad=True)
    for terms, R in [(CM, 2), (ODD, 3)]:
        f = lambda x, y, terms=terms, R=R: bracket_sums(g, x, y, terms, R)  # noqa: E731
        assert torch.autograd.gradcheck(f, (x, y))
        assert torch.autograd.gradgradcheck(f, (x, y))
        ref = _reference(g, x, y, terms, R)
        cots = torch.randn(4, 5, R, g.dim, generator=gen, dtype=torch.float64)
        for a, b in zip(torch.autograd.grad(f(x, y), (x, y), cots, is_grads_batched=True),
                        torch.autograd.grad(ref, (x, y), cots, is_grads_batched=True)):
            assert torch.allclose(a, b, atol=1e-12)
        dx, dy = (torch.randn(5, 2, g.dim, generator=gen, dtype=torch.float64) for _ in range(2))
        _, tangent = torch.func.jvp(f, (x.detach(), y.detach()), (dx, dy))
        expected = _reference(g, dx, y.detach(), terms, R) + _reference(g, x.detach(), dy, terms, R)
        assert torch.allclose(tangent, expected, atol=1e-12)
        batched = torch.func.vmap(f, in_dims=(0, None))(torch.stack([x.detach(), dx]), y.detach())
        assert torch.allclose(batched[1], _reference(g, dx, y.detach(), terms, R), atol=1e-12)


def test_bad_input_says_what_was_expected():
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
    with pytest.raises(TypeError, match="so\\(k\\)"):
        bracket_sums(so_crossed_module(4), x, x, CM, 2)


def test_loader_builds_into_a_fresh_cache_and_explains_when_it_cannot(tmp_path, monkeypatch):
    monkeypatch.setenv("GAUGEFLOW_NATIVE_CACHE", str(tmp_path / "cache"))
    lib, message = _native._load()
    assert lib is not None and str(tmp_path) in message, message
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".so"]  # one library, no temporary left behind
    monkeypatch.setenv("GAUGEFLOW_NATIVE", "0")
    assert _native._load() == (None, "disabled by GAUGEFLOW_NATIVE=0")
    monkeypatch.setenv("GAUGEFLOW_NATIVE", "1")
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    lib, message = _native._load()
    assert lib is None and "no-such-compiler" in message and "PyTorch kernels" in message


def test_crossed_module_without_the_native_kernel_gives_the_same_values(monkeypatch):
    # the PyTorch kernels stay the fallback (no compiler, CUDA): same value and gradient
    L = so_crossed_module(9)
    gen = torch.Generator().manual_seed(0)
    B, V = (torch.randn(20, L.dim, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(2))
    W = torch.randn(3, L.dim, generator=gen, dtype=torch.float64, requires_grad=True)
    c = torch.tensor([0.3, 1.2], dtype=torch.float64)
    calls = []
    original = crossed_module._crossed_module_native
    monkeypatch.setattr(crossed_module, "_crossed_module_native", lambda *a: calls.append(1) or original(*a))
    native = crossed_module.crossed_module_projected(L, c, B, V, W)
    assert calls == [1]
    monkeypatch.setattr(crossed_module, "native_brackets", lambda *a: False)
    fallback = crossed_module.crossed_module_projected(L, c, B, V, W)
    assert calls == [1] and torch.allclose(native, fallback, atol=1e-12)
    cot = torch.randn(20, 3, generator=gen, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(native, (B, V, W), cot), torch.autograd.grad(fallback, (B, V, W), cot)):
        assert torch.allclose(a, b, atol=1e-11)


def test_folded_layer_outer_product_native_and_differentiable():
    # MLP.contracted's d ⊗ z: the native forward and backward equal PyTorch's broadcast products
    # (float32 at batch 1000: the training step), and the differentiable PyTorch backward serves
    # second derivatives, batched cotangents, jvp and vmap
    from gaugeflow.models.networks import _Outer

    gen = torch.Generator().manual_seed(2)
    d, z = torch.randn(1000, 9, generator=gen, requires_grad=True), torch.randn(1000, 61, generator=gen, requires_grad=True)
    u = _Outer.apply(d, z)
    ref = (d.unsqueeze(-1) * z.unsqueeze(-2)).reshape(1000, 9 * 61)
    assert torch.equal(u, ref)
    gu = torch.randn(1000, 9 * 61, generator=gen)
    for a, b in zip(torch.autograd.grad(u, (d, z), gu), torch.autograd.grad(ref, (d, z), gu)):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-5)
    d64, z64 = d[:6].detach().double().requires_grad_(), z[:6, :5].detach().double().requires_grad_()
    assert torch.autograd.gradcheck(_Outer.apply, (d64, z64))
    assert torch.autograd.gradgradcheck(_Outer.apply, (d64, z64))
    ref64 = (d64.unsqueeze(-1) * z64.unsqueeze(-2)).reshape(6, 45)
    cots = torch.randn(3, 6, 45, generator=gen, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(_Outer.apply(d64, z64), (d64, z64), cots, is_grads_batched=True),
                    torch.autograd.grad(ref64, (d64, z64), cots, is_grads_batched=True)):
        assert torch.allclose(a, b, atol=1e-13)
    dd, dz = torch.randn_like(d64), torch.randn_like(z64)
    _, tangent = torch.func.jvp(_Outer.apply, (d64.detach(), z64.detach()), (dd, dz))
    assert torch.allclose(tangent, (dd.unsqueeze(-1) * z64.unsqueeze(-2) + d64.unsqueeze(-1) * dz.unsqueeze(-2)).reshape(6, 45))
    batched = torch.func.vmap(_Outer.apply, in_dims=(0, None))(torch.stack([d64.detach(), dd]), z64.detach())
    assert torch.allclose(batched[1], (dd.unsqueeze(-1) * z64.unsqueeze(-2)).reshape(6, 45).detach())


def test_crossed_module_projected_takes_any_strides():
    # the public route accepts column-major and strided inputs (the kernel reads unit-stride rows: a copy is made)
    L = so_crossed_module(8)
    gen = torch.Generator().manual_seed(5)
    B = torch.randn(L.dim, 12, generator=gen, dtype=torch.float64).T  # column-major [12, dim L]
    V = torch.randn(12, 2 * L.dim, generator=gen, dtype=torch.float64)[:, ::2]  # every other column
    W = torch.randn(3, L.dim, generator=gen, dtype=torch.float64)
    c = torch.tensor([0.4, 1.1], dtype=torch.float64)
    ref = (c[0] * L.bracket(B) + c[1] * L.bracket(B, V)) @ W.T
    assert torch.allclose(crossed_module.crossed_module_projected(L, c, B, V, W), ref, atol=1e-12)


@pytest.mark.slow
def test_torch_compile_runs_the_native_routes_like_eager():
    # torch.compile traces the library's autograd Functions through Function.apply (fast_apply
    # defers to it while compiling); the compiled model's value and parameter gradients match eager
    from gaugeflow.manifolds import Euclidean
    from gaugeflow.models import HigherGaugeFlow

    torch.manual_seed(0)
    model = HigherGaugeFlow(Euclidean(9), hidden=16, k=9)  # native brackets and the folded layer's outer product
    x = torch.randn(64, 9)
    ref = model(x, 0.3)
    grads_ref = torch.autograd.grad(ref.sum(), list(model.parameters()))
    out = torch.compile(model)(x, 0.3)
    grads = torch.autograd.grad(out.sum(), list(model.parameters()))
    assert torch.allclose(out, ref, atol=1e-6)
    for a, b in zip(grads, grads_ref):
        assert torch.allclose(a, b, atol=1e-4 * (1 + float(b.abs().max())))
