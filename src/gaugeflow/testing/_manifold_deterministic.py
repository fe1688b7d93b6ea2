"""Deterministic conformance checks: base distribution, input validation and gradients.

Each has the signature ``check(M, dtype, meter, base_samples)`` (see ``_manifold_properties``).
"""
from __future__ import annotations

import math

import torch

from .._numerics import tol
from ..geometry.manifold import Manifold
from .strategies import NEAR_OFFSET, _unit_tangents, seeded_points

_N_BASE = 64


def check_random_base(M: Manifold, dtype, meter, base_samples: int = 0) -> None:
    """Samples have shape ``[n, D]`` and ``dtype``, lie on the manifold, are reproducible; log-probs finite."""
    x = M.random_base(_N_BASE, generator=torch.Generator().manual_seed(7), dtype=dtype)
    meter(f"random_base shape ({_N_BASE}, {M.ambient_dim}) and dtype {dtype}",
          float(tuple(x.shape) != (_N_BASE, M.ambient_dim) or x.dtype != dtype), 0.5)
    meter("random_base on manifold", M._point_residual(x), tol("point", dtype))
    again = M.random_base(_N_BASE, generator=torch.Generator().manual_seed(7), dtype=dtype)
    meter("random_base reproducible with a generator", (again - x).abs().amax(-1), 0.0 + 1e-300)
    lp = M.base_log_prob(x)
    meter(f"base_log_prob shape ({_N_BASE},), finite", float(tuple(lp.shape) != (_N_BASE,)) + (~torch.isfinite(lp)).double(), 0.5)


