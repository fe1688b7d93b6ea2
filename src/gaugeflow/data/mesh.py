r"""Data on triangle meshes: RFM-style eigenfunction mixtures and user point sets.

* :func:`eigenfunction_mixture`: as in "Flow matching on general geometries" (Chen & Lipman), a
  density built from Laplace–Beltrami eigenfunctions. For each chosen eigenfunction ``φ_i`` (sign
  fixed so that its largest magnitude is positive) the faces whose mean corner value is at least
  ``threshold · max φ_i`` form a region ``S_i``; the data are an equal-weight mixture of the
  area-uniform distributions on the ``S_i``. Its density is known exactly,
  ``p(x) = (1/C) Σ_i 1[x ∈ S_i] / area(S_i)``, so ``meta["entropy"]`` (nats, ``−E log p``) is the
  best test NLL any model can reach; the area-uniform baseline scores ``log area``.
* :func:`mesh_points`: any ``[n, 3]`` point set, projected onto the surface (``M.projx``) with the
  distance moved reported in ``meta``; points farther than ``max_move`` (a fraction of the bounding-box
  diagonal) are an error, points moved more than ``warn_move`` a warning.
* :data:`MESH_SETS`: the named sets behind ``--data mesh-eigen | mesh-eigen-fine``.

The mesh is asked, never imported: any manifold with ``eigenpairs``, ``vertices``, ``faces`` and
``face_areas`` (a :class:`gaugeflow.manifolds.Mesh`) works.
"""
from __future__ import annotations

import math
import warnings
from typing import Optional, Sequence

import torch

from ..geometry.manifold import Manifold
from .base import ManifoldData, split_indices

__all__ = ["eigenfunction_mixture", "mesh_points", "MESH_SETS", "mixture_log_prob"]

#: named eigenfunction mixtures: name -> (eigenfunction indices, threshold)
MESH_SETS = {"mesh-eigen": ((3, 8, 15), 0.6), "mesh-eigen-fine": ((40, 60), 0.6)}


def _require_mesh(manifold: object, who: str) -> None:
    if not isinstance(manifold, Manifold) or not all(
            hasattr(manifold, a) for a in ("eigenpairs", "vertices", "faces", "face_areas")):
        raise ValueError(f"{who}: lives on a triangle mesh (gaugeflow.manifolds.Mesh, e.g. --manifold mesh), "
                         f"got {manifold}")


