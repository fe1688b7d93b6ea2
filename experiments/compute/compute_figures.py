"""Figures of the equal-compute study, drawn from the part CSVs: learning curves and the solver sweep."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from compute_models import LABELS  # noqa: E402

COLORS = {"plain": "tab:gray", "plain-params": "tab:brown", "plain-time": "tab:olive", "gauge": "tab:blue",
          "higher-gauge": "tab:red", "tensor-gauge": "tab:green", "gauge-a0": "tab:cyan",
          "higher-gauge-a0": "tab:pink", "tensor-gauge-a0": "lime", "plain-ot": "black", "gauge-ot": "tab:purple"}


def _band(ax, rows: list[dict], x_key: str, y_key: str, model: str) -> None:
    """Mean over seeds of ``y`` at each step, with the min–max band over seeds."""
    by_step = {}
    for r in rows:
        if math.isfinite(r[y_key]):
            by_step.setdefault(r["step"], []).append(r)
    steps = sorted(s for s, v in by_step.items() if len(v) == max(len(w) for w in by_step.values()))
    if not steps:
        return
    x = [sum(r[x_key] for r in by_step[s]) / len(by_step[s]) for s in steps]
    ys = [[r[y_key] for r in by_step[s]] for s in steps]
    mean = [sum(y) / len(y) for y in ys]
    dashed = model.endswith("-a0")
    ax.plot(x, mean, color=COLORS[model], ls="--" if dashed else "-", lw=1.4, label=LABELS[model])
    ax.fill_between(x, [min(y) for y in ys], [max(y) for y in ys], color=COLORS[model], alpha=0.15, lw=0)


def learning_curves(curve: list[dict], folder: Path) -> list[Path]:
    """One figure per (data set, size): test NLL (curve subset) against steps and against seconds."""
    files = []
    cells = list(dict.fromkeys((r["dataset"], r["size"]) for r in curve))
    for dname, size in cells:
        rows = [r for r in curve if r["dataset"] == dname and r["size"] == size]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
        for model in COLORS:
            mrows = [r for r in rows if r["model"] == model]
            if mrows:
                _band(axes[0], mrows, "step", "test_nll_curve", model)
                _band(axes[1], mrows, "calib_s", "test_nll_curve", model)
        axes[0].set_xlabel("training steps")
        axes[1].set_xlabel("training seconds (steps × interleaved step time)")
        axes[0].set_ylabel("test NLL, nats (fixed test subset)")
        for ax in axes:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.grid(alpha=0.3)
        finite = [r["test_nll_curve"] for r in rows if math.isfinite(r["test_nll_curve"])]
        if finite:
            lo = min(finite)
            hi = sorted(finite)[int(0.9 * (len(finite) - 1))]
            axes[0].set_ylim(lo - 0.05 * (hi - lo + 1e-9), hi + 0.1 * (hi - lo + 1e-9))
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=5, frameon=False)
        fig.suptitle(f"{dname}, train size '{size}': mean over seeds, band = min–max")
        fig.tight_layout(rect=(0, 0.12, 1, 1))
        path = folder / f"compute_curves_{dname}_{size}.png"
        fig.savefig(path, dpi=90, metadata={"Software": None})
        plt.close(fig)
        files.append(path)
    return files


def solver_figure(solver: list[dict], folder: Path) -> list[Path]:
    """Test NLL (subset) and energy distance against velocity evaluations, per data set and model."""
    dsets = list(dict.fromkeys(r["dataset"] for r in solver))
    if not dsets:
        return []
    fig, axes = plt.subplots(2, len(dsets), figsize=(max(8, 4 * len(dsets)), 7.5), squeeze=False)
    for j, dname in enumerate(dsets):
        for model in COLORS:
            rows = [r for r in solver if r["dataset"] == dname and r["model"] == model]
            rk = [r for r in rows if r["method"] == "rk4"]
            if not rk:
                continue
            for i, key in enumerate(("test_nll_subset", "energy_distance")):
                axes[i][j].plot([r["nll_nfe"] if i == 0 else r["sample_nfe"] for r in rk], [r[key] for r in rk],
                                marker="o", ms=3, color=COLORS[model], label=LABELS[model])
                dp = [r for r in rows if r["method"] == "dopri5"]
                if dp and (dp[0]["nll_nfe"] if i == 0 else dp[0]["sample_nfe"]) > 0:
                    axes[i][j].plot([dp[0]["nll_nfe"] if i == 0 else dp[0]["sample_nfe"]], [dp[0][key]], marker="*",
                                    ms=10, color=COLORS[model], ls="none")
        axes[0][j].set_title(dname)
        axes[1][j].set_xlabel("velocity evaluations (rk4: 4 per step; ★ dopri5)")
        for i in range(2):
            axes[i][j].set_xscale("log")
            axes[i][j].grid(alpha=0.3)
        axes[1][j].set_yscale("log")
    axes[0][0].set_ylabel("test NLL, nats (subset)")
    axes[1][0].set_ylabel("energy distance to test (log)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=5, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    path = folder / "compute_solver.png"
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)
    return [path]


def _lonlat(rows: list[dict]) -> tuple[list[float], list[float]]:
    """Longitude and latitude (degrees) of unit vectors ``x0, x1, x2`` (the loaders' convention)."""
    lon = [math.degrees(math.atan2(r["x1"], r["x0"])) for r in rows]
    lat = [math.degrees(math.asin(max(-1.0, min(1.0, r["x2"])))) for r in rows]
    return lon, lat


def _angles(rows: list[dict]) -> tuple[list[float], list[float]]:
    """The two angles (degrees) of points ``(cos φ, sin φ, cos ψ, sin ψ)`` on the flat torus."""
    return ([math.degrees(math.atan2(r["x1"], r["x0"])) for r in rows],
            [math.degrees(math.atan2(r["x3"], r["x2"])) for r in rows])


def sample_figures(samples: list[dict], tests: dict[str, list[dict]], best: dict[str, str], folder: Path) -> list[Path]:
    """Per real data set on S² or T²: its test split beside the converged samples of the study's best model
    (``best[data set]``) and of the papers' PlainFlow, all from fixed base points (solver seed, full size)."""
    files = []
    for dname, test in tests.items():
        dim = len([k for k in test[0] if k.startswith("x")]) if test else 0
        if dim not in (3, 4):
            continue
        proj, (xl, yl) = (_lonlat, ("longitude", "latitude")) if dim == 3 else (_angles, ("φ", "ψ"))
        chosen = [m for m in dict.fromkeys([best.get(dname, ""), "plain"]) if m in LABELS]
        panels = [("test split", test)] + [(LABELS[m] + (" — best at convergence" if m == best.get(dname) else ""),
                                            [r for r in samples if r["dataset"] == dname and r["model"] == m
                                             and r.get("size", "full") == "full"])
                                           for m in chosen]
        longer = [r for r in samples if r["dataset"] == dname and r.get("size") == "long"]
        if longer:  # the long stage's model beside them
            panels.insert(1, (LABELS[longer[0]["model"]] + " — long stage", longer))
        panels = [(t, rows) for t, rows in panels if rows]
        if len(panels) < 2:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 2.9), sharex=True, sharey=True)
        for ax, (title, rows) in zip(axes, panels):
            x, y = proj(rows[:1000])
            ax.scatter(x, y, s=1.5, alpha=0.5, color="tab:blue" if title == "test split" else "tab:red", lw=0)
            ax.set_title(title, fontsize=9)
            ax.set_xlim(-180, 180)
            ax.set_ylim(-90, 90) if dim == 3 else ax.set_ylim(-180, 180)
            ax.set_xlabel(xl)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel(yl)
        fig.suptitle(f"{dname}: test points and 1 000 samples of converged models (seed 0)", fontsize=10)
        fig.tight_layout()
        path = folder / f"compute_samples_{dname}.png"
        fig.savefig(path, dpi=90, metadata={"Software": None})
        plt.close(fig)
        files.append(path)
    return files
