"""Dtype-keyed numerical tolerances: the single place where gaugeflow's epsilons live.

Every Taylor-branch switch, clamp and ``check_*`` tolerance in the library reads from
:data:`TOLERANCES` through :func:`tol`, so that float32 and float64 behave consistently and a
user can audit (or tighten) all of them in one table.
"""
from __future__ import annotations

import math

import torch

__all__ = ["TOLERANCES", "tol", "check_float", "check_last_dim", "broadcast_shapes"]

#: kind -> {dtype: value}
#: ``taylor``: below this |θ| a closed form like sin(θ)/θ switches to its Taylor series.
#:   Chosen ~ eps**(1/4) so that the truncated 4th-order term is below machine precision.
#: ``point``: absolute tolerance of ``check_point`` / ``check_tangent``.
#: ``cut``: distance to the cut locus (in radians) below which a pair is "at the cut locus".
#: ``prop``: tolerance used by property tests for identities like exp(log(y)) = y.
TOLERANCES: dict[str, dict[torch.dtype, float]] = {
    "taylor": {torch.float16: 1e-1, torch.bfloat16: 1e-1, torch.float32: 1e-2, torch.float64: 1e-4},
    "point": {torch.float16: 1e-2, torch.bfloat16: 1e-2, torch.float32: 1e-4, torch.float64: 1e-10},
    "cut": {torch.float16: 1e-2, torch.bfloat16: 1e-2, torch.float32: 1e-3, torch.float64: 1e-6},
    "prop": {torch.float16: 1e-1, torch.bfloat16: 1e-1, torch.float32: 1e-4, torch.float64: 1e-9},
}


def tol(kind: str, dtype: torch.dtype) -> float:
    """Return the tolerance ``kind`` (a key of :data:`TOLERANCES`) for ``dtype``."""
    try:
        table = TOLERANCES[kind]
    except KeyError:
        raise KeyError(f"unknown tolerance kind {kind!r}; expected one of {sorted(TOLERANCES)}") from None
    return table.get(dtype, table[torch.float32])


def check_float(x: torch.Tensor, what: str = "x") -> None:
    """Raise TypeError unless ``x`` is a floating-point tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{what}: expected a floating-point tensor (float32 or float64), got dtype {x.dtype}")


def check_last_dim(x: torch.Tensor, size: int, what: str, manifold: str) -> None:
    """Raise ValueError unless the last axis of ``x`` has length ``size``."""
    if x.dim() == 0 or x.shape[-1] != size:
        got = tuple(x.shape)
        raise ValueError(
            f"{manifold}: {what} must have last axis of size {size} (ambient dimension), got shape {got}"
        )


def broadcast_shapes(*shapes) -> torch.Size:
    """``torch.broadcast_shapes`` with a fast path for the common case of equal shapes.

    ``torch.broadcast_shapes`` goes through the symbolic-shape machinery of ``torch._refs`` and
    costs more than a small tensor operation (~10× an elementwise add on a ``[1024, 8]`` tensor);
    it sits on the hot path of ``inner``/``proju`` and the L∞ brackets, so equal shapes (nearly every
    call) short-circuit here. Same result and the same errors as torch's for everything else.
    """
    first = shapes[0]
    for shape in shapes[1:]:
        if shape != first:
            return torch.broadcast_shapes(*shapes)
    return torch.Size(first)


LOG_2PI = math.log(2 * math.pi)
