"""Conformance checks for Lie algebras and 2-term L∞-algebras (opt-in, never in hot paths).

Both checkers draw seeded standard-normal elements, evaluate every identity on a batch, and record
the largest *relative* violation per identity: ``max |Σ terms| / max(1, max |term|)``. Behaviour on
failure: they raise :class:`AlgebraCheckError` (an ``AssertionError`` carrying ``.report``, like
``check_manifold``'s ``ManifoldCheckError``) by default, or with ``raise_on_failure=False`` return a
failing :class:`AlgebraReport` whose :meth:`~AlgebraReport.raise_if_failed` raises later. The default tolerance is ``tol("point", dtype)`` (1e-10 in float64, 1e-4 in float32).

Examples:
    >>> from gaugeflow.algebra import so, so_crossed_module
    >>> check_lie_algebra(so(4)).passed
    True
    >>> check_linf_algebra(so_crossed_module(3)).passed
    True
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Optional

import torch

from .._numerics import tol

__all__ = ["AlgebraCheckError", "AlgebraReport", "check_lie_algebra", "check_linf_algebra"]


class AlgebraCheckError(AssertionError):
    """An algebra failed a check; the message lists every identity, ``.report`` holds the report."""

    def __init__(self, message: str, report: "AlgebraReport"):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class AlgebraReport:
    """Largest relative violation per identity. ``bool(report)`` is ``report.passed``."""

    algebra: str
    violations: dict
    tolerance: float
    n: int
    dtype: torch.dtype

    @property
    def failures(self) -> dict:
        """The identities whose violation exceeds the tolerance (NaN counts as a failure)."""
        return {k: v for k, v in self.violations.items() if not v <= self.tolerance}

    @property
    def passed(self) -> bool:
        return not self.failures

    def __bool__(self) -> bool:
        return self.passed

    def raise_if_failed(self) -> "AlgebraReport":
        """Raise :class:`AlgebraCheckError` listing the failing identities; otherwise return ``self``."""
        if not self.passed:
            raise AlgebraCheckError(f"{self.algebra}: identities violated\n{self}", self)
        return self

    def __str__(self) -> str:
        lines = [f"{self.algebra}: n={self.n}, {self.dtype}, tolerance {self.tolerance:.1e}"]
        for name, v in self.violations.items():
            flag = "ok  " if v <= self.tolerance else "FAIL"
            lines.append(f"  {flag} {name:<34} {v:.3e}")
        return "\n".join(lines)


def _rel(residual: torch.Tensor, *terms: torch.Tensor) -> float:
    """``max |residual| / max(1, max_i max |term_i|)`` as a Python float (NaN propagates)."""
    scale = max([1.0] + [float(t.detach().abs().max()) for t in terms if t.numel()])
    return float(residual.detach().abs().max()) / scale if residual.numel() else 0.0


def _finish(name: str, violations: dict, atol: float, n: int, dtype, raise_on_failure: bool) -> AlgebraReport:
    report = AlgebraReport(name, violations, atol, n, dtype)
    return report.raise_if_failed() if raise_on_failure else report


def check_lie_algebra(
    g: Any,
    n: int = 64,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    atol: Optional[float] = None,
    raise_on_failure: bool = True,
) -> AlgebraReport:
    """Check the Lie-algebra identities of ``g`` on ``n`` seeded random elements.

    ``g`` needs ``dim`` and ``bracket(x, y)`` on ``[..., dim]`` coordinates. Checked: bilinearity,
    broadcasting of batch axes, antisymmetry ``[x,y] = −[y,x]``, Jacobi ``[x,[y,z]] + [y,[z,x]] + [z,[x,y]] = 0``; if ``g`` has
    ``inner``: ad-invariance ``⟨[x,y],z⟩ + ⟨y,[x,z]⟩ = 0``; if it has ``hat``/``vee``: ``vee∘hat = id``,
    ``hat`` antisymmetric, ``hat[x,y] = [hat x, hat y]``; if it has ``act`` and ``k``: the representation
    property ``ρ([x,y]) = [ρ(x), ρ(y)]`` on vectors and ``⟨v, ρ(x)v⟩ = 0``.

    Returns:
        :class:`AlgebraReport`; raises :class:`AlgebraCheckError` on failure unless ``raise_on_failure=False``.
    """
    gen = torch.Generator().manual_seed(seed)
    x, y, z = torch.randn(3, n, g.dim, generator=gen, dtype=dtype)
    a = torch.randn(n, 1, generator=gen, dtype=dtype)
    br = g.bracket
    xy, yx = br(x, y), br(y, x)
    j = (br(x, br(y, z)), br(y, br(z, x)), br(z, br(x, y)))
    lin = br(a * x + y, z) - a * br(x, z) - br(y, z)
    v = {
        "bilinearity": _rel(lin, a * br(x, z), br(y, z)),
        "antisymmetry": _rel(xy + yx, xy),
        "jacobi": _rel(j[0] + j[1] + j[2], *j),
    }
    grid = br(x[:2, None], y[:3])  # batch axes broadcast across ranks: [2, 1] × [3] -> [2, 3]
    loop = torch.stack([torch.stack([br(x[i], y[j]) for j in range(3)]) for i in range(2)])
    v["broadcasting"] = _rel(grid - loop, loop) if grid.shape == loop.shape else float("inf")
    if hasattr(g, "inner"):
        t1, t2 = g.inner(xy, z), g.inner(y, br(x, z))
        v["ad_invariance"] = _rel(t1 + t2, t1, t2)
    if hasattr(g, "hat") and hasattr(g, "vee"):
        X, Y = g.hat(x), g.hat(y)
        v["vee_hat_inverse"] = _rel(g.vee(X) - x, x)
        v["hat_antisymmetric"] = _rel(X + X.transpose(-1, -2), X)
        v["hat_homomorphism"] = _rel(g.hat(xy) - (X @ Y - Y @ X), X @ Y)
    if hasattr(g, "act") and hasattr(g, "k"):
        u = torch.randn(n, g.k, generator=gen, dtype=dtype)
        t = (g.act(xy, u), g.act(x, g.act(y, u)), g.act(y, g.act(x, u)))
        v["representation"] = _rel(t[0] - t[1] + t[2], *t)
        v["act_skew"] = _rel((u * g.act(x, u)).sum(-1), u * g.act(x, u))
    return _finish(repr(g), v, tol("point", dtype) if atol is None else atol, n, dtype, raise_on_failure)


def _sign(perm: tuple[int, ...]) -> int:
    inversions = sum(1 for i, j in itertools.combinations(range(len(perm)), 2) if perm[i] > perm[j])
    return -1 if inversions % 2 else 1


def _linf_identities(L: Any, e: dict) -> dict:
    """The five homotopy-Jacobi identities of :mod:`gaugeflow.algebra.linf` as ``{name: (lhs−rhs, terms)}``."""
    l1, l2, l3 = L.l1, L.l2, L.l3
    x, y, z, w, h, k = (e[s] for s in "xyzwhk")
    out = {}
    t = (l1(l2(x, h)), l2(x, l1(h)))
    out["1: l1 l2(x,h) = l2(x, l1 h)"] = (t[0] - t[1], t)
    t = (l2(l1(h), k), l2(h, l1(k)))
    out["2: l2(l1 h, k) = l2(h, l1 k)"] = (t[0] - t[1], t)
    t = (l1(l3(x, y, z)), l2(l2(x, y), z), l2(l2(x, z), y), l2(x, l2(y, z)))
    out["3: Jacobi on L0 up to l1 l3"] = (t[0] + t[1] - t[2] - t[3], t)
    t = (l3(x, y, l1(h)), l2(l2(x, y), h), l2(l2(x, h), y), l2(x, l2(y, h)))
    out["4: Jacobi on L0,L0,L1 up to l3"] = (t[0] + t[1] - t[2] - t[3], t)
    lhs = (l2(l3(w, x, y), z), l2(l3(w, y, z), x), l3(l2(w, y), x, z), l3(l2(x, z), w, y))
    rhs = (l2(l3(w, x, z), y), l2(l3(x, y, z), w), l3(l2(w, x), y, z), l3(l2(w, z), x, y),
           l3(l2(x, y), w, z), l3(l2(y, z), w, x))
    out["5: coherence of l3"] = (sum(lhs) - sum(rhs), lhs + rhs)
    return out


def _linf_structure(L: Any, e: dict, a: torch.Tensor) -> dict:
    """Graded antisymmetry, degree structure and multilinearity on graded elements."""
    x, y, z, h, k = (e[s] for s in "xyzhk")
    d0 = L.dims[0]
    l3xyz = L.l3(x, y, z)
    args = (x, y, z)
    perm = max(_rel(L.l3(*(args[i] for i in s)) - _sign(s) * l3xyz, l3xyz) for s in itertools.permutations(range(3)))
    zero_parts = torch.cat([
        L.l1(x), L.l1(h)[..., d0:], L.l2(h, k), L.l2(x, y)[..., d0:], L.l2(x, h)[..., :d0],
        l3xyz[..., :d0], L.l3(x, y, h), L.l3(h, x, y), L.bracket(x, y, z, h)], dim=-1)
    B, C = x + h, y + k
    lin2 = L.l2(a * B, C) - a * (L.l2(x, y) + L.l2(x, k) + L.l2(h, y))
    lin3 = L.l3(a * B, y, z) - a * L.l3(x, y, z)
    grid = L.l2(B[:2, None], C[:3])  # batch axes broadcast across ranks: [2, 1] × [3] -> [2, 3]
    loop = torch.stack([torch.stack([L.l2(B[i], C[j]) for j in range(3)]) for i in range(2)])
    return {
        "antisymmetry l2(L0, L0)": _rel(L.l2(x, y) + L.l2(y, x), L.l2(x, y)),
        "antisymmetry l2(L0, L1)": _rel(L.l2(x, h) + L.l2(h, x), L.l2(x, h)),
        "antisymmetry l3": perm,
        "degrees (zero components)": _rel(zero_parts, x),
        "multilinearity": max(_rel(lin2, L.l2(B, C)), _rel(lin3, l3xyz)),
        "broadcasting": _rel(grid - loop, loop) if grid.shape == loop.shape else float("inf"),
    }


def check_linf_algebra(
    L: Any,
    n: int = 32,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    atol: Optional[float] = None,
    raise_on_failure: bool = True,
) -> AlgebraReport:
    """Check a 2-term L∞-algebra against the convention of :mod:`gaugeflow.algebra.linf`.

    Draws ``x, y, z, w ∈ L0`` and ``h, k ∈ L1`` (as flat graded elements ``[n, dim L]``) and checks
    graded antisymmetry (``l2`` on L0⊗L0 and L0⊗L1, total antisymmetry of ``l3``), the degree
    structure (components that must vanish), multilinearity on mixed-degree elements, broadcasting
    of batch axes (``l2`` of batch shapes ``[2, 1]`` and ``[3]`` equals the loop), and the five
    homotopy-Jacobi identities, through the public ``L.l1/l2/l3/bracket``.

    Returns:
        :class:`AlgebraReport`; raises :class:`AlgebraCheckError` on failure unless ``raise_on_failure=False``.
    """
    gen = torch.Generator().manual_seed(seed)
    d0, d1 = L.dims
    zeros0, zeros1 = torch.zeros(n, d0, dtype=dtype), torch.zeros(n, d1, dtype=dtype)
    e = {s: L.join(torch.randn(n, d0, generator=gen, dtype=dtype), zeros1) for s in "xyzw"}
    e.update({s: L.join(zeros0, torch.randn(n, d1, generator=gen, dtype=dtype)) for s in "hk"})
    a = torch.randn(n, 1, generator=gen, dtype=dtype)
    v = _linf_structure(L, e, a)
    v.update({name: _rel(res, *terms) for name, (res, terms) in _linf_identities(L, e).items()})
    return _finish(repr(L), v, tol("point", dtype) if atol is None else atol, n, dtype, raise_on_failure)
