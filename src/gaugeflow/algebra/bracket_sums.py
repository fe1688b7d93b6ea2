"""Sums of ``so(k)`` brackets over a batch, as one differentiable operation.

    out[..., r, :] = Σ_{t : r_t = r} s_t · [x[..., a_t, :], y[..., b_t, :]]

for a fixed list of terms ``(r_t, a_t, b_t, s_t)``. The crossed-module gauge term is three such
terms (``l2(B, V) = ([B0, V0], [B0, V1] + [B1, V0])``), and so are its gradients: with the
coordinate inner product, ``⟨g, [x, y]⟩ = ⟨[y, g], x⟩ = ⟨[g, x], y⟩``, so the vector–Jacobian
products of a bracket sum are bracket sums again (:func:`_vjp_terms`), and so is the tangent
(``[dx, y] + [x, dy]``). Double backward, forward mode and ``vmap`` (the batched cotangents of the
exact divergence) therefore all come from the one primitive.

The primitive runs the native kernel of :mod:`gaugeflow._native` on CPU for float32/float64 and
``k ≤ 32``; otherwise (no C compiler, CUDA, other dtypes) the PyTorch form: ``hat``, one batched
matrix product per term, the coordinates ``P_ij − P_ji`` of ``P = Σ s X Y``. Both give the same
values (tests hold them to :meth:`so.bracket`).
"""
from __future__ import annotations

from typing import Sequence

import torch

from .. import _native
from .._autograd import fast_apply
from .orthogonal import so

__all__ = ["bracket_sums"]

Terms = tuple[tuple[int, int, int, float], ...]


