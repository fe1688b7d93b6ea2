"""Regenerate the figures of docs/guide.md and docs/math.md: ``python docs/make_figures.py [OUT_DIR]``.

Uses only gaugeflow's public API, fixed seeds, one thread, torch's deterministic algorithms and
matplotlib's Agg backend with no version/time stamps in the PNGs, so a re-run on the same machine and
library versions writes the same bytes (``tests/test_figures.py`` checks it); writes
``docs/figures/*.png`` (default) in about a minute on two CPU cores.

Figures:
    geodesics_transport.png  geodesics from a point of S² and a parallel-transported tangent frame.
    rcfm_paths.png           conditional paths x_t of RCFM on S² (geodesics) and on ℝ² (straight lines).
    cut_locus.png            log at near-antipodal points: its length → π and the deterministic direction.
    velocity_fields.png      untrained, seeded PlainFlow / GaugeFlow / HigherGaugeFlow fields on S²
                             and the gauge term α(t)·Π_x(G) of the higher gauge model alone.
    wrapped_mixtures.png     wrapped_mixture data on S², T² and H² (Poincaré disk).
    sphere_density.png       a GaugeFlow trained for 1000 steps on a 6-component mixture on S²: its density
                             (``gaugeflow.viz.sphere_density_figure``, log scale, 1/sr), the test data and
                             model samples side by side.
    torus_density.png        the same on T² (``gaugeflow.viz.torus_figure``, Ramachandran axes, 1/rad²).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=True)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from gaugeflow.data import wrapped_mixture  # noqa: E402
from gaugeflow.manifolds import Euclidean, FlatTorus, Hyperbolic, Sphere  # noqa: E402
from gaugeflow.models import GaugeFlow, HigherGaugeFlow, PlainFlow  # noqa: E402
from gaugeflow.sampling import sample  # noqa: E402
from gaugeflow.training import fit  # noqa: E402
from gaugeflow.viz import (model_density, sphere_density_figure, sphere_grid, torus_figure,  # noqa: E402
                           torus_grid)

DTYPE = torch.float64
S2 = Sphere(2)


def _sphere_wire(ax, alpha=0.12, labels=True):
    """Light wireframe of the unit sphere and equal aspect on a 3-D axis (axis names only if ``labels``)."""
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 37), np.linspace(0, np.pi, 19))
    ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.6", lw=0.4, alpha=alpha)
    ax.set_box_aspect((1, 1, 1))
    ax.set_xlim(-1, 1), ax.set_ylim(-1, 1), ax.set_zlim(-1, 1)
    ax.set_xticks([]), ax.set_yticks([]), ax.set_zticks([])
    if labels:
        ax.set_xlabel("x"), ax.set_ylabel("y"), ax.set_zlabel("z")


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True)


def fig_geodesics(out: Path) -> Path:
    """Geodesics ``exp_x(s·u)`` from one point and the transported frame ``transp(x, x_s, e_i)``."""
    x = _unit(torch.tensor([0.3, -0.2, 1.0], dtype=DTYPE))
    e1 = _unit(S2.proju(x, torch.tensor([1.0, 0.0, 0.0], dtype=DTYPE)))
    e2 = torch.linalg.cross(x, e1)
    angles = torch.linspace(0, 2 * math.pi, 7, dtype=DTYPE)[:-1]
    dirs = torch.cos(angles)[:, None] * e1 + torch.sin(angles)[:, None] * e2  # [6, 3] unit tangents
    s = torch.linspace(0, 0.9 * math.pi, 60, dtype=DTYPE)
    curves = S2.exp(x.expand(len(s), 3)[None], s[None, :, None] * dirs[:, None, :])  # [6, 60, 3]
    fig = plt.figure(figsize=(6.2, 5.6))
    ax = fig.add_subplot(projection="3d")
    _sphere_wire(ax)
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(dirs)))
    for c, curve in zip(colors, curves):
        ax.plot(*curve.T.numpy(), color=c, lw=1.6)
        idx = torch.tensor([0, 20, 40, 59])
        pts = curve[idx]
        f1 = S2.transp(x.expand(len(idx), 3), pts, e1.expand(len(idx), 3))
        f2 = S2.transp(x.expand(len(idx), 3), pts, e2.expand(len(idx), 3))
        for f, col in ((f1, "tab:red"), (f2, "tab:blue")):
            ax.quiver(*pts.T.numpy(), *f.T.numpy(), length=0.18, color=col, lw=1.0, arrow_length_ratio=0.3)
    ax.scatter(*x.numpy(), color="k", s=25)
    ax.view_init(elev=25, azim=-60)
    ax.set_title("Geodesics exp$_x$(s·u), s ∈ [0, 0.9π], from x (black)\n"
                 "red/blue: frame (e$_1$, e$_2$) at x parallel-transported by transp(x, x$_s$, ·)", fontsize=9)
    return _save(fig, out / "geodesics_transport.png")


def fig_rcfm_paths(out: Path) -> Path:
    """``Manifold.geodesic(x0, x1, t)`` on S² and on ℝ² for a few base/data pairs."""
    g = torch.Generator().manual_seed(1)
    data_s = wrapped_mixture(S2, n_components=3, n_train=200, n_val=1, n_test=1, scale=0.15, seed=3, dtype=DTYPE)
    x1 = data_s.train[:14]
    x0 = S2.random_base(14, generator=g, dtype=DTYPE)
    t = torch.linspace(0, 1, 40, dtype=DTYPE)
    xt, _ = S2.geodesic(x0[:, None].expand(-1, 40, -1), x1[:, None].expand(-1, 40, -1), t.expand(14, 40))
    E = Euclidean(2)
    data_e = wrapped_mixture(E, n_components=3, n_train=200, n_val=1, n_test=1, scale=0.4, seed=3, dtype=DTYPE)
    y1 = data_e.train[:14]
    y0 = E.random_base(14, generator=g, dtype=DTYPE)
    yt, _ = E.geodesic(y0[:, None].expand(-1, 40, -1), y1[:, None].expand(-1, 40, -1), t.expand(14, 40))
    fig = plt.figure(figsize=(10, 4.6))
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    _sphere_wire(ax, labels=False)
    for c in xt:
        ax.plot(*c.T.numpy(), color="0.35", lw=1.0)
    ax.scatter(*data_s.train.T.numpy(), s=2, color="tab:orange", alpha=0.25)
    ax.scatter(*x0.T.numpy(), s=18, color="tab:blue", label="x$_0$ ~ p$_0$ (uniform)")
    ax.scatter(*x1.T.numpy(), s=18, color="tab:red", label="x$_1$ ~ data")
    ax.view_init(elev=20, azim=-50)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("S²: x$_t$ = exp$_{x_0}$(t log$_{x_0}$ x$_1$)", fontsize=10)
    ax2 = fig.add_subplot(1, 2, 2)
    for c in yt:
        ax2.plot(*c.T.numpy(), color="0.35", lw=1.0)
    ax2.scatter(*data_e.train.T.numpy(), s=2, color="tab:orange", alpha=0.3)
    ax2.scatter(*y0.T.numpy(), s=18, color="tab:blue", label="x$_0$ ~ N(0, I)")
    ax2.scatter(*y1.T.numpy(), s=18, color="tab:red", label="x$_1$ ~ data")
    ax2.set_aspect("equal")
    ax2.legend(fontsize=8)
    ax2.set_title("ℝ²: x$_t$ = (1 − t) x$_0$ + t x$_1$", fontsize=10)
    fig.suptitle("RCFM conditional paths (GeodesicPath / Manifold.geodesic)", fontsize=11)
    return _save(fig, out / "rcfm_paths.png")


def fig_cut_locus(out: Path) -> Path:
    """‖log_x(y)‖ as y approaches −x, and the direction chosen exactly at the antipode."""
    x = _unit(torch.tensor([0.2, 0.5, 0.8], dtype=DTYPE))
    e = _unit(S2.proju(x, torch.tensor([1.0, -1.0, 0.3], dtype=DTYPE)))
    deltas = torch.logspace(-12, 0, 60, dtype=DTYPE)
    ys = S2.exp(-x.expand(len(deltas), 3), deltas[:, None] * S2.proju(-x, e).expand(len(deltas), 3))
    L = S2.norm(x.expand_as(ys), S2.log(x.expand_as(ys), ys))
    fig = plt.figure(figsize=(10.5, 4.4))
    ax = fig.add_subplot(1, 2, 1)
    ax.loglog(deltas.numpy(), (math.pi - L).numpy(), "o-", ms=3, label="π − ‖log$_x$(y)‖")
    ax.loglog(deltas.numpy(), deltas.numpy(), "k--", lw=0.8, label="δ = dist(y, −x)")
    ax.set_xlabel("δ = distance of y from the antipode −x")
    ax.set_ylabel("π − ‖log$_x$ y‖")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("float64: ‖log$_x$ y‖ = π − δ down to δ = 1e-12", fontsize=10)
    ax3 = fig.add_subplot(1, 2, 2, projection="3d")
    _sphere_wire(ax3, labels=False)
    s = torch.linspace(0, 1, 80, dtype=DTYPE)[:, None]
    ang = torch.linspace(0, 2 * math.pi, 9, dtype=DTYPE)[:-1]
    f1 = e
    f2 = torch.linalg.cross(-x, f1)
    for a in ang:  # near-antipodes on a small circle around -x: each minimising geodesic leaves in its own direction
        y = S2.exp(-x, 0.15 * (torch.cos(a) * f1 + torch.sin(a) * f2))
        u = S2.log(x, y)
        ax3.plot(*S2.exp(x.expand(80, 3), s * u).T.numpy(), color="0.55", lw=0.9)
    u_cut = S2.log(x, -x)
    ax3.plot(*S2.exp(x.expand(80, 3), s * u_cut).T.numpy(), color="tab:red", lw=2.2,
             label=f"exp$_x$(s·log$_x$(−x)), ‖log‖ = {float(S2.norm(x, u_cut)):.6f}")
    ax3.quiver(*x.numpy(), *(u_cut / math.pi).numpy(), length=0.5, color="tab:red", lw=1.5)
    ax3.scatter(*x.numpy(), color="k", s=25)
    ax3.scatter(*(-x).numpy(), color="tab:purple", s=25)
    ax3.view_init(elev=15, azim=20)
    ax3.legend(loc="upper left", fontsize=7)
    ax3.set_title("grey: geodesics to points 0.15 rad from −x (purple)\n"
                  "red: the deterministic choice at −x itself", fontsize=9)
    return _save(fig, out / "cut_locus.png")


def _latlon_grid(n_lat=13, n_lon=25):
    lat = torch.linspace(-75, 75, n_lat, dtype=DTYPE)
    lon = torch.linspace(-180, 180, n_lon, dtype=DTYPE)[:-1]
    LA, LO = torch.meshgrid(lat, lon, indexing="ij")
    la, lo = torch.deg2rad(LA).flatten(), torch.deg2rad(LO).flatten()
    x = torch.stack([torch.cos(la) * torch.cos(lo), torch.cos(la) * torch.sin(lo), torch.sin(la)], -1)
    east = torch.stack([-torch.sin(lo), torch.cos(lo), torch.zeros_like(lo)], -1)
    north = torch.stack([-torch.sin(la) * torch.cos(lo), -torch.sin(la) * torch.sin(lo), torch.cos(la)], -1)
    return LO.flatten(), LA.flatten(), x, east, north


def fig_velocity_fields(out: Path) -> Path:
    """Quiver plots of untrained seeded models on S² at t = 0.5, in (east, north) components."""
    lon, lat, x, east, north = _latlon_grid()
    t = 0.5
    full, gauge = [], []
    for name, make in (("PlainFlow", lambda: PlainFlow(S2, hidden=32)),
                       ("GaugeFlow (SO(3))", lambda: GaugeFlow(S2, hidden=32)),
                       ("HigherGaugeFlow (crossed module)", lambda: HigherGaugeFlow(S2, hidden=32))):
        torch.manual_seed(0)
        model = make().to(DTYPE)
        with torch.no_grad():
            full.append((f"{name}: V(x, t)", model(x, t)))
            if model.alpha is not None:  # the gauge term alone, through the public FlowModel hooks
                h, tcol = model.inputs(x, t)
                gauge.append((f"{name}: α(t)·Π$_x$(G)", model.alpha(tcol) * model.gauge_term(x, h)))
    fig, axes = plt.subplots(2, 3, figsize=(15, 5.0), sharex=True, sharey=True)
    for ax, (title, v) in zip(list(axes[0]) + list(axes[1, 1:]), full + gauge):
        ve, vn = (v * east).sum(-1), (v * north).sum(-1)
        speed = torch.sqrt(ve ** 2 + vn ** 2)
        q = ax.quiver(lon.numpy(), lat.numpy(), ve.numpy(), vn.numpy(), speed.numpy(), cmap="viridis",
                      angles="xy", pivot="mid", width=0.004)
        fig.colorbar(q, ax=ax, shrink=0.9, pad=0.02)
        ax.set_title(title, fontsize=9)
        ax.set_xlim(-190, 180), ax.set_ylim(-85, 85)
        ax.set_aspect("equal")
    note = axes[1, 0]
    note.axis("off")
    note.text(0.0, 0.5, "Same seed ⇒ the three models draw the same\n"
              "initial velocity net v$_θ$ (built first), so the\n"
              "top row differs only by the gauge term.\n\n"
              "At initialisation α(t)·Π$_x$(G) is ~1–2 % of v$_θ$;\n"
              "training decides how much the gauge\n"
              "term contributes. Arrow length is\n"
              "auto-scaled per panel: colour = speed ‖·‖.",
              fontsize=9, va="center", transform=note.transAxes)
    for ax in axes[1, 1:]:
        ax.set_xlabel("longitude (°)")
    for ax in axes[:, 0]:
        ax.set_ylabel("latitude (°)")
    fig.suptitle("Untrained models on S² (torch.manual_seed(0), hidden=32, t=0.5); arrows: (east, north) components",
                 fontsize=10)
    return _save(fig, out / "velocity_fields.png")


def fig_mixtures(out: Path) -> Path:
    """``wrapped_mixture`` on S² (lon/lat), T² (angles) and H² (Poincaré disk)."""
    fig = plt.figure(figsize=(13, 4.3))
    ds = wrapped_mixture(S2, n_components=6, n_train=3000, n_val=1, n_test=1, seed=0, dtype=DTYPE)
    ax = fig.add_subplot(1, 3, 1, projection="3d")
    _sphere_wire(ax, alpha=0.08, labels=False)
    ax.scatter(*ds.train.T.numpy(), s=1.5, c=ds.meta["labels_train"], cmap="tab10", alpha=0.6)
    ax.view_init(elev=20, azim=-60)
    ax.set_title("Sphere(2), 6 components, scale 0.2", fontsize=10)
    dt = wrapped_mixture(FlatTorus(2), n_components=6, n_train=3000, n_val=1, n_test=1, scale=0.4, seed=0, dtype=DTYPE)
    ax = fig.add_subplot(1, 3, 2)
    ax.scatter(*dt.train.T.numpy(), s=1.5, c=dt.meta["labels_train"], cmap="tab10", alpha=0.6)
    ax.set_xlim(0, 2 * math.pi), ax.set_ylim(0, 2 * math.pi), ax.set_aspect("equal")
    ax.set_xticks([0, math.pi, 2 * math.pi], ["0", "π", "2π"]), ax.set_yticks([0, math.pi, 2 * math.pi], ["0", "π", "2π"])
    ax.set_xlabel("θ$_1$"), ax.set_ylabel("θ$_2$")
    ax.set_title("FlatTorus(2), scale 0.4 (wraps across 0 = 2π)", fontsize=10)
    H = Hyperbolic(2)
    dh = wrapped_mixture(H, n_components=6, n_train=3000, n_val=1, n_test=1, scale=0.3, seed=0, dtype=DTYPE)
    p = dh.train[:, 1:] / (1 + dh.train[:, :1])  # Lorentz -> Poincaré disk
    ax = fig.add_subplot(1, 3, 3)
    ax.add_patch(plt.Circle((0, 0), 1, fill=False, color="k", lw=0.8))
    ax.scatter(*p.T.numpy(), s=1.5, c=dh.meta["labels_train"], cmap="tab10", alpha=0.6)
    ax.set_xlim(-1.05, 1.05), ax.set_ylim(-1.05, 1.05), ax.set_aspect("equal")
    ax.set_title("Hyperbolic(2), scale 0.3, Poincaré disk\n$p = x_{1:}/(1 + x_0)$", fontsize=10)
    fig.suptitle("wrapped_mixture(M, n_components=6, seed=0): colour = component", fontsize=11)
    return _save(fig, out / "wrapped_mixtures.png")


TRAIN_STEPS = 1000


def _trained(manifold, scale: float, steps: int = TRAIN_STEPS):
    """A GaugeFlow (hidden 64, seed 0) fitted for ``steps`` steps to a seeded 6-component mixture."""
    data = wrapped_mixture(manifold, n_components=6, n_train=4000, n_val=1, n_test=1500, scale=scale, seed=0)
    torch.manual_seed(0)
    model = GaugeFlow(manifold, hidden=64)
    fit(model, data, steps=steps, batch_size=256, lr=3e-3, seed=0, val_size=0, progress=False, device="cpu")
    x0 = manifold.random_base(2000, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        xs = sample(model, x0, steps=20)
    return model, data, xs


def fig_sphere_density(out: Path, grid: int = 72, steps: int = 20) -> Path:
    """``sphere_density_figure`` of a flow trained ``TRAIN_STEPS`` steps on S² (density at ``grid × 2·grid``)."""
    model, data, xs = _trained(S2, scale=0.2)
    pts, lon, lat = sphere_grid(grid, 2 * grid)
    dens = model_density(model, pts, steps).reshape(grid, 2 * grid)
    return sphere_density_figure(dens, lon, lat, out / "sphere_density.png", data.test,
                                 f"GaugeFlow on S², {TRAIN_STEPS} steps on a 6-component wrapped mixture", xs)


def fig_torus_density(out: Path, grid: int = 96, steps: int = 20) -> Path:
    """``torus_figure`` (Ramachandran axes) of a flow trained ``TRAIN_STEPS`` steps on T² (density at ``grid²``)."""
    model, data, xs = _trained(FlatTorus(2), scale=0.4)
    pts, centres = torus_grid(grid)
    dens = model_density(model, pts, steps).reshape(grid, grid)
    return torus_figure(dens, centres, out / "torus_density.png", data.test, xs,
                        f"GaugeFlow on T², {TRAIN_STEPS} steps on a 6-component wrapped mixture")


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=100, bbox_inches="tight", metadata={"Software": None})  # no version stamp
    plt.close(fig)
    return path


FIGURES = (fig_geodesics, fig_rcfm_paths, fig_cut_locus, fig_velocity_fields, fig_mixtures, fig_sphere_density,
           fig_torus_density)


def deterministic() -> None:
    """One thread and torch's deterministic algorithms: the same floating-point sums on every run."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def main(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    deterministic()
    return [f(out) for f in FIGURES]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "figures"
    for p in main(target):
        print(f"{p}  {p.stat().st_size / 1024:.0f} KB")
