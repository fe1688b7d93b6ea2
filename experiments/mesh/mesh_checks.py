"""Is ``log_prob`` the density of the flow's samples on a mesh? Two checks used by ``run.py`` and ``tangent_check.py``.

* :func:`total_mass`: ``Z = ∫ p̂ dA`` of the model's ``log_prob`` density by the midpoint rule on the
  ``m²`` congruent sub-triangles of every face (``m = 1``: one point per face, the face centroid;
  ``m = 2``: four points per face). A density whose ``log_prob`` misses mass created on edges or
  vertices integrates to ``Z ≠ 1``, and a ``log_prob`` with badly resolved outliers makes the two
  quadratures disagree.
* :func:`step_gap`: ``|log_prob`` at 12 RK4 steps − at 48 steps``| at area-uniform points: a
  ``log_prob`` that a fixed-step solver resolves changes little when the steps are quadrupled.

(Prefixed name: the experiments/* folders share ``sys.path`` in one pytest run.)
"""
from __future__ import annotations

import torch

from gaugeflow.sampling import log_prob


def sub_triangle_centroids(M, m: int) -> torch.Tensor:
    """``[F · m², 3]`` float64 centroids of the ``m²`` congruent sub-triangles of every face (face-major)."""
    i, j = torch.meshgrid(torch.arange(m), torch.arange(m), indexing="ij")
    up, dn = i + j < m, i + j < m - 1
    b1 = torch.cat([(i[up] + 1 / 3) / m, (i[dn] + 2 / 3) / m]).double()
    b2 = torch.cat([(j[up] + 1 / 3) / m, (j[dn] + 2 / 3) / m]).double()
    bary = torch.stack([1 - b1 - b2, b1, b2], -1)  # [m², 3]
    return torch.einsum("qk,fkd->fqd", bary, M.vertices.double()[M.faces]).reshape(-1, 3)


def _log_prob(model, x: torch.Tensor, steps: int) -> torch.Tensor:
    p = next(model.parameters())
    x = model.manifold.projx(x).to(p.dtype)
    return torch.cat([log_prob(model, c, steps=steps, divergence="exact") for c in x.split(2048)]).double()


def total_mass(model, steps: int, m: int = 1) -> float:
    """``Z = Σ_f A_f · mean_q p̂(c_{f,q})`` over the ``m²`` sub-triangle centroids ``c_{f,q}`` of each face."""
    M = model.manifold
    lp = _log_prob(model, sub_triangle_centroids(M, m), steps)
    return float((lp.exp().reshape(len(M.faces), -1).mean(1) * M.face_areas.double()).sum())


def step_gap(model, n: int = 2000, steps: tuple[int, int] = (12, 48), tol: float = 0.05, seed: int = 0) -> dict:
    """``|log_prob_{steps[0]} − log_prob_{steps[1]}|`` at ``n`` area-uniform points (generator ``seed``).

    Returns ``{"n", "steps", "tol", "frac_within", "q99", "max"}`` (nats).
    """
    M = model.manifold
    x = M.random_base(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    gap = (_log_prob(model, x, steps[0]) - _log_prob(model, x, steps[1])).abs()
    return {"n": n, "steps": list(steps), "tol": tol, "frac_within": float((gap <= tol).double().mean()),
            "q99": float(gap.quantile(0.99)), "max": float(gap.max())}


def step_convergence(model, n: int = 1000, steps: tuple[int, ...] = (12, 24, 48, 96, 192), tol: float = 0.05,
                     seed: int = 0) -> list[dict]:
    """How ``log_prob`` converges in the RK4 step count: the gap of each count to the finest one.

    Returns one ``{"steps", "frac_within", "q99", "max", "mean"}`` per count but the last (nats; the
    same ``n`` area-uniform points, generator ``seed``). A gap that falls like ``1/steps`` is first
    order (the divergence jumps at every edge a trajectory crosses, math.md §11.3).
    """
    M = model.manifold
    x = M.random_base(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    lps = [_log_prob(model, x, s) for s in steps]
    rows = []
    for s, lp in zip(steps[:-1], lps[:-1]):
        gap = (lp - lps[-1]).abs()
        rows.append({"steps": s, "reference": steps[-1], "frac_within": float((gap <= tol).double().mean()),
                     "q99": float(gap.quantile(0.99)), "max": float(gap.max()), "mean": float(gap.mean())})
    return rows