def bracket_sums(g: so, x: torch.Tensor, y: torch.Tensor, terms: Sequence[tuple[int, int, int, float]], blocks: int) -> torch.Tensor:
    """``out[..., r, :] = Σ_{t: r_t = r} s_t [x[..., a_t, :], y[..., b_t, :]]`` in ``so(k)`` coordinates.

    Args:
        g: the algebra ``so(k)``.
        x: ``[..., P, dim]``; y: ``[..., Q, dim]`` (the same leading shape).
        terms: ``(r, a, b, s)`` tuples: output block ``r``, ``x`` block ``a``, ``y`` block ``b``, sign/scale ``s``.
        blocks: number of output blocks ``R`` (blocks with no term are zero).

    Returns:
        ``[..., R, dim]``.

    Example:
        >>> g = so(3)
        >>> x, y = torch.eye(3)[None, :1], torch.eye(3)[None, 1:2]     # T_(0,1), T_(0,2)
        >>> bracket_sums(g, x, y, [(0, 0, 0, 1.0)], 1)                 # [T_01, T_02] = -T_12
        tensor([[[ 0.,  0., -1.]]])
    """
    if not isinstance(g, so):
        raise TypeError(f"bracket_sums: g must be an so(k), got {type(g).__name__}")
    if x.dim() < 2 or y.dim() < 2 or x.shape[-1] != g.dim or y.shape[-1] != g.dim or x.shape[:-2] != y.shape[:-2]:
        raise ValueError(f"bracket_sums: expected x [..., P, {g.dim}] and y [..., Q, {g.dim}] with the same leading shape, "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    return fast_apply(_BracketSums, x, y, g, _checked_terms(terms, x.shape[-2], y.shape[-2], blocks), blocks)


_CHECKED: dict = {}


def _checked_terms(terms, P: int, Q: int, blocks: int) -> Terms:
    """``terms`` as a tuple of ``(int, int, int, float)``, each index in range (checked once per pattern)."""
    key = (terms if isinstance(terms, tuple) else None, P, Q, blocks)
    hit = _CHECKED.get(key) if key[0] is not None else None
    if hit is None:
        hit = tuple((int(r), int(a), int(b), float(s)) for r, a, b, s in terms)
        if not hit or any(not (0 <= r < blocks and 0 <= a < P and 0 <= b < Q) for r, a, b, _ in hit):
            raise ValueError(f"bracket_sums: terms must be a non-empty list of (r < {blocks}, a < {P}, b < {Q}, s), got {hit}")
        if key[0] is not None:
            _CHECKED[key] = hit
    return hit


def _vjp_terms(terms: Terms) -> tuple[Terms, Terms]:
    """Terms of ``∂x = Σ s [y_b, g_r]`` (inputs ``(y, g)``, output block ``a``) and ``∂y = Σ s [g_r, x_a]`` (inputs ``(g, x)``, block ``b``)."""
    return tuple((a, b, r, s) for r, a, b, s in terms), tuple((b, r, a, s) for r, a, b, s in terms)


class _BracketSums(torch.autograd.Function):
    @staticmethod
    def forward(x, y, g, terms, blocks):
        return _evaluate(x, y, g, terms, blocks)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, y, g, terms, blocks = inputs
        ctx.save_for_backward(x, y)
        ctx.save_for_forward(x, y)
        ctx.g, ctx.terms, ctx.blocks = g, terms, blocks

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        tx, ty = _vjp_terms(ctx.terms)
        gx = fast_apply(_BracketSums, y, grad, ctx.g, tx, x.shape[-2]) if ctx.needs_input_grad[0] else None
        gy = fast_apply(_BracketSums, grad, x, ctx.g, ty, y.shape[-2]) if ctx.needs_input_grad[1] else None
        return gx, gy, None, None, None

    @staticmethod
    def jvp(ctx, dx, dy, *_):
        x, y = ctx.saved_tensors
        out = None
        if dx is not None:
            out = fast_apply(_BracketSums, dx, y, ctx.g, ctx.terms, ctx.blocks)
        if dy is not None:
            t = fast_apply(_BracketSums, x, dy, ctx.g, ctx.terms, ctx.blocks)
            out = t if out is None else out + t
        return out

    @staticmethod
    def vmap(info, in_dims, x, y, g, terms, blocks):
        def front(t, dim):
            return t.movedim(dim, 0) if dim is not None else t.expand(info.batch_size, *t.shape)
        return fast_apply(_BracketSums, front(x, in_dims[0]), front(y, in_dims[1]), g, terms, blocks), 0


_TABLES: dict = {}


def _tables(g: so, terms: Terms, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    key = (g.k, terms, dtype)
    hit = _TABLES.get(key)
    if hit is None:
        col = list(zip(*terms))
        hit = _TABLES[key] = (
            torch.tensor(col[0], dtype=torch.int32), torch.tensor(col[1], dtype=torch.int32),
            torch.tensor(col[2], dtype=torch.int32), torch.tensor(col[3], dtype=dtype),
        )
    return hit


def _rows(t: torch.Tensor, width: int) -> torch.Tensor:
    """``t`` as ``[N, width]`` rows with unit column stride (a view when possible)."""
    t = t.reshape(-1, width)
    return t if t.stride(-1) == 1 and (t.shape[0] <= 1 or t.stride(0) >= width) else t.contiguous()


def _evaluate(x: torch.Tensor, y: torch.Tensor, g: so, terms: Terms, blocks: int) -> torch.Tensor:
    lib = _native.for_tensors(x, y) if g.k <= _native.MAX_K else None
    if lib is None:
        return _evaluate_torch(x, y, g, terms, blocks)
    lead, P, Q, n = x.shape[:-2], x.shape[-2], y.shape[-2], g.dim
    xr, yr = _rows(x.detach(), P * n), _rows(y.detach(), Q * n)
    N = xr.shape[0]
    out = torch.empty(*lead, blocks, n, dtype=x.dtype)
    if N == 0:
        return out
    tr, ta, tb, ts = _tables(g, terms, x.dtype)
    fn = lib.gf_so_brackets_f32 if x.dtype == torch.float32 else lib.gf_so_brackets_f64
    rc = fn(N, g.k, xr.data_ptr(), xr.stride(0), P, yr.data_ptr(), yr.stride(0), Q, out.data_ptr(), blocks, len(terms),
            tr.data_ptr(), ta.data_ptr(), tb.data_ptr(), ts.data_ptr(), _native.threads(N))
    if rc != 0:
        raise RuntimeError(f"bracket_sums: native kernel rejected k={g.k}, P={P}, Q={Q}, R={blocks} (code {rc})")
    return out


def _evaluate_torch(x: torch.Tensor, y: torch.Tensor, g: so, terms: Terms, blocks: int) -> torch.Tensor:
    """The same sum in PyTorch operations (also on the batched tensors of ``is_grads_batched``)."""
    gather, upper, lower = g._index(x.device)
    signs = g._signs(x.dtype, x.device)

    def hat(t: torch.Tensor) -> torch.Tensor:  # [..., B, dim] -> [..., B, k, k]
        flat = t.index_select(-1, gather) * signs
        return flat.reshape(*flat.shape[:-1], g.k, g.k)

    X, Y = hat(x), hat(y)
    out = []
    for r in range(blocks):
        S = None
        for rt, a, b, s in terms:
            if rt == r:
                p = s * (X[..., a, :, :] @ Y[..., b, :, :])
                S = p if S is None else S + p
        if S is None:
            out.append(x.new_zeros(x.shape[:-2] + (g.dim,)))
        else:
            flat = S.reshape(*S.shape[:-2], g.k * g.k)
            out.append(flat.index_select(-1, upper) - flat.index_select(-1, lower))
    return torch.stack(out, -2)
