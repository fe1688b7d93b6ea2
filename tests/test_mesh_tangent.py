"""Mesh.to_tangent / from_tangent (math.md §11.3): network fields that are continuous across edges.

The property that makes ``log_prob``'s face-wise divergence the whole density change is the
continuity, across every edge, of the field's in-surface component normal to the edge (its flux);
``to_tangent`` also keeps the component along the edge continuous. Checked on points approaching
interior edges from both faces, for a constant ambient field and for a network-like smooth field;
the plain face projection ``proju`` fails the same check (so the check can fail).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gaugeflow.manifolds import Mesh

F64 = torch.float64
DELTA = 1e-7  # distance of the probe points from the edge


@pytest.fixture(scope="module", params=["bumpy", "torus"])
def mesh(request):
    if request.param == "bumpy":
        return Mesh.bumpy(subdivisions=3, n_eigen=8)
    return Mesh.torus(major_sections=24, minor_sections=12, n_eigen=8)


def _edge_probes(M: Mesh, n: int, seed: int):
    """Points ``x_a``/``x_b`` at distance DELTA from random interior edges inside the two faces sharing
    them, and per pair the unit edge direction ``e`` and the in-plane unit normals ``m_a`` (leaving
    face a across the edge) and ``m_b`` (entering face b)."""
    rng = np.random.default_rng(seed)
    f, v = M._f, M._v
    edges = {}
    for face, tri in enumerate(f):
        for k in range(3):
            edges.setdefault(tuple(sorted((tri[(k + 1) % 3], tri[(k + 2) % 3]))), []).append((face, tri[k]))
    inner = [(e, fs) for e, fs in edges.items() if len(fs) == 2]
    pick = rng.choice(len(inner), n, replace=False)
    rows = {key: [] for key in ("xa", "xb", "e", "ma", "mb")}
    for i in pick:
        (p, q), ((_, ca), (_, cb)) = inner[i]
        e = (v[q] - v[p]) / np.linalg.norm(v[q] - v[p])
        on = v[p] + rng.uniform(0.2, 0.8) * (v[q] - v[p])
        inward = []
        for c in (ca, cb):  # unit in-plane direction from the edge towards the opposite corner c
            w = (v[c] - v[p]) - ((v[c] - v[p]) @ e) * e
            inward.append(w / np.linalg.norm(w))
        rows["xa"].append(on + DELTA * inward[0])
        rows["xb"].append(on + DELTA * inward[1])
        rows["e"].append(e)
        rows["ma"].append(-inward[0])
        rows["mb"].append(inward[1])
    return {key: torch.as_tensor(np.array(val), dtype=F64) for key, val in rows.items()}


def _jumps(M, to_tangent, field, probes):
    """Largest jumps across the edges of the flux ``V·m`` and of the along-edge component ``V·e``."""
    va, vb = to_tangent(probes["xa"], field(probes["xa"])), to_tangent(probes["xb"], field(probes["xb"]))
    flux = ((va * probes["ma"]).sum(-1) - (vb * probes["mb"]).sum(-1)).abs().max()
    along = ((va * probes["e"]).sum(-1) - (vb * probes["e"]).sum(-1)).abs().max()
    return float(flux.detach()), float(along.detach())


def _fields():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double()
    c = torch.tensor([0.3, -0.8, 0.5], dtype=F64)
    return {"constant": lambda x: c.expand_as(x), "network": lambda x: net(x)}


@pytest.mark.parametrize("kind", ["constant", "network"])
def test_to_tangent_flux_and_along_edge_components_are_continuous_across_edges(mesh, kind):
    probes, field = _edge_probes(mesh, 200, seed=1), _fields()[kind]
    flux, along = _jumps(mesh, mesh.to_tangent, field, probes)
    # the field moves by O(DELTA) between the probes; the jump of the face projection is O(turning angle)
    assert flux < 1e-5 and along < 1e-5, (flux, along)
    face_flux, _ = _jumps(mesh, mesh.proju, field, probes)
    assert face_flux > 1e-3, face_flux  # the plain face projection jumps: the check has teeth


def test_from_tangent_is_continuous_across_edges_for_fields_from_to_tangent(mesh):
    probes, field = _edge_probes(mesh, 200, seed=2), _fields()["network"]
    ends = []
    for x in (probes["xa"], probes["xb"]):
        ends.append(mesh.from_tangent(x, mesh.to_tangent(x, field(x).detach())))
    assert float((ends[0] - ends[1]).abs().max()) < 1e-5
    assert float((mesh.proju(probes["xa"], field(probes["xa"]).detach())
                  - mesh.proju(probes["xb"], field(probes["xb"]).detach())).abs().max()) > 1e-3


def test_to_tangent_is_a_bounded_projector_onto_the_face_plane_inverted_by_from_tangent(mesh):
    g = torch.Generator().manual_seed(3)
    x = mesh.random_base(2000, generator=g, dtype=F64)
    u = torch.randn(2000, 3, generator=g, dtype=F64)
    v = mesh.to_tangent(x, u)
    n = mesh.face_normals[mesh.locate(x)[0]]
    assert float((v * n).sum(-1).abs().max()) < 1e-12  # tangent to x's face
    torch.testing.assert_close(mesh.to_tangent(x, v), v, rtol=0, atol=1e-12)  # identity on the face plane
    torch.testing.assert_close(mesh.to_tangent(x, mesh.from_tangent(x, v)), v, rtol=0, atol=1e-12)
    assert float(mesh.from_tangent(x, v).norm(dim=-1).div(v.norm(dim=-1)).max()) <= 1 + 1e-12
    ratio = float((v.norm(dim=-1) / u.norm(dim=-1)).max())
    assert 1 < ratio <= mesh.tangent_bound * (1 + 1e-12)  # oblique (not orthogonal), within the bound
    assert mesh.tangent_bound < 1.2  # min cos(θ/2) over the edges of these smooth-ish meshes


def test_to_tangent_at_vertices_and_nonfinite_points():
    M = Mesh.icosphere(2, n_eigen=8)
    x = M.vertices[:50]
    u = torch.randn(50, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    v = M.to_tangent(x, u)
    assert torch.isfinite(v).all()
    assert float((v * M.face_normals[M.locate(x)[0]]).sum(-1).abs().max()) < 1e-12
    bad = torch.tensor([[float("nan"), 0.0, 0.0]], dtype=F64)
    assert torch.isnan(M.to_tangent(bad, u[:1])).all()


def _face_quadrature(M: Mesh, m: int):
    """Points ``[F·q, 3]`` and weights: centroids of the ``m²`` congruent sub-triangles of every face."""
    i, j = torch.meshgrid(torch.arange(m), torch.arange(m), indexing="ij")
    up_i, up_j = i[i + j < m].double(), j[i + j < m].double()
    dn_i, dn_j = i[i + j < m - 1].double(), j[i + j < m - 1].double()
    b1 = torch.cat([(up_i + 1 / 3) / m, (dn_i + 2 / 3) / m])
    b2 = torch.cat([(up_j + 1 / 3) / m, (dn_j + 2 / 3) / m])
    bary = torch.stack([1 - b1 - b2, b1, b2], -1)  # [m², 3]
    pts = torch.einsum("qk,fkd->fqd", bary, M.vertices[M.faces]).reshape(-1, 3)
    w = (M.face_areas[:, None] / len(bary)).expand(-1, len(bary)).reshape(-1)
    return pts, w


@pytest.mark.parametrize("kind", ["constant", "network"])
def test_face_wise_divergence_is_the_whole_divergence_in_the_weak_sense(kind):
    """No mass sources on edges: for a test function φ, ∫ (φ div V + ∇φ·V) dA = −Σ_e ∫_e φ [V·ν] ds,
    which vanishes when the flux is continuous across edges (and the bounded field carries none into
    vertices). ``div`` is the face-wise divergence ``log_prob`` integrates; ∇φ the face-wise gradient
    of an ambient Gaussian bump. The plain face projection leaves a clearly nonzero edge term."""
    from gaugeflow.sampling.divergence import exact_divergence

    M = Mesh.icosphere(1, n_eigen=8)
    pts, w = _face_quadrature(M, 32)
    field = _fields()[kind]
    centre = torch.tensor([0.6, 0.64, 0.48], dtype=F64)
    phi = torch.exp(-((pts - centre) ** 2).sum(-1) / 0.3)
    grad_phi = M.proju(pts, -2 * (pts - centre) / 0.3 * phi[:, None])
    residual = {}
    for name, tt in (("to_tangent", M.to_tangent), ("proju", M.proju)):
        value, div = exact_divergence(lambda y: tt(y, field(y)), M, pts)
        residual[name] = float(((phi * div + (grad_phi * value).sum(-1)) * w).sum())
    assert abs(residual["to_tangent"]) < 0.05 * abs(residual["proju"]), residual
