"""Even functions of an angle written as functions of its square, with Taylor branches.

Every helper takes ``θ²`` (or ``s²``), so it is smooth at 0 and never differentiates a square root
there; below ``small²`` the truncated series (error ``O(small⁶)``, below machine precision for
``small = tol("taylor", dtype)``) replaces the closed form, and the closed form is evaluated on a
dummy ``1`` in that region so both ``torch.where`` branches (and their gradients) stay finite.
Negative arguments (rounding of a quadratic form) are allowed in the series branch.
"""
from __future__ import annotations

import functools

import torch

__all__ = ["sin_over", "cos_sq", "sinh_over", "cosh_sq", "row_dot", "column"]


def _split(theta2: torch.Tensor, small: float) -> tuple[torch.Tensor, torch.Tensor]:
    is_small = theta2 < small * small
    th = torch.sqrt(torch.where(is_small, torch.ones_like(theta2), theta2))
    return is_small, th


def sin_over(theta2: torch.Tensor, small: float) -> torch.Tensor:
    """``sin θ / θ`` as a function of ``θ²``."""
    is_small, th = _split(theta2, small)
    return torch.where(is_small, 1 - theta2 / 6 + theta2 * theta2 / 120, torch.sin(th) / th)


def cos_sq(theta2: torch.Tensor, small: float) -> torch.Tensor:
    """``cos θ`` as a function of ``θ²``."""
    is_small, th = _split(theta2, small)
    return torch.where(is_small, 1 - theta2 / 2 + theta2 * theta2 / 24, torch.cos(th))


def sinh_over(theta2: torch.Tensor, small: float) -> torch.Tensor:
    """``sinh θ / θ`` as a function of ``θ²``."""
    is_small, th = _split(theta2, small)
    return torch.where(is_small, 1 + theta2 / 6 + theta2 * theta2 / 120, torch.sinh(th) / th)


def cosh_sq(theta2: torch.Tensor, small: float) -> torch.Tensor:
    """``cosh θ`` as a function of ``θ²``."""
    is_small, th = _split(theta2, small)
    return torch.where(is_small, 1 + theta2 / 2 + theta2 * theta2 / 24, torch.cosh(th))


@functools.lru_cache(maxsize=64)
def column(values: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The constant column ``values`` as a ``[len(values), 1]`` tensor, built once per dtype and device.

    (Built outside inference mode, so a product with it can be differentiated later.)
    """
    with torch.inference_mode(False):
        return torch.tensor(values, dtype=dtype, device=device).unsqueeze(-1)


def row_dot(a: torch.Tensor, b: torch.Tensor, weights: tuple = ()) -> torch.Tensor:
    """``Σ_i w_i a_i b_i`` over the last axis, kept: ``[..., D] -> [..., 1]`` (``w_i = 1`` by default).

    Written as ``(a * b) @ w``: on CPU a matrix–vector product is about half the time of
    ``sum(-1)`` on a short last axis (``[1024, 3]``), which the fused paths reduce several times.
    """
    w = column(weights or (1.0,) * a.shape[-1], a.dtype, a.device)
    return (a * b) @ w
