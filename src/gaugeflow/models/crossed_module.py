"""The ``so_crossed_module(k)`` gauge term of :class:`~gaugeflow.models.HigherGaugeFlow`, by two routes.

``W (c_1 l1(B) + c_2 l2(B, V))`` — the crossed-module brackets of the contracted connection
``B = A[d]`` and the graded field ``V``, read by ``Π``'s linear map ``W`` — computed without a
``[dim so(k), k, k]`` basis. Two routes, equal in value and gradient (tests hold them to the
generic brackets of :mod:`gaugeflow.algebra`), both plain differentiable PyTorch (public operations
and a public-API ``torch.autograd.Function``; ``torch.func`` and ``torch.compile`` work) and the same
on every device:

* :func:`crossed_module_projected` — the brackets on ``(B, V)`` as two batched matrix products
  (the dual-number form, ``3k³`` multiply-adds per sample) read out by two GEMMs, in one
  autograd Function with hand-written adjoints (public API: ``setup_context``, ``jvp``, vmap).
* :func:`crossed_module_features` — the feature form: the connection's and the field's output
  layers absorbed into one batch-independent bilinear form on their hidden features.

:func:`feature_form_pays` chooses between them from the shapes alone (``D``, the widths, ``k``,
``dim L``) by counting multiply-adds; it never looks at the batch or the device, so a point's
value does not depend on the batch it arrives in. Measured figures: docs/performance.md.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..algebra import SoCrossedModule

__all__ = ["crossed_module_projected", "crossed_module_features", "feature_form_pays"]


def crossed_module_projected(
    algebra: SoCrossedModule, c: "Sequence[float] | torch.Tensor", B: torch.Tensor, V: torch.Tensor, W: torch.Tensor
) -> torch.Tensor:
    """``W (c_1 l1(B) + c_2 l2(B, V))`` for ``so_crossed_module(k)``: bracket and ``Π``'s linear map fused.

    With ``B = (B0, (B1, b))``, ``V = (V0, (V1, v))``, ``X_i = hat(B_i)``, ``Y_i = hat(V_i)`` and, for
    each output row ``w`` of ``W = [W0 | W1 | w_c]``, ``H_i = hat(w_i)``: a weight row on so(k)
    coordinates reads a bracket as ``w · [ξ, η] = ⟨hat w, hat ξ hat η⟩_F``, so with
    ``l2(B, V) = ([B0, V0], ([B0, V1] + [B1, V0], 0))`` (docs/math.md)

        W l2(B, V) = ⟨H0, X0 Y0⟩_F + ⟨H1, X0 Y1 + X1 Y0⟩_F,     W l1(B) = W0 B1.

    ``X0 Y0`` and ``X0 Y1 + X1 Y0`` are the two parts of the dual-number product
    ``(X0 + εX1)(Y0 + εY1)``: two batched products, ``X0 Y0`` and ``[X1 | X0] [Y0 ; Y1]``, with
    ``3k³`` multiply-adds per sample (the three brackets computed separately would need six ``k×k``
    products), read out against ``H`` by two GEMMs ``[N, k²] @ [k², D]``. No ``[dim so(k), k, k]``
    basis and no bracket coordinates are formed. The products are one
    :class:`torch.autograd.Function` (``_DualProducts``) whose adjoints are four more batched
    products on the matrices kept from the forward pass (with ``Xᵀ = −X``: ``∂X0 = −(G0 Y0 + G1 Y1)``,
    ``∂X1 = −G1 Y0``, ``∂Y0 = −[X1 | X0][G1 ; G0]``, ``∂Y1 = −X0 G1``, ``G_i = Σ_r g_r H_i,r``) read
    back to coordinates by column gathers (``∂ξ_(i,j) = ∂X_ij − ∂X_ji``): no sign, slice or ``cat``
    adjoints and no ``index_add``, so far fewer fresh temporaries than autograd's chain
    (docs/performance.md). Second derivatives recompute the matrices differentiably; ``jvp``
    (the term is trilinear in ``(B, V, W)``) and ``vmap`` are supported.

    Args:
        algebra: ``so_crossed_module(k)``.
        c: ``(c_1, c_2)``.
        B: contracted connection ``[N, dim L]``; V: graded field ``[N, dim L]``.
        W: ``Π``'s ``[D, dim L]`` weight.

    Returns:
        ``[N, D]`` ambient vectors (``manifold.to_tangent`` is applied by the caller).
    """
    return _with_l1(c, B, W, algebra.g.dim, _DualProducts.apply(B, V, W, algebra.g)[0])


def crossed_module_features(
    algebra: SoCrossedModule, c, z: torch.Tensor, d: torch.Tensor, f: torch.Tensor, connection: nn.Linear, field: nn.Linear,
    W: torch.Tensor,
) -> torch.Tensor:
    """:func:`crossed_module_projected` computed from the networks' last hidden layers (the feature form).

    ``B = Σ_μ d^μ (Wc_μ z + bc_μ)`` and ``V = Wf f + bf`` are linear in the connection's and the
    field's hidden features ``z``, ``f`` and the whole term is bilinear in ``(B, V)``, so with
    ``z' = (z, 1)``, ``f' = (f, 1)``

        (W (c_1 l1(B) + c_2 l2(B, V)))_r = Σ_μ d^μ z'ᵀ K_rμ f',    K_rμ = Wc'_μᵀ G_r,

    where the column ``j`` of ``G_r`` holds the coordinates of ``ξ ↦ c_2 W_r l2(ξ, η_j)`` for the
    column ``η_j`` of ``Wf' = [Wf | bf]`` (plus ``c_1 W0_r`` on the ``B1`` part of the bias column,
    the ``l1`` term). ``G`` is built from ``hat`` matrices in one GEMM (``4 D k³ (hidden + 1)``
    multiply-adds) and ``K`` in one more (``2 dim so(k) · (D (hidden + 1))²``), independent of the
    batch. Per sample it costs one GEMM row of ``D² (hidden + 1)²`` multiply-adds, and the two
    output layers (``(D + 1) · hidden · dim L``) are never evaluated. That pays when ``k`` is large
    against ``D`` and ``hidden``; :meth:`HigherGaugeFlow.gauge_term` picks it by
    :func:`feature_form_pays`.

    Args:
        algebra: ``so_crossed_module(k)``.
        c: ``(c_1, c_2)``.
        z: connection network's hidden features ``[N, H]``; f: the field network's ``[N, Hf]``.
        d: direction ``[N, D]``.
        connection: the connection's output layer (``D · dim L`` outputs, direction-major).
        field: the field's output layer (``dim L`` outputs).
        W: ``Π``'s ``[D_out, dim L]`` weight.

    Returns:
        ``[N, D_out]``, equal to ``crossed_module_projected(algebra, c, A[d], V, W)``.
    """
    n, n_l = algebra.g.dim, algebra.dim
    N, H = z.shape
    D, D_out, J = d.shape[-1], W.shape[0], f.shape[-1] + 1
    G = _bracket_coefficients(algebra, c, field, W)  # [D_out, J, 2n]
    Wc = torch.cat([connection.weight, connection.bias[:, None]], 1).view(D, n_l, H + 1)[:, : 2 * n]
    K = Wc.transpose(1, 2).reshape(D * (H + 1), 2 * n) @ G.view(D_out * J, 2 * n).T  # [D (H+1), D_out J]
    u = (d[:, :, None] * torch.cat([z, z.new_ones(N, 1)], 1)[:, None, :]).reshape(N, D * (H + 1))
    Q = (u @ K).view(N, D_out, J)
    return (Q[..., :-1] * f[:, None, :]).sum(-1) + Q[..., -1]


def _bracket_coefficients(algebra: SoCrossedModule, c, field: nn.Linear, W: torch.Tensor) -> torch.Tensor:
    """``G [D_out, Hf + 1, 2 dim so(k)]``: ``G[r, j] · ξ = c_2 W_r l2(ξ, η_j) (+ c_1 W_r l1(ξ) for the bias column)``.

    ``η_j`` are the columns of the field's ``[Wf | bf]``. From ``hat`` matrices: ``⟨H0, X0 Y0⟩ +
    ⟨H1, X0 Y1 + X1 Y0⟩ = ⟨H0 Y0ᵀ + H1 Y1ᵀ, X0⟩ + ⟨H1 Y0ᵀ, X1⟩`` with ``Yᵀ = −Y``, and
    ``⟨M, hat ξ⟩ = Σ_a ξ_a (M_ij − M_ji)``; the two products for all ``r`` and ``j`` are one GEMM
    ``[2 D_out k, 2k] @ [2k, (Hf + 1) k]``. Independent of the batch.
    """
    g = algebra.g
    k, n = g.k, g.dim
    D_out, J = W.shape[0], field.in_features + 1
    Wf = torch.cat([field.weight, field.bias[:, None]], 1)  # [dim L, J]: columns η_j
    Y = g.hat(Wf[: 2 * n].T.reshape(J, 2, n)).permute(1, 2, 0, 3).reshape(2 * k, J * k)  # [Y0_1 … Y0_J ; Y1_1 … Y1_J]
    Hs = _hat_weights(g, W)
    H0, H1 = Hs[:, 0].reshape(D_out * k, k), Hs[:, 1].reshape(D_out * k, k)
    L = torch.cat([torch.cat([H0, H1], 1), torch.cat([H1, torch.zeros_like(H1)], 1)], 0)  # Z0 = H0Y0 + H1Y1, Z1 = H1Y0
    Z = (L @ Y).view(2, D_out, k, J, k).permute(1, 3, 0, 2, 4)  # [D_out, J, 2, k, k]
    G = -2 * c[1] * g.vee(Z)  # ξ-coordinates of −Z: Z_ji − Z_ij = −2 vee(Z)
    l1 = G.new_zeros(G.shape)
    l1[:, -1, 1] = W[:, :n]  # c_1 W0 B1, read by the bias column (f'_J = 1)
    return (G + c[0] * l1).view(D_out, J, 2 * n)


def feature_form_pays(D: int, H: int, Hf: int, k: int, dim_l: int) -> bool:
    """Whether :func:`crossed_module_features` needs fewer multiply-adds per sample than the brackets.

    A rule on shapes only — never the batch size or the device — so a point's velocity does not
    depend on the batch it arrives in. Forward multiply-adds per sample:

    * feature form: ``D² (H + 1)(Hf + 1)`` (one GEMM row against the batch-independent ``K``);
    * brackets: the connection's and the field's output layers ``(D · H + Hf) · dim L``, the
      dual-number products ``3k³`` and the read-out ``2k² D``.

    Args:
        D: ambient dimension (directions and outputs).
        H: width of the connection network's last hidden layer.
        Hf: width of the field network's last hidden layer.
        k: the ``so(k)`` of the algebra.
        dim_l: ``dim L = 2 dim so(k) + 1``.

    Examples:
        >>> feature_form_pays(3, 64, 64, 16, 241), feature_form_pays(3, 64, 64, 8, 57)   # S², width 64
        (True, False)
    """
    feature = D * D * (H + 1) * (Hf + 1)
    brackets = (D * H + Hf) * dim_l + 3 * k**3 + 2 * k * k * D
    return feature < brackets


def _hat_weights(g, W: torch.Tensor) -> torch.Tensor:
    """``[D, 2, k, k]``: ``hat(W0_d)``, ``hat(W1_d)`` for each row of ``Π``'s weight (a 2-D gather)."""
    D, n = W.shape[0], g.dim
    return g.hat(W[:, : 2 * n].reshape(2 * D, n)).view(D, 2, g.k, g.k)


