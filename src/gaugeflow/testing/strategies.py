"""Hypothesis strategies for property-testing any gaugeflow :class:`~gaugeflow.geometry.Manifold`.

All strategies produce torch tensors of the requested dtype with the manifold axis last:

* :func:`points` — points on the manifold, from projected ambient vectors chosen by hypothesis
  (axis-aligned and "nasty" coordinates included) and from seeded base-distribution samples.
* :func:`tangent_vectors` — tangent vectors at given points with norms spanning exact zero, tiny
  (``1e-10 … 1e-6``), moderate, up to the injectivity radius, and huge (``min(1e3, stable_radius)``).
* :func:`point_pairs` — pairs ``(x, y)`` mixing, row by row, the kinds of :data:`PAIR_KINDS`:
  independent points, identical points, points ``1e-7`` apart, points near the cut locus (within a
  few ``tol("cut")``) and on it (e.g. antipodal on the sphere).

Examples:
    >>> import torch
    >>> from hypothesis import given
    >>> from gaugeflow.manifolds import Sphere
    >>> M = Sphere(2)
    >>> @given(point_pairs(M, batch=4))
    ... def test_symmetric(pair):
    ...     x, y, kinds = pair
    ...     assert torch.allclose(M.dist(x, y), M.dist(y, x))
    >>> test_symmetric()
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .._numerics import tol
from ..geometry.manifold import Manifold

__all__ = ["PAIR_KINDS", "NEAR_OFFSET", "points", "tangent_vectors", "tangent_norms", "point_pairs", "huge_norm",
           "seeded_points"]

#: kinds of pairs drawn by :func:`point_pairs`
PAIR_KINDS = ("generic", "identical", "near", "near_cut", "cut")
#: geodesic distance of "near" pairs
NEAR_OFFSET = 1e-7
_SEEDS = st.integers(0, 2**32 - 1)


def _shape(manifold: Manifold, batch: Optional[int]) -> tuple[int, ...]:
    return (manifold.ambient_dim,) if batch is None else (batch, manifold.ambient_dim)


def _on_manifold(manifold: Manifold):
    def ok(x: torch.Tensor) -> bool:
        try:
            manifold.check_point(x)
        except ValueError:
            return False
        return True

    return ok


def seeded_points(manifold: Manifold, n: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """``n`` reproducible points ``[n, D]``: base-distribution samples, or ``projx`` of standard normal
    ambient vectors for a manifold without a base distribution."""
    if manifold.base is not None:
        return manifold.random_base(n, generator=generator, dtype=dtype)
    z = torch.randn(n, manifold.ambient_dim, generator=generator, dtype=torch.float64).to(dtype)
    return manifold.projx(z)


def points(manifold: Manifold, dtype: torch.dtype = torch.float64, batch: Optional[int] = None,
           scale: float = 4.0) -> st.SearchStrategy[torch.Tensor]:
    """Points on ``manifold``: ``[D]`` (``batch=None``) or ``[batch, D]`` tensors of ``dtype``.

    Half of the draws project ambient vectors with coordinates in ``[−scale, scale]`` (hypothesis'
    choice, so zeros, ties and boundary values appear) with ``projx``; the other half are seeded
    ``random_base`` samples (:func:`seeded_points`). Draws that ``check_point`` rejects (e.g. the zero vector on the
    sphere) are filtered out.
    """
    shape = _shape(manifold, batch)
    n = 1 if batch is None else batch
    coords = st.floats(-scale, scale, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    projected = hnp.arrays(np.float64, shape, elements=coords).map(
        lambda a: manifold.projx(torch.from_numpy(a).to(dtype)))
    sampled = _SEEDS.map(lambda s: seeded_points(manifold, n, torch.Generator().manual_seed(s), dtype).reshape(shape))
    return st.one_of(projected, sampled).filter(_on_manifold(manifold))


def huge_norm(manifold: Manifold, dtype: torch.dtype) -> float:
    """Largest tangent norm the strategies draw: ``min(1e3, manifold.stable_radius(dtype))``."""
    return float(min(1e3, manifold.stable_radius(dtype)))


def tangent_norms(manifold: Manifold, dtype: torch.dtype, max_norm: Optional[float] = None) -> st.SearchStrategy[float]:
    """Norms: 0, tiny ``[1e-10, 1e-6]``, moderate, near the injectivity radius, and huge
    (:func:`huge_norm`, or ``max_norm`` if smaller)."""
    huge = huge_norm(manifold, dtype) if max_norm is None else min(max_norm, huge_norm(manifold, dtype))
    r = min(manifold.injectivity_radius, huge)
    moderate = min(1.0, 0.5 * r)
    return st.one_of(
        st.just(0.0),
        st.floats(1e-10, 1e-6),
        st.floats(1e-3, moderate),
        st.floats(moderate, 0.999 * r),
        st.floats(min(huge, max(r, 1.0)), huge),
    )


def _unit_tangents(manifold: Manifold, x: torch.Tensor, seed: int) -> torch.Tensor:
    """Unit tangent vectors at ``x`` in random directions (rows with a degenerate draw are redrawn)."""
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros_like(x)
    todo = torch.ones(x.shape[:-1], dtype=torch.bool)
    for _ in range(8):
        w = manifold.proju(x, torch.randn(x.shape, generator=g, dtype=torch.float64).to(x.dtype))
        nrm = manifold.norm(x, w)
        good = todo & (nrm > 1e-3)
        out = torch.where(good[..., None], w / torch.where(good, nrm, 1)[..., None], out)
        todo = todo & ~good
        if not bool(todo.any()):
            return out
    raise ValueError(f"{manifold}: could not draw a tangent direction at some points (proju returns ~0)")


def tangent_vectors(manifold: Manifold, x: torch.Tensor,
                    norms: Optional[st.SearchStrategy[float]] = None) -> st.SearchStrategy[torch.Tensor]:
    """Tangent vectors at the points ``x`` (``[..., D]``), one per point, with norms from ``norms``.

    ``norms`` defaults to :func:`tangent_norms` (zero, tiny, moderate, near the injectivity radius,
    huge). Directions are uniformly random (seeded) after ``proju``.
    """
    norms = tangent_norms(manifold, x.dtype) if norms is None else norms
    count = int(np.prod(x.shape[:-1], dtype=np.int64))

    def build(args) -> torch.Tensor:
        seed, values = args
        e = _unit_tangents(manifold, x, seed)
        return e * torch.tensor(values, dtype=x.dtype).reshape(x.shape[:-1] + (1,))

    return st.tuples(_SEEDS, st.lists(norms, min_size=count, max_size=count)).map(build)


@st.composite
def point_pairs(draw, manifold: Manifold, dtype: torch.dtype = torch.float64, batch: Optional[int] = None,
                kinds: Sequence[str] = PAIR_KINDS):
    """Pairs ``(x, y, kind)``: ``x, y`` are ``[..., D]`` points, ``kind`` a numpy array of kind names.

    Kinds (:data:`PAIR_KINDS`): ``generic`` (independent points), ``identical`` (``y = x``),
    ``near`` (``y = exp(x, u)`` with ``‖u‖ = 1e-7``), ``near_cut`` (``‖u‖`` a few ``tol("cut")``
    short of the first cut point along a random direction) and ``cut`` (on the cut locus, e.g.
    antipodal). The cut kinds are dropped for manifolds without a cut locus.
    """
    unknown = set(kinds) - set(PAIR_KINDS)
    if unknown:
        raise ValueError(f"point_pairs: unknown kinds {sorted(unknown)}; expected a subset of {PAIR_KINDS}")
    has_cut = math.isfinite(manifold.injectivity_radius)
    kinds = [k for k in kinds if has_cut or k not in ("near_cut", "cut")] or ["generic"]
    x = draw(points(manifold, dtype, batch))
    count = 1 if batch is None else batch
    chosen = np.array(draw(st.lists(st.sampled_from(kinds), min_size=count, max_size=count)))
    e = _unit_tangents(manifold, x, draw(_SEEDS))
    cands = {"generic": draw(points(manifold, dtype, batch)), "identical": x,
             "near": manifold.exp(x, NEAR_OFFSET * e)}
    if has_cut:
        v = manifold.cut_vector(x, e)
        length = manifold.norm(x, v)[..., None]
        short = draw(st.sampled_from([0.25, 2.0, 8.0])) * tol("cut", dtype)
        cands["cut"] = manifold.exp(x, v)
        cands["near_cut"] = manifold.exp(x, v * (1 - short / length))
    y = x.clone()
    for k in kinds:
        mask = torch.from_numpy(chosen == k).reshape(x.shape[:-1] + (1,))
        y = torch.where(mask, cands[k], y)
    return x, y, chosen.reshape(x.shape[:-1])
