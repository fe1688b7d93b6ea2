"""networks._linear and MLP: the layer route that forms a weight's gradient with its longer side contiguous."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from gaugeflow.models.networks import MLP, _linear as linear


@pytest.mark.parametrize("n_in, n_out", [(9, 64), (64, 64), (64, 8), (64, 456), (3, 1)])
def test_linear_equals_nn_linear_in_value_and_every_gradient(n_in, n_out):
    # either layout of the weight's gradient is the same mathematics: values, first and second derivatives agree
    gen = torch.Generator().manual_seed(n_in * 100 + n_out)
    layer = nn.Linear(n_in, n_out).double()
    x = torch.randn(7, n_in, generator=gen, dtype=torch.float64, requires_grad=True)
    cot = torch.randn(7, n_out, generator=gen, dtype=torch.float64)
    got, ref = linear(x, layer), layer(x)
    assert torch.allclose(got, ref, rtol=0, atol=1e-14)
    params = (x, layer.weight, layer.bias)
    for a, b in zip(torch.autograd.grad(got, params, cot), torch.autograd.grad(ref, params, cot)):
        assert a.shape == b.shape and torch.allclose(a, b, rtol=0, atol=1e-13)


@pytest.mark.parametrize("n_in, n_out", [(3, 5), (5, 3)])  # both layouts; small, as gradgradcheck forms dense Jacobians
def test_linear_has_second_derivatives(n_in, n_out):
    gen = torch.Generator().manual_seed(n_in + 10 * n_out)
    layer = nn.Linear(n_in, n_out).double()
    params = (torch.randn(4, n_in, generator=gen, dtype=torch.float64, requires_grad=True),
              layer.weight.detach().clone().requires_grad_(), layer.bias.detach().clone().requires_grad_())
    assert torch.autograd.gradgradcheck(lambda x, w, b: linear(x, _with(w, b)), params)


def _with(weight: torch.Tensor, bias: torch.Tensor) -> SimpleNamespace:
    return SimpleNamespace(weight=weight, bias=bias)  # plain tensors (gradcheck's inputs); linear reads only these


def test_linear_leaves_the_parameter_gradient_in_the_parameters_layout():
    # the optimiser sees W.grad shaped and laid out like W, whichever product formed it
    layer = nn.Linear(9, 64)
    linear(torch.randn(32, 9), layer).square().sum().backward()
    assert layer.weight.grad.shape == layer.weight.shape and layer.weight.grad.is_contiguous()


def test_linear_takes_batched_inputs_through_the_plain_route():
    layer = nn.Linear(4, 6).double()
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    assert torch.allclose(linear(x, layer), layer(x), atol=1e-15)


def test_mlp_equals_its_sequential_net_with_and_without_autograd():
    torch.manual_seed(0)
    mlp = MLP(5, 11, hidden=16).double()
    h = torch.randn(9, 5, dtype=torch.float64)
    ref = mlp.net(h)
    assert torch.allclose(mlp(h), ref, atol=1e-14)
    with torch.no_grad():
        assert torch.allclose(mlp(h), ref, atol=1e-14)
    # the functional transforms used by the exact divergence go through it too
    jac = torch.func.vmap(torch.func.jacrev(lambda v: mlp(v[None])[0]))(h)
    jac_ref = torch.func.vmap(torch.func.jacrev(lambda v: mlp.net(v[None])[0]))(h)
    assert torch.allclose(jac, jac_ref, atol=1e-13)
    tangent = torch.randn_like(h)
    assert torch.allclose(torch.func.jvp(mlp, (h,), (tangent,))[1], torch.func.jvp(mlp.net, (h,), (tangent,))[1], atol=1e-13)