def _with_l1(c, B: torch.Tensor, W: torch.Tensor, n: int, l2_read: torch.Tensor) -> torch.Tensor:
    """``c_1 W l1(B) + c_2 W l2(B, V)`` from the kernels' ``W l2(B, V)``: ``W l1(B) = W0 B1``."""
    return c[0] * (B[:, n : 2 * n] @ W[:, :n].T) + c[1] * l2_read


class _DualProducts(torch.autograd.Function):
    """``W l2(B, V)`` as the dual-number products.

    Outputs ``(value [N, D], *matrices)``; the matrices are kept for the adjoints and non-differentiable.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(B, V, W, g):
        return _dual_parts(g, B, V, W)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        B, V, W, ctx.g = inputs
        # the same tensors for both: torch.func's generated vmap rule keeps one record of the saved tensors'
        # batch dimensions for the two calls (the last one's), so a shorter forward list would break vmap
        ctx.save_for_backward(B, V, W, *output[1:])
        ctx.save_for_forward(B, V, W, *output[1:])
        ctx.mark_non_differentiable(*output[1:])
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, grad, *_):
        B, V, W, *parts = ctx.saved_tensors
        if grad is None:
            return None, None, None, None
        if torch.is_grad_enabled():  # create_graph: the matrices again, differentiably, for higher derivatives
            parts = _dual_parts(ctx.g, B, V, W)[1:]
        return (*_dual_adjoints(ctx.g, grad, *parts, B.shape[-1], ctx.needs_input_grad[2]), None)

    @staticmethod
    def jvp(ctx, dB, dV, dW, _):
        B, V, W = ctx.saved_tensors[:3]
        terms = [_dual_parts(ctx.g, *args)[0] for args, t in (((dB, V, W), dB), ((B, dV, W), dV), ((B, V, dW), dW))
                 if t is not None]
        return (sum(terms[1:], terms[0]) if terms else None), None, None, None, None, None


def _dual_parts(g, B: torch.Tensor, V: torch.Tensor, W: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``(W l2(B, V) [N, D], Xr, Ys, T0, T1, Hs)``.

    ``Xr = [X1 | X0] [N, k, 2k]``, ``Ys = [Y0 ; Y1] [N, 2k, k]``, ``T0 = X0 Y0``, ``T1 = X1 Y0 + X0 Y1``
    (``[N, k, k]``); ``Hs [D, 2k²]`` holds ``[hat(W1_r) ; hat(W0_r)]`` flattened per output row ``r``.
    """
    k = g.k
    N, kk = B.shape[0], k * k
    side, side_sign, stacked, stacked_sign, _, _, swapped = _dual_layout(g, B.device, B.dtype)
    Xr = B.index_select(-1, side).mul_(side_sign).view(N, k, 2 * k)
    Ys = V.index_select(-1, stacked).mul_(stacked_sign).view(N, 2 * k, k)
    Hs = W.index_select(-1, swapped).mul_(stacked_sign)
    T0 = torch.bmm(Xr[:, :, k:], Ys[:, :k])
    T1 = torch.bmm(Xr, Ys)
    out = torch.addmm(T0.view(N, kk) @ Hs[:, kk:].T, T1.view(N, kk), Hs[:, :kk].T)
    return out, Xr, Ys, T0, T1, Hs


