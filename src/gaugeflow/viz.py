"""Figures of flows and data: sphere density maps, torus Ramachandran maps, scatter plots, loss curves.

Everything renders with matplotlib's non-interactive ``Agg`` backend into PNG files, so it works on
headless machines. :func:`plot_run` picks the right figures for a reopened run; the single-figure
functions take plain tensors and can be used on their own.

Examples:
    >>> from gaugeflow.training import load_run            # doctest: +SKIP
    >>> plot_run(load_run("runs/sphere"), "runs/sphere/figures")  # doctest: +SKIP
    [PosixPath('runs/sphere/figures/loss.png'), PosixPath('runs/sphere/figures/density.png')]
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import torch

from ._figures import DATA_COLOUR, LOG_DECADES, _norm, _pyplot, _save, model_density  # noqa: F401 - viz's names
from ._mesh_figures import face_density, mesh_figure

__all__ = [
    "sphere_grid", "torus_grid", "to_lonlat_deg", "to_signed_deg", "model_density",
    "loss_figure", "sphere_density_figure", "torus_figure", "scatter_figure", "rotation_axes", "rotation_figure",
    "plot_run", "density_image", "mesh_figure", "face_density",
]



def sphere_grid(n_lat: int, n_lon: int, dtype: torch.dtype = torch.float64):
    """Cell centres of an equiangular lon/lat grid on S².

    Returns:
        ``(points [n_lat·n_lon, 3], lon [n_lon], lat [n_lat])`` with angles in radians,
        ``lon ∈ (−π, π)``, ``lat ∈ (−π/2, π/2)``; points row-major over (lat, lon).
    """
    lon = (torch.arange(n_lon, dtype=dtype) + 0.5) / n_lon * 2 * math.pi - math.pi
    lat = (torch.arange(n_lat, dtype=dtype) + 0.5) / n_lat * math.pi - math.pi / 2
    la, lo = torch.meshgrid(lat, lon, indexing="ij")
    pts = torch.stack([la.cos() * lo.cos(), la.cos() * lo.sin(), la.sin()], dim=-1).reshape(-1, 3)
    return pts, lon, lat


def to_lonlat_deg(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Longitude and latitude in degrees of points ``[n, 3]`` on S²."""
    x = x.detach().double().cpu()
    return torch.rad2deg(torch.atan2(x[:, 1], x[:, 0])), torch.rad2deg(torch.asin(x[:, 2].clamp(-1, 1)))


def to_signed_deg(angles: torch.Tensor) -> torch.Tensor:
    """Torus angles (radians, any range) as degrees in ``[−180, 180)`` (Ramachandran convention)."""
    a = angles.detach().double().cpu()
    return torch.rad2deg(torch.remainder(a + math.pi, 2 * math.pi) - math.pi)


def torus_grid(n: int, dtype: torch.dtype = torch.float64):
    """Cell centres of an ``n × n`` grid on T² in angle coordinates ``[0, 2π)``.

    Returns:
        ``(points [n·n, 2], centres_deg [n])`` where ``centres_deg ∈ (−180, 180)`` are the cell centres
        in signed degrees; points are row-major over (ψ, φ) so that ``density.reshape(n, n)`` has ψ on rows.
    """
    deg = (torch.arange(n, dtype=dtype) + 0.5) / n * 360.0 - 180.0
    psi, phi = torch.meshgrid(deg, deg, indexing="ij")
    pts = torch.remainder(torch.deg2rad(torch.stack([phi, psi], dim=-1).reshape(-1, 2)), 2 * math.pi)
    return pts, deg


