"""Triangle meshes as base manifolds (issue 20): geometry, base distribution, capabilities, bad input.

Oracles: trimesh's closest-point query (an independent R-tree implementation) for ``projx``; exact
area weights for the chi-square test of ``random_base``; the conformance kit for the rest.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

trimesh = pytest.importorskip("trimesh")
from scipy.stats import chi2, kstest  # noqa: E402

from gaugeflow.geometry.manifold import CapabilityError  # noqa: E402
from gaugeflow.manifolds import Mesh, Sphere  # noqa: E402
from gaugeflow.testing import check_manifold  # noqa: E402

F64 = torch.float64


@pytest.fixture(scope="module")
def ico():
    return Mesh.icosphere(3, n_eigen=32)


@pytest.fixture(scope="module")
def bumpy():
    return Mesh.bumpy(subdivisions=3, n_eigen=32)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _trimesh(M):
    return trimesh.Trimesh(M._v, M._f, process=False)


# ---------------------------------------------------------------- construction
def test_procedural_meshes_have_the_documented_sizes_and_are_deterministic():
    assert Mesh.icosphere(5)._f.shape == (20480, 3)
    T = Mesh.torus(major_sections=16, minor_sections=8)
    assert T._f.shape == (256, 3) and (T.dim, T.ambient_dim) == (2, 3)
    a, b, c = Mesh.bumpy(subdivisions=2), Mesh.bumpy(subdivisions=2), Mesh.bumpy(subdivisions=2, seed=1)
    assert np.array_equal(a._v, b._v) and a == b and hash(a) == hash(b) and not np.array_equal(a._v, c._v)
    assert a != c and a != Mesh.icosphere(2)


def test_bumpy_mesh_is_not_convex(bumpy):
    tm = _trimesh(bumpy)
    assert tm.is_watertight and tm.volume < 0.95 * tm.convex_hull.volume
    assert abs(float(bumpy.area) - tm.area) < 1e-12 * tm.area


def test_surface_quantities(ico):
    sphere = Mesh.icosphere(5)
    assert abs(float(sphere.area) - 4 * math.pi) < 2e-3 * 4 * math.pi  # inscribed polyhedron, slightly smaller
    assert torch.allclose(ico.face_normals.norm(dim=-1), torch.ones(len(ico._f), dtype=F64))
    centroids = torch.as_tensor(ico._v[ico._f].mean(1))
    assert bool(((ico.face_normals * centroids).sum(-1) > 0).all())  # outward for trimesh's icosphere
    assert abs(float(ico.face_areas.sum() - ico.area)) < 1e-12
    assert repr(ico) == "Mesh.icosphere(3, radius=1.0)" and repr(Mesh(ico._v, ico._f)) == "Mesh(V=642, F=1280)"


@pytest.mark.parametrize("ext", ["obj", "ply", "off", "stl"])
def test_from_file_round_trip(tmp_path, ico, ext):
    path = tmp_path / f"m.{ext}"
    _trimesh(ico).export(path)
    M = Mesh.from_file(path)
    assert M._f.shape == ico._f.shape and abs(float(M.area - ico.area)) < 1e-6
    assert "from_file" in repr(M)


# ---------------------------------------------------------------- projections
def test_projx_fixes_surface_points_and_is_idempotent(bumpy):
    x = bumpy.random_base(3000, generator=_gen(0), dtype=F64)
    assert float((bumpy.projx(x) - x).norm(dim=-1).max()) <= 1e-12
    z = x + 0.05 * torch.randn(x.shape, generator=_gen(1), dtype=F64)
    p = bumpy.projx(z)
    assert float((bumpy.projx(p) - p).norm(dim=-1).max()) <= 1e-12


@pytest.mark.parametrize("scale", [0.05, 0.5, 30.0])
def test_projx_is_the_exact_closest_point(bumpy, scale):
    """Same distances as trimesh's closest-point query, near the surface and far away (origin, 30x out)."""
    x = bumpy.random_base(400, generator=_gen(2), dtype=F64)
    z = x + scale * torch.randn(x.shape, generator=_gen(3), dtype=F64)
    z = torch.cat([z, torch.zeros(1, 3, dtype=F64)])
    _, dist, tri = trimesh.proximity.closest_point(_trimesh(bumpy), z.numpy())
    p = bumpy.projx(z)
    assert np.abs((p - z).norm(dim=-1).numpy() - dist).max() < 1e-10
    face, bary = bumpy.locate(z)
    corners = torch.as_tensor(bumpy._v[bumpy._f[face.numpy()]])
    assert float(((bary[:, :, None] * corners).sum(1) - p).abs().max()) < 1e-12
    assert float(bary.min()) >= -1e-12 and float((bary.sum(-1) - 1).abs().max()) < 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
