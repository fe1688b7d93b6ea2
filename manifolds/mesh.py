r"""Triangle meshes as base manifolds: piecewise-flat surfaces in ℝ³ (math.md §11).

* Points are ``[..., 3]`` points *on* the surface. :meth:`Mesh.projx` is the exact closest point
  (batched in torch, see :mod:`._mesh_geometry`); :meth:`Mesh.locate` gives its face and
  barycentric coordinates.
* Edges and vertices: a point belongs to the face :meth:`Mesh.locate` returns (the nearest face;
  on an edge or a vertex, where several faces are equally near, the nearest after rounding and the
  smallest face index among exact ties). :meth:`Mesh.proju` projects onto that face's plane and
  :meth:`Mesh.tangent_frame` returns that face's frame. :meth:`Mesh.to_tangent` (what models use)
  projects obliquely instead, so network fields have a flux continuous across edges and a face-wise
  divergence bounded up to the vertices; models contract connections with the raw direction
  (:meth:`Mesh.connection_direction`) (math.md §11.3).
* :meth:`Mesh.exp` is a *retraction*, not the exponential map: ``R_x(u) = projx(x + u)``. It
  satisfies ``R_x(0) = x`` and ``dR_x(0) = id`` on the face plane for ``x`` inside a face; it does
  not follow straightest geodesics across edges.
* A mesh has no closed-form ``log``, geodesic distance, transport or geodesic path:
  ``capabilities = {"spectral"}``; those methods raise :class:`CapabilityError` pointing to
  :meth:`Mesh.spectral_distance` (biharmonic / diffusion premetrics, math.md §11.2) and
  ``gaugeflow.training.PremetricPath``.
* Base distribution: area-uniform, ``log p0 = −log(area)``.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from gaugeflow.geometry.base import BaseDistribution
from gaugeflow.geometry.manifold import Manifold, safe_norm

from ._mesh_geometry import FaceTables, check_mesh_arrays, closest_points
from ._mesh_tangent import corner_slopes
from ._mesh_shapes import bumpy_arrays, icosphere_arrays, load_arrays, torus_arrays
from ._spectral import KINDS, eigenpairs, mesh_digest, spectral_weights

__all__ = ["Mesh", "UniformMesh"]

#: points handed to the spectral premetrics must lie within this fraction of the bounding-box
#: diagonal of the surface (they are projected first; farther points are an error)
SURFACE_TOL = 1e-3


def _nonfinite(x: torch.Tensor) -> torch.Tensor:
    """``[..., 1]`` mask of the points holding NaN or Inf (their outputs are NaN)."""
    return ~torch.isfinite(x).all(-1, keepdim=True)


class UniformMesh(BaseDistribution):
    """Area-uniform distribution on a triangle mesh: a face with probability ``area_f / area``, then a
    uniform point of the face (reflected uniform barycentrics). ``log p0 = −log area``.

    Built by :class:`Mesh` (``Mesh(...).base``); equal for meshes with equal arrays.
    """

    ambient_dim = 3

    def __init__(self, mesh: "Mesh"):
        self._digest, self._vertices, self._faces = mesh.digest, mesh._v, mesh._f
        self._weights = torch.as_tensor(mesh._face_area / mesh._face_area.sum())
        self.log_area = math.log(float(mesh._face_area.sum()))

    def _key(self):
        return (type(self), self._digest)

    def __repr__(self) -> str:
        return f"UniformMesh(V={len(self._vertices)}, F={len(self._faces)})"

    def sample(self, n, generator=None, dtype=None, device=None):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"sample: n must be an integer >= 0, got {n!r}")
        dtype = torch.get_default_dtype() if dtype is None else dtype
        if n == 0:
            return torch.zeros(0, 3, dtype=dtype, device=device)
        on = torch.device("cpu") if generator is None else generator.device  # draw where the generator lives
        face = torch.multinomial(self._weights.to(on), n, replacement=True, generator=generator)
        r = torch.rand(n, 2, generator=generator, dtype=torch.float64, device=on)
        flip = r.sum(1, keepdim=True) > 1
        r = torch.where(flip, 1 - r, r)  # the reflected square is uniform on the triangle
        corners = torch.as_tensor(self._vertices, device=on)[torch.as_tensor(self._faces, device=on)[face]]  # [n, 3, 3]
        a = corners[:, 0]
        x = a + r[:, :1] * (corners[:, 1] - a) + r[:, 1:] * (corners[:, 2] - a)
        return x.to(dtype=dtype, device=device)

    def log_prob(self, x):
        self._check(x)
        return torch.full(x.shape[:-1], -self.log_area, dtype=x.dtype, device=x.device)


class Mesh(Manifold):
    """A connected triangle mesh in ℝ³ as a base manifold (``dim = 2``, ``ambient_dim = 3``).

    Args:
        vertices: ``[V, 3]`` floating array (numpy or torch).
        faces: ``[F, 3]`` integer array of vertex indices (a 2-manifold, possibly with boundary).
        n_eigen: eigenpairs ``k`` of the cotangent Laplacian for the spectral premetrics (the constant
            one included, so ``k − 1`` features; at most ``V − 1``).
        dtype: dtype of the tensors this object returns (``face_normals``, ``eigenpairs``, ...);
            operations follow their inputs' dtype and device.
        name: optional label used by ``repr``.

    Raises:
        ValueError/TypeError: bad shapes or dtypes, non-finite or out-of-range entries, zero-area or
            repeated faces, unused vertices, non-manifold edges, several connected components.

    Examples:
        >>> M = Mesh.icosphere(subdivisions=3)
        >>> x = M.random_base(4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> bool((M.projx(x) - x).abs().max() < 1e-12)
        True
    """

    dim = 2
    ambient_dim = 3
    capabilities = frozenset({"spectral"})

    def __init__(self, vertices, faces, *, n_eigen: int = 128, dtype: torch.dtype = torch.float64,
                 name: Optional[str] = None):
        if isinstance(n_eigen, bool) or not isinstance(n_eigen, int) or n_eigen < 2:
            raise ValueError(f"Mesh: n_eigen must be an integer >= 2, got {n_eigen!r}")
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"Mesh: dtype must be a floating torch.dtype, got {dtype!r}")
        self._v, self._f, self._face_area = check_mesh_arrays(vertices, faces)
        self.n_eigen, self.dtype, self.name = n_eigen, dtype, name
        self.digest = mesh_digest(self._v, self._f)
        self._diag = float(np.linalg.norm(self._v.max(0) - self._v.min(0)))
        self._cache: dict = {}
        self.base = UniformMesh(self)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_file(cls, path, **kwargs) -> "Mesh":
        """Load an OBJ/PLY/OFF/STL file (trimesh; coincident vertices merged). ``kwargs`` go to :class:`Mesh`."""
        v, f = load_arrays(path)
        return cls(v, f, **{"name": f"Mesh.from_file({str(path)!r})", **kwargs})

    @classmethod
    def icosphere(cls, subdivisions: int = 5, radius: float = 1.0, **kwargs) -> "Mesh":
        """Subdivided icosahedron on the sphere of ``radius`` (``20·4^subdivisions`` faces; 5 → 20 480)."""
        v, f = icosphere_arrays(subdivisions, radius)
        return cls(v, f, **{"name": f"Mesh.icosphere({subdivisions}, radius={radius})", **kwargs})

    @classmethod
    def torus(cls, major: float = 1.0, minor: float = 0.4, major_sections: int = 64, minor_sections: int = 32,
              **kwargs) -> "Mesh":
        """Torus of revolution about the z axis (``2·major_sections·minor_sections`` faces)."""
        v, f = torus_arrays(major, minor, major_sections, minor_sections)
        return cls(v, f, **{"name": f"Mesh.torus({major}, {minor}, {major_sections}, {minor_sections})", **kwargs})

    @classmethod
    def bumpy(cls, subdivisions: int = 4, amplitude: float = 0.3, frequency: int = 5, seed: int = 0,
              **kwargs) -> "Mesh":
        """A non-convex bumpy sphere (seeded smooth radial displacement of an icosphere; see ``_mesh_shapes``)."""
        v, f = bumpy_arrays(subdivisions, amplitude, frequency, seed)
        label = f"Mesh.bumpy({subdivisions}, amplitude={amplitude}, frequency={frequency}, seed={seed})"
        return cls(v, f, **{"name": label, **kwargs})

    # ------------------------------------------------------------------ value semantics
    def _key(self):
        return (type(self), self.digest, self.n_eigen, self.dtype, self._extra_key())

    def __repr__(self) -> str:
        return self.name or f"Mesh(V={len(self._v)}, F={len(self._f)})"

    def _tables(self, dtype: torch.dtype, device) -> FaceTables:
        key = (dtype, torch.device(device) if device is not None else torch.device("cpu"))
        if key not in self._cache:
            self._cache[key] = FaceTables.build(self._v, self._f, dtype, key[1])
        return self._cache[key]

    # ------------------------------------------------------------------ surface data
    @property
    def vertices(self) -> torch.Tensor:
        """``[V, 3]`` vertex positions (``dtype``)."""
        return torch.as_tensor(self._v, dtype=self.dtype)

    @property
    def faces(self) -> torch.Tensor:
        """``[F, 3]`` vertex indices (long)."""
        return torch.as_tensor(self._f)

    @property
    def face_areas(self) -> torch.Tensor:
        """``[F]`` face areas."""
        return torch.as_tensor(self._face_area, dtype=self.dtype)

    @property
    def area(self) -> torch.Tensor:
        """Total surface area (0-d tensor)."""
        return torch.as_tensor(float(self._face_area.sum()), dtype=self.dtype)

    @property
    def face_normals(self) -> torch.Tensor:
        """``[F, 3]`` unit normals ``(b − a) × (c − a)/‖·‖`` (orientation of the face's vertex order)."""
        return self._tables(self.dtype, None).normals.clone()  # a copy: the cached table stays intact

    # ------------------------------------------------------------------ geometry
    def locate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Face and barycentric coordinates of ``projx(x)``: ``([...] long, [..., 3])`` (see module doc)."""
        return self._locate(x)[1:]

    def _locate(self, x):
        self._inputs(x=x)
        flat = x.reshape(-1, 3)
        q, face, bary = closest_points(flat, self._tables(x.dtype, x.device))
        lead = x.shape[:-1]
        return q.reshape(x.shape), face.reshape(lead), bary.reshape(lead + (3,))

    def projx(self, x):
        """Exact closest point on the surface (batched, chunked). ``[..., 3] -> [..., 3]``."""
        return self._locate(x)[0]

    def proju(self, x, u):
        """``u − (u·n) n`` with ``n`` the unit normal of ``x``'s face (:meth:`locate`). ``[..., 3]``."""
        self._inputs(x=x, u=u)
        _, face, _ = self._locate(x)
        n = self._tables(x.dtype, x.device).normals[face].masked_fill(_nonfinite(x), math.nan)
        return u - (u * n).sum(-1, keepdim=True) * n

    def _slopes(self, dtype, device) -> torch.Tensor:
        """``[F, 3, 3]`` corner vectors ``τ_c`` of every face (:mod:`._mesh_tangent`), cached per dtype/device."""
        key = ("corner_slopes", dtype, device)
        if key not in self._cache:
            tau, _ = corner_slopes(self._v, self._f, self._tables(torch.float64, None).normals.numpy())
            self._tau_max = float(np.linalg.norm(tau, axis=-1).max())
            self._cache[key] = torch.as_tensor(tau, dtype=dtype, device=device)
        return self._cache[key]

    def to_tangent(self, x, u):
        r"""Network output ``u`` → tangent vector with *edge-continuous flux*: ``u − (u·n)(n − τ(x))`` (§11.3).

        ``n`` is the unit normal of ``x``'s face and ``τ(x) = Σ_c b_c τ_c`` (``b`` the barycentrics)
        blends per-corner vectors of the face plane, chosen so that across every edge ``E`` the flux
        ``to_tangent(x, u)·m`` (``m`` the in-plane normal of ``E``) is one functional ``a_E·u`` seen
        alike from both faces. For a field ``u`` continuous in ``ℝ³`` the flow then creates no mass on
        edges, and since the map is affine in ``b`` its face-wise divergence stays bounded up to the
        vertices: ``log_prob``'s face-wise divergence is the whole density change.

        Guarantees: linear in ``u``; onto the face plane and the identity on it (a projector along
        ``n − τ``); ``‖to_tangent(x, u)‖ ≤ ‖u‖ · Mesh.tangent_bound`` (``√(1 + max_c ‖τ_c‖²)``);
        smooth inside faces with derivatives bounded up to edges and vertices. Not guaranteed: the
        component *along* an edge jumps across it (it cannot be continuous with bounded derivatives
        at a vertex with an angle defect; a jump along the edge moves no mass). ``proju`` stays the
        orthogonal face projection. ``[..., 3]``.
        """
        self._inputs(x=x, u=u)
        _, face, b = self._locate(x)
        n = self._tables(x.dtype, x.device).normals[face].masked_fill(_nonfinite(x), math.nan)
        tau = (b.unsqueeze(-1) * self._slopes(x.dtype, x.device)[face]).sum(-2)
        return u - (u * n).sum(-1, keepdim=True) * (n - tau)

    def from_tangent(self, x, v):
        """``v`` itself: :meth:`to_tangent` fixes the face plane, so this is its bounded inverse. ``[..., 3]``."""
        self._inputs(x=x, v=v)
        return v.masked_fill(_nonfinite(x), math.nan)

    def connection_direction(self, x, u):
        """``u`` itself (NaN where ``x`` is not finite): the direction the models contract connections with.

        ``from_tangent(x, to_tangent(x, u))`` jumps across edges with the along-edge component of
        :meth:`to_tangent`, which would make the gauge terms, and so the velocity's flux, jump too;
        the raw network output is continuous and bounded (math.md §11.3). ``[..., 3]``.
        """
        self._inputs(x=x, u=u)
        return u.masked_fill(_nonfinite(x), math.nan)

    @property
    def tangent_bound(self) -> float:
        """``√(1 + max_c ‖τ_c‖²)``: the bound of :meth:`to_tangent` (``‖to_tangent(x, u)‖ ≤ bound · ‖u‖``)."""
        self._slopes(torch.float64, None)
        return math.sqrt(1.0 + self._tau_max ** 2)

    def exp(self, x, u):
        """Retraction ``projx(x + u)`` (not the exponential map; see module doc). ``[..., 3]``."""
        self._inputs(x=x, u=u)
        return self.projx(x + u)

    def tangent_frame(self, x):
        """Orthonormal frame of ``x``'s face plane: ``[..., 3] -> [..., 3, 2]`` (first column along ``b − a``)."""
        self._inputs(x=x)
        _, face, _ = self._locate(x)
        return self._tables(x.dtype, x.device).frames[face].masked_fill(_nonfinite(x)[..., None], math.nan)

    def log(self, x, y):
        raise self._missing("log", "a triangle mesh has no closed-form geodesics; use M.spectral_distance(x, y) "
                                   "and gaugeflow.training.PremetricPath(M) for conditional paths")

    def dist(self, x, y):
        raise self._missing("dist", "use the premetric M.spectral_distance(x, y, kind='biharmonic' | 'diffusion')")

    def transp(self, x, y, v):
        raise self._missing("transp", "re-project with M.proju(y, v) for a first-order transport")

    def geodesic(self, x0, x1, t):
        raise self._missing("geodesic", "use gaugeflow.training.PremetricPath(M) (premetric conditional paths)")

    def _point_residual(self, x):
        return (x - self.projx(x)).norm(dim=-1)

    def _tangent_residual(self, x, u):
        _, face, _ = self._locate(x)
        return ((u * self._tables(x.dtype, x.device).normals[face]).sum(-1)).abs()

    # ------------------------------------------------------------------ spectral premetrics
    @property
    def eigenpairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(λ [k], φ [V, k])``: the first ``k = n_eigen`` eigenpairs of ``L φ = λ M φ`` (math.md §11.2).

        Computed on first use (``scipy.sparse.linalg.eigsh``, shift-invert) and cached across every
        ``Mesh`` with the same arrays.
        """
        evals, evecs = eigenpairs(self._v, self._f, self.n_eigen, self.digest)
        return torch.as_tensor(evals, dtype=self.dtype), torch.as_tensor(evecs, dtype=self.dtype)

    def _features(self, kind: str, t, dtype, device) -> torch.Tensor:
        key = ("spectral", kind, t, dtype, device)
        if key not in self._cache:
            evals, evecs = eigenpairs(self._v, self._f, self.n_eigen, self.digest)
            w = spectral_weights(evals, kind, t)
            self._cache[key] = torch.as_tensor(evecs[:, 1:] * w, dtype=dtype, device=device)
        return self._cache[key]

    def spectral_embedding(self, x: torch.Tensor, kind: str = "biharmonic", t: Optional[float] = None,
                           check: bool = True) -> torch.Tensor:
        r"""Weighted eigenfunction features ``e(x) = (w_i φ_i(x))_{i=1}^{k−1}`` ``[..., 3] -> [..., k − 1]``.

        ``φ_i(x) = Σ_j b_j φ_i(v_j)`` interpolates over ``x``'s face (barycentrics ``b`` of
        :meth:`locate`; differentiable, gradient in the face plane); ``w_i = 1/λ_i`` (biharmonic) or
        ``e^{−tλ_i}`` (diffusion, default ``t = 1/λ₁``). ``‖e(x) − e(y)‖`` is
        :meth:`spectral_distance`.

        Args:
            x: ``[..., 3]`` points on the surface.
            kind: ``"biharmonic"`` or ``"diffusion"``.
            t: diffusion time (diffusion only).
            check: raise ``ValueError`` for points farther than ``SURFACE_TOL`` (1e-3) times the
                bounding-box diagonal from the surface (costs one host synchronisation).
        """
        if kind not in KINDS:
            raise ValueError(f"{self}.spectral_embedding: kind must be one of {KINDS}, got {kind!r}")
        q, face, bary = self._locate(x)
        if check:
            moved = float((q - x).detach().norm(dim=-1).max()) if x.numel() else 0.0
            if not moved <= SURFACE_TOL * self._diag:
                raise ValueError(f"{self}: expected points on the surface, got points {moved:.3e} away from it "
                                 f"(tolerance {SURFACE_TOL:.0e} x bounding-box diagonal = "
                                 f"{SURFACE_TOL * self._diag:.3e}); project them with M.projx(x) first")
        feats = self._features(kind, t, x.dtype, x.device)
        corner = feats[self._tables(x.dtype, x.device).faces[face]]  # [..., 3, k-1]
        return (bary.unsqueeze(-1) * corner).sum(-2)

    def spectral_distance(self, x: torch.Tensor, y: torch.Tensor, kind: str = "biharmonic",
                          t: Optional[float] = None, check: bool = True) -> torch.Tensor:
        r"""Spectral premetric ``d(x, y) = ‖e(x) − e(y)‖`` (math.md §11.2). ``[..., 3] -> [...]``.

        ``kind="biharmonic"``: ``d² = Σ_{i≥1} (φ_i(x) − φ_i(y))²/λ_i²`` (Lipman et al. 2010);
        ``kind="diffusion"``: ``d_t² = Σ_{i≥1} e^{−2tλ_i}(φ_i(x) − φ_i(y))²``. Symmetric, zero on the
        diagonal (with a zero, finite gradient there), differentiable in ``x`` and ``y``; see
        :meth:`spectral_embedding` for ``t`` and ``check``.
        """
        self._inputs(x=x, y=y)
        ex = self.spectral_embedding(x, kind, t, check)
        ey = self.spectral_embedding(y, kind, t, check)
        return safe_norm(ex - ey)
