r"""Triangle-mesh geometry behind :class:`gaugeflow.manifolds.Mesh`: input checks and closest points.

* :func:`check_mesh_arrays` turns user arrays into ``float64 [V, 3]`` / ``int64 [F, 3]`` numpy
  arrays or raises one ``ValueError``/``TypeError`` naming the problem (shapes and dtypes,
  non-finite or out-of-range entries, repeated corners, zero-area faces, unused vertices, duplicate
  faces, non-manifold edges, several connected components).
* :class:`FaceTables` holds, per dtype and device, what the batched queries gather per face.
* :func:`closest_points` finds the exact closest point on the surface in torch (math.md §11.1):
  candidate faces are the ``k`` whose centroids are nearest; the answer is *certified* exact when
  ``d + ρ < r_k`` (``d`` the distance found, ``ρ`` the largest centroid-to-corner distance of any
  face, ``r_k`` the distance of the ``k``-th nearest centroid: a face at distance ``≤ d`` has its
  centroid within ``d + ρ``, so among the candidates). Rows without the certificate retry with
  ``k`` ×4, and finally against every face, so the result is exact for every input; memory stays
  bounded by chunking.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

__all__ = ["check_mesh_arrays", "FaceTables", "closest_points", "triangle_closest"]

#: a face is degenerate when its area is at most this times the squared bounding-box diagonal
DEGENERATE_AREA = 1e-14
#: candidate (row × face) pairs evaluated at once (bounds the memory of one chunk)
_PAIRS_PER_CHUNK = 1 << 17
#: nearest-centroid counts tried before the exhaustive search
_K_STEPS = (16, 64, 256, 1024)


def _as_numpy(a, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    try:
        return np.asarray(a)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Mesh: {name} must be an array-like (numpy array or torch tensor), got "
                        f"{type(a).__name__}") from exc


def _check_types(vertices, faces) -> tuple[np.ndarray, np.ndarray]:
    v, f = _as_numpy(vertices, "vertices"), _as_numpy(faces, "faces")
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"Mesh: vertices must have shape [V, 3], got {tuple(v.shape)}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"Mesh: faces must have shape [F, 3] (triangles), got {tuple(f.shape)}")
    if not np.issubdtype(v.dtype, np.floating):
        raise TypeError(f"Mesh: vertices must be a floating-point array, got dtype {v.dtype}")
    if not np.issubdtype(f.dtype, np.integer):
        raise TypeError(f"Mesh: faces must be an integer array of vertex indices, got dtype {f.dtype}")
    if len(f) == 0:
        raise ValueError("Mesh: expected at least one face, got faces of shape (0, 3)")
    if not np.isfinite(v).all():
        raise ValueError(f"Mesh: vertices contain NaN or Inf ({int((~np.isfinite(v)).any(1).sum())} vertices)")
    bad = (f < 0) | (f >= len(v))
    if bad.any():
        i = int(np.argwhere(bad.any(1))[0, 0])
        raise ValueError(f"Mesh: {int(bad.any(1).sum())} faces have vertex indices outside [0, {len(v) - 1}] "
                         f"(e.g. face {i} = {f[i].tolist()}, with {len(v)} vertices)")
    return v.astype(np.float64), f.astype(np.int64)


def _check_faces(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Per-face areas ``[F]``; raises for repeated corners, zero areas, unused vertices, duplicates."""
    repeated = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])
    area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    diag2 = float(((v.max(0) - v.min(0)) ** 2).sum())
    degenerate = repeated | (area <= DEGENERATE_AREA * diag2)
    if degenerate.any():
        i = int(np.argmax(degenerate))
        raise ValueError(f"Mesh: {int(degenerate.sum())} degenerate (zero-area) faces, e.g. face {i} = {f[i].tolist()} "
                         f"with area {area[i]:.3e} (threshold {DEGENERATE_AREA:.0e} x squared bounding-box diagonal)")
    used = np.zeros(len(v), dtype=bool)
    used[f.reshape(-1)] = True
    if not used.all():
        raise ValueError(f"Mesh: {int((~used).sum())} vertices are not used by any face (e.g. vertex "
                         f"{int(np.argmin(used))}); remove them (trimesh: mesh.remove_unreferenced_vertices())")
    _, first, inverse = np.unique(np.sort(f, axis=1), axis=0, return_index=True, return_inverse=True)
    twin = first[inverse.reshape(-1)]
    dup = np.flatnonzero(twin != np.arange(len(f)))
    if len(dup):
        raise ValueError(f"Mesh: {len(dup)} faces repeat the three vertices of an earlier face (e.g. face "
                         f"{int(dup[0])} repeats face {int(twin[dup[0]])})")
    return area


