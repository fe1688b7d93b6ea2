"""Figures of the real-data study: sphere density heat maps and Ramachandran plots (data vs. samples).

Only matplotlib and numpy; the Agg backend is selected so the script runs head-less.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from gaugeflow.data import xyz_to_latlon  # noqa: E402

__all__ = ["sphere_density_panels", "ramachandran_panels", "wrap_degrees"]


def wrap_degrees(rad: torch.Tensor) -> np.ndarray:
    """Angles in radians (any range) → degrees in ``[−180, 180)`` (the Ramachandran convention)."""
    return (torch.remainder(rad.double() + math.pi, 2 * math.pi) - math.pi).rad2deg().numpy()


def _sphere_hist(xyz: torch.Tensor, lon_edges: np.ndarray, lat_edges: np.ndarray, lon_shift: float) -> np.ndarray:
    """Density per steradian on a lat/lon grid (cell area ``Δλ (sin φ₂ − sin φ₁)``). Returns ``[n_lat, n_lon]``."""
    lat, lon = (a.numpy() for a in xyz_to_latlon(xyz.double()))
    lon = np.mod(lon - lon_shift, 360.0) + lon_shift
    counts, _, _ = np.histogram2d(lat, lon, bins=[lat_edges, lon_edges])
    area = np.outer(np.diff(np.sin(np.deg2rad(lat_edges))), np.diff(np.deg2rad(lon_edges)))
    return counts / max(len(xyz), 1) / area


def sphere_density_panels(panels: dict[str, torch.Tensor], path: Path, title: str,
                          extent: tuple[float, float, float, float] | None = None, bins: int = 90) -> None:
    """One density heat map per entry of ``panels`` (``label -> [n, 3]`` unit vectors), shared log colour scale.

    Args:
        panels: ordered mapping; the first entry is normally the data.
        path: output PNG.
        title: figure title.
        extent: ``(lon_min, lon_max, lat_min, lat_max)`` in degrees for a regional (equirectangular) view;
            ``None`` draws the whole sphere in the Mollweide (equal-area) projection. ``lon_max`` may
            exceed 180 to keep a region across the antimeridian in one piece.
        bins: number of longitude cells (latitude gets half as many on the full sphere).
    """
    full = extent is None
    lon0, lon1, lat0, lat1 = (-180.0, 180.0, -90.0, 90.0) if full else extent
    lon_edges = np.linspace(lon0, lon1, bins + 1)
    lat_edges = np.linspace(lat0, lat1, (bins // 2 if full else bins) + 1)
    dens = {k: _sphere_hist(v, lon_edges, lat_edges, lon0) for k, v in panels.items()}
    pos = np.concatenate([d[d > 0] for d in dens.values()])
    norm = LogNorm(vmin=max(pos.min(), pos.max() * 1e-4), vmax=pos.max()) if pos.size else None
    n = len(panels)
    cols = min(n, 3 if full else 5)
    rows = math.ceil(n / cols)
    kw = {"projection": "mollweide"} if full else {}
    fig = plt.figure(figsize=(4.2 * cols, (2.6 if full else 3.6) * rows))
    for i, (label, d) in enumerate(dens.items()):
        ax = fig.add_subplot(rows, cols, i + 1, **kw)
        d = np.where(d > 0, d, np.nan)
        if full:
            mesh = ax.pcolormesh(np.deg2rad(lon_edges), np.deg2rad(lat_edges), d, norm=norm, cmap="magma",
                                 shading="flat")
            ax.set_xticklabels([])
            ax.grid(alpha=0.3)
        else:
            mesh = ax.pcolormesh(lon_edges, lat_edges, d, norm=norm, cmap="magma", shading="flat")
            ax.set_xlabel("longitude (°E)")
            ax.set_ylabel("latitude (°)" if i % cols == 0 else "")
            ax.set_facecolor("black")
        ax.set_title(label, fontsize=9)
    fig.colorbar(mesh, ax=fig.axes, shrink=0.7, label="density per steradian")
    fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def ramachandran_panels(panels: dict[str, torch.Tensor], path: Path, title: str, bins: int = 72) -> None:
    """Ramachandran heat maps (φ, ψ in degrees) for ``label -> [n, 2]`` angle tensors, shared log scale."""
    edges = np.linspace(-180.0, 180.0, bins + 1)
    area = np.deg2rad(360.0 / bins) ** 2
    hists = {}
    for label, x in panels.items():
        deg = wrap_degrees(x)
        h, _, _ = np.histogram2d(deg[:, 1], deg[:, 0], bins=[edges, edges])  # rows ψ, columns φ
        hists[label] = h / max(len(x), 1) / area
    pos = np.concatenate([h[h > 0] for h in hists.values()])
    norm = LogNorm(vmin=max(pos.min(), pos.max() * 1e-4), vmax=pos.max()) if pos.size else None
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.3 * n, 3.3), squeeze=False)
    for ax, (label, h) in zip(axes[0], hists.items()):
        mesh = ax.pcolormesh(edges, edges, np.where(h > 0, h, np.nan), norm=norm, cmap="viridis", shading="flat")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("φ (°)")
        ax.set_xticks([-180, -90, 0, 90, 180])
        ax.set_yticks([-180, -90, 0, 90, 180])
        ax.set_aspect("equal")
    axes[0][0].set_ylabel("ψ (°)")
    fig.colorbar(mesh, ax=list(axes[0]), shrink=0.8, label="density per rad²")
    fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
