"""Data on meshes (gaugeflow.data.mesh): eigenfunction mixtures and user point sets."""
from __future__ import annotations

import math

import pytest
import torch

from gaugeflow.data import eigenfunction_mixture, mesh_points
from gaugeflow.data.mesh import MESH_SETS, _regions, mixture_log_prob
from gaugeflow.manifolds import Mesh, Sphere


@pytest.fixture(scope="module")
def bumpy():
    return Mesh.bumpy(3, n_eigen=64)  # 1 280 faces


def test_points_lie_in_the_thresholded_regions_on_the_surface(bumpy):
    M = bumpy
    data = eigenfunction_mixture(M, (3, 8), 0.6, n_train=1600, n_val=200, n_test=200, seed=1, dtype=torch.float64)
    x = torch.cat([data.train, data.val, data.test])
    assert float((M.projx(x) - x).norm(dim=-1).max()) < 1e-12
    masks = _regions(M, (3, 8), 0.6)
    assert bool(torch.isfinite(mixture_log_prob(M, x, masks)).all())  # every point in some region
    _, evecs = M.eigenpairs
    face, _ = M.locate(x)
    for i, m in zip((3, 8), masks):  # a region: the faces where φ_i ≥ 0.6 max (sign with the larger magnitude up)
        phi = evecs[:, i] if evecs[:, i].max() >= -evecs[:, i].min() else -evecs[:, i]
        value = phi[M.faces].mean(-1)
        assert torch.equal(m, value >= 0.6 * value.max()) and 0 < int(m.sum()) < len(m)
    # equal weights: P(x ∈ S_a) = ½ + ½ · area(S_a ∩ S_b) / area(S_b), within 5 binomial sigmas
    area = lambda m: float(M.face_areas[m].sum())  # noqa: E731
    both = area(masks[0] & masks[1])
    for a, b in ((0, 1), (1, 0)):
        expected = 0.5 + 0.5 * both / area(masks[b])
        got = float(masks[a][face].double().mean())
        assert abs(got - expected) < 5 * math.sqrt(expected * (1 - expected) / len(x)) + 1e-12


def test_area_weighted_faces(bumpy):
    # Within one region a face is drawn with probability ∝ its area: the largest half of the region's
    # faces (by area) receives their share of the area, within 5 binomial sigmas.
    M = bumpy
    data = eigenfunction_mixture(M, (5,), 0.5, n_train=2000, n_val=10, n_test=10, seed=2, dtype=torch.float64)
    (mask,) = _regions(M, (5,), 0.5)
    areas = torch.where(mask, M.face_areas, torch.zeros_like(M.face_areas))
    big = areas >= areas[mask].median()
    share = float(areas[big].sum() / areas.sum())
    face, _ = M.locate(data.train)
    got = float(big[face].double().mean())
    assert abs(got - share) < 5 * math.sqrt(share * (1 - share) / len(face))


def test_seeded_and_reported(bumpy):
    a = eigenfunction_mixture(bumpy, n_train=50, n_val=5, n_test=5, seed=3)
    b = eigenfunction_mixture(bumpy, n_train=50, n_val=5, n_test=5, seed=3)
    c = eigenfunction_mixture(bumpy, n_train=50, n_val=5, n_test=5, seed=4)
    assert torch.equal(a.train, b.train) and not torch.equal(a.train, c.train)
    assert a.train.dtype == torch.float32 and a.name == "mesh-eigen"
    assert a.meta["uniform_nll"] == pytest.approx(math.log(float(bumpy.area)))
    assert a.meta["entropy"] < a.meta["uniform_nll"]  # a concentrated density: the uniform baseline is beatable
    assert set(MESH_SETS) == {"mesh-eigen", "mesh-eigen-fine"}


@pytest.mark.parametrize("kwargs, match", [
    ({"eigenfunctions": (0,)}, r"indices in \[1, 63\]"),
    ({"eigenfunctions": (64,)}, r"indices in \[1, 63\]"),
    ({"threshold": 1.5}, r"threshold must be a number in \(0, 1\)"),
    ({"n_train": 0}, "n_train must be an integer >= 1"),
])
def test_bad_mixture_settings(bumpy, kwargs, match):
    with pytest.raises(ValueError, match=match):
        eigenfunction_mixture(bumpy, **kwargs)


def test_mixture_needs_a_mesh():
    with pytest.raises(ValueError, match="lives on a triangle mesh"):
        eigenfunction_mixture(Sphere(2))


def test_user_points_projected_with_the_distance_reported(bumpy, recwarn):
    M = bumpy
    on = M.random_base(200, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    data = mesh_points(M, on.numpy(), dtype=torch.float64)
    assert data.meta["moved_max"] < 1e-12 and data.meta["n_moved"] == 0 and not recwarn.list
    assert len(data.train) + len(data.val) + len(data.test) == 200
    normals = M.face_normals[M.locate(on)[0]]
    off = on + 1e-3 * normals  # 1e-3 off the surface, along the normal: moved back by 1e-3
    with pytest.warns(UserWarning, match="200 of 200 points were projected onto the surface"):
        data = mesh_points(M, off, dtype=torch.float64)
    assert data.meta["moved_max"] == pytest.approx(1e-3, rel=1e-6)
    got = torch.cat([data.train, data.val, data.test])
    assert float((M.projx(got) - got).norm(dim=-1).max()) < 1e-12


def test_far_or_malformed_points_are_one_line_errors(bumpy):
    M = bumpy
    far = M.random_base(10, dtype=torch.float64)
    far[3] *= 5
    with pytest.raises(ValueError, match=r"1 of 10 points lie farther than 0.01 x the bounding-box diagonal .* row 3"):
        mesh_points(M, far)
    with pytest.raises(ValueError, match="not finite"):
        mesh_points(M, torch.full((4, 3), float("nan")))
    with pytest.raises(ValueError, match=r"floating \[n, 3\] array"):
        mesh_points(M, torch.zeros(4, 2))
    with pytest.raises(TypeError, match="array of numbers"):
        mesh_points(M, "points.csv")


def test_registry_names(bumpy):
    from gaugeflow.app.registry import DATASETS

    data = DATASETS.get("mesh-eigen")(bumpy, n=40, seed=0)
    assert data.name == "mesh-eigen" and len(data.train) == 40 and data.meta["eigenfunctions"] == [3, 8, 15]
    assert DATASETS.get("mesh-eigen-fine")(bumpy, n=10, seed=0).meta["eigenfunctions"] == [40, 60]
    with pytest.raises(ValueError, match="lives on a triangle mesh"):
        DATASETS.get("mesh-eigen")(Sphere(2), n=10, seed=0)
