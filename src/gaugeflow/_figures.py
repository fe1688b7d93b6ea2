"""Plotting helpers shared by :mod:`gaugeflow.viz` and :mod:`gaugeflow._mesh_figures`: the headless pyplot,
byte-reproducible PNG saving, the density colour scale and the exact model density at points."""
from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["LOG_DECADES", "DATA_COLOUR", "model_density"]

LOG_DECADES = 5
DATA_COLOUR = "#ff3b6b"  # data points on a density map: small, stands out from every viridis colour


def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # no "Software" (matplotlib version) entry: the same figure is the same bytes (docs/make_figures.py)
    fig.savefig(path, dpi=120, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)
    return path


def model_density(model: torch.nn.Module, points: torch.Tensor, steps: int = 20, chunk: int = 2048) -> torch.Tensor:
    """Model density ``exp(log p(x))`` at ``points`` ``[n, D]`` (exact divergence, chunked). Returns ``[n]``."""
    from .sampling import log_prob

    p = next(model.parameters())
    out = [log_prob(model, part.to(p.device, p.dtype), steps=steps, divergence="exact").detach().double().cpu()
           for part in points.split(chunk)]
    return torch.cat(out).exp()


def _norm(density: torch.Tensor, scale: str):
    """Colour normalisation and colour-bar ``extend`` for ``scale`` ∈ {``auto``, ``log``, ``linear``}.

    ``auto`` is ``log`` where the density spans more than two decades (``max/min > 100``). A log scale
    shows at most :data:`LOG_DECADES` decades below the maximum; lower values get the lowest colour.
    """
    from matplotlib.colors import LogNorm, Normalize

    if scale not in ("auto", "log", "linear"):
        raise ValueError(f"scale must be 'auto', 'log' or 'linear', got {scale!r}")
    d = density[torch.isfinite(density)].double()
    hi, lo = (float(d.max()), float(d.min())) if len(d) else (1.0, 0.0)
    if scale == "auto":
        scale = "log" if hi > 0 and (lo <= 0 or hi / lo > 100) else "linear"
    if scale == "linear" or hi <= 0:
        return Normalize(vmin=min(lo, 0.0), vmax=hi), "neither", ""
    vmin = max(lo, hi * 10.0 ** -LOG_DECADES)
    return LogNorm(vmin=vmin, vmax=hi), ("min" if lo < vmin else "neither"), ", log scale"