def _check_topology(v: np.ndarray, f: np.ndarray) -> None:
    """Raise for edges shared by more than two faces and for several connected components."""
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    if (counts > 2).any():
        e = uniq[np.argmax(counts > 2)].tolist()
        raise ValueError(f"Mesh: {int((counts > 2).sum())} non-manifold edges (shared by more than two faces), "
                         f"e.g. edge {e} is shared by {int(counts[np.argmax(counts > 2)])} faces")
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(uniq)), (uniq[:, 0], uniq[:, 1])), shape=(len(v), len(v)))
    n, labels = connected_components(graph, directed=False)
    if n > 1:
        sizes = sorted(np.bincount(labels).tolist(), reverse=True)
        raise ValueError(f"Mesh: the surface has {n} connected components (vertex counts {sizes[:5]}"
                         f"{' ...' if n > 5 else ''}), expected one; keep one component "
                         "(trimesh: max(mesh.split(only_watertight=False), key=lambda m: m.area))")


def check_mesh_arrays(vertices, faces) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``(vertices float64 [V, 3], faces int64 [F, 3], face areas [F])`` (see module doc)."""
    v, f = _check_types(vertices, faces)
    area = _check_faces(v, f)
    _check_topology(v, f)
    return v, f, area


class FaceTables(NamedTuple):
    """Per-face data gathered by the batched queries, in one dtype and on one device.

    ``planes`` ``[19, F]`` (component-major, so gathered planes are contiguous) stacks ``a``,
    ``ab = b − a``, ``ac = c − a`` and the dual basis ``g1, g2`` of the face plane (``(p − a)·g1``,
    ``(p − a)·g2`` are the barycentric ``v, w`` of the projection of ``p`` onto the plane), then
    ``|ab|², |ac|², |bc|², ab·ac``.
    """

    vertices: torch.Tensor   # [V, 3]
    centre: torch.Tensor     # [3] centre of the bounding box
    centred: torch.Tensor    # [F, 3] face centroids minus ``centre`` (the candidate search)
    faces: torch.Tensor      # [F, 3] long
    planes: torch.Tensor     # [19, F] component-major: a, ab, ac, g1, g2 (3 rows each), |ab|², |ac|², |bc|², ab·ac
    normals: torch.Tensor    # [F, 3] unit
    frames: torch.Tensor     # [F, 3, 2] orthonormal columns spanning the face plane
    reach: float    # max distance from a face's centroid to its points (its farthest corner)
    radius2: float  # max |centroid − centre|²
    tree: object  # scipy.spatial.cKDTree of ``centred`` for CPU tables (exact nearest centroids), else None

    @staticmethod
    def build(v: np.ndarray, f: np.ndarray, dtype: torch.dtype, device) -> "FaceTables":
        a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
        ab, ac, bc = b - a, c - a, c - b
        l_ab, l_ac, l_bc = (ab * ab).sum(1), (ac * ac).sum(1), (bc * bc).sum(1)
        dot = (ab * ac).sum(1)
        den = (l_ab * l_ac - dot * dot)[:, None]
        g1 = (l_ac[:, None] * ab - dot[:, None] * ac) / den
        g2 = (l_ab[:, None] * ac - dot[:, None] * ab) / den
        n = np.cross(ab, ac)
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        e1 = ab / np.sqrt(l_ab)[:, None]
        frames = np.stack([e1, np.cross(n, e1)], axis=2)
        t = lambda x: torch.as_tensor(x, dtype=dtype, device=device)  # noqa: E731
        centroid = (a + b + c) / 3
        reach = max(float(np.linalg.norm(corner - centroid, axis=1).max()) for corner in (a, b, c))
        centre = 0.5 * (v.max(0) + v.min(0))
        centred = centroid - centre
        planes = np.concatenate([a.T, ab.T, ac.T, g1.T, g2.T, np.stack([l_ab, l_ac, l_bc, dot])])
        tree = None
        if torch.device(device).type == "cpu":
            from scipy.spatial import cKDTree

            tree = cKDTree(centred)
        return FaceTables(t(v), t(centre), t(centred), torch.as_tensor(f, device=device), t(planes), t(n), t(frames),
                          reach * (1 + 1e-12), float((centred ** 2).sum(1).max()), tree)


def triangle_closest(p: torch.Tensor, tab: FaceTables, cand: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Closest points of ``p`` ``[n, 3]`` on the faces ``cand`` ``[n, C]``: ``(q [n, C, 3], bary [n, C, 3])``.

    The Voronoi-region case analysis of Ericson (*Real-Time Collision Detection* §5.1.5); every
    barycentric coordinate is an affine function of ``p`` with a constant denominator (the face
    interior uses the dual basis), so gradients are exact and finite. Works component-wise on
    contiguous ``[n, C]`` planes (gathered from the component-major ``tab.planes``).
    """
    g = tab.planes[:, cand]  # [19, n, C]
    a, ab, ac, g1, g2 = g[0:3], g[3:6], g[6:9], g[9:12], g[12:15]
    l_ab, l_ac, l_bc, abac = g[15], g[16], g[17], g[18]
    ap = [p[:, i, None] - a[i] for i in range(3)]
    dot = lambda u, w: u[0] * w[0] + u[1] * w[1] + u[2] * w[2]  # noqa: E731
    d1, d2 = dot(ab, ap), dot(ac, ap)
    d3, d4 = d1 - l_ab, d2 - abac  # ab·bp, ac·bp with bp = ap − ab
    d5, d6 = d1 - abac, d2 - l_ac  # ab·cp, ac·cp with cp = ap − ac
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    v, w = dot(ap, g1), dot(ap, g2)  # interior
    zero, one = torch.zeros_like(v), torch.ones_like(v)
    wbc = (d4 - d3) / l_bc
    regions = [  # later entries take precedence (Ericson's order reversed)
        ((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), 1 - wbc, wbc),  # edge bc
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), zero, d2 / l_ac),  # edge ac
        ((d6 >= 0) & (d5 <= d6), zero, one),  # vertex c
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), d1 / l_ab, zero),  # edge ab
        ((d3 >= 0) & (d4 <= d3), one, zero),  # vertex b
        ((d1 <= 0) & (d2 <= 0), zero, zero),  # vertex a
    ]
    for mask, vr, wr in regions:
        v, w = torch.where(mask, vr, v), torch.where(mask, wr, w)
    q = torch.stack([a[i] + v * ab[i] + w * ac[i] for i in range(3)], -1)
    return q, torch.stack([1 - v - w, v, w], -1)