def _tangent_basis(M: Manifold, x: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis ``[dim, D]`` of ``T_xM`` (Gram–Schmidt with ``M.inner`` on projected axes)."""
    basis: list[torch.Tensor] = []
    for e in torch.eye(M.ambient_dim, dtype=x.dtype):
        w = M.proju(x, e)
        for b in basis:
            w = w - M.inner(x, w, b) * b
        n = M.norm(x, w)
        if float(n) > 1e-6:
            basis.append(w / n)
        if len(basis) == M.dim:
            return torch.stack(basis)
    raise ValueError(f"{M}: proju spans only {len(basis)} of {M.dim} tangent dimensions")


def _proposal(M: Manifold, c: torch.Tensor, E: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``[n]`` and Cholesky factor ``[n, n]`` of a Gaussian proposal in normal coordinates at ``c``.

    Moments of 2000 ``random_base`` samples mapped by ``log_c`` (the proposal only needs to cover
    ``p0``; any choice keeps the estimate unbiased), widened by 1.3 for heavier tails than ``p0``.
    """
    x = M.random_base(2000, generator=g, dtype=c.dtype)
    v = M.inner(c, M.log(c.expand_as(x), x)[:, None, :], E)  # [2000, n] coordinates in the basis E
    mean, cov = v.mean(0), torch.cov(v.T).reshape(M.dim, M.dim)
    return mean, 1.3 * torch.linalg.cholesky(cov + 1e-6 * torch.eye(M.dim, dtype=c.dtype))


def check_base_density(M: Manifold, dtype, meter, base_samples: int = 20000) -> None:
    """``∫ exp(base_log_prob) dvol = 1`` by importance sampling in the normal chart at a base point.

    Proposal: a Gaussian ``q`` in ``T_cM`` (see :func:`_proposal`), ``x = exp_c(v)``; weight
    ``p0(x)·J(v)/q(v)`` with the volume factor ``J = sqrt(det G)``, ``G_ij = g_x(∂_i x, ∂_j x)`` from
    intrinsic central differences (``log`` at ``x``), and 0 for ``v`` outside the domain where
    ``log_c(exp_c(v)) = v`` (beyond the cut locus). Runs once, in float64.
    """
    if dtype != torch.float64:  # one float64 integral is the informative check
        return
    g = torch.Generator().manual_seed(11)
    c = M.random_base(1, generator=g, dtype=dtype)[0]
    E = _tangent_basis(M, c)
    n = M.dim
    mean, L = _proposal(M, c, E, g)
    z = torch.randn(base_samples, n, generator=g, dtype=dtype)
    v = mean + z @ L.T
    log_q = -0.5 * (z * z).sum(-1) - torch.log(torch.diagonal(L)).sum() - 0.5 * n * math.log(2 * math.pi)
    cb = c.expand(base_samples, -1)
    x = M.exp(cb, v @ E)
    h, eye = 1e-3, torch.eye(n, dtype=dtype)  # truncation O(h²) ~ 1e-7; robust to log floors near y = x
    cols = []
    for i in range(n):
        plus, minus = M.exp(cb, (v + h * eye[i]) @ E), M.exp(cb, (v - h * eye[i]) @ E)
        cols.append((M.log(x, plus) - M.log(x, minus)) / (2 * h))
    G = torch.stack([torch.stack([M.inner(x, a, b) for b in cols], -1) for a in cols], -2)
    vol = torch.sqrt(torch.linalg.det(G).clamp_min(0))
    inside = torch.ones(base_samples, dtype=torch.bool)
    if math.isfinite(M.injectivity_radius):
        u = v @ E
        inside = M.norm(cb, M.log(cb, x) - u) <= 1e-5 * (1 + M.norm(cb, u))
    w = torch.where(inside, torch.exp(M.base_log_prob(x) - log_q) * vol, 0)
    mean_w, se = float(w.mean()), float(w.std() / math.sqrt(base_samples))
    meter("Monte Carlo standard error <= 0.02 (power of the check)", se, 0.02)
    meter(f"∫ p0 dvol = 1 (estimate {mean_w:.4f} ± {se:.4f})", abs(mean_w - 1), 5 * se + 1e-3)


def check_bad_input(M: Manifold, dtype, meter, base_samples: int = 0) -> None:
    """``check_point`` raises ValueError/TypeError naming expected vs received for bad input."""
    x = seeded_points(M, 3, torch.Generator().manual_seed(3), dtype)
    D = M.ambient_dim
    cases = [
        ("wrong last-axis size", torch.cat([x, x[:, :1]], -1), ValueError, (str(D), str(D + 1))),
        ("NaN entry", torch.where(torch.arange(D) == 0, math.nan, x), ValueError, ("NaN",)),
        ("integer dtype", x.round().long(), TypeError, ("float", "torch.int64")),
    ]
    off = x + 10.0
    if float(M._point_residual(off).max()) > tol("point", dtype):
        cases.append(("off-manifold point", off, ValueError, ("off the manifold",)))
    for label, bad, exc_type, words in cases:
        try:
            M.check_point(bad)
        except exc_type as exc:
            missing = [w for w in words if w not in str(exc)]
            meter(f"check_point({label}) message names {words}", float(bool(missing)), 0.5)
        except Exception as exc:  # wrong exception type
            meter(f"check_point({label}) raises {exc_type.__name__}, got {type(exc).__name__}", 1.0, 0.5)
        else:
            meter(f"check_point({label}) raises {exc_type.__name__}", 1.0, 0.5)


def _grad_cases(M: Manifold, dtype):
    """``(label, fn, args, eps)`` of the gradient checks that apply (``log``/``dist`` cases need those
    capabilities; ``spectral_distance`` is checked at independent pairs where the manifold has it)."""
    g = torch.Generator().manual_seed(5)
    x = seeded_points(M, 2, g, dtype)
    e = _unit_tangents(M, x, 17)
    near = M.exp(x, NEAR_OFFSET * e)
    cases = [("exp at u = 0", M.exp, (x, torch.zeros_like(x)), 1e-6)]
    if "log" in M.capabilities:
        cases += [("log at y = x", M.log, (x, x.clone()), 1e-6), ("log at y 1e-7 from x", M.log, (x, near), 1e-10)]
    if "dist" in M.capabilities:
        cases += [("dist at y = x", M.dist, (x, x.clone()), 1e-6), ("dist at y 1e-7 from x", M.dist, (x, near), 1e-10)]
    if "spectral" in M.capabilities:
        cases += [("spectral_distance at y = x", M.spectral_distance, (x, x.clone()), 1e-6),
                  ("spectral_distance at independent y", M.spectral_distance, (x, seeded_points(M, 2, g, dtype)), 1e-6)]
    return cases


def check_gradients(M: Manifold, dtype, meter, base_samples: int = 0) -> None:
    """Finite gradients at the degenerate points in every dtype; float64 ``gradcheck`` there.

    Only the operations the manifold has (``M.capabilities``): ``exp`` always, ``log``/``dist`` with
    those capabilities, ``spectral_distance`` with ``spectral``.

    ``dist`` has a kink at ``y = x``: there the safe-norm gradient 0 equals the central difference;
    at ``y`` within 1e-7 of ``x`` the finite-difference step (1e-10) is below the offset.
    """
    for label, fn, args, eps in _grad_cases(M, dtype):
        leaves = [a.detach().clone().requires_grad_(True) for a in args]
        out = fn(*leaves)
        grads = torch.autograd.grad(out.sum(), leaves, allow_unused=True)
        bad = sum(int((~torch.isfinite(gr)).sum()) for gr in grads if gr is not None)
        meter(f"gradient of {label} finite", float(bad), 0.5)
        if dtype == torch.float64:
            try:
                ok = torch.autograd.gradcheck(fn, tuple(leaves), eps=eps, atol=1e-5, rtol=1e-3)
            except RuntimeError as exc:
                ok, why = False, str(exc).splitlines()[0]
            meter(f"gradcheck of {label}" + ("" if ok else f" ({why})"), float(not ok), 0.5)


def check_cut_screen(M: Manifold, dtype, meter, base_samples: int = 0) -> None:
    """``cut_locus_screen`` flags every pair ``cut_locus_mask`` flags: pairs on the cut locus and up to
    1.5 ``tol("cut")`` short of it, along random directions (the trainer's cut round relies on it)."""
    if not math.isfinite(M.injectivity_radius):
        meter("no cut locus: nothing to screen", 0.0, 0.5)
        return
    n = 64
    x = seeded_points(M, n, torch.Generator().manual_seed(9), dtype)
    v = M.cut_vector(x, _unit_tangents(M, x, 19))
    short = torch.linspace(0, 1.5, n, dtype=dtype)[:, None] * tol("cut", dtype)
    y = M.exp(x, v * (1 - short / M.norm(x, v)[..., None]))
    exact, screen = M.cut_locus_mask(x, y), M.cut_locus_screen(x, y)
    meter(f"cut_locus_screen shape ({n},) and bool", float(screen.shape != exact.shape or screen.dtype != torch.bool), 0.5)
    meter("cut_locus_screen flags every pair cut_locus_mask flags", (exact & ~screen).to(dtype), 0.5)


#: properties of the base distribution: run only when the manifold has one
BASE_PROPERTIES = ("random_base", "base_density")

DETERMINISTIC_PROPERTIES = {
    "random_base": check_random_base, "base_density": check_base_density,
    "bad_input": check_bad_input, "gradients": check_gradients, "cut_screen": check_cut_screen,
}