def test_matrix_product_search_route_gives_the_same_faces(bumpy, dtype):
    """The route for non-CPU devices (cdist + topk, rounded distances, widened certificate) = the k-d tree's."""
    from gaugeflow.manifolds._mesh_geometry import closest_points

    x = bumpy.random_base(2000, generator=_gen(15), dtype=F64)
    z = (x + 0.05 * torch.randn(x.shape, generator=_gen(16), dtype=F64)).to(dtype)
    tab = bumpy._tables(dtype, z.device)
    q1, f1, _ = closest_points(z, tab)
    q2, f2, _ = closest_points(z, tab._replace(tree=None))
    assert torch.equal(q1, q2) and float((f1 == f2).double().mean()) > 0.999  # ties: either adjacent face


def test_projx_keeps_batch_shape_dtype_and_gradient(ico):
    x = ico.random_base(30, generator=_gen(4), dtype=torch.float32).reshape(2, 5, 3, 3)
    assert ico.projx(x).shape == x.shape and ico.projx(x).dtype == torch.float32
    face, bary = ico.locate(x)
    assert face.shape == (2, 5, 3) and bary.shape == (2, 5, 3, 3) and face.dtype == torch.long
    z = (ico.random_base(4, generator=_gen(5), dtype=F64) * 1.01).requires_grad_(True)
    assert torch.autograd.gradcheck(ico.projx, (z,), eps=1e-7)


def test_non_finite_and_empty_input(ico):
    x = torch.tensor([[math.nan, 0, 0], [math.inf, 1, 1], [1.0, 0, 0]], dtype=F64)
    for out in (ico.projx(x), ico.proju(x, torch.ones(3, 3, dtype=F64)), ico.tangent_frame(x)[..., 0],
                ico.locate(x)[1]):
        assert bool(out[:2].isnan().all()) and bool(out[2].isfinite().all())
    assert ico.projx(torch.zeros(0, 3)).shape == (0, 3) and ico.locate(torch.zeros(0, 3))[0].shape == (0,)


def test_proju_projects_onto_the_located_face_plane(ico):
    x = ico.random_base(500, generator=_gen(6), dtype=F64)
    w = torch.randn(x.shape, generator=_gen(7), dtype=F64)
    u = ico.proju(x, w)
    n = ico.face_normals[ico.locate(x)[0]]
    assert float((u * n).sum(-1).abs().max()) < 1e-14
    assert float((ico.proju(x, u) - u).abs().max()) < 1e-14
    assert float(((w - u) - (w * n).sum(-1, keepdim=True) * n).abs().max()) < 1e-14
    E = ico.tangent_frame(x)
    assert E.shape == (500, 3, 2)
    assert torch.allclose(E.transpose(-1, -2) @ E, torch.eye(2, dtype=F64).expand(500, 2, 2), atol=1e-14)
    assert float((n[:, None, :] @ E).abs().max()) < 1e-14


def test_edge_and_vertex_rule_is_the_located_face(ico):
    """On an edge or a vertex, proju and tangent_frame use the face locate returns, which contains the point."""
    f = ico._f
    mid = torch.as_tensor(0.5 * (ico._v[f[:50, 0]] + ico._v[f[:50, 1]]))
    vert = torch.as_tensor(ico._v[:50])
    for pts, shared in ((mid, lambda i: {f[i, 0], f[i, 1]}), (vert, lambda i: {i})):
        face = ico.locate(pts)[0].numpy()
        assert all(shared(i) <= set(f[face[i]].tolist()) for i in range(50))
        n = ico.face_normals[face]
        u = ico.proju(pts, torch.randn(pts.shape, generator=_gen(8), dtype=F64))
        assert float((u * n).sum(-1).abs().max()) < 1e-14
        again = ico.locate(pts.clone())[0].numpy()
        assert np.array_equal(face, again)  # deterministic


