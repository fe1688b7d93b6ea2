"""Fused kernels for the ``so_crossed_module(k)`` gauge term of :class:`~gaugeflow.models.HigherGaugeFlow`.

``W (c_1 l1(B) + c_2 l2(B, V))`` — the crossed-module brackets of the contracted connection
``B = A[d]`` and the graded field ``V``, read by ``Π``'s linear map ``W`` — computed without a
``[dim so(k), k, k]`` basis. Two routes, equal in value and gradient (tests hold them to the
generic brackets of :mod:`gaugeflow.algebra`):

* :func:`crossed_module_projected` — the brackets on ``(B, V)``: a bilinear GEMM for small ``k``
  and ``D``; otherwise on CPU the native kernel through :func:`~gaugeflow.algebra.bracket_sums`
  (:func:`native_brackets`), else one ``4k³`` product for mid-range ``k`` or the ``3k³``
  dual-number form beyond.
* :func:`crossed_module_features` — the feature form: the connection's and the field's output
  layers absorbed into one batch-independent bilinear form on their hidden features; used when
  ``k`` is large against ``D`` and the width (:func:`_features_pay`).

Batched products of small matrices are dominated by per-call and per-matrix overheads on CPU;
the choices between the routes are calibrated on ``experiments/benchmarks/bench_gauge_overhead.py``
(docs/performance.md).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .. import _native
from ..algebra import SoCrossedModule
from ..algebra.bracket_sums import bracket_sums

__all__ = ["crossed_module_projected", "crossed_module_features"]


def crossed_module_projected(
    algebra: SoCrossedModule, c: "Sequence[float] | torch.Tensor", B: torch.Tensor, V: torch.Tensor, W: torch.Tensor
) -> torch.Tensor:
    """``W (c_1 l1(B) + c_2 l2(B, V))`` for ``so_crossed_module(k)``: bracket and ``Π``'s linear map fused.

    With ``B = (B0, (B1, b))``, ``V = (V0, (V1, v))``, ``X_i = hat(B_i)``, ``Y_i = hat(V_i)`` and, for
    each output row ``w`` of ``W = [W0 | W1 | w_c]``, ``H_i = hat(w_i)``: a weight row on so(k)
    coordinates reads a bracket as ``w · [ξ, η] = ⟨hat w, hat ξ hat η⟩_F``, so with
    ``l2(B, V) = ([B0, V0], ([B0, V1] + [B1, V0], 0))`` (SPEC §5.3)

        W l2(B, V) = ⟨H0, X0 Y0⟩_F + ⟨H1, X0 Y1 + X1 Y0⟩_F,     W l1(B) = W0 B1.

    ``X0 Y0`` and ``X0 Y1 + X1 Y0`` are the two parts of the dual-number product
    ``(X0 + εX1)(Y0 + εY1)``: two batched products, ``X0 Y0`` and ``[X0 | X1] [Y1 ; Y0]``, with
    ``3k³`` multiply-adds per sample (the three brackets computed separately would need six ``k×k``
    products, and one ``2k×k · k×2k`` product four). ``[X0 | X1]`` and ``[Y1 ; Y0]`` are built by
    one index gather each; the read-out against ``H`` is one GEMM ``[N, 2k²] @ [2k², D]``. No
    ``[dim so(k), k, k]`` basis and no bracket coordinates are formed. Two variants compute the same
    value where they are faster on CPU, because batched products of small matrices are dominated by
    per-call and per-matrix overheads there: for ``D · (2 dim so(k))² ≤ 8 · 3k³`` (``k ≤ 9`` on S²,
    ``k ≤ 5`` on ℝ^k) ``D`` bilinear forms in one GEMM (:func:`_crossed_module_bilinear`), and
    otherwise for ``k ≤ 12`` one ``4k³`` product (:func:`_crossed_module_wide`). Where the native
    kernel is available (:func:`native_brackets`) the three brackets run there, 8 samples per
    vector (:func:`_crossed_module_native`; 2× the speed of the PyTorch kernels for ``k`` = 7–11),
    and the bilinear GEMM only while ``D · (2 dim so(k))² ≤ 14 k³``.

    Args:
        algebra: ``so_crossed_module(k)``.
        c: ``(c_1, c_2)``.
        B: contracted connection ``[N, dim L]``; V: graded field ``[N, dim L]``.
        W: ``Π``'s ``[D, dim L]`` weight.

    Returns:
        ``[N, D]`` ambient vectors (``proju`` is applied by the caller).
    """
    n, k, D = algebra.g.dim, algebra.g.k, W.shape[0]
    native = native_brackets(B, k)
    if D * 4 * n * n <= (_BILINEAR_NATIVE if native else _BILINEAR_FACTOR * 3) * k**3:
        return _crossed_module_bilinear(algebra, c, B, V, W)
    if native:
        return _crossed_module_native(algebra, c, B, V, W)
    if k <= _WIDE_MAX_K:
        return _crossed_module_wide(algebra, c, B, V, W)
    return _crossed_module_dual(algebra, c, B, V, W)


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
    against ``D`` and ``hidden`` (S², ``k = 16``, width 64); :meth:`HigherGaugeFlow.gauge_term`
    picks it by :func:`_features_pay`.

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


def _features_pay(D: int, H: int, Hf: int, k: int, n_l: int, N: int, native: bool = False) -> bool:
    """Whether :func:`crossed_module_features` is cheaper than output layers + :func:`crossed_module_projected`.

    A count of multiply-adds per sample (forward) with weights calibrated on the overhead
    benchmark (batch 1024, CPU): the feature form's ``D² (H+1)(Hf+1)`` plus half its
    batch-independent ``G`` and ``K`` spread over the batch (large GEMMs), against the two output
    layers ``(D · H + Hf) · dim L`` plus ``3k³`` for the brackets weighted 7×, because batched
    ``k×k`` products and the gathers around them run far below GEMM throughput. Measured (ratio to
    the no-op step, width 64): S² with ``k = 16`` 1.02–1.04 against 1.53–1.68 for the brackets,
    ``k = 11`` 1.31 / 1.51, ``k = 10`` 1.36 / 1.43; ``k = 9`` 1.42 / 1.32 and ``k = 8`` 1.49 / 1.26,
    where the rule keeps the brackets; ℝ⁴ with ``k = 16`` 1.12 / 1.51; width 32, S² with ``k = 8``
    1.27 / 1.37; width 128, S² with ``k = 16``, a tie. Against the native brackets (``native``) the
    weight is 1 (:data:`_NATIVE_WEIGHT`): S² with ``k = 12`` 1.25 / 1.21 (brackets kept), ``k = 13``
    1.19 / 1.22, ``k = 16`` 1.03 / 1.32.
    """
    J, so2 = Hf + 1, k * (k - 1)
    feature = D * D * (H + 1) * J + 0.5 * (D * (H + 1) * so2 * D * J + 4 * D * J * k**3) / max(N, 1)
    brackets = (D * H + Hf) * n_l + (_NATIVE_WEIGHT if native else 7) * 3 * k**3
    return feature < brackets


def native_brackets(B: torch.Tensor, k: int) -> bool:
    """Whether the brackets of ``B`` go through the native kernel (:mod:`gaugeflow._native`).

    CPU tensors of float32/float64 with ``k ≤ 32``, when the kernel could be built (a C compiler is
    present and ``GAUGEFLOW_NATIVE`` is not ``0``).
    """
    return B.device.type == "cpu" and B.dtype in _native.DTYPES and k <= _native.MAX_K and _native.library() is not None


_CM_TERMS = ((0, 0, 0, 1.0), (1, 0, 1, 1.0), (1, 1, 0, 1.0))  # l2(B, V) = ([B0, V0], [B0, V1] + [B1, V0])


def _crossed_module_native(algebra: SoCrossedModule, c, B: torch.Tensor, V: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """The brackets as one :func:`~gaugeflow.algebra.bracket_sums` (native kernel), read out by one GEMM.

    ``l2(B, V)``'s two ``so(k)`` blocks come from the fused per-sample kernel (three ``k×k``
    products in registers, its gradients six); ``W l2 = l2 · W[:, :2 dim]ᵀ``.
    """
    g = algebra.g
    n, N = g.dim, B.shape[0]
    l2 = bracket_sums(g, B[:, : 2 * n].reshape(N, 2, n), V[:, : 2 * n].reshape(N, 2, n), _CM_TERMS, 2).view(N, 2 * n)
    return _with_l1(c, B, W, n, l2 @ W[:, : 2 * n].T)


def _crossed_module_wide(algebra: SoCrossedModule, c, B: torch.Tensor, V: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Mid-range ``k`` path of :func:`crossed_module_projected`: the dual product as *one* batched product.

    ``[X0 | X1] [[Y0, Y1], [0, Y0]] = [X0 Y0 | X0 Y1 + X1 Y0]``: ``4k³`` multiply-adds (the zero
    block is wasted) but one product with contiguous operands instead of two, no strided views and
    no concatenation; for ``k ≤ 12`` the per-call and per-matrix overheads it saves outweigh the
    extra arithmetic (overhead benchmark, width 64: ℝ⁸ 1.29–1.32 against 1.30–1.36 for the
    two-product form, ℝ¹⁰ 1.30 / 1.34, ℝ¹² 1.18 / 1.21, S² with ``k = 10`` 1.34 / 1.44–1.49).
    """
    g = algebra.g
    k, n = g.k, g.dim
    N, D = B.shape[0], W.shape[0]
    idx_x, sign_x, idx_y, sign_y = _wide_layout(g, B.device, B.dtype)
    Xh = (B.index_select(-1, idx_x) * sign_x).view(N, k, 2 * k)  # [X0 | X1]
    Yw = (V.index_select(-1, idx_y) * sign_y).view(N, 2 * k, 2 * k)  # [[Y0, Y1], [0, Y0]]
    T = torch.bmm(Xh, Yw).view(N, 2 * k * k)  # [X0Y0 | X0Y1 + X1Y0] as k × 2k
    H = _hat_weights(g, W).transpose(1, 2).reshape(D, 2 * k * k)  # [H0 | H1]
    return _with_l1(c, B, W, n, T @ H.T)


