"""Sums of ``so(k)`` brackets over a batch, as one differentiable PyTorch function.

    out[..., r, :] = Σ_{t : r_t = r} s_t · [x[..., a_t, :], y[..., b_t, :]]

for a fixed list of terms ``(r_t, a_t, b_t, s_t)``. The crossed-module bracket is three such terms
(``l2(B, V) = ([B0, V0], [B0, V1] + [B1, V0])``). Computed with ``hat`` (an index gather), one
batched matrix product per term and the coordinates ``P_ij − P_ji`` of ``P = Σ s X Y`` (docs/math.md
§2): plain PyTorch operations, so gradients of any order, ``torch.func`` (``jvp``, ``vmap``) and
``torch.compile`` work on every device. Each sample's value depends on its own row only.
"""
from __future__ import annotations

from typing import Sequence

import torch

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

    Raises:
        TypeError: ``g`` is not an ``so(k)``.
        ValueError: shapes that do not fit ``g`` or each other, or a term out of range.

    Examples:
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
    terms = _checked_terms(terms, x.shape[-2], y.shape[-2], blocks)
    X, Y = g.hat(x), g.hat(y)  # [..., P, k, k], [..., Q, k, k]
    _, upper, lower = g._index(x.device)
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
            flat = S.flatten(-2)
            out.append(flat.index_select(-1, upper) - flat.index_select(-1, lower))
    return torch.stack(out, -2)


def _checked_terms(terms, P: int, Q: int, blocks: int) -> Terms:
    """``terms`` as a tuple of ``(int, int, int, float)``, each index in range."""
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
        raise ValueError(f"bracket_sums: blocks must be a positive integer, got {blocks!r}")
    checked = tuple((int(r), int(a), int(b), float(s)) for r, a, b, s in terms)
    if not checked or any(not (0 <= r < blocks and 0 <= a < P and 0 <= b < Q) for r, a, b, _ in checked):
        raise ValueError(f"bracket_sums: terms must be a non-empty list of (r < {blocks}, a < {P}, b < {Q}, s), got {checked}")
    return checked
