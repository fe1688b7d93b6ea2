"""The properties behind :func:`gaugeflow.testing.check_manifold` (one function each).

Every hypothesis property has the signature ``prop(M, dtype, data, meter)``: it draws inputs with
``data.draw`` and reports each measured error with ``meter(label, error, tolerance)``; a ratio
above 1 fails. Tolerances scale with ``tol("prop", dtype)`` and the size of the quantities
compared (``1 + |value|``), times a per-manifold conditioning factor :func:`cond` (the hyperboloid's
Minkowski form cancels terms of size ``x_0²``).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .._numerics import tol
from ..geometry.manifold import Manifold
from .strategies import PAIR_KINDS, point_pairs, points, tangent_norms, tangent_vectors

BATCH = 4


def cond(*xs: torch.Tensor) -> torch.Tensor:
    """Conditioning factor ``1 + max|x|²`` over the given points' coordinates. ``[...]``."""
    out = None
    for x in xs:
        a = 1 + x.detach().abs().amax(-1) ** 2
        out = a if out is None else torch.maximum(out, a)
    return out


def close(M: Manifold, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """How far apart two points are: ``min(dist(a, b), ‖a − b‖)`` (the chord guards against a
    broken ``dist`` hiding a correct result; ``dist`` handles wrapped coordinates). ``[...]``."""
    return torch.minimum(M.dist(a, b), (a - b).norm(dim=-1))


def _ptol(dtype: torch.dtype) -> float:
    return tol("prop", dtype)


def _pairs(M, dtype, data, kinds):
    return data.draw(point_pairs(M, dtype, BATCH, kinds), label="pair")


def prop_projx(M: Manifold, dtype, data, meter, kinds=PAIR_KINDS):
    """``projx`` lands on the manifold and is idempotent (also on on-manifold input)."""
    x = data.draw(points(M, dtype, BATCH), label="x")
    noise = data.draw(hnp.arrays(np.float64, x.shape, elements=st.floats(-0.1, 0.1)), label="noise")
    p = M.projx(x + torch.from_numpy(noise).to(dtype))
    meter("projx(z) on manifold", M._point_residual(p), tol("point", dtype))
    for label, a in (("projx(projx(z)) = projx(z)", p), ("projx(x) = x", x)):
        meter(label, (M.projx(a) - a).abs().amax(-1), _ptol(dtype) * (1 + a.abs().amax(-1)))


def prop_proju(M, dtype, data, meter, kinds=PAIR_KINDS):
    """``proju(x, w)`` is tangent at ``x`` and ``proju`` is idempotent."""
    x = data.draw(points(M, dtype, BATCH), label="x")
    w = torch.from_numpy(data.draw(hnp.arrays(np.float64, x.shape, elements=st.floats(-4, 4)), label="w")).to(dtype)
    u = M.proju(x, w)
    scale = (1 + u.abs().amax(-1)) * cond(x)
    meter("proju(x, w) tangent", M._tangent_residual(x, u), tol("point", dtype) * scale)
    meter("proju(x, u) = u", (M.proju(x, u) - u).abs().amax(-1), _ptol(dtype) * scale)
    E = M.tangent_frame(x).transpose(-1, -2)  # [B, dim, D] rows
    meter(f"tangent_frame shape (4, {M.ambient_dim}, {M.dim})", float(tuple(E.shape) != (BATCH, M.dim, M.ambient_dim)), 0.5)
    gram = M.inner(x[:, None, None, :], E[:, :, None, :], E[:, None, :, :])
    eye = torch.eye(M.dim, dtype=dtype)
    meter("tangent_frame orthonormal", (gram - eye).abs().reshape(BATCH, -1).amax(-1), _ptol(dtype) * cond(x) * 10)
    meter("tangent_frame tangent", M._tangent_residual(x[:, None, :], E).amax(-1), tol("point", dtype) * cond(x) * 10)


def prop_exp_log(M, dtype, data, meter, kinds=PAIR_KINDS):
    """``exp(x, log(x, y)) = y`` for every kind of pair, cut locus included; ``‖log‖ ≤ diameter``."""
    x, y, _ = _pairs(M, dtype, data, kinds)
    v = M.log(x, y)
    meter("log(x, y) finite", _nonfinite(v), 0.5)
    z = M.exp(x, v)
    d = M.dist(x, y)
    meter("exp(x, log(x, y)) = y", close(M, z, y), _ptol(dtype) * (1 + d) * cond(x, y))
    if math.isfinite(M.diameter):  # log's geodesic is minimising: never longer than the manifold is wide
        excess = (M.norm(x, v) - M.diameter).clamp_min(0)
        meter("‖log(x, y)‖ ≤ diameter", excess, _ptol(dtype) * 10 * (1 + M.diameter))


def prop_log_exp(M, dtype, data, meter, kinds=PAIR_KINDS):
    """``exp(x, u)`` is finite and on the manifold for all ``u`` (huge too); ``log(x, exp(x, u)) = u`` inside."""
    x = data.draw(points(M, dtype, BATCH), label="x")
    u = data.draw(tangent_vectors(M, x), label="u")
    y = M.exp(x, u)
    meter("exp(x, u) finite", _nonfinite(y), 0.5)
    meter("exp(x, u) on manifold", M._point_residual(y), tol("point", dtype))
    nu = M.norm(x, u)
    inside = nu < M.injectivity_radius - 4 * tol("cut", dtype)
    inside = inside & ~M.cut_locus_mask(x, y)
    err = M.norm(x, M.log(x, y) - u)
    meter("log(x, exp(x, u)) = u", torch.where(inside, err, 0), _ptol(dtype) * (1 + nu) * cond(x, y))


def prop_exp(M, dtype, data, meter, kinds=PAIR_KINDS):
    """Retraction axioms (any manifold, ``log`` not needed): ``exp(x, u)`` is finite and on the manifold
    for every ``u`` (huge too); ``exp(x, 0) = x`` where there is no ``log`` (with one, ``exp_log`` on
    identical pairs checks it)."""
    x = data.draw(points(M, dtype, BATCH), label="x")
    u = data.draw(tangent_vectors(M, x), label="u")
    y = M.exp(x, u)
    meter("exp(x, u) finite", _nonfinite(y), 0.5)
    meter("exp(x, u) on manifold", M._point_residual(y), tol("point", dtype))
    if "log" not in M.capabilities:
        meter("exp(x, 0) = x", (M.exp(x, torch.zeros_like(x)) - x).abs().amax(-1), _ptol(dtype) * cond(x))


def prop_premetric(M, dtype, data, meter, kinds=PAIR_KINDS):
    """``spectral_distance`` (capability ``spectral``) is a metric on the points drawn: finite, ``≥ 0``,
    symmetric, zero on the diagonal, triangle inequality (it is the distance of an embedding)."""
    x, y, _ = _pairs(M, dtype, data, kinds)
    z = data.draw(points(M, dtype, BATCH), label="z")
    d = M.spectral_distance(x, y)
    t = _ptol(dtype) * 10 * (1 + d)
    meter("spectral_distance finite and >= 0", _nonfinite(d) + (-d).clamp_min(0), 0.5)
    meter("spectral_distance(x, y) = spectral_distance(y, x)", (d - M.spectral_distance(y, x)).abs(), t)
    meter("spectral_distance(x, x) = 0", M.spectral_distance(x, x).abs(), _ptol(dtype))
    dxz, dyz = M.spectral_distance(x, z), M.spectral_distance(y, z)
    meter("spectral triangle inequality", (dxz - d - dyz).clamp_min(0), _ptol(dtype) * 10 * (1 + dxz))


def prop_dist(M, dtype, data, meter, kinds=PAIR_KINDS):
    """``dist(x, y) = ‖log(x, y)‖ = dist(y, x) ≥ 0`` and ``dist(x, x) = 0``."""
    x, y, kind = _pairs(M, dtype, data, kinds)
    d = M.dist(x, y)
    t = _ptol(dtype) * (1 + d) * cond(x, y)
    meter("dist finite and >= 0", _nonfinite(d) + (-d).clamp_min(0), 0.5)
    meter("dist(x, y) = ‖log(x, y)‖", (d - M.norm(x, M.log(x, y))).abs(), t)
    meter("dist(x, y) = dist(y, x)", (d - M.dist(y, x)).abs(), t)
    meter("dist(x, x) = 0", M.dist(x, x).abs(), _ptol(dtype) * cond(x))


def prop_triangle(M, dtype, data, meter, kinds=PAIR_KINDS):
    """``dist(x, z) ≤ dist(x, y) + dist(y, z)``."""
    x, y, _ = _pairs(M, dtype, data, kinds)
    z = data.draw(points(M, dtype, BATCH), label="z")
    dxy, dyz, dxz = M.dist(x, y), M.dist(y, z), M.dist(x, z)
    meter("triangle inequality", (dxz - dxy - dyz).clamp_min(0), _ptol(dtype) * (1 + dxz) * cond(x, y, z))


def prop_transp(M, dtype, data, meter, kinds=PAIR_KINDS):
    """Transport is tangent, isometric, the identity for ``y = x`` and inverted by transport back."""
    x, y, _ = _pairs(M, dtype, data, kinds)
    norms = tangent_norms(M, dtype, max_norm=1e2)
    u = data.draw(tangent_vectors(M, x, norms), label="u")
    w = data.draw(tangent_vectors(M, x, norms), label="w")
    pu, pw = M.transp(x, y, u), M.transp(x, y, w)
    nu, nw = M.norm(x, u), M.norm(x, w)
    c = cond(x, y)
    meter("transp finite", _nonfinite(pu), 0.5)
    meter("transp(x, y, u) tangent at y", M._tangent_residual(y, pu), tol("point", dtype) * (1 + nu) * c)
    meter("<Pu, Pw>_y = <u, w>_x", (M.inner(y, pu, pw) - M.inner(x, u, w)).abs(), _ptol(dtype) * (1 + nu * nw) * c)
    meter("transp(x, x, u) = u", M.norm(x, M.transp(x, x, u) - u), _ptol(dtype) * (1 + nu) * c)
    back = M.norm(x, M.transp(y, x, pu) - u)
    meter("transp(y, x, transp(x, y, u)) = u", torch.where(M.cut_locus_mask(x, y), 0, back),
          _ptol(dtype) * (1 + nu) * c)


def _ops(M, x, y, u):
    """The operations compared batched vs looped: those the manifold has (``M.capabilities``)."""
    ops = {
        "projx": lambda s: M.projx(x[s]), "proju": lambda s: M.proju(x[s], u[s]),
        "inner": lambda s: M.inner(x[s], u[s], u[s]), "norm": lambda s: M.norm(x[s], u[s]),
        "exp": lambda s: M.exp(x[s], u[s]), "log": lambda s: M.log(x[s], y[s]),
        "dist": lambda s: M.dist(x[s], y[s]), "transp": lambda s: M.transp(x[s], y[s], u[s]),
        "base_log_prob": lambda s: M.base_log_prob(x[s]), "features": lambda s: M.features(x[s]),
    }
    if M.base is None:  # geometry only: the base distribution is checked when one is attached
        del ops["base_log_prob"]
    for name in ("log", "dist", "transp"):
        if name not in M.capabilities:
            del ops[name]
    if "spectral" in M.capabilities:
        ops["spectral_distance"] = lambda s: M.spectral_distance(x[s], y[s])
    return ops


def prop_batched(M, dtype, data, meter, kinds=PAIR_KINDS):
    """Batched results equal a per-sample loop, shapes/dtypes follow the ABC, broadcasting works."""
    x, y, _ = _pairs(M, dtype, data, kinds)
    u = data.draw(tangent_vectors(M, x), label="u")
    c = cond(x, y)
    scalar_ops = {"inner", "norm", "dist", "base_log_prob", "spectral_distance"}
    for name, op in _ops(M, x, y, u).items():
        full = op(slice(None))
        want = (BATCH,) if name in scalar_ops else (BATCH, M.feature_dim if name == "features" else M.ambient_dim)
        meter(f"{name}: shape {want} and dtype {dtype}", float(tuple(full.shape) != want or full.dtype != dtype), 0.5)
        rows = torch.stack([op(i) for i in range(BATCH)])
        err = (full - rows).abs().reshape(BATCH, -1).amax(-1)
        meter(f"{name}: batched = looped", err, _ptol(dtype) * (1 + rows.abs().reshape(BATCH, -1).amax(-1)) * c)
    if "log" in M.capabilities:
        bro = M.log(x[0], y)
        meter("log(x[0], y) broadcasts", (bro - M.log(x[:1].expand_as(y), y)).abs().amax(-1), _ptol(dtype) * c)


def prop_geodesic(M, dtype, data, meter, kinds=PAIR_KINDS):
    """``geodesic(x0, x1, t)`` follows ``exp(x0, t log(x0, x1))`` with velocity of norm ``dist``."""
    x, y, _ = _pairs(M, dtype, data, kinds)
    t = torch.from_numpy(data.draw(hnp.arrays(np.float64, (BATCH,), elements=st.floats(0, 1)), label="t")).to(dtype)
    xt, ut = M.geodesic(x, y, t)
    v = M.log(x, y)
    d, c = M.norm(x, v), cond(x, y)
    meter("x_t = exp(x0, t log(x0, x1))", close(M, xt, M.exp(x, t[:, None] * v)), _ptol(dtype) * (1 + d) * c)
    meter("u_t tangent at x_t", M._tangent_residual(xt, ut), tol("point", dtype) * (1 + d) * c)
    meter("‖u_t‖ = ‖log(x0, x1)‖", (M.norm(xt, ut) - d).abs(), _ptol(dtype) * (1 + d) * c)
    if dtype == torch.float64:
        h = 1e-5
        fd = (M.log(xt, M.geodesic(x, y, t + h)[0]) - M.log(xt, M.geodesic(x, y, t - h)[0])) / (2 * h)
        ok = d < 0.9 * M.injectivity_radius
        meter("u_t = d x_t / dt (finite differences)", torch.where(ok, M.norm(xt, fd - ut), 0), 1e-6 * (1 + d) ** 3 * c)


def _nonfinite(t: torch.Tensor) -> torch.Tensor:
    """1 per row (last axis reduced if any) holding a NaN/Inf, else 0."""
    bad = ~torch.isfinite(t)
    return (bad.reshape(bad.shape[0], -1).any(-1) if bad.dim() > 1 else bad).double()


HYPOTHESIS_PROPERTIES = {
    "projx": prop_projx, "proju": prop_proju, "exp": prop_exp, "exp_log": prop_exp_log, "log_exp": prop_log_exp,
    "dist": prop_dist, "triangle": prop_triangle, "transp": prop_transp, "batched": prop_batched,
    "geodesic": prop_geodesic, "premetric": prop_premetric,
}

#: capabilities (``Manifold.capabilities``) each property needs; a property whose capabilities the
#: manifold lacks is reported as not applicable (``PropertyResult.not_applicable``), never run
REQUIRES = {
    "exp_log": ("log", "dist"), "log_exp": ("log",), "dist": ("log", "dist"), "triangle": ("dist",),
    "transp": ("transp",), "geodesic": ("geodesic", "log"), "premetric": ("spectral",), "base_density": ("log",),
}
