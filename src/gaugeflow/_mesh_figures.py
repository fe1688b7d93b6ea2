"""Figures on triangle meshes (re-exported by :mod:`gaugeflow.viz`): data, model density and samples on the surface.

:func:`mesh_figure` renders, for two opposite views, the data (points on the grey, shaded surface),
the model density (faces coloured by ``p(x)`` at their centroids, Lambert-shaded) and model samples,
side by side, with matplotlib's 3-D axes (``Agg``; headless). The density is evaluated exactly
(:func:`gaugeflow.viz.model_density`, one ODE solve per point) at the centroids of at most
``max_faces`` faces, farthest-point spread over the surface; every other face takes the value of the
nearest evaluated centroid. :func:`gaugeflow.viz.plot_run` calls it for mesh runs (``mesh.png``).

A point is drawn when the normal of its face looks towards the camera (the back half of a closed
surface stays hidden; on a non-convex surface a point behind a fold may still show).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import torch

from ._figures import DATA_COLOUR, _norm, _pyplot, _save, model_density

__all__ = ["mesh_figure", "face_density", "spread_faces"]

_VIEWS = ((25.0, 35.0), (-25.0, 215.0))  # (elevation, azimuth) of the two views, degrees


def spread_faces(centroids: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of ``min(n, F)`` faces spread over the surface by farthest-point sampling of ``centroids [F, 3]``."""
    n = min(n, len(centroids))
    chosen = torch.zeros(n, dtype=torch.long)
    gap = (centroids - centroids[0]).square().sum(-1)
    for i in range(1, n):  # O(n·F), about 10⁷ operations for the default sizes
        chosen[i] = gap.argmax()
        gap = torch.minimum(gap, (centroids - centroids[chosen[i]]).square().sum(-1))
    return chosen


def face_density(model: torch.nn.Module, max_faces: int = 1500, steps: int = 20) -> torch.Tensor:
    """Model density per face ``[F]``: exact at ``max_faces`` spread centroids, nearest-centroid elsewhere."""
    M = model.manifold
    centroids = M.vertices.double()[M.faces].mean(1)
    chosen = spread_faces(centroids, max_faces)
    points = M.projx(centroids[chosen])  # a centroid lies on its (flat) face; projx only rounds
    dens = model_density(model, points, steps)
    nearest = torch.cdist(centroids, centroids[chosen]).argmin(1)
    return dens[nearest]


def _shade(M) -> tuple[torch.Tensor, torch.Tensor]:
    """``(triangles [F, 3, 3], outward normals [F, 3])``."""
    tri = M.vertices.double()[M.faces]
    normals = M.face_normals.double()
    centre = M.vertices.double().mean(0)
    outward = torch.sign(((tri.mean(1) - centre) * normals).sum(-1, keepdim=True)).clamp_min(0) * 2 - 1
    return tri, normals * outward  # oriented away from the centroid of the vertices, for light and visibility


def _view_dir(elev: float, azim: float) -> torch.Tensor:
    e, a = math.radians(elev), math.radians(azim)
    return torch.tensor([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)], dtype=torch.float64)


def _surface(ax, tri, colours, elev: float, azim: float) -> None:
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    ax.add_collection3d(Poly3DCollection(tri.numpy(), facecolors=colours, edgecolors="none", linewidths=0))
    lo, hi = tri.reshape(-1, 3).min(0).values, tri.reshape(-1, 3).max(0).values
    mid, half = (lo + hi) / 2, float((hi - lo).max()) / 2
    for setter, m in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), mid.tolist()):
        setter(m - half, m + half)
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(elev=elev, azim=azim)
    ax.set_axis_off()


def _points(ax, M, normals, x: torch.Tensor, view: torch.Tensor, colour: str) -> None:
    x = x.detach().double().cpu()
    face, _ = M.locate(x)
    seen = x[(normals[face] @ view) > 0]
    offset = 0.01 * normals[M.locate(seen)[0]]  # lifted off the surface so the faces do not cover them
    p = (seen + offset).numpy()
    ax.scatter(p[:, 0], p[:, 1], p[:, 2], s=1.5, c=colour, depthshade=False, linewidths=0)


def mesh_figure(M, data: torch.Tensor, density: torch.Tensor, path: str | Path, samples: Optional[torch.Tensor] = None,
                title: str = "", scale: str = "auto") -> Path:
    """Data, model density per face ``[F]`` and model samples on the mesh ``M``, two views each.

    Args:
        M: the mesh (``vertices``, ``faces``, ``face_normals``, ``locate``).
        data: ``[n, 3]`` data points. density: ``[F]`` density per face (:func:`face_density`).
        path: PNG file to write. samples: ``[m, 3]`` model samples (``None``: no samples column).
        title: figure title. scale: ``"auto"``, ``"log"`` or ``"linear"`` colour scale (log where max/min > 100).

    Returns:
        The path written.
    """
    from matplotlib import colormaps

    density = torch.as_tensor(density, dtype=torch.float64).cpu()
    if density.shape != (len(M.faces),):
        raise ValueError(f"mesh_figure: expected one density value per face ({len(M.faces)}), got shape "
                         f"{tuple(density.shape)}")
    norm, extend, label = _norm(density, scale)
    tri, normals = _shade(M)
    rgb = torch.as_tensor(colormaps["viridis"](norm(density.numpy())), dtype=torch.float64)[:, :3]
    columns = [("data", data, DATA_COLOUR), ("model density", None, None)]
    if samples is not None:
        columns.append(("model samples", samples, "#1f4e9c"))
    plt = _pyplot()
    fig = plt.figure(figsize=(3.6 * len(columns) + 0.8, 7.0), layout="constrained")
    for row, (elev, azim) in enumerate(_VIEWS):
        view = _view_dir(elev, azim)
        light = 0.35 + 0.65 * (normals @ view).clamp_min(0)  # a head light: Lambert shading towards the camera
        for col, (name, pts, colour) in enumerate(columns):
            ax = fig.add_subplot(2, len(columns), row * len(columns) + col + 1, projection="3d")
            colours = (rgb * (0.5 + 0.5 * light)[:, None]) if pts is None else (0.9 * light)[:, None].expand(-1, 3)
            _surface(ax, tri, colours.clamp(0, 1).numpy(), elev, azim)
            if pts is not None and len(pts):
                _points(ax, M, normals, pts, view, colour)
            if row == 0:
                ax.set_title(name)
    mappable = plt.cm.ScalarMappable(norm=norm, cmap="viridis")
    fig.colorbar(mappable, ax=fig.axes, shrink=0.6, extend=extend,
                 label=f"model density (1/area{label})")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
