"""Procedural meshes and file loading for :class:`gaugeflow.manifolds.Mesh` (trimesh, imported lazily).

Every constructor is deterministic: the same arguments give bit-identical arrays (so the eigenpair
cache, keyed by the arrays, is shared).
"""
from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["icosphere_arrays", "torus_arrays", "bumpy_arrays", "load_arrays", "FILE_TYPES"]

#: file extensions :func:`load_arrays` reads
FILE_TYPES = (".obj", ".ply", ".off", ".stl")


def _trimesh():
    try:
        import trimesh
    except ModuleNotFoundError as exc:  # pragma: no cover - the mesh extra is installed in CI
        raise ModuleNotFoundError("gaugeflow's procedural and file meshes need trimesh: "
                                  "pip install 'gaugeflow[mesh]'") from exc
    return trimesh


def _integer(owner: str, name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{owner}: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _positive(owner: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a finite number > 0, got {value!r}")
    return float(value)


def icosphere_arrays(subdivisions: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Subdivided icosahedron projected on the sphere of ``radius``: ``20·4^subdivisions`` faces."""
    s = _integer("Mesh.icosphere", "subdivisions", subdivisions, 0)
    m = _trimesh().creation.icosphere(subdivisions=s, radius=_positive("Mesh.icosphere", "radius", radius))
    return np.asarray(m.vertices, dtype=np.float64), np.asarray(m.faces, dtype=np.int64)


def torus_arrays(major: float, minor: float, major_sections: int, minor_sections: int):
    """Torus of revolution about the z axis (``major > minor``), ``2·major_sections·minor_sections`` faces."""
    R, r = _positive("Mesh.torus", "major", major), _positive("Mesh.torus", "minor", minor)
    if r >= R:
        raise ValueError(f"Mesh.torus: expected minor < major (a ring torus), got major={R}, minor={r}")
    a = _integer("Mesh.torus", "major_sections", major_sections, 3)
    b = _integer("Mesh.torus", "minor_sections", minor_sections, 3)
    m = _trimesh().creation.torus(major_radius=R, minor_radius=r, major_sections=a, minor_sections=b)
    return np.asarray(m.vertices, dtype=np.float64), np.asarray(m.faces, dtype=np.int64)


def bumpy_arrays(subdivisions: int, amplitude: float, frequency: int, seed: int):
    r"""A non-convex, star-shaped bumpy sphere: icosphere vertices ``x`` moved to ``ρ(x)·x`` with

    ``ρ(x) = 1 + amplitude · tanh(Σ_j c_j cos(ω_j·x + θ_j)) ``, ``j = 1..8``, ``ω_j`` random
    directions of length ``1..frequency`` and ``c_j, θ_j`` seeded (numpy ``default_rng(seed)``);
    ``ρ ≥ 1 − amplitude > 0``, so the surface stays embedded.
    """
    v, f = icosphere_arrays(subdivisions, 1.0)
    amp = _positive("Mesh.bumpy", "amplitude", amplitude)
    if amp >= 1:
        raise ValueError(f"Mesh.bumpy: amplitude must be < 1 (radius 1 − amplitude stays > 0), got {amp}")
    k = _integer("Mesh.bumpy", "frequency", frequency, 1)
    rng = np.random.default_rng(_integer("Mesh.bumpy", "seed", seed, 0))
    dirs = rng.normal(size=(8, 3))
    omega = dirs / np.linalg.norm(dirs, axis=1, keepdims=True) * rng.uniform(1, k, size=(8, 1))
    coef, phase = rng.normal(size=8), rng.uniform(0, 2 * math.pi, size=8)
    rho = 1 + amp * np.tanh(np.cos(v @ omega.T + phase) @ coef)
    return v * rho[:, None], f


def load_arrays(path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and faces of an OBJ/PLY/OFF/STL file (trimesh; coincident vertices merged)."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in FILE_TYPES:
        raise ValueError(f"Mesh.from_file: expected a file ending in one of {FILE_TYPES}, got {path!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Mesh.from_file: no such file {path!r}")
    try:
        m = _trimesh().load(path, force="mesh")
    except Exception as exc:  # trimesh raises many types on malformed files
        raise ValueError(f"Mesh.from_file: could not read {path!r} as a triangle mesh "
                         f"({type(exc).__name__}: {exc})") from exc
    if not hasattr(m, "faces") or len(m.faces) == 0:
        raise ValueError(f"Mesh.from_file: {path!r} holds no triangle faces")
    return np.asarray(m.vertices, dtype=np.float64), np.asarray(m.faces, dtype=np.int64)
