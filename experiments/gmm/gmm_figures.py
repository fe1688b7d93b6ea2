"""Figures of the Gaussian-mixture study, drawn from the CSV rows (mean ± std over seeds)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gaugeflow.data import gaussian_mixture  # noqa: E402

ORDER = ("plain", "plain-matched", "gauge", "higher-gauge", "tensor-gauge")
STYLE = {
    "plain": dict(color="tab:gray", marker="o", label="Plain (papers' width)"),
    "plain-matched": dict(color="tab:brown", marker="s", label="Plain (param-matched to HGFM)"),
    "gauge": dict(color="tab:blue", marker="^", label="GFM"),
    "higher-gauge": dict(color="tab:red", marker="D", label="HGFM"),
    "tensor-gauge": dict(color="tab:green", marker="v", label="TGFM (r = 2)"),
}


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    m = sum(values) / len(values)
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, s


def series(rows: list[dict[str, Any]], model: str, key: str, scale=None):
    """``(dims, means, stds)`` of ``key`` for ``model`` across the N of the rows."""
    dims = sorted({int(r["N"]) for r in rows if r["model"] == model})
    stats = []
    for n in dims:
        vals = [float(r[key]) / (scale(n) if scale else 1.0) for r in rows if r["model"] == model and int(r["N"]) == n]
        stats.append(mean_std(vals))
    return dims, [m for m, _ in stats], [s for _, s in stats]


def paired_rows(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Rows whose ``key`` is replaced by its difference to the HGFM row of the same (N, seed)."""
    ref = {(r["N"], r["seed"]): float(r[key]) for r in rows if r["model"] == "higher-gauge"}
    return [{**r, key: float(r[key]) - ref[(r["N"], r["seed"])]} for r in rows if (r["N"], r["seed"]) in ref]


def _clip_off_scale(ax, means: list, factor: float = 50.0) -> None:
    """Keep the y-range on the bulk of the means; name the means far outside it in the panel (never drop them silently).

    A mean is off scale when it lies more than ``factor`` median absolute deviations from the median
    of all plotted means (e.g. one test point whose finite backward solve gave a huge NLL).
    """
    values = sorted(m for m, _, _ in means if math.isfinite(m))
    if len(values) < 4:
        return
    med = values[len(values) // 2]
    mad = sorted(abs(v - med) for v in values)[len(values) // 2] or 1e-12
    off = [(m, model, n) for m, model, n in means if math.isfinite(m) and abs(m - med) > factor * mad]
    if not off:
        return
    kept = [m for m, _, _ in means if math.isfinite(m) and abs(m - med) <= factor * mad]
    lo, hi = min(kept), max(kept)
    pad = 0.1 * (hi - lo or 1.0)
    ax.set_ylim(lo - pad, hi + pad)
    text = "; ".join(f"{STYLE[model]['label']} N={n}: {m:.3g}" for m, model, n in off)
    ax.text(0.02, 0.02, f"off scale (mean): {text}", transform=ax.transAxes, fontsize=7, color="tab:red")


def _panel(ax, rows, key, ylabel, scale=None, logy=False, offset=0.03):
    models = [m for m in ORDER if any(r["model"] == m for r in rows)]
    means = []
    for i, model in enumerate(models):
        dims, mu, sd = series(rows, model, key, scale)
        x = [n * 2 ** (offset * (i - (len(models) - 1) / 2)) for n in dims]  # small offsets on the log axis
        ax.errorbar(x, mu, yerr=sd, capsize=3, lw=1.3, ms=5, **STYLE[model])
        means += [(m, model, n) for m, n in zip(mu, dims)]
    if not logy:
        _clip_off_scale(ax, means)
    dims = sorted({int(r["N"]) for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(dims, [str(n) for n in dims])
    ax.set_xlabel("dimension N")
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def make_all(rows: list[dict[str, Any]], samples: dict, fig_dir: Path, cfg: dict[str, Any]) -> list[Path]:
    """Write every figure into ``fig_dir``; returns the paths (``gmm_*.png``)."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    n_seeds = len({r["seed"] for r in rows})
    files = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, split in zip(axes, ("train", "test")):
        _panel(ax, rows, f"{split}_fm_norm", f"{split} FM loss / HGFM loss")
        ax.axhline(1.0, color="k", lw=0.8, ls=":")
        ax.set_title(f"{split} flow-matching loss, normalised to HGFM (mean ± std, {n_seeds} seeds)", fontsize=9)
    axes[0].legend(fontsize=8)
    files.append(_save(fig, fig_dir / "gmm_fm_loss_normalised.png"))

    fig, ax = plt.subplots(figsize=(5.5, 4))
    _panel(ax, rows, "params", "trainable parameters", logy=True)
    ax.legend(fontsize=8)
    ax.set_title("parameter count per model", fontsize=9)
    files.append(_save(fig, fig_dir / "gmm_params.png"))

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    _panel(axes[0], rows, "test_nll", "test NLL per dimension (nats)", scale=lambda n: n)
    axes[0].legend(fontsize=8)
    axes[0].set_title(f"test NLL / N (mean ± std, {n_seeds} seeds)", fontsize=9)
    _panel(axes[1], paired_rows(rows, "test_nll"), "test_nll", "test NLL − HGFM test NLL (nats)")
    axes[1].axhline(0.0, color="k", lw=0.8, ls=":")
    axes[1].set_title("paired difference to HGFM, same seed (> 0: HGFM better)", fontsize=9)
    files.append(_save(fig, fig_dir / "gmm_nll.png"))

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    _panel(axes[0], rows, "energy_distance", "energy distance to the test set", logy=True)
    _panel(axes[1], rows, "mode_coverage", "fraction of modes covered")
    axes[0].legend(fontsize=8)
    axes[0].set_title("sample quality (lower is better)", fontsize=9)
    axes[1].set_title("mode coverage (higher is better)", fontsize=9)
    files.append(_save(fig, fig_dir / "gmm_sample_quality.png"))

    if samples:
        files.append(_samples_figure(samples, fig_dir / "gmm_samples_N2.png", cfg))
    return files


def _samples_figure(samples: dict, path: Path, cfg: dict[str, Any]) -> Path:
    d = cfg["data"]
    test = gaussian_mixture(2, n_components=d["n_components"], sigma=d["sigma"], spread=d["spread"],
                            n_train=d["n_train"], n_val=d["n_val"], n_test=d["n_test"], seed=d["seed"]).test
    seed = min(s for _, s in samples)
    models = [m for m in ORDER if (m, seed) in samples]
    fig, axes = plt.subplots(1, len(models) + 1, figsize=(3 * (len(models) + 1), 3.2), sharex=True, sharey=True)
    axes[0].scatter(test[:, 0], test[:, 1], s=2, alpha=0.4, color="k")
    axes[0].set_title("test data", fontsize=9)
    for ax, model in zip(axes[1:], models):
        xs = samples[(model, seed)]
        ax.scatter([p[0] for p in xs], [p[1] for p in xs], s=2, alpha=0.4, color=STYLE[model]["color"])
        ax.set_title(f"{STYLE[model]['label']} (seed {seed})", fontsize=8)
    for ax in axes:
        ax.set_aspect("equal")
        ax.set_xlim(-7, 7)
        ax.set_ylim(-7, 7)
    return _save(fig, path)