def _crossed_module_dual(algebra: SoCrossedModule, c, B: torch.Tensor, V: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """The dual-number path of :func:`crossed_module_projected` (``3k³`` per sample)."""
    g = algebra.g
    k, n = g.k, g.dim
    N = B.shape[0]
    idx_x, sign_x, idx_y, sign_y = _dual_layout(g, B.device, B.dtype)
    Xh = (B.index_select(-1, idx_x) * sign_x).view(N, k, 2 * k)  # [X0 | X1]
    Yv = (V.index_select(-1, idx_y) * sign_y).view(N, 2 * k, k)  # [Y1 ; Y0]
    T = torch.cat([torch.bmm(Xh[:, :, :k], Yv[:, k:]), torch.bmm(Xh, Yv)], 1).view(N, 2 * k * k)  # X0Y0 ; X0Y1 + X1Y0
    H = _hat_weights(g, W).reshape(W.shape[0], 2 * k * k)  # [D, 2k²]: hat(W0), hat(W1)
    return _with_l1(c, B, W, n, T @ H.T)


def _hat_weights(g, W: torch.Tensor) -> torch.Tensor:
    """``[D, 2, k, k]``: ``hat(W0_d)``, ``hat(W1_d)`` for each row of ``Π``'s weight (a 2-D gather)."""
    D, n = W.shape[0], g.dim
    return g.hat(W[:, : 2 * n].reshape(2 * D, n)).view(D, 2, g.k, g.k)


def _with_l1(c, B: torch.Tensor, W: torch.Tensor, n: int, l2_read: torch.Tensor) -> torch.Tensor:
    """``c_1 W l1(B) + c_2 W l2(B, V)`` from the kernels' ``W l2(B, V)``: ``W l1(B) = W0 B1``."""
    return c[0] * (B[:, n : 2 * n] @ W[:, :n].T) + c[1] * l2_read


_LAYOUTS: dict = {}
_BILINEAR_FACTOR = 8  # small k (and D): the bilinear GEMM's D·(2 dim so(k))² multiply-adds beat 3k³ in tiny per-sample products
_NATIVE_WEIGHT = 1  # _features_pay's weight of 3k³ for the native brackets (7 for the PyTorch kernels)
_BILINEAR_NATIVE = 14  # against the native kernel: bilinear while D·(2 dim so(k))² ≤ 14 k³ (k ≤ 5 on ℝ^k, k ≤ 6 on S²)
_WIDE_MAX_K = 12  # up to here one 4k³ product beats two with 3k³ (per-call and per-matrix overheads dominate)


def _crossed_module_bilinear(algebra: SoCrossedModule, c, B: torch.Tensor, V: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Same value as :func:`crossed_module_projected` for small ``k``: ``W l2(B, V)`` as ``D`` bilinear forms.

    ``w · [ξ, η] = ξᵀ F(w) η`` with ``F(w)_ab = ⟨w, [T_a, T_b]⟩`` (the matrix of ``−ad_w``), so
    ``W l2(B, V) = [B0 | B1] M [V0 | V1]ᵀ`` with ``M = [[F(W0), F(W1)], [F(W1), 0]]`` per output
    row: one GEMM ``[N, 2 dim] @ [2 dim, D · 2 dim]`` and a row-wise product with ``V``. In so(k)
    ``[T_a, T_b] = ±T_c`` for a single ``c`` (or 0), so every entry of ``M`` is one signed
    coordinate of ``W``: ``M`` is one gather of ``W`` (:func:`_bilinear_layout`), ``O(D dim²)`` per
    call and independent of the batch. ``O(B · D · k⁴)``, so only used while that is within a small
    factor of the ``3k³`` products (the batched ``k×k`` products of tiny matrices are dominated by
    per-matrix overhead on CPU).
    """
    n = algebra.g.dim
    N, D = B.shape[0], W.shape[0]
    idx, sign = _bilinear_layout(algebra.g, D, W.shape[1], W.device, W.dtype)
    M = (W.reshape(-1).index_select(0, idx) * sign).view(2 * n, D * 2 * n)  # M[a, (r, b)]
    U = B[:, : 2 * n] @ M  # [N, D · 2 dim]
    return _with_l1(c, B, W, n, (U.view(N, D, 2 * n) * V[:, None, : 2 * n]).sum(-1))


def _bilinear_layout(g, D: int, width: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``M[a, (r, b)] = sign · W.flatten()[idx]`` for :func:`_crossed_module_bilinear` (``W`` is ``[D, width]``).

    ``F(w)_ab = ⟨w, [T_ij, T_lm]⟩`` with ``[T_ij, T_lm] = δ_jl T_im − δ_il T_jm − δ_jm T_il + δ_im T_jl``
    and ``⟨w, T_xy⟩ = hat(w)[x, y]``; at most one term has ``x ≠ y``. Blocks: ``F(W0)`` top left,
    ``F(W1)`` off the diagonal (``W1`` starts at column ``dim``), zero bottom right.
    """
    key = ("bilinear", g.k, D, width, str(device), dtype)
    hit = _LAYOUTS.get(key)
    if hit is None:
        k, n = g.k, g.dim
        i, j = g._rows.view(n, 1), g._cols.view(n, 1)  # a = (i < j)
        l, m = g._rows.view(1, n), g._cols.view(1, n)  # b = (l < m)
        gather, hat_sign = g._gather.view(k, k), g._sign.view(k, k)
        coord = torch.zeros(n, n, dtype=torch.long)
        coef = torch.zeros(n, n, dtype=torch.float64)
        for cond, x, y, s in [(j == l, i, m, 1.0), (i == l, j, m, -1.0), (j == m, i, l, -1.0), (i == m, j, l, 1.0)]:
            x, y = x.expand(n, n), y.expand(n, n)
            term = cond.to(torch.float64) * s * hat_sign[x, y]  # 0 on the diagonal of hat(w)
            assert not bool(((term != 0) & (coef != 0)).any()), "so(k): [T_a, T_b] has a single term"
            coord = torch.where(term != 0, gather[x, y], coord)
            coef = coef + term
        idx = torch.zeros(2 * n, D, 2 * n, dtype=torch.long)
        sign = torch.zeros(2 * n, D, 2 * n, dtype=torch.float64)
        rows = (torch.arange(D) * width).view(1, D, 1)
        for (ra, rb), offset in [((0, 0), 0), ((0, 1), n), ((1, 0), n)]:
            idx[ra * n:(ra + 1) * n, :, rb * n:(rb + 1) * n] = rows + offset + coord.view(n, 1, n)
            sign[ra * n:(ra + 1) * n, :, rb * n:(rb + 1) * n] = coef.view(n, 1, n)
        hit = _LAYOUTS[key] = (idx.reshape(-1).to(device), sign.reshape(-1).to(device=device, dtype=dtype))
    return hit


def _wide_layout(g, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Gather indices and signs of ``[X0 | X1]`` (``[k, 2k]``) and ``[[Y0, Y1], [0, Y0]]`` (``[2k, 2k]``; sign 0 in the zero block)."""
    key = ("wide", g.k, str(device), dtype)
    hit = _LAYOUTS.get(key)
    if hit is None:
        k, n = g.k, g.dim
        gather, sign = g._gather.view(k, k), g._sign.view(k, k)
        top = torch.cat([gather, gather + n], 1), torch.cat([sign, sign], 1)
        bottom = torch.cat([torch.zeros_like(gather), gather], 1), torch.cat([torch.zeros_like(sign), sign], 1)
        hit = _LAYOUTS[key] = (
            top[0].reshape(-1).to(device),
            top[1].reshape(-1).to(device=device, dtype=dtype),
            torch.cat([top[0], bottom[0]], 0).reshape(-1).to(device),
            torch.cat([top[1], bottom[1]], 0).reshape(-1).to(device=device, dtype=dtype),
        )
    return hit


def _dual_layout(g, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Gather indices and signs of ``[X0 | X1]`` (``[k, 2k]``) and ``[Y1 ; Y0]`` (``[2k, k]``) from ``so(k) ⊕ so(k)`` coordinates."""
    key = (g.k, str(device), dtype)
    hit = _LAYOUTS.get(key)
    if hit is None:
        k, n = g.k, g.dim
        gather, sign = g._gather.view(k, k), g._sign.view(k, k)
        hit = _LAYOUTS[key] = (
            torch.cat([gather, gather + n], 1).reshape(-1).to(device),
            torch.cat([sign, sign], 1).reshape(-1).to(device=device, dtype=dtype),
            torch.cat([gather + n, gather], 0).reshape(-1).to(device),
            torch.cat([sign, sign], 0).reshape(-1).to(device=device, dtype=dtype),
        )
    return hit
