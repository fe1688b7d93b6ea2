"""Sampling by integrating a flow model, and exact log-likelihoods (docs/math.md §7).

* :func:`sample` integrates ``dx/dt = V(x, t)`` from ``t_span[0]`` to ``t_span[1]``.
* :func:`log_prob` integrates the augmented state ``(x, a)`` with ``da/dt = div_g V(x, t)``
  *backwards* from ``t = 1`` (``a = 0``) to ``t = 0``; by the instantaneous change of variables

      log p1(x1) = log p0(x0) − ∫_0^1 div_g V(x_t, t) dt = log p0(x0) + a(0).

Both accept the fixed-step geometric solvers (``"euler"``, ``"midpoint"``, ``"rk4"``) and every
torchdiffeq method (``"dopri5"``, ``"bosh3"``, …; ambient coordinates with the field evaluated at
``projx(y)``, one ``projx`` at the end whose displacement is reported). Failures raise
:class:`SolverError`; no number is ever returned from a failed solve.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import nn

from ..geometry.manifold import Manifold
from .divergence import DIVERGENCES, PROBES, default_divergence, draw_probes, exact_divergence, hutchinson_divergence
from .solvers import FIXED_SOLVERS, SolverError, integrate_fixed, integrate_torchdiffeq, normal_displacement
from .solvers import is_fixed_grid, torchdiffeq_methods

__all__ = ["sample", "log_prob", "SampleInfo", "LogProbInfo", "DEFAULT_METHOD", "DEFAULT_STEPS"]

#: Default solver of :func:`sample`, :func:`log_prob` and ``gaugeflow evaluate`` / ``sample``: rk4 with 8
#: steps (32 field evaluations), the setting with the fewest evaluations whose test NLL was within 0.01 nat
#: of the converged NLL (dopri5, tolerance 1e-9) in *every* run of the study ``docs/results/nfe.md``
#: (small flows on real data, S² and T², with and without OT coupling; the next cheaper settings, rk4 with
#: 4 steps and midpoint with 8, missed by up to 0.06 nat). Sharper densities need more steps: check a
#: result against ``steps=2 * steps`` or ``method="dopri5"``.
DEFAULT_METHOD, DEFAULT_STEPS = "rk4", 8


@dataclass(frozen=True)
class SampleInfo:
    """Diagnostics of a solve.

    Attributes:
        method: solver name; retraction: ``"exp"``/``"projx"`` for fixed-step solvers, ``None`` else.
        steps: number of fixed steps (``None`` for adaptive torchdiffeq methods).
        nfe: number of velocity-field evaluations.
        projection_error_max, projection_error_mean: distance moved by the final ``projx``
            (see :func:`~gaugeflow.sampling.solvers.normal_displacement`).
    """

    method: str
    retraction: Optional[str]
    steps: Optional[int]
    nfe: int
    projection_error_max: float
    projection_error_mean: float


@dataclass(frozen=True)
class LogProbInfo(SampleInfo):
    """:class:`SampleInfo` plus the likelihood terms (``[B]`` tensors).

    Attributes:
        x0: ``[B, D]`` base points the data were mapped to.
        base_log_prob: ``log p0(x0)``.
        delta: ``−∫_0^1 div_g V dt`` (so ``log p1 = base_log_prob + delta``).
        divergence: ``"exact"`` or ``"hutchinson"``.
    """

    x0: torch.Tensor = None
    base_log_prob: torch.Tensor = None
    delta: torch.Tensor = None
    divergence: str = "exact"


def _resolve_manifold(model: nn.Module, manifold: Optional[Manifold], who: str) -> Manifold:
    if not callable(model):
        raise TypeError(f"{who}: model must be callable as model(x, t), got {type(model).__name__}")
    manifold = getattr(model, "manifold", None) if manifold is None else manifold
    if not isinstance(manifold, Manifold):
        raise TypeError(f"{who}: give a model with a `manifold` attribute or manifold=<Manifold>, got {type(manifold).__name__}")
    return manifold


def _check_inputs(who: str, model: nn.Module, x: torch.Tensor, atol, rtol) -> None:
    """Front-door checks that turn torch's own errors into one line: empty batch, dtype/device of the
    points against the model's parameters (float32/float64 only), and positive finite tolerances."""
    if isinstance(x, torch.Tensor) and x.dim() >= 1 and x.shape[0] == 0:
        raise ValueError(f"{who}: empty batch (points of shape {tuple(x.shape)}); expected at least one point")
    param = next(iter(model.parameters()), None) if isinstance(model, nn.Module) else None
    if param is not None and param.is_floating_point():
        if param.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{who}: the model's parameters are {param.dtype}; gaugeflow models run in float32 or "
                            f"float64 (convert with model.float() or model.double())")
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != param.dtype:
            raise TypeError(f"{who}: the points are {x.dtype} but the model's parameters are {param.dtype}; "
                            f"convert the points with .to({param.dtype}) or the model with .to({x.dtype})")
        if isinstance(x, torch.Tensor) and x.device != param.device:
            raise ValueError(f"{who}: the points are on {x.device} but the model is on {param.device}")
    for name, value in (("atol", atol), ("rtol", rtol)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise ValueError(f"{who}: {name} must be a positive finite number, got {value!r}")


def _check_options(who: str, manifold: Manifold, x: torch.Tensor, steps: int, method: str, t_span: Sequence[float]):
    manifold.check_point(x)
    if x.dim() != 2:
        raise ValueError(f"{who}: points must have shape [B, {manifold.ambient_dim}], got {tuple(x.shape)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"{who}: steps must be a positive integer, got {steps!r}")
    known = tuple(FIXED_SOLVERS) + torchdiffeq_methods()
    if method not in known:
        raise ValueError(f"{who}: unknown method {method!r}; expected one of {known}")
    if len(t_span) != 2 or not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in t_span):
        raise ValueError(f"{who}: t_span must be two numbers (t_start, t_end), got {t_span!r}")
    if t_span[0] == t_span[1]:
        raise ValueError(f"{who}: t_span must have distinct end points, got {t_span!r}")
    return float(t_span[0]), float(t_span[1])


def _solve(field, manifold, x, acc, t0, t1, method, steps, retraction, atol, rtol, options):
    """Run the chosen solver; returns ``(x_on_M, acc, SampleInfo)``."""
    count = [0]

    def counted(t, y):
        count[0] += 1
        return field(t, y)

    if method in FIXED_SOLVERS:
        solver = FIXED_SOLVERS[method](retraction)
        y, acc = integrate_fixed(solver, counted, manifold, x, acc, t0, t1, steps)
        retraction, n_steps = solver.retraction, steps
    else:
        if retraction is not None:
            raise ValueError(f"retraction applies to the fixed-step solvers {tuple(FIXED_SOLVERS)}, not to {method!r}")
        y, acc = integrate_torchdiffeq(counted, manifold, x, acc, t0, t1, method, steps, atol, rtol, options)
        n_steps = steps if is_fixed_grid(method) else None
    moved = normal_displacement(manifold, y)
    worst, mean = torch.stack([moved.max(), moved.mean()]).tolist()  # one host sync for both figures
    info = SampleInfo(method, retraction, n_steps, count[0], worst, mean)
    return manifold.projx(y), acc, info


def sample(
    model: nn.Module,
    x0: torch.Tensor,
    steps: int = DEFAULT_STEPS,
    method: str = DEFAULT_METHOD,
    t_span: Sequence[float] = (0.0, 1.0),
    return_info: bool = False,
    *,
    retraction: Optional[str] = None,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    options: Optional[dict] = None,
    manifold: Optional[Manifold] = None,
    enable_grad: bool = False,
):
    """Push base points through the flow: solve ``dx/dt = V(x, t)`` over ``t_span``.

    Args:
        model: ``model(x, t) -> [B, D]`` tangent velocities, with a ``manifold`` attribute.
        x0: ``[B, D]`` starting points on the manifold.
        steps: number of steps of a fixed-step method (and of fixed-grid torchdiffeq methods). Default
            :data:`DEFAULT_STEPS` = 8 with ``method`` :data:`DEFAULT_METHOD` = ``"rk4"`` (32 evaluations):
            the cheapest setting within 0.01 nat of the converged NLL in every run of docs/results/nfe.md.
        method: ``"euler"``, ``"midpoint"``, ``"rk4"`` (geometric, fixed step) or a torchdiffeq method.
        t_span: ``(t_start, t_end)``; ``(1, 0)`` integrates backwards.
        return_info: also return a :class:`SampleInfo`.
        retraction: ``"exp"`` or ``"projx"`` for fixed-step solvers (default: the solver's own).
        atol, rtol, options: passed to torchdiffeq for adaptive methods.
        manifold: overrides ``model.manifold``.
        enable_grad: keep the autograd graph (default: integrate under ``torch.no_grad``).

    Returns:
        ``[B, D]`` points on the manifold at ``t_end`` (and the info).

    Raises:
        ValueError/TypeError: invalid inputs. SolverError: the solve failed.

    Examples:
        >>> from gaugeflow.manifolds import Sphere
        >>> from gaugeflow.models import PlainFlow
        >>> M = Sphere(2)
        >>> sample(PlainFlow(M), M.random_base(16), steps=10).shape
        torch.Size([16, 3])
    """
    manifold = _resolve_manifold(model, manifold, "sample")
    _check_inputs("sample", model, x0, atol, rtol)
    t0, t1 = _check_options("sample", manifold, x0, steps, method, t_span)

    def field(t, x):
        return model(x, t), None

    with torch.set_grad_enabled(enable_grad):
        x1, _, info = _solve(field, manifold, x0, None, t0, t1, method, steps, retraction, atol, rtol, options)
    return (x1, info) if return_info else x1


def log_prob(
    model: nn.Module,
    x1: torch.Tensor,
    steps: int = DEFAULT_STEPS,
    method: str = DEFAULT_METHOD,
    divergence: Optional[str] = None,
    n_probes: int = 1,
    generator: Optional[torch.Generator] = None,
    return_info: bool = False,
    *,
    probe: str = "rademacher",
    retraction: Optional[str] = None,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    options: Optional[dict] = None,
    manifold: Optional[Manifold] = None,
):
    """Log-density of the flow's ``t = 1`` marginal at ``x1`` (w.r.t. the Riemannian volume).

    Args:
        model: flow model with a ``manifold`` attribute (its ``p0`` is ``manifold.base_log_prob``).
        x1: ``[B, D]`` points on the manifold.
        steps, method, retraction, atol, rtol, options, manifold: as in :func:`sample` (default rk4 with 8
            steps, chosen on the evidence of docs/results/nfe.md; see :data:`DEFAULT_STEPS`).
        divergence: ``"exact"`` (one backward row per dimension ``n`` of the manifold, per evaluation)
            or ``"hutchinson"`` (one row per probe; unbiased, with per-point noise). ``None`` (the
            default) picks by the manifold's dimension only
            (:func:`~gaugeflow.sampling.divergence.default_divergence`): **exact below
            ``n = HUTCHINSON_FROM_DIM`` (16), Hutchinson with ``n_probes`` probes from it on**, where
            exact's cost (``∝ n``) makes Hutchinson the more efficient estimator of a test-set NLL
            (docs/performance.md, "How cost grows with dimension"). An explicit value always wins; pass
            ``"exact"`` for noise-free per-point densities in high dimension. ``info.divergence``
            says which was used.
        n_probes: Hutchinson probes per point (fixed along the solve).
        generator: random generator for the probes.
        return_info: also return a :class:`LogProbInfo`.
        probe: ``"rademacher"`` or ``"gaussian"`` Hutchinson probes.

    Returns:
        ``[B]`` log-densities (detached), and the info if ``return_info``.

    Raises:
        ValueError/TypeError: invalid inputs. SolverError: the solve failed or produced non-finite values.
    """
    manifold = _resolve_manifold(model, manifold, "log_prob")
    _check_inputs("log_prob", model, x1, atol, rtol)
    _check_options("log_prob", manifold, x1, steps, method, (0.0, 1.0))
    divergence = default_divergence(manifold) if divergence is None else divergence
    if divergence not in DIVERGENCES:
        raise ValueError(f"log_prob: divergence must be one of {DIVERGENCES} or None (by dimension), got {divergence!r}")
    if isinstance(n_probes, bool) or not isinstance(n_probes, int) or n_probes < 1:
        raise ValueError(f"log_prob: n_probes must be a positive integer, got {n_probes!r}")
    if probe not in PROBES:
        raise ValueError(f"log_prob: probe must be one of {PROBES}, got {probe!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"log_prob: generator must be a torch.Generator or None, got {type(generator).__name__}")
    probes = draw_probes(n_probes, x1, probe, generator) if divergence == "hutchinson" else None

    def field(t, x):
        bound = lambda y: model(y, t)  # noqa: E731 - the time is fixed per evaluation
        if probes is None:
            return exact_divergence(bound, manifold, x)
        return hutchinson_divergence(bound, manifold, x, probes)

    acc = torch.zeros(x1.shape[0], dtype=x1.dtype, device=x1.device)
    with torch.no_grad():
        x0, delta, info = _solve(field, manifold, x1, acc, 1.0, 0.0, method, steps, retraction, atol, rtol, options)
        base = manifold.base_log_prob(x0)
    lp = base + delta
    if not bool(torch.isfinite(lp).all()):
        raise SolverError("log_prob: non-finite log-density; the base density is zero or undefined at some x0")
    if return_info:
        return lp, LogProbInfo(**vars(info), x0=x0, base_log_prob=base, delta=delta, divergence=divergence)
    return lp
