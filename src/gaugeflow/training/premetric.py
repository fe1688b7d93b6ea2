r"""Premetric conditional paths (Chen & Lipman's RFM) for manifolds without a closed-form ``log``.

A *premetric* ``d(x, y) ≥ 0`` vanishes only at ``x = y`` and has a non-zero surface gradient
elsewhere. With a scheduler ``κ(t)`` (``κ(0) = 1``, ``κ(1) = 0``, default ``κ(t) = 1 − t``) the
conditional vector field is

    u_t(x | x1) = (d log κ(t)/dt) · d(x, x1) · ∇d(x, x1) / ‖∇d(x, x1)‖²,

and its flow from ``x0`` keeps ``d(x_t, x1) = κ(t) · d(x0, x1)`` (differentiate: ``d/dt d(x_t, x1) =
⟨∇d, u_t⟩ = κ'/κ · d``). So ``x_t`` runs down the gradient lines of ``d(·, x1)`` and reaches ``x1`` at
``t = 1``; on the path ``u_t = κ'(t) · d(x0, x1) · ∇d/‖∇d‖²``, which stays finite at ``t = 1``.
With ``d`` the geodesic distance, ``∇d = −log_x(x1)/‖log_x(x1)‖`` has unit length and the path is the
geodesic of :class:`~gaugeflow.training.GeodesicPath` (docs/math.md §6).

Simulation (batched over pairs, one time per pair). The gradient lines do not depend on ``κ``:
parametrised by the level ``D = d(x, x1)`` they solve ``dx/dD = ∇d/‖∇d‖²``. Each pair takes
``steps`` midpoint steps from ``D = d0`` to ``D = κ(t)·d0`` (its own step ``h = (κ(t) − 1)·d0/steps``),
each step retracted onto the manifold with ``M.exp``; then ``corrections`` Newton steps along the same
field, ``x ← exp(x, (D − d(x)) ∇d/‖∇d‖²)``, pull the point onto the level set ``d = κ(t) d0``. One
evaluation of ``(d, ∇d)`` is one forward and one backward pass of the premetric:
``2·steps + corrections + 1`` per batch.

The premetric (``∇`` is the surface gradient ``proju(x, ∂d/∂x)`` by autograd):

* ``kind="biharmonic"`` (default) or ``"diffusion"``: the manifold's spectral distance. Through
  ``M.spectral_embedding(x, kind)`` (``d = ‖Φ(x) − Φ(x1)‖``, ``Φ(x1)`` computed once per batch) when the
  manifold has it, else ``M.spectral_distance(x, x1, kind=kind)``.
* ``kind="geodesic"``: the manifold's own ``dist`` (needs an exact ``dist``; the path then equals the
  geodesic path).
* ``distance=f``: any differentiable ``f(x [B, D], y [B, D]) -> [B]``.

Pairs whose simulation fails (non-finite values, or a level-set residual
``|d(x_t, x1) − κ(t) d0| > fail_tol · d0`` — e.g. a start at a critical point of ``d(·, x1)``, where
``∇d = 0``) are *degenerate*, the analogue of the cut locus: with ``degenerate="resample"`` their ``x0``
are redrawn from the base distribution and simulated again (up to ``max_resample`` rounds, then
masked), ``"mask"`` keeps them flagged ``valid = False`` (the RCFM loss drops them), ``"raise"``
raises. Masked pairs carry ``x_t = x1``, ``u_t = 0`` (finite, so a weighted loss stays finite). With
``host_checks=False`` (the trainer) nothing is read back to the host: degenerate pairs are masked and
the counts are 0-dim tensors.
"""
from __future__ import annotations

import inspect
import math
from typing import Callable, Optional, Union

import torch

from ..geometry.manifold import Manifold
from .paths import GeodesicPath, PathSample

__all__ = ["PremetricPath", "default_path", "has_closed_form_log"]

