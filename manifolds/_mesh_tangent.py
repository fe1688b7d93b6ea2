r"""Flux-continuous tangent vectors on a triangle mesh: the tables behind ``Mesh.to_tangent`` (math.md §11.3).

For an interior edge ``E`` shared by faces ``A`` and ``B`` let ``m_A`` be the unit in-plane normal of
``E`` in ``A``'s plane pointing out of ``A``, ``m_B`` the one in ``B``'s plane pointing into ``B``
(``m_A·m_B = cos θ``, ``θ`` the turning angle). The *edge flux functional* is

    g_E(u) = a_E·u,   a_E = (m_A + m_B)/(1 + m_A·m_B),

the same from both faces (from ``B`` it is ``−g_E``: the flux out of ``B``). ``a_E·m_A = a_E·m_B = 1``
and ``a_E ⊥ E``, so ``a_E = m_A + α n_A`` with ``α = a_E·n_A = (m_B·n_A)/(1 + cos θ) = ±tan(θ/2)``:
for ``u`` in ``A``'s plane ``g_E(u) = u·m_A`` (and likewise for ``B``). A boundary edge has ``α = 0``.

``Mesh.to_tangent(x, u) = u − (u·n_A)(n_A − τ(x))`` with ``τ(x) = Σ_c b_c τ_c`` (``b`` the barycentrics
of ``x``) and ``τ_c`` the vector of ``A``'s plane with ``τ_c·m_i = α_i`` for the two edges ``i`` that
meet at corner ``c``. On edge ``k`` only the two corners of that edge carry weight, both satisfying
``τ_c·m_k = α_k``, so the flux out of ``A`` is ``to_tangent(x, u)·m_k = u·(m_k + α_k n_A) = g_E(u)``:
the value face ``B`` sees. The map is affine in ``b`` (no rational blend), so its derivatives are
bounded up to the vertices.
"""
from __future__ import annotations

import numpy as np

__all__ = ["corner_slopes"]

#: 1 + cos θ below this means two faces folded onto each other (turning angle π)
_FOLDED = 1e-12
#: sin of the smallest corner angle below this is a degenerate corner (no 2 × 2 solve)
_FLAT_CORNER = 1e-9


def _twins(f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(start, end, twin)`` ``[3F]`` of the half-edges ``h = 3a + k`` (face ``a``, edge opposite corner
    ``k``, from corner ``k+1`` to ``k+2``); ``twin[h]`` is the half-edge of the other face, ``-1`` on the boundary."""
    start = np.stack([f[:, 1], f[:, 2], f[:, 0]], 1).reshape(-1)
    end = np.stack([f[:, 2], f[:, 0], f[:, 1]], 1).reshape(-1)
    key = np.minimum(start, end) * (int(f.max()) + 1) + np.maximum(start, end)
    order = np.argsort(key, kind="stable")
    pair = key[order][1:] == key[order][:-1]  # sorted neighbours with one key: the two half-edges of an edge
    twin = np.full(len(start), -1)
    lo, hi = order[:-1][pair], order[1:][pair]
    twin[lo], twin[hi] = hi, lo
    return start, end, twin


def _inward(v: np.ndarray, p: np.ndarray, e: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Unit normals ``[n, 3]`` of the edges through ``p`` along unit ``e``, in the plane of the opposite corner ``c``, towards ``c``."""
    w = (c - p) - ((c - p) * e).sum(1, keepdims=True) * e
    return w / np.linalg.norm(w, axis=1, keepdims=True)


def corner_slopes(v: np.ndarray, f: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(τ [F, 3, 3], α [F, 3])``: the corner vectors ``τ_c`` and edge slopes ``α_k`` of the module doc.

    ``τ[a, c]`` lies in face ``a``'s plane; ``α[a, k]`` belongs to the edge opposite corner ``k``.

    Args:
        v: ``[V, 3]`` float64 vertices; f: ``[F, 3]`` int faces (each edge in at most two faces);
        normals: ``[F, 3]`` unit face normals (float64).

    Raises:
        ValueError: two faces folded onto each other along an edge (turning angle π).
    """
    F = len(f)
    start, end, twin = _twins(f)
    face, corner = np.repeat(np.arange(F), 3), np.tile(np.arange(3), F)
    p = v[start]
    e = (v[end] - p) / np.linalg.norm(v[end] - p, axis=1, keepdims=True)
    m = -_inward(v, p, e, v[f[face, corner]])  # [3F, 3]: out of the face across edge k
    alpha = np.zeros(3 * F)
    h = np.flatnonzero(twin >= 0)
    g = twin[h]
    m_b = _inward(v, p[h], e[h], v[f[face[g], corner[g]]])  # into the neighbour
    cos = 1.0 + (m[h] * m_b).sum(1)
    if not (cos > _FOLDED).all():
        raise ValueError(f"Mesh: {int((cos <= _FOLDED).sum()) // 2} edges join two faces folded onto each "
                         "other (turning angle pi); the tangent map along edges is undefined there")
    alpha[h] = (m_b * normals[face[h]]).sum(1) / cos
    m, alpha = m.reshape(F, 3, 3), alpha.reshape(F, 3)
    tau = np.zeros((F, 3, 3))
    for c in range(3):  # edges i, j through corner c: those opposite the other two corners
        i, j = (c + 1) % 3, (c + 2) % 3
        mi, mj = m[:, i], m[:, j]
        dot = (mi * mj).sum(1)
        det = 1.0 - dot ** 2  # sin² of the angle at corner c
        if not (det > _FLAT_CORNER ** 2).all():
            raise ValueError("Mesh: a face has a corner angle of 0 or pi; the tangent map is undefined there")
        x = (alpha[:, i] - dot * alpha[:, j]) / det  # τ_c = x m_i + y m_j with τ_c·m_i = α_i, τ_c·m_j = α_j
        y = (alpha[:, j] - dot * alpha[:, i]) / det
        tau[:, c] = x[:, None] * mi + y[:, None] * mj
    return tau, alpha
