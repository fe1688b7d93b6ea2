"""gaugeflow.algebra.batched: contract and outer against their broadcast definitions.

Value, first and second derivatives (gradcheck, gradgradcheck), batched cotangents (the exact
divergence), forward mode (jvp), vmap of jacrev/jacfwd, per-row independence and the one-line errors.
"""
import pytest
import torch

from gaugeflow.algebra.batched import contract, outer


def _contract_ref(A, d):
    return (A * d.unsqueeze(-1)).sum(-2)


def _outer_ref(d, z):
    return (d.unsqueeze(-1) * z.unsqueeze(-2)).reshape(d.shape[0], -1)


CASES = [(contract, _contract_ref, lambda g: (torch.randn(5, 3, 4, generator=g, dtype=torch.float64),
                                              torch.randn(5, 3, generator=g, dtype=torch.float64))),
         (outer, _outer_ref, lambda g: (torch.randn(5, 3, generator=g, dtype=torch.float64),
                                        torch.randn(5, 4, generator=g, dtype=torch.float64)))]


@pytest.mark.parametrize("fn, ref, make", CASES, ids=["contract", "outer"])
def test_value_and_gradients_of_every_kind_match_the_broadcast_definition(fn, ref, make):
    gen = torch.Generator().manual_seed(3)
    x, y = (t.requires_grad_() for t in make(gen))
    got, want = fn(x, y), ref(x, y)
    assert torch.allclose(got, want, atol=1e-14)
    cot = torch.randn(got.shape, generator=gen, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(got, (x, y), cot, retain_graph=True), torch.autograd.grad(want, (x, y), cot, retain_graph=True)):
        assert torch.allclose(a, b, atol=1e-13)
    assert torch.autograd.gradcheck(fn, (x, y)) and torch.autograd.gradgradcheck(fn, (x, y))
    cots = torch.randn((3,) + tuple(got.shape), generator=gen, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(got, (x, y), cots, is_grads_batched=True, retain_graph=True),
                    torch.autograd.grad(want, (x, y), cots, is_grads_batched=True)):
        assert torch.allclose(a, b, atol=1e-13)
    primals = (x.detach(), y.detach())
    tangents = tuple(torch.randn(t.shape, generator=gen, dtype=torch.float64) for t in primals)
    assert torch.allclose(torch.func.jvp(fn, primals, tangents)[1], torch.func.jvp(ref, primals, tangents)[1], atol=1e-13)
    for jac in (torch.func.jacrev, torch.func.jacfwd):  # per-sample Jacobians through vmap
        per_sample = torch.func.vmap(jac(lambda a, b: fn(a[None], b[None])[0], argnums=(0, 1)))(*primals)
        expected = torch.func.vmap(jac(lambda a, b: ref(a[None], b[None])[0], argnums=(0, 1)))(*primals)
        assert all(torch.allclose(a, b, atol=1e-13) for a, b in zip(per_sample, expected))


@pytest.mark.parametrize("fn, ref, make", CASES, ids=["contract", "outer"])
def test_each_row_depends_on_its_own_inputs_only(fn, ref, make):
    # a row's value is the same alone and inside a larger batch, and other rows do not reach its gradient
    gen = torch.Generator().manual_seed(4)
    x, y = (t.requires_grad_() for t in make(gen))
    alone = fn(x[2:3], y[2:3])
    assert torch.allclose(fn(x, y)[2:3], alone, atol=1e-15, rtol=0)
    gx, gy = torch.autograd.grad(fn(x, y)[2].sum(), (x, y))
    assert gx[[0, 1, 3, 4]].abs().max() == 0 and gy[[0, 1, 3, 4]].abs().max() == 0
    assert gx[2].abs().max() > 0 and gy[2].abs().max() > 0


def test_shape_errors_are_one_clear_line():
    with pytest.raises(ValueError, match=r"contract: expected A \[N, D, n\] and d \[N, D\], got \(2, 3, 4\) and \(2, 4\)"):
        contract(torch.zeros(2, 3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"outer: expected d \[N, D\] and z \[N, H\], got \(2, 3\) and \(3, 4\)"):
        outer(torch.zeros(2, 3), torch.zeros(3, 4))
