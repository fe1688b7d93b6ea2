"""Per-sample products of small batched tensors, with hand-written adjoints.

Two linear maps that every gauge model applies to network outputs, batched over samples:

* :func:`contract` — ``A[d] = Σ_μ d^μ A_μ``: ``[N, D, n], [N, D] → [N, n]``;
* :func:`outer` — ``d ⊗ z`` flattened: ``[N, D], [N, H] → [N, D·H]`` (the input of a folded output
  layer).

Written the plain way (a broadcast product and a sum), autograd's adjoints allocate an ``[N, D, ·]``
temporary per input — the size of the network's whole output layer — and each fresh allocation of a
few MiB costs page faults comparable to the arithmetic (docs/performance.md). Here each is one
:class:`torch.autograd.Function` whose forward and adjoints are batched row-vector products
(``bmm`` with a ``1 × D`` or ``1 × H`` left factor), so only the one ``[N, D, ·]`` tensor that the
chain rule needs (``∂A = d ⊗ g`` for :func:`contract`, the output of :func:`outer`) is ever formed.

Both are public-API autograd functions (``setup_context``, ``jvp``, ``generate_vmap_rule``): gradients
of every order (the adjoints are differentiable expressions of the saved inputs), ``torch.func.jvp``,
``vmap``, batched cotangents (``is_grads_batched``, the exact divergence) and ``torch.compile`` work,
on every device. Each sample's value depends on its own row only (no reduction across the batch).
"""
from __future__ import annotations

import torch

__all__ = ["contract", "outer"]


def contract(A: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``A[d] = Σ_μ d^μ A_μ`` per sample: ``[N, D, n], [N, D] -> [N, n]``.

    Forward ``d A`` and the adjoint ``∂d = g Aᵀ`` are batched row-vector products; ``∂A = d ⊗ g``
    is the broadcast outer product (the only ``[N, D, n]`` tensor formed).

    Raises:
        ValueError: ``A`` is not ``[N, D, n]`` or ``d`` is not the matching ``[N, D]``.

    Examples:
        >>> A = torch.arange(12.0).view(1, 3, 4); d = torch.tensor([[1.0, 0.0, 2.0]])
        >>> contract(A, d)                          # A_0 + 2 A_2
        tensor([[16., 19., 22., 25.]])
    """
    if A.dim() != 3 or d.dim() != 2 or A.shape[:2] != d.shape:
        raise ValueError(f"contract: expected A [N, D, n] and d [N, D], got {tuple(A.shape)} and {tuple(d.shape)}")
    return _Contract.apply(A, d)


def outer(d: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``u[i, μ H + h] = d[i, μ] z[i, h]``: ``[N, D], [N, H] -> [N, D·H]``.

    Forward is the broadcast product; the adjoints ``∂d = G z`` and ``∂z = d G`` (``G`` the cotangent
    read as ``[N, D, H]``) are batched row-vector products, so no ``[N, D, H]`` temporary is formed.

    Raises:
        ValueError: ``d`` and ``z`` are not 2-D with the same number of rows.

    Examples:
        >>> outer(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0, 5.0]]))
        tensor([[ 3.,  4.,  5.,  6.,  8., 10.]])
    """
    if d.dim() != 2 or z.dim() != 2 or d.shape[0] != z.shape[0]:
        raise ValueError(f"outer: expected d [N, D] and z [N, H], got {tuple(d.shape)} and {tuple(z.shape)}")
    return _Outer.apply(d, z)


def _row(v: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """``v_i M_i`` per sample: ``[N, p], [N, p, q] -> [N, q]`` (a batched ``1 × p`` by ``p × q`` product)."""
    return torch.bmm(v.unsqueeze(-2), M).squeeze(-2)


class _Bilinear(torch.autograd.Function):
    """Shared set-up of the two bilinear Functions: both inputs saved for the backward and the ``jvp``."""

    generate_vmap_rule = True

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)


class _Contract(_Bilinear):
    @staticmethod
    def forward(A: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return _row(d, A)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        A, d = ctx.saved_tensors
        gA = d.unsqueeze(-1) * g.unsqueeze(-2) if ctx.needs_input_grad[0] else None
        gd = _row(g, A.transpose(-1, -2)) if ctx.needs_input_grad[1] else None
        return gA, gd

    @staticmethod
    def jvp(ctx, dA, dd):
        A, d = ctx.saved_tensors
        out = _row(d, dA) if dA is not None else None
        if dd is not None:
            out = _row(dd, A) if out is None else out + _row(dd, A)
        return out


class _Outer(_Bilinear):
    @staticmethod
    def forward(d: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return (d.unsqueeze(-1) * z.unsqueeze(-2)).flatten(-2)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        d, z = ctx.saved_tensors
        G = g.reshape(*g.shape[:-1], d.shape[-1], z.shape[-1])
        gd = _row(z, G.transpose(-1, -2)) if ctx.needs_input_grad[0] else None
        gz = _row(d, G) if ctx.needs_input_grad[1] else None
        return gd, gz

    @staticmethod
    def jvp(ctx, dd, dz):
        d, z = ctx.saved_tensors
        out = None
        if dd is not None:
            out = (dd.unsqueeze(-1) * z.unsqueeze(-2)).flatten(-2)
        if dz is not None:
            term = (d.unsqueeze(-1) * dz.unsqueeze(-2)).flatten(-2)
            out = term if out is None else out + term
        return out