def _best(p: torch.Tensor, tab: FaceTables, cand: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(face [n], squared distance [n])`` of the nearest candidate (smallest index among exact ties)."""
    cand = cand.sort(-1).values
    q, _ = triangle_closest(p, tab, cand)
    diff = p[:, None, :] - q
    d2 = (diff * diff).sum(-1)
    j = d2.argmin(-1, keepdim=True)
    return cand.gather(-1, j)[:, 0], d2.gather(-1, j)[:, 0]


def _knn(pc: torch.Tensor, tab: FaceTables, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances and indices ``[n, k]`` (ascending) of the ``k`` face centroids nearest to the centred points ``pc``.

    CPU: scipy's k-d tree (exact distances). Other devices: ``torch.cdist`` + ``topk`` (matrix-product
    distances; the caller's certificate allows for their rounding).
    """
    if tab.tree is not None and pc.device.type == "cpu":
        d, i = tab.tree.query(pc.numpy().astype(np.float64), k=k)
        return torch.from_numpy(d).to(pc.dtype), torch.from_numpy(i)
    return torch.cdist(pc, tab.centred).topk(k, largest=False)


def _nearest_faces(p: torch.Tensor, tab: FaceTables) -> torch.Tensor:
    """Index ``[n]`` of the face nearest to each row of ``p`` (no gradient; see module doc)."""
    F = tab.faces.shape[0]
    face = torch.empty(p.shape[0], dtype=torch.long, device=p.device)
    todo = torch.arange(p.shape[0], device=p.device)
    eps = torch.finfo(p.dtype).eps
    for k in _K_STEPS:
        if k >= F or todo.numel() == 0:
            break
        failed = []
        for rows in todo.split(max(_PAIRS_PER_CHUNK // k, 1)):
            pc = p[rows] - tab.centre
            r_k, near = _knn(pc, tab, k)
            # cdist's matrix-product form errs by <= ~4 eps (|p|² + R²) in d²: widen the certificate by its root
            slack = (16 * eps * ((pc * pc).sum(-1) + tab.radius2)).sqrt()
            f, d2 = _best(p[rows], tab, near)
            face[rows] = f
            failed.append(rows[~(d2.sqrt() + tab.reach + slack < r_k[:, -1])])
        todo = torch.cat(failed)
    if todo.numel():  # exhaustive search for uncertified rows (points far from the surface)
        every = torch.arange(F, device=p.device)
        for rows in todo.split(max(_PAIRS_PER_CHUNK // F, 1)):
            face[rows] = _best(p[rows], tab, every.expand(len(rows), F))[0]
    return face


def closest_points(x: torch.Tensor, tab: FaceTables) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Closest surface points of ``x`` ``[n, 3]``: ``(q [n, 3], face [n] long, bary [n, 3])``.

    The face search runs without gradient; ``q`` and ``bary`` are then recomputed on the chosen face
    with autograd (affine in ``x`` inside each Voronoi region of the face). Rows of ``x`` holding NaN
    or Inf give NaN ``q`` and ``bary`` (and an arbitrary face).
    """
    with torch.no_grad():  # non-finite rows search from the origin; their q and bary stay NaN
        xs = x.detach()
        face = _nearest_faces(torch.where(torch.isfinite(xs).all(-1, keepdim=True), xs, torch.zeros_like(xs)), tab)
    q, bary = triangle_closest(x, tab, face[:, None])
    bad = ~torch.isfinite(x).all(-1, keepdim=True)
    return q[:, 0].masked_fill(bad, float("nan")), face, bary[:, 0].masked_fill(bad, float("nan"))


