r"""Spectral premetrics on triangle meshes (math.md §11.2): cotangent Laplacian, eigenpairs, weights.

The Laplace–Beltrami eigenproblem is discretised with linear finite elements: the cotangent
stiffness matrix ``L`` (``L_ij = −(cot α_ij + cot β_ij)/2`` for an edge ``ij`` with opposite angles
``α, β``; ``L_ii = −Σ_j L_ij``) and the lumped (barycentric) mass matrix ``M = diag(A_i)``,
``A_i`` = one third of the area of the faces around vertex ``i``. The first ``k`` eigenpairs of the
generalised problem ``L φ = λ M φ`` (``φᵀ M φ = 1``) come from ``scipy.sparse.linalg.eigsh`` in
shift-invert mode about a small negative shift (``L`` itself is singular: constants are in its
kernel). They are computed once per mesh and cached in memory, keyed by a SHA-1 digest of the
vertex and face arrays and ``k``, so every ``Mesh`` built from the same arrays shares them.
"""
from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict

import numpy as np

__all__ = ["cotangent_laplacian", "eigenpairs", "mesh_digest", "spectral_weights", "KINDS"]

#: premetric kinds of ``Mesh.spectral_distance``
KINDS = ("biharmonic", "diffusion")
_CACHE: "OrderedDict[tuple, tuple[np.ndarray, np.ndarray]]" = OrderedDict()
_CACHE_SIZE = 8
_LOCK = threading.Lock()


def mesh_digest(v: np.ndarray, f: np.ndarray) -> str:
    """SHA-1 hex digest of the float64 vertex and int64 face arrays (the cache and equality key)."""
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(v, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(f, dtype=np.int64).tobytes())
    return h.hexdigest()


def cotangent_laplacian(v: np.ndarray, f: np.ndarray):
    """``(L, M)``: cotangent stiffness ``[V, V]`` (symmetric, PSD, ``L·1 = 0``) and lumped mass (CSR)."""
    from scipy.sparse import coo_matrix, diags

    rows, cols, vals = [], [], []
    for i in range(3):  # the angle at corner i is opposite the edge (j, k)
        j, k = (i + 1) % 3, (i + 2) % 3
        e1, e2 = v[f[:, j]] - v[f[:, i]], v[f[:, k]] - v[f[:, i]]
        cot = (e1 * e2).sum(1) / np.linalg.norm(np.cross(e1, e2), axis=1)
        rows += [f[:, j], f[:, k]]
        cols += [f[:, k], f[:, j]]
        vals += [-0.5 * cot, -0.5 * cot]
    n = len(v)
    off = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsr()
    L = off - diags(np.asarray(off.sum(1)).ravel())
    area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    mass = np.bincount(f.reshape(-1), weights=np.repeat(area / 3, 3), minlength=n)
    return L.tocsc(), diags(mass).tocsc()


def _solve(v: np.ndarray, f: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.sparse.linalg import eigsh

    L, M = cotangent_laplacian(v, f)
    k = min(k, len(v) - 1)
    # shift a little below 0 (L is singular); scale: the mean eigenvalue tr(L)/tr(M)
    sigma = -1e-8 * float(L.diagonal().sum() / M.diagonal().sum())
    evals, evecs = eigsh(L, k=k, M=M, sigma=sigma, which="LM", v0=np.ones(len(v)))
    order = np.argsort(evals)
    evecs = evecs[:, order]
    # an eigenvector's sign is arbitrary and differs between solves (another k, another cached solve):
    # fix it so that each one's entry of largest magnitude is positive, so results do not depend on
    # which solve served them (for simple eigenvalues; a repeated one's basis is still the solver's)
    peak = evecs[np.abs(evecs).argmax(0), np.arange(evecs.shape[1])]
    return np.clip(evals[order], 0.0, None), evecs * np.where(peak < 0, -1.0, 1.0)


def eigenpairs(v: np.ndarray, f: np.ndarray, k: int, digest: str) -> tuple[np.ndarray, np.ndarray]:
    """First ``k`` eigenpairs ``(λ [k] ascending, φ [V, k], M-orthonormal)``; cached by ``(digest, k)``.

    A cached solve with more eigenpairs serves a request for fewer (its leading columns).
    """
    with _LOCK:
        for (dig, kk), pair in _CACHE.items():
            if dig == digest and kk >= k:
                _CACHE.move_to_end((dig, kk))
                return pair[0][:k], pair[1][:, :k]
    pair = _solve(v, f, k)
    with _LOCK:
        _CACHE[(digest, k)] = pair
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return pair


def default_diffusion_time(evals: np.ndarray) -> float:
    """``t = 1/λ₁``: the diffusion time of the slowest non-constant mode.

    The distance then varies on the scale of the whole shape (it does not saturate between distant
    points, so its gradient does not vanish there) and does not depend on how many eigenpairs are
    kept (the weights ``e^{−λ_i/λ₁}`` are below ``e^{−10}`` from ``λ_i > 10 λ₁`` on).
    """
    return 1.0 / float(evals[1])


def spectral_weights(evals: np.ndarray, kind: str, t=None) -> np.ndarray:
    """Per-eigenpair feature weights ``[k − 1]`` (the constant pair dropped) for ``kind``.

    ``biharmonic``: ``1/λ_i`` (Lipman et al. 2010, ``d² = Σ_{i≥1} (φ_i(x) − φ_i(y))²/λ_i²``);
    ``diffusion``: ``e^{−tλ_i}`` (``d_t² = Σ_{i≥1} e^{−2tλ_i}(φ_i(x) − φ_i(y))²``), ``t`` default
    :func:`default_diffusion_time`.
    """
    lam = evals[1:]
    if kind == "biharmonic":
        if t is not None:
            raise ValueError(f"spectral_distance: t applies to kind='diffusion' only, got t={t!r} with "
                             "kind='biharmonic'")
        return 1.0 / lam
    if kind == "diffusion":
        if t is None:
            t = default_diffusion_time(evals)
        elif isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            raise ValueError(f"spectral_distance: t must be a finite number > 0, got {t!r}")
        return np.exp(-float(t) * lam)
    raise ValueError(f"spectral_distance: kind must be one of {KINDS}, got {kind!r}")