def loss_figure(loss: Sequence[float], val: Sequence[tuple[int, float]], path: str | Path) -> Path:
    """Training loss per step (raw and smoothed) and validation NLL, side by side."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2 if len(val) else 1, figsize=(10 if len(val) else 5.5, 3.6), squeeze=False,
                             layout="constrained")
    steps = torch.arange(1, len(loss) + 1)
    values = torch.tensor(list(loss), dtype=torch.float64)
    ax = axes[0, 0]
    ax.plot(steps, values, lw=0.6, alpha=0.4, label="loss")
    if len(values) >= 10:
        w = max(5, len(values) // 50)
        smooth = torch.nn.functional.avg_pool1d(values[None, None], w, 1).flatten()
        ax.plot(steps[w - 1:], smooth, lw=1.5, label=f"mean over {w} steps")
    finite = values[torch.isfinite(values)]
    if len(finite) and bool((finite > 0).all()) and float(finite.max() / finite.min()) > 20:
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="RCFM loss", title="training loss")
    ax.legend(fontsize=8)
    if len(val):
        s, v = zip(*val)
        axes[0, 1].plot(s, v, "o-")
        axes[0, 1].set(xlabel="step", ylabel="NLL (nats)", title="validation NLL (EMA weights)")
    return _save(fig, path)



def _outline(labels, size: int = 8) -> None:
    """White tick labels with a dark outline: readable over any colour of the map."""
    from matplotlib import patheffects

    for t in labels:
        t.set(color="white", fontsize=size, path_effects=[patheffects.withStroke(linewidth=2.2, foreground="0.1")])


def _seam(d: torch.Tensor, dim: int) -> torch.Tensor:
    """Pad a periodic grid axis with its seam value (mean of the two end cells) at both ends."""
    seam = 0.5 * (d.narrow(dim, 0, 1) + d.narrow(dim, -1, 1))
    return torch.cat([seam, d, seam], dim)


def sphere_density_figure(density: torch.Tensor, lon: torch.Tensor, lat: torch.Tensor, path: str | Path,
                          data: Optional[torch.Tensor] = None, title: str = "model density",
                          samples: Optional[torch.Tensor] = None, scale: str = "auto") -> Path:
    """Mollweide map of a density on S² with the test data on top and, if given, the model samples beside it.

    ``density [n_lat, n_lon]`` is w.r.t. area on the unit sphere (1/sr), evaluated at the cell centres
    ``lon [n_lon]``, ``lat [n_lat]`` (radians, :func:`sphere_grid`). The map is smooth, not blocky: the
    values are drawn with Gouraud shading, i.e. linearly interpolated between the evaluated points (the
    longitude seam gets the mean of its two neighbouring columns, each pole the mean of the nearest row);
    no value is invented beyond that interpolation. ``scale``: ``auto`` (log where max/min > 100), ``log``
    or ``linear``. ``data``/``samples``: points ``[n, 3]``.
    """
    plt = _pyplot()
    panels = 1 + (samples is not None)
    fig = plt.figure(figsize=(6.4 * panels, 4.0), layout="constrained")
    ax = fig.add_subplot(1, panels, 1, projection="mollweide")
    d = _seam(density.double().cpu(), 1)
    pole = lambda row: row.mean(1, keepdim=True).expand(1, d.shape[1])  # noqa: E731
    d = torch.cat([pole(d[:1]), d, pole(d[-1:])], 0)
    lon = torch.cat([lon.new_tensor([-math.pi]), lon, lon.new_tensor([math.pi])])
    lat = torch.cat([lat.new_tensor([-math.pi / 2]), lat, lat.new_tensor([math.pi / 2])])
    norm, extend, note = _norm(d, scale)
    mesh = ax.pcolormesh(lon.numpy(), lat.numpy(), d.numpy(), shading="gouraud", cmap="viridis", norm=norm,
                         rasterized=True)
    fig.colorbar(mesh, ax=ax, orientation="horizontal", fraction=0.06, pad=0.04, extend=extend,
                 label=f"density (1/sr){note}")
    if data is not None and len(data):
        lo, la = to_lonlat_deg(data)
        ax.scatter(torch.deg2rad(lo).numpy(), torch.deg2rad(la).numpy(), s=0.5, c=DATA_COLOUR, alpha=0.55, lw=0,
                   label="test data")
        ax.legend(loc="lower left", fontsize=7, markerscale=5, framealpha=0.6)
    ax.set_title(title, fontsize=10, pad=10)
    ax.grid(True, alpha=0.35, color="0.85", lw=0.5)
    ax.tick_params(labelsize=8)
    _outline(ax.get_xticklabels())
    if samples is not None:
        ax2 = fig.add_subplot(1, panels, 2, projection="mollweide")
        lo, la = to_lonlat_deg(samples)
        ax2.scatter(torch.deg2rad(lo).numpy(), torch.deg2rad(la).numpy(), s=0.8, c="tab:blue", alpha=0.5, lw=0)
        ax2.set_title(f"model samples (n = {len(samples)})", fontsize=10, pad=10)
        ax2.grid(True, alpha=0.5, color="0.6", lw=0.5)
        ax2.tick_params(labelsize=8)
    return _save(fig, path)


def torus_figure(density: torch.Tensor, centres_deg: torch.Tensor, path: str | Path,
                 data: Optional[torch.Tensor] = None, samples: Optional[torch.Tensor] = None,
                 title: str = "model density", scale: str = "auto") -> Path:
    """Ramachandran-style map: density ``[n, n]`` (ψ rows, φ columns) over (φ, ψ) in degrees, −180..180.

    The density is w.r.t. the flat area of T² = [0, 2π)² (1/rad²), evaluated at the cell centres
    ``centres_deg [n]`` (:func:`torus_grid`) and drawn with Gouraud shading (linear interpolation between
    them, the ±180° seams getting the mean of the two end cells). ``scale`` as in
    :func:`sphere_density_figure`; ``data`` (on the map) and ``samples`` (own panel) are angles ``[n, 2]``.
    """
    plt = _pyplot()
    panels = 1 + (samples is not None)
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.6), squeeze=False, layout="constrained")
    ax = axes[0, 0]
    d = _seam(_seam(density.double().cpu(), 0), 1)
    c = torch.cat([centres_deg.new_tensor([-180.0]), centres_deg, centres_deg.new_tensor([180.0])]).numpy()
    norm, extend, note = _norm(d, scale)
    mesh = ax.pcolormesh(c, c, d.numpy(), shading="gouraud", cmap="viridis", norm=norm, rasterized=True)
    fig.colorbar(mesh, ax=ax, extend=extend, label=f"density (1/rad²){note}")
    if data is not None and len(data):
        ax.scatter(to_signed_deg(data[:, 0]), to_signed_deg(data[:, 1]), s=0.6, c=DATA_COLOUR, alpha=0.55, lw=0,
                   label="test data")
        ax.legend(loc="lower left", fontsize=7, markerscale=5, framealpha=0.6)
    ax.set_title("model density", fontsize=10)
    fig.suptitle(title, fontsize=11)
    if samples is not None:
        axes[0, 1].scatter(to_signed_deg(samples[:, 0]), to_signed_deg(samples[:, 1]), s=1, alpha=0.5, lw=0)
        axes[0, 1].set_title(f"model samples (n = {len(samples)})", fontsize=10)
    for a in axes[0]:
        a.set(xlim=(-180, 180), ylim=(-180, 180), xlabel="φ (degrees)", ylabel="ψ (degrees)", aspect="equal")
        a.set_xticks(range(-180, 181, 90))
        a.set_yticks(range(-180, 181, 90))
    return _save(fig, path)


def scatter_figure(data: torch.Tensor, samples: torch.Tensor, path: str | Path, title: str = "") -> Path:
    """Data (left) and model samples (right) in the first two coordinates, on shared axes."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.6), sharex=True, sharey=True, layout="constrained")
    for ax, x, name in ((axes[0], data, "data"), (axes[1], samples, "model samples")):
        x = x.detach().double().cpu()
        ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.4, lw=0)
        ax.set(title=name, xlabel="x₁", ylabel="x₂", aspect="equal")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def rotation_axes(R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Axis (longitude, latitude in radians) and angle ``θ ∈ [0, π]`` of rotations ``[n, 9]`` (row-major).

    The axis of a rotation by ``π`` is the deterministic one of ``SO3.log`` (largest component positive).
    """
    from gaugeflow.manifolds.so3 import rotation_log

    M = R.detach().double().cpu().reshape(-1, 3, 3)
    w = rotation_log(M - torch.eye(3, dtype=M.dtype))
    theta = w.norm(dim=-1)
    n = w / theta.clamp_min(1e-12)[:, None]
    return torch.atan2(n[:, 1], n[:, 0]), torch.asin(n[:, 2].clamp(-1, 1)), theta


def rotation_figure(data: torch.Tensor, samples: torch.Tensor, path: str | Path, title: str = "") -> Path:
    """Rotation densities: each rotation's axis on a Mollweide map of S², coloured by its angle.

    Data (left) and model samples (right) side by side; points ``[n, 9]`` (row-major rotations).
    """
    plt = _pyplot()
    fig = plt.figure(figsize=(12, 4.2), layout="constrained")
    for i, (x, name) in enumerate(((data, "data"), (samples, "model samples"))):
        ax = fig.add_subplot(1, 2, i + 1, projection="mollweide")
        lon, lat, theta = rotation_axes(x)
        sc = ax.scatter(lon.numpy(), lat.numpy(), c=theta.numpy(), s=3, lw=0, alpha=0.6, cmap="viridis",
                        vmin=0, vmax=math.pi)
        ax.grid(True, alpha=0.3)
        ax.set_title(f"{name}: rotation axes", pad=14)
    fig.colorbar(sc, ax=fig.axes, orientation="horizontal", fraction=0.05, pad=0.04, label="rotation angle (rad)")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_run(run, out_dir: str | Path, grid: int = 72, n_samples: int = 2000, steps: int = 20,
             scale: str = "auto") -> list[Path]:
    """All figures for a reopened run (see :func:`gaugeflow.training.load_run`); returns the files written.

    ``loss.png`` always; then by manifold: S² ``density.png`` (Mollweide map of the model density with
    the test data, model samples beside it), T² ``ramachandran.png`` (likewise), SO(3)/SE(3)
    ``rotations.png`` (:func:`rotation_figure`; SE(3) also ``translations.png``), a triangle mesh
    ``mesh.png`` (:func:`mesh_figure`: data, density at ``grid²/4`` face centroids,
    samples, drawn on the surface), otherwise ``scatter.png``
    (first two coordinates, the Poincaré disk for the 2-D hyperboloid).

    The density is evaluated exactly (:func:`model_density`, one ODE solve of ``steps`` steps per point)
    on ``grid × 2·grid`` points of S² or ``grid × grid`` of T² and drawn smoothly between them; the
    default 72 is 4× the points of the former 36. ``scale``: ``auto`` (log where max/min > 100), ``log``,
    ``linear``.
    """
    from .sampling import sample

    _norm(torch.ones(1), scale)  # a bad scale fails before any work
    out = Path(out_dir)
    files = [loss_figure(run.history.loss, run.history.val, out / "loss.png")]
    M, test, name = run.manifold, run.data.test, type(run.manifold).__name__
    title = f"{run.config.model} flow on {M}, data {run.data.name}"
    gen = torch.Generator().manual_seed(run.config.seed)
    x0 = M.random_base(n_samples, generator=gen, dtype=test.dtype).to(test.device)
    with torch.no_grad():
        xs = sample(run.model, x0, steps=steps)
    if name == "Sphere" and M.dim == 2:
        pts, lon, lat = sphere_grid(grid, 2 * grid)
        dens = model_density(run.model, pts, steps).reshape(grid, 2 * grid)
        return files + [sphere_density_figure(dens, lon, lat, out / "density.png", test, title, xs, scale)]
    if name == "FlatTorus" and M.dim == 2:
        pts, centres = torus_grid(grid)
        dens = model_density(run.model, pts, steps).reshape(grid, grid)
        return files + [torus_figure(dens, centres, out / "ramachandran.png", test, xs, title, scale)]
    if name in ("SpecialOrthogonal", "SpecialEuclidean"):  # rotation block first: axes coloured by angle
        figs = [rotation_figure(test[:, :9], xs[:, :9], out / "rotations.png", title)]
        if name == "SpecialEuclidean":
            figs.append(scatter_figure(test[:, 9:], xs[:, 9:], out / "translations.png", title + " (translations)"))
        return files + figs
    if "spectral" in getattr(M, "capabilities", ()) and hasattr(M, "faces"):  # a triangle mesh
        dens = face_density(run.model, max_faces=grid * grid // 4, steps=steps)
        return files + [mesh_figure(M, test, dens, out / "mesh.png", xs, title, scale)]
    if name == "Hyperbolic" and M.ambient_dim == 3:  # Lorentz model, time coordinate first -> Poincaré disk
        disk = lambda x: x[:, 1:] / (1 + x[:, :1])  # noqa: E731
        return files + [scatter_figure(disk(test), disk(xs), out / "scatter.png", title + " (Poincaré disk)")]
    return files + [scatter_figure(test, xs, out / "scatter.png", title)]


def density_image(model: torch.nn.Module, data: Optional[torch.Tensor] = None, grid: int = 24, steps: int = 10,
                  title: str = "model density"):
    """The density figure of ``model`` as an RGB image ``uint8 [H, W, 3]`` (e.g. for TensorBoard), or
    ``None`` where there is no density map (only S² and T² have one).

    A coarser, cheaper map than :func:`plot_run`'s (``grid`` latitudes / angles, ``steps`` ODE steps),
    so it can be drawn at every validation; ``data`` are drawn on top.
    """
    import tempfile

    import numpy as np

    M = model.manifold
    name = type(M).__name__
    if not (M.dim == 2 and name in ("Sphere", "FlatTorus")):
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "density.png"
        if name == "Sphere":
            pts, lon, lat = sphere_grid(grid, 2 * grid)
            dens = model_density(model, pts, steps).reshape(grid, 2 * grid)
            sphere_density_figure(dens, lon, lat, path, data, title)
        else:
            pts, centres = torus_grid(grid)
            torus_figure(model_density(model, pts, steps).reshape(grid, grid), centres, path, data, None, title)
        rgba = _pyplot().imread(str(path))
    return (np.asarray(rgba)[..., :3] * 255).round().astype(np.uint8)
