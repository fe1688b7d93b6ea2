r"""Generic geometry built from ``projx``/``proju``/``exp``/``log``: the defaults of :class:`Manifold`.

* :func:`pole_ladder` — parallel transport along the minimising geodesic by the pole ladder
  (Lorenzi & Pennec 2014; Pennec 2018). One rung from ``a`` to ``b`` with midpoint
  ``m = exp_a(½ log_a b)``: ``w ↦ −log_b(exp_m(−log_m(exp_a w)))``. The geodesic symmetry at ``m``
  maps ``a`` to ``b`` and its differential is ``−Γ_a^b``, so on (locally) symmetric spaces — spheres,
  hyperbolic spaces, flat tori, ``ℝ^n``, compact Lie groups with a bi-invariant metric, and their
  products — one rung is *exact* for every ``w`` inside the injectivity radius. On a general
  manifold one rung over a geodesic of length ``d`` errs by ``O(d³ ‖∇R‖ ‖w‖)`` (third order), and
  ``N`` rungs by ``O(d³ ‖∇R‖ ‖w‖ / N²)``. ``w`` is shrunk to length
  ``≤ ½ min(1, injectivity_radius/π)`` before the rung (transport is linear, so it is scaled back
  after), which keeps every ``exp``/``log`` of the rung away from the cut locus.
* :func:`gram_schmidt_frame` — a ``g``-orthonormal frame of ``T_xM``: modified Gram–Schmidt in the
  manifold's own ``inner`` on the projected ambient basis ``P_x e_j``, each step picking the
  remaining vector of largest norm (column pivoting), so it works in any codimension. Differentiable
  wherever the pivot choice is locally constant.
"""
from __future__ import annotations

import math

import torch

__all__ = ["pole_ladder", "gram_schmidt_frame", "nan_unless_finite"]


def pole_ladder(M, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, rungs: int = 1) -> torch.Tensor:
    """Parallel transport of ``v ∈ T_xM`` to ``T_yM`` by ``rungs`` pole-ladder rungs. ``[..., D]``."""
    u = M.log(x, y)
    ell = 0.5 * min(1.0, M.injectivity_radius / math.pi)
    s = ell / M.norm(x, v)[..., None].clamp_min(ell)  # in (0, 1]; 1 for short vectors (and v = 0)
    w, a = s * v, x
    for i in range(rungs):
        b = y if i == rungs - 1 else M.exp(x, ((i + 1) / rungs) * u)
        m = M.exp(a, 0.5 * M.log(a, b))
        q = M.exp(m, -M.log(m, M.exp(a, w)))
        w, a = -M.log(b, q), b
    return w / s


def gram_schmidt_frame(M, x: torch.Tensor) -> torch.Tensor:
    """``g``-orthonormal frame ``[..., D, n]`` of ``T_xM`` (columns), see module doc."""
    D = M.ambient_dim
    eye = torch.eye(D, dtype=x.dtype, device=x.device)
    xe = x.unsqueeze(-2)  # [..., 1, D]
    r = M.proju(xe, eye.expand(x.shape[:-1] + (D, D)))  # [..., D, D], row j = P_x e_j
    cols = []
    for _ in range(M.dim):
        nrm2 = M.inner(xe, r, r)  # [..., D]
        j = nrm2.argmax(-1, keepdim=True)  # [..., 1]
        pick = r.gather(-2, j.unsqueeze(-1).expand(j.shape[:-1] + (1, D))).squeeze(-2)
        e = pick / torch.sqrt(nrm2.gather(-1, j))
        cols.append(e)
        r = r - M.inner(xe, r, e.unsqueeze(-2)).unsqueeze(-1) * e.unsqueeze(-2)
    return torch.stack(cols, -1)


def nan_unless_finite(value: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
    """``value`` ``[...]`` with NaN wherever a row (last axis) of any input ``[..., D]`` is not finite."""
    ok = None
    for t in tensors:
        f = torch.isfinite(t).all(-1)
        ok = f if ok is None else ok & f
    return torch.where(ok, value, torch.full_like(value, math.nan))