KINDS = ("biharmonic", "diffusion", "geodesic")
_MODES = ("resample", "mask", "raise")
Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def has_closed_form_log(manifold: Manifold) -> bool:
    """Whether ``manifold`` offers a closed-form ``log`` (its ``capabilities`` flag; ``True`` when it
    declares none, as every manifold with the four required maps does)."""
    return manifold.has("log")


def default_path(manifold: Manifold, kind: str = "auto"):
    """The conditional path the trainer uses: ``"auto"`` picks :class:`GeodesicPath` where the manifold
    has a closed-form ``log`` and ``PremetricPath(manifold)`` (biharmonic) where it has not;
    ``"geodesic"``, ``"biharmonic"``, ``"diffusion"`` force one."""
    if kind == "auto":
        kind = "geodesic" if has_closed_form_log(manifold) else "biharmonic"
    if kind == "geodesic" and has_closed_form_log(manifold):
        return GeodesicPath(manifold)
    return PremetricPath(manifold, kind)


def _check_int(owner: str, name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


class PremetricPath:
    """Premetric conditional path ``d(x_t, x1) = κ(t)·d(x0, x1)`` (final class; module docstring).

    Args:
        manifold: the base manifold (``exp`` may be a retraction).
        kind: ``"biharmonic"`` (default), ``"diffusion"`` (spectral distances of the manifold) or
            ``"geodesic"`` (the manifold's exact ``dist``); ignored when ``distance`` is given.
        distance: a differentiable premetric ``f(x [B, D], y [B, D]) -> [B]`` replacing ``kind``.
        kappa: scheduler ``κ(t)`` on ``[B]`` tensors, decreasing from 1 to 0 (default ``1 − t``);
            its derivative is taken by autograd.
        steps: midpoint steps per path (``≥ 1``). corrections: Newton steps onto the level set (``≥ 0``).
        reach: the longest step, a multiple of the mean chord step ``‖x0 − x1‖/steps`` (default 3): near a
            critical point of ``d``, where ``∇d/‖∇d‖²`` blows up, steps are shortened (they stay on the
            gradient line; the point lags its level and the Newton corrections catch it up).
        fail_tol: relative level-set residual above which a pair is degenerate (default 1e-2).
        degenerate: ``"resample"`` (default), ``"mask"`` or ``"raise"``. max_resample: rounds of redrawing.

    Examples:
        >>> from gaugeflow.manifolds import Sphere
        >>> M = Sphere(2)
        >>> ps = PremetricPath(M, kind="geodesic").sample(M.random_base(8), M.random_base(8), torch.rand(8))
        >>> ps.x_t.shape, ps.u_t.shape
        (torch.Size([8, 3]), torch.Size([8, 3]))
    """

    def __init__(self, manifold: Manifold, kind: str = "biharmonic", *, distance: Optional[Distance] = None,
                 kappa: Optional[Callable[[torch.Tensor], torch.Tensor]] = None, steps: int = 8,
                 corrections: int = 3, reach: float = 3.0, fail_tol: float = 1e-2, degenerate: str = "resample",
                 max_resample: int = 4):
        if not isinstance(manifold, Manifold):
            raise TypeError(f"PremetricPath: expected a gaugeflow Manifold, got {type(manifold).__name__}")
        if distance is not None and not callable(distance):
            raise TypeError(f"PremetricPath: distance must be a callable f(x, y) -> [B], got {type(distance).__name__}")
        if kappa is not None and not callable(kappa):
            raise TypeError(f"PremetricPath: kappa must be a callable t -> κ(t), got {type(kappa).__name__}")
        if degenerate not in _MODES:
            raise ValueError(f"PremetricPath: degenerate must be one of {_MODES}, got {degenerate!r}")
        for name, value in (("fail_tol", fail_tol), ("reach", reach)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"PremetricPath: {name} must be a positive number, got {value!r}")
        self.manifold, self.kind, self.distance, self.kappa = manifold, kind, distance, kappa
        self.steps = _check_int("PremetricPath", "steps", steps, 1)
        self.corrections = _check_int("PremetricPath", "corrections", corrections, 0)
        self.max_resample = _check_int("PremetricPath", "max_resample", max_resample, 0)
        self.fail_tol, self.reach, self.degenerate = float(fail_tol), float(reach), degenerate
        if distance is None:
            self._check_kind(kind)
        # A manifold declaring "spectral" (a mesh) differentiates its embedding within the face plane and
        # retracts any ambient vector (exp = projx(x + u)): the two tangent projections per step, each a
        # closest-point query there, are skipped. The embedding's own surface check runs once, on x1.
        lean = distance is None and kind != "geodesic" and manifold.has("spectral")
        self._tangent = (lambda x, u: u) if lean else manifold.proju
        takes = getattr(manifold, "spectral_embedding", getattr(manifold, "spectral_distance", None))
        self._spectral_kw = {"check": False} if takes is not None and _accepts(takes, "check") else {}

    def _check_kind(self, kind: str) -> None:
        M = self.manifold
        if kind not in KINDS:
            raise ValueError(f"PremetricPath: kind must be one of {KINDS} (or pass distance=f), got {kind!r}")
        caps = getattr(M, "capabilities", None)
        if kind == "geodesic" and caps is not None and "dist" not in caps:
            raise ValueError(f"PremetricPath: {M} has no exact dist (capabilities {sorted(caps)}); "
                             f"use kind='biharmonic' or 'diffusion'")
        if kind != "geodesic" and not (hasattr(M, "spectral_embedding") or hasattr(M, "spectral_distance")):
            raise ValueError(f"PremetricPath: {M} has no spectral distance for kind={kind!r}; "
                             f"use kind='geodesic' (its exact dist) or pass distance=f")

    def __repr__(self) -> str:
        what = f"distance={getattr(self.distance, '__name__', 'custom')}" if self.distance else f"kind={self.kind!r}"
        return f"PremetricPath({self.manifold}, {what}, steps={self.steps}, corrections={self.corrections})"

    # ------------------------------------------------------------------ the premetric and its field
    def _premetric(self, x1: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """``x [B, D] -> d(x, x1) [B]`` (differentiable in ``x``) for the batch's end points ``x1``."""
        M = self.manifold
        if self.distance is not None:
            return lambda x: self.distance(x, x1)
        if self.kind == "geodesic":
            return lambda x: M.dist(x, x1)
        kw = self._spectral_kw
        if hasattr(M, "spectral_embedding"):
            with torch.no_grad():
                target = M.spectral_embedding(x1, kind=self.kind)  # checks that x1 lies on the surface
            return lambda x: _safe_norm(M.spectral_embedding(x, kind=self.kind, **kw) - target)
        return lambda x: M.spectral_distance(x, x1, kind=self.kind, **kw)

    def _field(self, d_of: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
               before: Optional[torch.Tensor] = None):
        """``(d [B], w = ∇d/‖∇d‖² [B, D])`` at ``x``: one forward and one backward pass, detached.

        Where ``∇d`` vanishes exactly away from ``x1`` mid-path (on a mesh: a point retracted onto a vertex,
        where the interpolated premetric's derivative is cut off), ``before`` (the previous field) carries on.
        """
        with torch.enable_grad():
            y = x.detach().requires_grad_(True)
            d = d_of(y)
            (g,) = torch.autograd.grad(d.sum(), y, allow_unused=True)
        g = torch.zeros_like(y) if g is None else self._tangent(x, g)
        sq = (g * g).sum(-1, keepdim=True)
        w = g / sq.clamp_min(torch.finfo(x.dtype).tiny ** 0.5)  # ∇d = 0 (x = x1, a critical point): w finite
        if before is not None:
            w = torch.where((sq == 0) & (d[:, None] > 0), before, w)
        return d.detach(), w.detach()

    def _kappa(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(κ(t), κ'(t))``, both ``[B]``."""
        if self.kappa is None:
            return 1 - t, -torch.ones_like(t)
        with torch.enable_grad():
            tt = t.detach().requires_grad_(True)
            k = self.kappa(tt)
            (dk,) = torch.autograd.grad(k.sum(), tt)
        return k.detach(), dk.detach()

    def simulate(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor):
        """Flow ``x0`` down the gradient lines of ``d(·, x1)`` to the level ``κ(t)·d(x0, x1)``.

        Args:
            x0, x1: ``[B, D]`` start and end points; t: ``[B]`` times.

        Returns:
            ``(x_t [B, D], u_t [B, D], residual [B])`` with ``residual = |d(x_t, x1) − κ d0| / d0``
            (``0`` where ``d0 = 0``; NaN where the simulation broke down, ``inf`` where ``∇d = 0`` left no
            direction to flow in).
        """
        M, d_of = self.manifold, self._premetric(x1)
        kap, dkap = self._kappa(t)
        d0, w = self._field(d_of, x0)
        goal = (kap * d0)[:, None]
        h = ((kap - 1) * d0 / self.steps)[:, None]  # per-pair step in the level D (≤ 0)
        x, w_last, floor = x0, w, torch.finfo(x0.dtype).eps ** 0.5
        cap = self.reach * (x0 - x1).norm(dim=-1, keepdim=True) / self.steps  # longest step (ambient length)
        for _ in range(self.steps):  # midpoint rule in D, each step retracted onto M
            _, wm = self._field(d_of, M.exp(x, _clamp(0.5 * h * w, 0.5 * cap)), w)
            x = M.exp(x, _clamp(h * self._tangent(x, wm), cap))
            d, w = self._field(d_of, x, w)
            w_last = torch.where(d[:, None] > floor * d0[:, None], w, w_last)  # the last direction away from x1
        for _ in range(self.corrections):  # Newton onto the level set d = κ d0
            x = M.exp(x, _clamp((goal - d[:, None]) * w, cap))
            d, w = self._field(d_of, x, w)
        near = d[:, None] <= floor * d0[:, None]  # at x1 (t ≈ 1) ∇d has no direction: the last one, projected
        w = torch.where(near, _carry(M, x, w_last), w)
        u = dkap[:, None] * d0[:, None] * w
        residual = (d - goal[:, 0]).abs() / torch.where(d0 > 0, d0, torch.ones_like(d0))
        stuck = (d0 > 0) & (w == 0).all(-1)  # ∇d = 0 exactly (a start at a critical point): no direction at all
        return x, u, torch.where(stuck, torch.full_like(residual, math.inf), residual)

    # ------------------------------------------------------------------ the public sampler
    def _check(self, x0, x1, t, host_checks: bool) -> torch.Tensor:
        M = self.manifold
        M.validate(x0, "x0")
        M.validate(x1, "x1")
        if x0.dim() != 2 or x0.shape != x1.shape:
            raise ValueError(f"PremetricPath: x0 and x1 must both have shape [B, {M.ambient_dim}], "
                             f"got {tuple(x0.shape)} and {tuple(x1.shape)}")
        if x0.dtype != x1.dtype:
            raise TypeError(f"PremetricPath: x0 and x1 must share a dtype, got {x0.dtype} and {x1.dtype}")
        if isinstance(t, bool) or not isinstance(t, (int, float, torch.Tensor)):
            raise TypeError(f"PremetricPath: t must be a float or a [B] tensor, got {type(t).__name__}")
        t = torch.as_tensor(t, dtype=x0.dtype, device=x0.device)
        t = t.expand(x0.shape[0]) if t.dim() == 0 else t
        if t.shape != x0.shape[:1]:
            raise ValueError(f"PremetricPath: t must have shape [] or [{x0.shape[0]}], got {tuple(t.shape)}")
        if host_checks and t.numel():
            lo, hi = torch.aminmax(t)
            if not (float(lo) >= 0 and float(hi) <= 1):  # written so that NaN fails
                raise ValueError("PremetricPath: times must lie in [0, 1]")
        return t

    def _failed(self, x_t: torch.Tensor, u_t: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        ok = torch.isfinite(x_t).all(-1) & torch.isfinite(u_t).all(-1) & (residual <= self.fail_tol)
        return ~ok

    def sample(self, x0: torch.Tensor, x1: torch.Tensor, t: Union[float, torch.Tensor],
               generator: Optional[torch.Generator] = None, *, host_checks: bool = True) -> PathSample:
        """Points and velocities of the premetric paths ``x0 → x1`` at times ``t`` (as
        :meth:`GeodesicPath.sample <gaugeflow.training.GeodesicPath.sample>`).

        Args:
            x0: ``[B, D]`` start points (base samples). x1: ``[B, D]`` end points (data).
            t: ``[B]`` times in ``[0, 1]`` (or one float for all).
            generator: random generator for redrawing degenerate start points.
            host_checks: ``False`` reads nothing back from the device: degenerate pairs are masked
                and the counts are 0-dim tensors.

        Returns:
            A :class:`~gaugeflow.training.PathSample` (unpacks as ``x_t, u_t``); ``n_cut`` counts the
            degenerate pairs of the first simulation.

        Raises:
            ValueError/TypeError: malformed inputs, or a degenerate pair with ``degenerate="raise"``.
        """
        t = self._check(x0, x1, t, host_checks)
        x_t, u_t, residual = self.simulate(x0, x1, t)
        bad = self._failed(x_t, u_t, residual)
        if not host_checks and self.degenerate != "raise":
            n = bad.sum()
            return self._finish(x_t, u_t, t, x0, x1, bad, n, torch.zeros_like(n), n)
        n_cut, n_resampled = int(bad.sum()), 0
        if n_cut and self.degenerate == "raise":
            raise ValueError(f"PremetricPath: {n_cut} of {len(x0)} pairs failed to reach the level set "
                             f"d(x_t, x1) = κ(t) d(x0, x1) within {self.fail_tol:g} (a start at a critical point of d?)")
        for _ in range(self.max_resample if self.degenerate == "resample" else 0):
            idx = bad.nonzero().flatten()
            if idx.numel() == 0:
                break
            fresh = self.manifold.random_base(idx.numel(), generator=generator, dtype=x0.dtype, device=x0.device)
            xs, us, rs = self.simulate(fresh, x1[idx], t[idx])
            x0, x_t, u_t = x0.index_copy(0, idx, fresh), x_t.index_copy(0, idx, xs), u_t.index_copy(0, idx, us)
            bad = bad.index_copy(0, idx, self._failed(xs, us, rs))
            n_resampled += idx.numel()
        return self._finish(x_t, u_t, t, x0, x1, bad, n_cut, n_resampled, int(bad.sum()))

    @staticmethod
    def _finish(x_t, u_t, t, x0, x1, bad, n_cut, n_resampled, n_masked) -> PathSample:
        mask = bad[:, None]
        x_t = torch.where(mask, x1, x_t)  # masked pairs: finite placeholders, never NaN in a weighted loss
        u_t = torch.where(mask, torch.zeros_like(u_t), u_t)
        return PathSample(x_t, u_t, t, x0, x1, ~bad, n_cut, n_resampled, n_masked)


def _accepts(fn: Callable, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _clamp(v: torch.Tensor, cap: torch.Tensor) -> torch.Tensor:
    """``v [B, D]`` shortened to ambient length at most ``cap [B, 1]``."""
    n = v.norm(dim=-1, keepdim=True)
    return v * torch.where(n > cap, cap / n.clamp_min(torch.finfo(v.dtype).tiny), torch.ones_like(n))


def _carry(M: Manifold, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``w`` (tangent at a nearby point) moved to ``T_xM`` by projection, its length kept. ``[B, D]``."""
    p = M.proju(x, w)
    scale = w.norm(dim=-1, keepdim=True) / p.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny ** 0.5)
    return p * scale


def _safe_norm(v: torch.Tensor) -> torch.Tensor:
    """``‖v‖`` over the last axis with a zero (not NaN) gradient at ``v = 0``."""
    sq = (v * v).sum(-1)
    pos = sq > 0
    return torch.where(pos, torch.where(pos, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))