def _dual_adjoints(g, grad, Xr, Ys, T0, T1, Hs, dim_l: int, want_w: bool) -> tuple:
    """``(∂B, ∂V, ∂W)`` of :func:`_dual_parts`'s value for the cotangent ``grad [N, D]``.

    Differentiable expressions of their arguments (the backward of a backward is autograd's).

    With ``[G1 ; G0] = grad Hs`` and ``Xᵀ = −X``: ``−∂X0 = G0 Y0 + G1 Y1``, ``−∂X1 = G1 Y0``,
    ``−∂Y0 = [X1 | X0] [G1 ; G0]``, ``−∂Y1 = X0 G1``; coordinates ``∂ξ_(i,j) = ∂X_ij − ∂X_ji`` by
    two column gathers per matrix.
    """
    k, n = g.k, g.dim
    N, kk = Xr.shape[0], k * k
    up, lo = _dual_layout(g, Xr.device, Xr.dtype)[4:6]
    Gs = (grad @ Hs).view(N, 2 * k, k)
    G1, Y0, X0 = Gs[:, :k], Ys[:, :k], Xr[:, :, k:]

    def pairs(M, a, b):  # M[:, a] − M[:, b] on the flattened k × k matrix
        M = M.reshape(M.shape[0], kk)
        return M.index_select(-1, a) - M.index_select(-1, b)

    # each product is read back to coordinates as soon as it is formed, so few [N, k, k] temporaries live at once
    GY0 = torch.bmm(Gs, Y0)  # [G1 Y0 ; G0 Y0]
    dX1 = pairs(GY0[:, :k], lo, up)
    dX0 = pairs(torch.baddbmm(GY0[:, k:], G1, Ys[:, k:]), lo, up)
    del GY0
    zeros = grad.new_zeros(N, dim_l - 2 * n)
    dB = torch.cat([dX0, dX1, zeros], -1)
    del dX0, dX1
    dY0 = pairs(torch.bmm(Xr, Gs), lo, up)
    dV = torch.cat([dY0, pairs(torch.bmm(X0, G1), lo, up), zeros], -1)
    if not want_w:
        return dB, dV, None
    gT = grad.T  # ∂H_r = Σ_samples grad_r T, read as ∂w = ∂H[up] − ∂H[lo]
    return dB, dV, torch.cat([pairs(gT @ T0.view(N, kk), up, lo), pairs(gT @ T1.view(N, kk), up, lo),
                              grad.new_zeros(grad.shape[-1], dim_l - 2 * n)], -1)


