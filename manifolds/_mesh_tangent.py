r"""Edge-continuous tangent vectors on a triangle mesh: the tables behind ``Mesh.to_tangent`` (math.md §11.3).

For every face ``A`` and each of its edges ``k`` (the edge opposite corner ``k``) the table holds the
*bisector normal* ``N_k = (n_A + s n_B)/‖·‖`` of the two faces sharing the edge (``s = ±1`` orients
``n_B`` like ``n_A``: ``s = +1`` when the faces list the shared edge in opposite directions, the
consistently oriented case), or ``n_A`` on a boundary edge. ``N_k ⊥`` the edge and
``N_k·n_A = cos(θ/2)`` with ``θ`` the turning angle between the faces. Inside a face the blend

    N(x) = Σ_k w_k N_k,   w_k = b_i b_j  ({i, j, k} = {0, 1, 2}, b the barycentrics of x)

equals (a positive multiple of) ``N_k`` on edge ``k``, from both faces sharing it. ``to_tangent``
projects along ``N(x)`` onto the face plane; only the direction of ``N`` matters.
"""
from __future__ import annotations

import numpy as np

__all__ = ["edge_normals"]


def edge_normals(f: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, float]:
    """``(N [F, 3, 3], c)``: the bisector normals of the module doc (``N[a, k]`` for the edge opposite
    corner ``k`` of face ``a``, ``N[a, k]·n_a > 0``) and ``c = min N[a, k]·n_a = min cos(θ/2)``.

    Args:
        f: ``[F, 3]`` int faces of a manifold mesh (each edge in at most two faces).
        normals: ``[F, 3]`` unit face normals (float64).
    """
    F = len(f)
    start = np.stack([f[:, 1], f[:, 2], f[:, 0]], 1).reshape(-1)  # half-edge opposite corner k: (k+1, k+2)
    end = np.stack([f[:, 2], f[:, 0], f[:, 1]], 1).reshape(-1)
    face = np.repeat(np.arange(F), 3)
    key = np.minimum(start, end) * (int(f.max()) + 1) + np.maximum(start, end)
    order = np.argsort(key, kind="stable")
    pair = key[order][1:] == key[order][:-1]  # sorted neighbours with one key: the two half-edges of an edge
    twin = np.full(3 * F, -1)
    lo, hi = order[:-1][pair], order[1:][pair]
    twin[lo], twin[hi] = hi, lo
    out = np.repeat(normals, 3, axis=0)  # boundary edges keep n_A
    inner = twin >= 0
    h, g = np.flatnonzero(inner), twin[inner]
    sign = np.where(start[h] == end[g], 1.0, -1.0)[:, None]  # opposite directions: consistently oriented
    bis = normals[face[h]] + sign * normals[face[g]]
    length = np.linalg.norm(bis, axis=1, keepdims=True)
    if not (length > 1e-12).all():
        raise ValueError(f"Mesh: {int((length <= 1e-12).sum()) // 2} edges join two faces folded onto each "
                         "other (turning angle pi); the tangent map along edges is undefined there")
    out[h] = bis / length
    N = out.reshape(F, 3, 3)
    return N, float((N * normals[:, None, :]).sum(-1).min())