def test_exp_is_a_retraction_that_lands_on_the_surface(bumpy):
    x = bumpy.random_base(500, generator=_gen(9), dtype=F64)
    u = bumpy.proju(x, torch.randn(x.shape, generator=_gen(10), dtype=F64))
    for scale in (0.0, 1e-3, 0.3, 10.0):
        y = bumpy.exp(x, scale * u)
        assert float((bumpy.projx(y) - y).norm(dim=-1).max()) <= 1e-12
    assert float((bumpy.exp(x, 0 * u) - x).abs().max()) <= 1e-12
    h = 1e-6  # first order inside faces: R_x(hu) = x + hu + O(h²)
    y = bumpy.exp(x, h * u)
    inside = bumpy.locate(y)[0] == bumpy.locate(x)[0]
    assert float(inside.double().mean()) > 0.99
    assert float(((y - x) / h - u)[inside].abs().max()) < 1e-8


# ---------------------------------------------------------------- base distribution
def test_random_base_is_area_uniform(bumpy):
    n, F = 100_000, len(bumpy._f)
    x = bumpy.random_base(n, generator=_gen(11), dtype=F64)
    face, bary = bumpy.locate(x)
    counts = np.bincount(face.numpy(), minlength=F)
    area = bumpy._face_area / bumpy._face_area.sum()
    stat = ((counts - n * area) ** 2 / (n * area)).sum()
    assert chi2.sf(stat, F - 1) > 1e-3
    flat = np.full(F, 1 / F)  # power: face-uniform sampling is rejected on this mesh
    assert chi2.sf(((counts - n * flat) ** 2 / (n * flat)).sum(), F - 1) < 1e-12
    # uniform inside a face: each barycentric coordinate is Beta(1, 2), CDF 1 − (1 − b)²
    assert kstest(bary[:20000, 0].numpy(), lambda b: 1 - (1 - np.clip(b, 0, 1)) ** 2).pvalue > 1e-3
    lp = bumpy.base_log_prob(x[:10])
    assert torch.allclose(lp, torch.full((10,), -math.log(float(bumpy.area)), dtype=F64))
    first, again = (bumpy.random_base(10, generator=_gen(14), dtype=torch.float32) for _ in range(2))
    assert again.dtype == torch.float32 and torch.equal(again, first)
    assert bumpy.random_base(0).shape == (0, 3)


# ---------------------------------------------------------------- capabilities and conformance
def test_capabilities_name_what_a_mesh_lacks(ico):
    assert ico.capabilities == frozenset({"spectral"}) and not ico.has("log") and ico.has("spectral")
    assert Sphere(2).has("log") and not Sphere(2).has("spectral")
    x = ico.random_base(2, generator=_gen(12), dtype=F64)
    for call, cap, hint in ((lambda: ico.log(x, x), "log", "spectral_distance"),
                            (lambda: ico.dist(x, x), "dist", "spectral_distance"),
                            (lambda: ico.transp(x, x, x), "transp", "proju"),
                            (lambda: ico.geodesic(x, x, torch.zeros(2)), "geodesic", "PremetricPath")):
        with pytest.raises(CapabilityError, match=f"no closed-form '{cap}'.*{hint}"):
            call()
    assert issubclass(CapabilityError, NotImplementedError)
    with pytest.raises(ValueError, match="unknown capability 'exp'"):
        ico.has("exp")


def test_conformance_kit_runs_on_mesh_and_reports_what_does_not_apply(ico):
    report = check_manifold(ico, max_examples=8, base_samples=2000)
    assert not report.failures
    assert set(report.not_applicable) == {"exp_log", "log_exp", "dist", "triangle", "transp", "geodesic",
                                          "base_density"}
    assert "needs capability 'log'" in report.not_applicable["log_exp"]
    ran = {r.name for r in report.results if not r.not_applicable}
    assert ran == {"projx", "proju", "exp", "batched", "premetric", "random_base", "bad_input", "gradients", "cut_screen"}
    assert "n/a  exp_log" in str(report)
    sphere = check_manifold(Sphere(2), dtypes=[F64], max_examples=3, base_samples=2000)
    assert set(sphere.not_applicable) == {"premetric"}


# ---------------------------------------------------------------- bad input
_V = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=float)
_TET = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