_LAYOUTS: dict = {}


def _dual_layout(g, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Index tensors of the dual form, cached per ``(k, device, dtype)``.

    Gathers and signs, from ``so(k) ⊕ so(k)`` coordinates, of ``[X1 | X0]`` (``[k, 2k]``) and
    ``[Y0 ; Y1]`` (``[2k, k]``), flat; ``(up, lo)``: the flat positions of ``(i, j)`` and ``(j, i)``,
    ``i < j``, in a ``k × k`` matrix; the gather of ``[H1 ; H0]`` (same signs as ``[Y0 ; Y1]``).
    """
    key = (g.k, str(device), dtype)
    hit = _LAYOUTS.get(key)
    if hit is None:
        k, n = g.k, g.dim
        gather, sign = g._gather.view(k, k), g._sign.view(k, k)
        rows, cols = torch.triu_indices(k, k, offset=1)
        hit = _LAYOUTS[key] = (
            torch.cat([gather + n, gather], 1).reshape(-1).to(device),
            torch.cat([sign, sign], 1).reshape(-1).to(device=device, dtype=dtype),
            torch.cat([gather, gather + n], 0).reshape(-1).to(device),
            torch.cat([sign, sign], 0).reshape(-1).to(device=device, dtype=dtype),
            (rows * k + cols).to(device),
            (cols * k + rows).to(device),
            torch.cat([gather + n, gather], 0).reshape(-1).to(device),
        )
    return hit
