"""Geodesic conditional paths for Riemannian conditional flow matching (docs/math.md §6).

``x_t = exp_{x0}(t · log_{x0}(x1))`` and ``u_t = d x_t / dt`` come from the manifold's closed form
:meth:`Manifold.geodesic` (``u_t`` is the initial velocity parallel-transported to ``x_t``, finite at
``t = 1``).

Cut locus (docs/math.md §1.2, §6): when ``x1`` is within ``tol("cut")`` of the cut locus of ``x0``
(e.g. antipodal points on the sphere) the minimising geodesic is not unique and the target velocity
is ill-defined.
:class:`GeodesicPath` never lets such a pair pass silently: with ``cut_locus="resample"`` (default)
the offending ``x0`` are redrawn from the base distribution (up to ``max_resample`` rounds; pairs
still at the cut locus after that are masked), with ``"mask"`` they are kept but flagged
``valid = False`` (the RCFM loss drops them), with ``"raise"`` a ``ValueError`` is raised. The counts
are reported in the returned :class:`PathSample`.

Host reads: by default :meth:`GeodesicPath.sample` reads two figures back from the device (the time
range check and the number of cut pairs). The trainer calls it with ``host_checks=False``: times are
trusted (it draws them itself), and ``"resample"`` replaces every cut start point, before the path
is built, in one ``torch.where`` round by the start point of the previous pair in the batch
(``x0.roll(1, 0)``: another draw of the base distribution, independent of this pair's ``x1``, so the
pair keeps the distribution a fresh draw gives it; pairs still cut after the round are masked) —
the round's test is :meth:`Manifold.cut_locus_screen`, a superset of the exact test that may be
cheaper (on SO(3) one trace per pair, flagging ``θ > π − 2 tol``), and the path's own exact test masks —
no device→host read and no second path in the step. The counts are then 0-dim tensors. With
``batches=K`` (the trainer's paths of ``K`` steps built in one call, :mod:`gaugeflow.training.prefetch`)
"the batch" is each step's own rows.
``cut_locus="raise"`` always reads the count (it must decide to raise). The round runs on every
device alike (one route: no shortcut that reads the count on one kind of device).

Two routes, the same values (issue 19): when no input requires a gradient (the RCFM step: ``x0``,
``x1``, ``t`` are data) the path comes from :meth:`Manifold.geodesic_and_cut` under
``torch.no_grad()`` — on S^n, T^n, H^n and SO(3) one fused pass of 10–30 operations that also gives the
cut test, without the Taylor branches only gradients need; when any input requires a gradient it
comes from the exact :meth:`Manifold.geodesic` (finite, exact gradients at ``x0 = x1``). Both agree
to rounding (``tests/test_paths_fused.py``). Pairs left masked at the cut locus by the device-side round
carry finite ``x_t, u_t`` that are not a path (the fused route's values there; ``x1`` and ``0`` on the
differentiable route), so the loss can weight them by zero.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Optional, Union

import torch

from ..geometry.manifold import Manifold

__all__ = ["GeodesicPath", "PathSample"]

_CUT_MODES = ("resample", "mask", "raise")

@dataclass(frozen=True)
class PathSample:
    """A batch of points on conditional paths; unpacks as ``x_t, u_t = sample``.

    Attributes:
        x_t: ``[B, D]`` points on the geodesics at times ``t``.
        u_t: ``[B, D]`` velocities ``d x_t / dt`` (tangent at ``x_t``).
        t: ``[B]`` times.
        x0: ``[B, D]`` start points actually used (after any cut-locus resampling).
        x1: ``[B, D]`` end points.
        valid: ``[B]`` bool, ``False`` for pairs left at the cut locus (masked).
        n_cut: number of pairs found at the cut locus on the first check (the device-side round of
            ``"resample"`` counts the pairs its :meth:`Manifold.cut_locus_screen` flags: a superset).
        n_resampled: number of start points redrawn.
        n_masked: number of pairs masked (``(~valid).sum()``).

    With ``host_checks=False`` the three counts are 0-dim integer tensors on the batch's device
    (plain ``0`` on a manifold without a cut locus).
    """

    x_t: torch.Tensor
    u_t: torch.Tensor
    t: torch.Tensor
    x0: torch.Tensor
    x1: torch.Tensor
    valid: torch.Tensor
    n_cut: Union[int, torch.Tensor]
    n_resampled: Union[int, torch.Tensor]
    n_masked: Union[int, torch.Tensor]

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield self.x_t
        yield self.u_t


class GeodesicPath:
    """Geodesic conditional path on a manifold (final class).

    Args:
        manifold: the base manifold.
        cut_locus: ``"resample"`` (default), ``"mask"`` or ``"raise"``; see the module docstring.
        max_resample: rounds of redrawing ``x0`` before the remaining cut pairs are masked.

    Examples:
        >>> from gaugeflow.manifolds import Sphere
        >>> M = Sphere(2)
        >>> x_t, u_t = GeodesicPath(M).sample(M.random_base(8), M.random_base(8), torch.rand(8))
        >>> x_t.shape, u_t.shape
        (torch.Size([8, 3]), torch.Size([8, 3]))
    """

    def __init__(self, manifold: Manifold, cut_locus: str = "resample", max_resample: int = 8):
        if not isinstance(manifold, Manifold):
            raise TypeError(f"GeodesicPath: expected a gaugeflow Manifold, got {type(manifold).__name__}")
        if cut_locus not in _CUT_MODES:
            raise ValueError(f"GeodesicPath: cut_locus must be one of {_CUT_MODES}, got {cut_locus!r}")
        if isinstance(max_resample, bool) or not isinstance(max_resample, int) or max_resample < 0:
            raise ValueError(f"GeodesicPath: max_resample must be an integer >= 0, got {max_resample!r}")
        self.manifold = manifold
        self.cut_locus = cut_locus
        self.max_resample = max_resample
        self._rows_key, self._rows = None, None  # the device round's row indices (_round_rows)

    def __repr__(self) -> str:
        return f"GeodesicPath({self.manifold}, cut_locus={self.cut_locus!r})"

    def _check(self, x0: torch.Tensor, x1: torch.Tensor, t: Union[float, torch.Tensor], host_checks: bool = True) -> torch.Tensor:
        M = self.manifold
        M.validate(x0, "x0")
        M.validate(x1, "x1")
        if x0.dim() != 2 or x0.shape != x1.shape:
            raise ValueError(
                f"GeodesicPath: x0 and x1 must both have shape [B, {M.ambient_dim}], got {tuple(x0.shape)} and {tuple(x1.shape)}"
            )
        if x0.dtype != x1.dtype:
            raise TypeError(f"GeodesicPath: x0 and x1 must share a dtype, got {x0.dtype} and {x1.dtype}")
        if isinstance(t, bool) or not isinstance(t, (int, float, torch.Tensor)):
            raise TypeError(f"GeodesicPath: t must be a float or a [B] tensor, got {type(t).__name__}")
        t = torch.as_tensor(t, dtype=x0.dtype, device=x0.device)
        if t.dim() == 0:
            t = t.expand(x0.shape[0])
        if t.shape != x0.shape[:1]:
            raise ValueError(f"GeodesicPath: t must have shape [] or [{x0.shape[0]}], got {tuple(t.shape)}")
        if not host_checks:
            return t
        lo, hi = torch.aminmax(t.detach()) if t.numel() else (t.new_zeros(()), t.new_zeros(()))  # one reduction
        if not (float(lo) >= 0 and float(hi) <= 1):  # written so that NaN fails
            raise ValueError("GeodesicPath: times must lie in [0, 1]")
        return t

    def _resolve_cut(self, x0: torch.Tensor, x1: torch.Tensor, generator: Optional[torch.Generator]):
        """Apply the cut-locus policy. Returns ``(x0, valid, n_cut, n_resampled)``."""
        M = self.manifold
        if math.isinf(M.injectivity_radius):  # no cut locus (ℝ^n, hyperbolic space): nothing to test or sync
            return x0, torch.ones(x0.shape[:1], dtype=torch.bool, device=x0.device), 0, 0
        cut = M.cut_locus_mask(x0, x1)
        n_cut = int(cut.sum())
        if n_cut == 0:
            return x0, ~cut, 0, 0
        if n_cut and self.cut_locus == "raise":
            raise ValueError(f"GeodesicPath: {n_cut} of {len(x0)} pairs (x0, x1) lie at the cut locus of {M}")
        n_resampled = 0
        if self.cut_locus == "resample":
            for _ in range(self.max_resample):
                idx = cut.nonzero().flatten()
                if idx.numel() == 0:
                    break
                fresh = M.random_base(idx.numel(), generator=generator, dtype=x0.dtype, device=x0.device)
                x0 = x0.index_copy(0, idx, fresh)
                n_resampled += idx.numel()
                cut = M.cut_locus_mask(x0, x1)
        return x0, ~cut, n_cut, n_resampled

    def _replace_cut_on_device(self, x0: torch.Tensor, x1: torch.Tensor, batches: int = 1):
        """The cut-locus round without a host read, before the path is built.

        Cut start points take the start point of the previous pair of the same batch (``x0.roll(1, 0)``
        within each of the ``batches`` consecutive batches, see the module docstring), gathered as rows.
        Returns ``(x0, n_cut, n_resampled)``, the counts as 0-dim tensors (every screened pair is
        redrawn), or ``None`` when there is no round (``"mask"``, ``max_resample = 0``): the caller's exact
        test of the unchanged pairs is then the count (:meth:`_round_counts`). The caller masks the pairs
        still cut.
        """
        if self.cut_locus != "resample" or self.max_resample == 0:
            return x0, None, None
        cut = self.manifold.cut_locus_screen(x0, x1)  # a superset of cut_locus_mask, maybe cheaper
        rows, prev = self._round_rows(x0.shape[0], batches, x0.device)
        # one row gather instead of a roll and a [B, D] torch.where on a [B, 1] mask (whose D-long inner
        # loop costs twice the gather on CPU); the same rows, bit for bit
        n_cut = cut.sum()
        return x0.index_select(0, torch.where(cut, prev, rows)), n_cut, n_cut

    @staticmethod
    def _round_counts(n_cut: Optional[torch.Tensor], n_resampled: Optional[torch.Tensor],
                      n_masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(n_cut, n_resampled)`` of the device round; without a round (``None``) the pairs found cut are
        the ones masked, and none is redrawn."""
        return (n_masked, torch.zeros_like(n_masked)) if n_cut is None else (n_cut, n_resampled)

    def _round_rows(self, n: int, batches: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows, prev)``: ``arange(n)`` and the previous row of the same batch (``[n]`` each), kept for the
        last ``(n, batches, device)`` asked (the trainer asks the same every step)."""
        key = (n, batches, torch.device(device))
        if self._rows_key != key:
            with torch.inference_mode(False):
                rows = torch.arange(n, device=device)
                self._rows = rows, rows.view(batches, -1).roll(1, 1).view(-1)
            self._rows_key = key
        return self._rows

    def _resolve_cut_on_device(self, x0: torch.Tensor, x1: torch.Tensor, generator: Optional[torch.Generator],
                               batches: int = 1):
        """:meth:`_replace_cut_on_device`, then the mask. Returns ``(x0, valid, n_cut, n_resampled, n_masked)``."""
        x0, n_cut, n_resampled = self._replace_cut_on_device(x0, x1, batches)
        cut = self.manifold.cut_locus_mask(x0, x1)
        n_masked = cut.sum()
        return x0, ~cut, *self._round_counts(n_cut, n_resampled, n_masked), n_masked

    def sample(
        self,
        x0: torch.Tensor,
        x1: torch.Tensor,
        t: Union[float, torch.Tensor],
        generator: Optional[torch.Generator] = None,
        *,
        host_checks: bool = True,
        batches: int = 1,
    ) -> PathSample:
        """Points and velocities of the geodesics ``x0 → x1`` at times ``t``.

        Args:
            x0: ``[B, D]`` start points (base samples).
            x1: ``[B, D]`` end points (data).
            t: ``[B]`` times in ``[0, 1]`` (or one float for all).
            generator: random generator for cut-locus resampling.
            host_checks: ``False`` skips every device→host read (see the module docstring): the
                time range is not checked and the counts come back as 0-dim tensors.
            batches: the rows are this many consecutive batches of ``B / batches`` pairs (the pairs of
                several training steps built at once, :mod:`gaugeflow.training.prefetch`); the device-side
                cut round then takes a cut pair's replacement start point from its own batch, so each
                batch gets the path it gets alone. Must divide ``B``.

        Returns:
            A :class:`PathSample` (unpacks as ``x_t, u_t``).

        Raises:
            ValueError/TypeError: malformed inputs, or a cut-locus pair with ``cut_locus="raise"``.
        """
        t = self._check(x0, x1, t, host_checks)
        if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1 or x0.shape[0] % batches:
            raise ValueError(f"GeodesicPath: batches must be a positive integer dividing the {x0.shape[0]} pairs, "
                             f"got {batches!r}")
        if torch.is_grad_enabled() and (x0.requires_grad or x1.requires_grad or t.requires_grad):
            return self._sample_differentiable(x0, x1, t, generator, host_checks, batches)
        with torch.no_grad():  # data: one fused pass gives the path and the cut test together
            if math.isinf(self.manifold.injectivity_radius):
                x_t, u_t, cut = self.manifold.geodesic_and_cut(x0, x1, t)
                return PathSample(x_t, u_t, t, x0, x1, torch.ones_like(cut), 0, 0, 0)
            if host_checks or self.cut_locus == "raise":
                x_t, u_t, cut = self.manifold.geodesic_and_cut(x0, x1, t)
                return self._resolve_on_host(x0, x1, t, x_t, u_t, cut, generator)
            x0, n_cut, n_resampled = self._replace_cut_on_device(x0, x1, batches)
            x_t, u_t, cut = self.manifold.geodesic_and_cut(x0, x1, t)
            n_masked = cut.sum()
            counts = self._round_counts(n_cut, n_resampled, n_masked)
            return PathSample(x_t, u_t, t, x0, x1, ~cut, *counts, n_masked)

    def _sample_differentiable(self, x0, x1, t, generator, host_checks, batches: int = 1) -> PathSample:
        """The path through :meth:`Manifold.geodesic` (exact gradients, also at ``x0 = x1``)."""
        if host_checks or self.cut_locus == "raise" or math.isinf(self.manifold.injectivity_radius):
            x0, valid, n_cut, n_resampled = self._resolve_cut(x0, x1, generator)
            n_masked = int((~valid).sum()) if n_cut else 0
        else:
            x0, valid, n_cut, n_resampled, n_masked = self._resolve_cut_on_device(x0, x1, generator, batches)
            x_t, u_t = self.manifold.geodesic(x0, x1, t)
            keep = valid.unsqueeze(-1)  # masked pairs carry finite placeholders (x_t = x1, u_t = 0): weight 0 in the loss
            return PathSample(torch.where(keep, x_t, x1), torch.where(keep, u_t, 0), t, x0, x1, valid, n_cut,
                              n_resampled, n_masked)
        x_t, u_t = self.manifold.geodesic(x0, x1, t)
        return PathSample(x_t, u_t, t, x0, x1, valid, n_cut, n_resampled, n_masked)

    def _resolve_on_host(self, x0, x1, t, x_t, u_t, cut, generator) -> PathSample:
        """Counts read back (``int``): the policy of :meth:`_resolve_cut`, each resampling round
        recomputing path and cut test in one fused pass."""
        n_cut = int(cut.sum())
        if n_cut == 0:
            return PathSample(x_t, u_t, t, x0, x1, ~cut, 0, 0, 0)
        if self.cut_locus == "raise":
            raise ValueError(f"GeodesicPath: {n_cut} of {len(x0)} pairs (x0, x1) lie at the cut locus of {self.manifold}")
        n_resampled = 0
        if self.cut_locus == "resample":
            for _ in range(self.max_resample):  # only the redrawn rows are recomputed
                idx = cut.nonzero().flatten()
                fresh = self.manifold.random_base(idx.numel(), generator=generator, dtype=x0.dtype, device=x0.device)
                x_k, u_k, cut_k = self.manifold.geodesic_and_cut(fresh, x1[idx], t[idx])
                x0, x_t, u_t = x0.index_copy(0, idx, fresh), x_t.index_copy(0, idx, x_k), u_t.index_copy(0, idx, u_k)
                cut = cut.index_copy(0, idx, cut_k)
                n_resampled += idx.numel()
                if not bool(cut_k.any()):
                    break
        return PathSample(x_t, u_t, t, x0, x1, ~cut, n_cut, n_resampled, int(cut.sum()))