@pytest.mark.parametrize("vertices, faces, error, words", [
    (_V[:, :2], _TET, ValueError, "vertices must have shape \\[V, 3\\], got \\(5, 2\\)"),
    (_V, np.c_[_TET, _TET[:, :1]], ValueError, "faces must have shape \\[F, 3\\] \\(triangles\\), got \\(4, 4\\)"),
    (_V.astype(int), _TET, TypeError, "vertices must be a floating-point array, got dtype int64"),
    (_V, _TET.astype(float), TypeError, "faces must be an integer array of vertex indices, got dtype float64"),
    (np.where(np.arange(3) == 0, np.nan, _V), _TET, ValueError, "vertices contain NaN or Inf"),
    (_V, np.r_[_TET[:3], [[1, 2, 7]]], ValueError, "1 faces have vertex indices outside \\[0, 4\\] .*face 3 = \\[1, 2, 7\\]"),
    (_V, np.zeros((0, 3), int), ValueError, "expected at least one face"),
    (_V[:4], np.r_[_TET, [[1, 1, 2]]], ValueError, "1 degenerate \\(zero-area\\) faces, e.g. face 4"),
    (np.r_[_V[:4], [[0.5, 0.5, 0]]], np.r_[_TET[1:], [[0, 1, 4]], [[0, 4, 2]], [[1, 2, 4]]], ValueError,
     "1 degenerate \\(zero-area\\) faces, e.g. face 5 = \\[1, 2, 4\\] with area 0.000e\\+00"),
    (_V, _TET, ValueError, "1 vertices are not used by any face \\(e.g. vertex 4\\)"),
    (_V[:4], np.r_[_TET, _TET[:1]], ValueError, "1 faces repeat the three vertices of an earlier face \\(e.g. face 4 repeats face 0\\)"),
    (_V, np.r_[_TET, [[1, 2, 4]]], ValueError, "1 non-manifold edges .*edge \\[1, 2\\] is shared by 3 faces"),
    (np.r_[_V[:4], _V[:4] + 5], np.r_[_TET, _TET + 4], ValueError, "the surface has 2 connected components \\(vertex counts \\[4, 4\\]\\)"),
])
def test_bad_meshes_raise_one_clear_error(vertices, faces, error, words):
    with pytest.raises(error, match=f"^Mesh: {words}"):
        Mesh(vertices, faces)


def test_torch_input_and_bad_arguments():
    M = Mesh(torch.as_tensor(_V[:4]), torch.as_tensor(_TET), n_eigen=3)
    assert len(M._f) == 4 and M == Mesh(_V[:4], _TET, n_eigen=3)
    with pytest.raises(ValueError, match="n_eigen must be an integer >= 2, got 1"):
        Mesh(_V[:4], _TET, n_eigen=1)
    with pytest.raises(TypeError, match="dtype must be a floating torch.dtype"):
        Mesh(_V[:4], _TET, dtype=torch.int64)
    with pytest.raises(ValueError, match="expected minor < major"):
        Mesh.torus(major=1.0, minor=2.0)
    with pytest.raises(ValueError, match="subdivisions must be an integer >= 0, got -1"):
        Mesh.icosphere(-1)
    with pytest.raises(ValueError, match="amplitude must be < 1"):
        Mesh.bumpy(amplitude=1.5)


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        Mesh.from_file(tmp_path / "missing.obj")
    with pytest.raises(ValueError, match="expected a file ending in one of"):
        Mesh.from_file(tmp_path / "mesh.txt")
    (tmp_path / "empty.off").write_text("OFF\n0 0 0\n")
    with pytest.raises(ValueError, match="empty.off"):
        Mesh.from_file(tmp_path / "empty.off")


def test_points_off_the_surface_are_named(ico):
    x = ico.random_base(3, generator=_gen(13), dtype=F64)
    with pytest.raises(ValueError, match="expected points on the surface, got points 9.9.*e-01 away from it \\(tolerance 1e-03 x bounding-box diagonal"):
        ico.spectral_distance(x, 2 * x)
    assert ico.spectral_distance(x, 2 * x, check=False).shape == (3,)  # opt-out: projected first
    with pytest.raises(ValueError, match="off the manifold"):
        ico.check_point(x * 1.5)
    with pytest.raises(ValueError, match="last axis of size 3"):
        ico.projx(x[:, :2])
    with pytest.raises(TypeError, match="floating-point"):
        ico.proju(x.long(), x)
