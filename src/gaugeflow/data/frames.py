"""Protein backbone frames on SO(3) and SE(3): residue orientations of the MDAnalysis test trajectory.

The same offline source as :func:`gaugeflow.data.protein_angles`: MDAnalysisTests' ``PSF``/``DCD``
(adenylate kinase, 214 residues, a 98-frame closed→open transition). Each residue ``i`` of each
trajectory frame gives a rigid frame from its backbone atoms ``N``, ``CA``, ``C`` by Gram–Schmidt
(AlphaFold 2, supplementary Algorithm 21 ``rigidFrom3Points``)::

    e1 = (C − CA)/‖C − CA‖,   u2 = (N − CA) − ⟨e1, N − CA⟩ e1,   e2 = u2/‖u2‖,   e3 = e1 × e2,
    R = [e1 e2 e3] (columns),   t = CA − (mean CA of that trajectory frame)   (Å).

Points: ``R`` flattened row-major (``[n, 9]``, on ``SO3()``), or ``R ⊕ t`` (``[n, 12]``, on
``SE3(translation_scale=s)``). Residue frames of all residues are pooled (a density of single-residue
orientations). The split is by trajectory frame, so no test conformation was seen in training.
"""
from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Optional

import torch

from ..geometry.manifold import default_dtype
from .base import ManifoldData
from .real import _build, _check_args, _require

__all__ = ["protein_frames", "backbone_frames"]


def backbone_frames(n: torch.Tensor, ca: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Rotations ``[..., 3, 3]`` (columns ``e1, e2, e3``) of backbone atoms ``N, CA, C`` ``[..., 3]`` (module doc)."""
    v1, v2 = c - ca, n - ca
    e1 = v1 / v1.norm(dim=-1, keepdim=True)
    u2 = v2 - (e1 * v2).sum(-1, keepdim=True) * e1
    e2 = u2 / u2.norm(dim=-1, keepdim=True)
    return torch.stack([e1, e2, torch.linalg.cross(e1, e2)], dim=-1)


@lru_cache(maxsize=1)
def _backbone_positions(psf: str, dcd: str) -> torch.Tensor:
    """``[frames, residues, 3 atoms (N, CA, C), 3]`` float64 positions in Å (AdK: ``[98, 214, 3, 3]``).

    Cached; callers must not modify the result in place.
    """
    mda = _require("MDAnalysis", "protein", "protein_frames")
    with warnings.catch_warnings():  # DCD reader notices
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        universe = mda.Universe(psf, dcd)
        groups = [universe.select_atoms(f"protein and backbone and name {a}") for a in ("N", "CA", "C")]
        if len({len(g) for g in groups}) != 1 or any((g.resindices != groups[0].resindices).any() for g in groups):
            raise ValueError(f"protein_frames: expected one N, CA and C per residue, got "
                             f"{[len(g) for g in groups]} atoms")
        pos = [torch.stack([torch.as_tensor(g.positions, dtype=torch.float64) for g in groups], 1)
               for _ in universe.trajectory]
    return torch.stack(pos)


def protein_frames(group: str = "so3", seed: int = 0, max_points: Optional[int] = None,
                   translation_scale: float = 0.1, dtype: Optional[torch.dtype] = None) -> ManifoldData:
    """Backbone residue frames of adenylate kinase (98 frames × 214 residues = 20 972 points).

    Args:
        group: ``"so3"`` (orientations ``[n, 9]`` on ``SO3()``) or ``"se3"`` (orientation ⊕ centred
            CA position in Å, ``[n, 12]`` on ``SE3(translation_scale=translation_scale)``).
        seed: seed of the 80/10/10 split of whole trajectory frames (78/10/10 frames) and of the
            ``max_points`` subsample.
        max_points: keep at most this many points in total (split proportions preserved).
        translation_scale: the SE(3) metric's ``s`` (per Å); ignored for ``"so3"``.
        dtype: floating dtype (default: torch's default dtype).

    Returns:
        :class:`ManifoldData` ``"protein-frames"``.

    Raises:
        MissingExtraError: MDAnalysis/MDAnalysisTests are not installed (``pip install 'gaugeflow[protein]'``).
        ValueError: ``group`` is not ``"so3"``/``"se3"``, bad ``max_points``/``translation_scale``.
    """
    _check_args(seed, max_points)
    if group not in ("so3", "se3"):
        raise ValueError(f"protein_frames: group must be 'so3' or 'se3', got {group!r}")
    from gaugeflow.manifolds import SE3, SO3

    manifold = SO3() if group == "so3" else SE3(translation_scale=translation_scale)
    files = _require("MDAnalysisTests.datafiles", "protein", "protein_frames")
    pos = _backbone_positions(files.PSF, files.DCD)  # [F, L, 3, 3]
    n, ca, c = pos.unbind(-2)
    R = backbone_frames(n, ca, c).flatten(-2)  # [F, L, 9]
    if group == "se3":
        R = torch.cat([R, ca - ca.mean(dim=1, keepdim=True)], -1)
    meta = {"source": "MDAnalysisTests PSF/DCD (adenylate kinase), backbone N/CA/C",
            "n_frames": pos.shape[0], "n_residues": pos.shape[1], "n_points": pos.shape[0] * pos.shape[1],
            "split_unit": "frame", "group": group,
            "coordinates": "R = [e1 e2 e3] by Gram-Schmidt (e1 along C-CA, e2 in the N-CA-C plane), "
                           "row-major" + ("; t = CA minus the frame's mean CA, in Angstrom" if group == "se3" else "")}
    if group == "se3":
        meta["translation_scale"] = manifold.scale
    return _build("protein-frames", manifold, R, seed, max_points, meta, default_dtype(dtype))