def _count(who: str, name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{who}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def _regions(manifold, eigenfunctions: Sequence[int], threshold: float) -> list[torch.Tensor]:
    """One boolean face mask ``[F]`` per eigenfunction: faces with mean corner value ``≥ threshold · max``."""
    _, evecs = manifold.eigenpairs
    corners = manifold.faces
    masks = []
    for i in eigenfunctions:
        phi = evecs[:, i].double()
        phi = phi if phi.max() >= -phi.min() else -phi  # eigsh's sign is arbitrary: largest magnitude positive
        face_value = phi[corners].mean(-1)
        masks.append(face_value >= threshold * face_value.max())
    return masks


def _uniform_in_faces(manifold, faces: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One area-uniform point in each of ``faces [n]`` (reflected uniform barycentrics), float64 ``[n, 3]``."""
    r = torch.rand(len(faces), 2, generator=gen, dtype=torch.float64)
    r = torch.where(r.sum(1, keepdim=True) > 1, 1 - r, r)
    c = manifold.vertices.double()[manifold.faces[faces]]  # [n, 3, 3]
    return c[:, 0] + r[:, :1] * (c[:, 1] - c[:, 0]) + r[:, 1:] * (c[:, 2] - c[:, 0])


def mixture_log_prob(manifold, x: torch.Tensor, masks: Sequence[torch.Tensor],
                     faces: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Exact log-density ``[n]`` of the eigenfunction mixture with face masks ``masks`` at points ``x [n, 3]``
    (``-inf`` off its support); ``faces [n]``: the points' faces when known (else located)."""
    areas = manifold.face_areas.double()
    face = manifold.locate(x.double())[0] if faces is None else faces
    dens = sum(m[face].double() / float(areas[m].sum()) for m in masks) / len(masks)
    return dens.log()


def eigenfunction_mixture(manifold, eigenfunctions: Sequence[int] = (3, 8, 15), threshold: float = 0.6,
                          n_train: int = 5000, n_val: int = 1000, n_test: int = 1000, seed: int = 0,
                          dtype: torch.dtype = torch.float32, name: str = "mesh-eigen") -> ManifoldData:
    """Equal-weight mixture of area-uniform densities on thresholded eigenfunction regions (module doc).

    Args:
        manifold: a triangle mesh (:class:`gaugeflow.manifolds.Mesh`).
        eigenfunctions: indices ``i ≥ 1`` into ``manifold.eigenpairs`` (0 is the constant), one region each.
        threshold: in ``(0, 1)``: a face belongs to region ``i`` where its mean ``φ_i`` is at least this
            fraction of the largest.
        n_train, n_val, n_test: split sizes (disjoint i.i.d. draws).
        seed: seed of a private ``torch.Generator``.
        dtype: dtype of the points (drawn in float64).
        name: the data set's name.

    Returns:
        :class:`ManifoldData`; ``meta`` holds the settings, each region's area fraction and the exact
        entropy (nats) with the uniform baseline ``log area`` beside it.

    Raises:
        ValueError: not a mesh, an index outside ``[1, n_eigen)``, a threshold outside ``(0, 1)``, bad sizes.
    """
    who = "eigenfunction_mixture"
    _require_mesh(manifold, who)
    k = manifold.eigenpairs[0].shape[0]
    idx = tuple(eigenfunctions) if isinstance(eigenfunctions, (list, tuple)) else (eigenfunctions,)
    if not idx or any(isinstance(i, bool) or not isinstance(i, int) or not 1 <= i < k for i in idx):
        raise ValueError(f"{who}: eigenfunctions must be indices in [1, {k - 1}] (0 is the constant; the mesh "
                         f"has n_eigen={k}), got {eigenfunctions!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
        raise ValueError(f"{who}: threshold must be a number in (0, 1), got {threshold!r}")
    sizes = [_count(who, w, v, 1) for w, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test))]
    masks = _regions(manifold, idx, float(threshold))
    areas = manifold.face_areas.double()
    gen = torch.Generator().manual_seed(int(seed))
    total = sum(sizes)
    comp = torch.randint(0, len(idx), (total,), generator=gen)
    faces = torch.empty(total, dtype=torch.long)
    for c, m in enumerate(masks):
        rows = (comp == c).nonzero().flatten()
        weights = torch.where(m, areas, torch.zeros_like(areas))
        faces[rows] = torch.multinomial(weights, len(rows), replacement=True, generator=gen)
    x = _uniform_in_faces(manifold, faces, gen)
    entropy = -float(mixture_log_prob(manifold, x, masks, faces).mean())  # Monte Carlo over the drawn points
    meta = {"eigenfunctions": list(idx), "threshold": float(threshold), "seed": int(seed),
            "region_area_fraction": [float(areas[m].sum() / areas.sum()) for m in masks],
            "entropy": entropy, "uniform_nll": math.log(float(areas.sum())), "manifold": str(manifold)}
    train, val, test = torch.split(x.to(dtype), sizes)
    return ManifoldData(name, manifold, train, val, test, meta)


def mesh_points(manifold, points, *, name: str = "mesh-points", fractions=(0.8, 0.1, 0.1), seed: int = 0,
                dtype: torch.dtype = torch.float32, warn_move: float = 1e-6, max_move: float = 1e-2) -> ManifoldData:
    """A user point set on a mesh: projected onto the surface, split train/val/test.

    Args:
        manifold: a triangle mesh.
        points: ``[n, 3]`` array-like (numpy or torch) of points on or near the surface.
        name, fractions, seed: data-set name, split fractions and the split's seed.
        dtype: dtype of the returned points.
        warn_move, max_move: fractions of the bounding-box diagonal: a ``UserWarning`` when some point
            moves more than ``warn_move`` onto the surface, ``ValueError`` when one moves more than ``max_move``.

    Returns:
        :class:`ManifoldData` whose ``meta`` reports ``moved_max`` and ``moved_mean`` (absolute
        distances) and ``n_moved`` (points moved more than ``warn_move`` of the diagonal).
    """
    who = "mesh_points"
    _require_mesh(manifold, who)
    try:
        x = torch.as_tensor(points).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{who}: points must be an [n, 3] array of numbers, got {type(points).__name__}") from err
    if x.dim() != 2 or x.shape[-1] != 3 or not x.is_floating_point():
        raise ValueError(f"{who}: points must be a floating [n, 3] array, got shape {tuple(x.shape)} dtype {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{who}: {int((~torch.isfinite(x)).any(-1).sum())} points are not finite (NaN or Inf)")
    x = x.double()
    v = manifold.vertices.double()
    diag = float((v.max(0).values - v.min(0).values).norm())
    q = manifold.projx(x)
    moved = (q - x).norm(dim=-1)
    worst = float(moved.max())
    if worst > max_move * diag:
        i = int(moved.argmax())
        raise ValueError(f"{who}: {int((moved > max_move * diag).sum())} of {len(x)} points lie farther than "
                         f"{max_move:g} x the bounding-box diagonal ({max_move * diag:.3g}) from the surface "
                         f"(worst: row {i}, {worst:.3g} away); expected points on {manifold}")
    n_moved = int((moved > warn_move * diag).sum())
    if n_moved:
        warnings.warn(f"{who}: {n_moved} of {len(x)} points were projected onto the surface (moved up to "
                      f"{worst:.3g}, mean {float(moved.mean()):.3g})", UserWarning, stacklevel=2)
    tr, va, te = split_indices(len(q), fractions, seed)
    meta = {"moved_max": worst, "moved_mean": float(moved.mean()), "n_moved": n_moved, "seed": int(seed)}
    q = q.to(dtype)
    return ManifoldData(name, manifold, q[tr], q[va], q[te], meta)


def named_set(name: str, manifold, *, n: Optional[int] = None, seed: int = 0) -> ManifoldData:
    """The named mixture ``name`` of :data:`MESH_SETS` (``n``: training points, default 5000)."""
    idx, threshold = MESH_SETS[name]
    extra = {} if n is None else {"n_train": n}
    return eigenfunction_mixture(manifold, idx, threshold, seed=seed, name=name, **extra)
