"""Sampling and likelihoods: ODE solvers on manifolds, ``sample`` and ``log_prob`` (docs/math.md §7)."""
from .divergence import HUTCHINSON_FROM_DIM, default_divergence, draw_probes, exact_divergence, hutchinson_divergence
from .ode import LogProbInfo, SampleInfo, log_prob, sample
from .solvers import FIXED_SOLVERS, RK4, Euler, Midpoint, RungeKutta, SolverError, isolate_failures, normal_displacement

__all__ = [
    "sample",
    "log_prob",
    "SampleInfo",
    "LogProbInfo",
    "SolverError",
    "isolate_failures",
    "FIXED_SOLVERS",
    "RungeKutta",
    "Euler",
    "Midpoint",
    "RK4",
    "exact_divergence",
    "hutchinson_divergence",
    "draw_probes",
    "default_divergence",
    "HUTCHINSON_FROM_DIM",
    "normal_displacement",
]
