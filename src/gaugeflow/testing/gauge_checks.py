"""Gauge covariance of the gauge-model construction (opt-in conformance check).

A constant gauge transformation ``g ∈ SO(k)`` acts on the fibre fields of a model:

* :class:`~gaugeflow.models.GaugeFlow`: ``v_s ↦ g v_s``, ``A_μ ↦ g A_μ g⁻¹`` (``Ad_g`` on the
  ``so(k)`` coordinates of every component ``μ``), ``W ↦ W g⁻¹`` in ``Π_x``;
* :class:`~gaugeflow.models.HigherGaugeFlow`: the graded representation ``ρ_L(g)`` on ``L`` —
  for ``so_crossed_module(k)``: ``Ad_g`` on ``L0`` and on the ``so(k)`` part of ``L1``, identity on
  the central scalar; for ``string_lie2(k)``: ``Ad_g`` on ``L0``, identity on ``L1 = ℝ`` — applied to
  the connection and to every graded field, and ``W ↦ W ρ_L(g)⁻¹``;
* :class:`~gaugeflow.models.TensorGaugeFlow`: as GaugeFlow (``so(k)``) or HigherGaugeFlow (an
  L∞-algebra), on every channel of the rank-``r`` field; the scalar factor covectors are invariant.

Because the brackets are ``Ad``-equivariant and ``Π`` absorbs ``g⁻¹``, the velocity ``V(x, t)`` must
not change. The transformation is applied to the *output layers* of the networks (their weights and
biases are rotated), so the check exercises the real construction, not a re-implementation.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from .._numerics import tol

__all__ = ["GaugeReport", "check_gauge_covariance", "random_rotation", "adjoint_matrix", "graded_adjoint_matrix"]


@dataclass(frozen=True)
class GaugeReport:
    """Result of :func:`check_gauge_covariance`. ``bool(report)`` is ``report.passed``.

    Attributes:
        model: model class name.
        deviation: ``max |V'(x, t) − V(x, t)| / max(1, max |V(x, t)|)`` over the test points
            (absolute for velocities of order one, relative for large ones).
        field_change: ``max |v_s' − v_s|`` of the first fibre field (shows the transformation acted).
        gauge_scale: ``max |α(t) Π_x(G)|``, the size of the gauge term (shows it matters in ``V``).
        tolerance: the threshold ``deviation`` is compared with.
        n, dtype: number of test points and the dtype of the computation.
    """

    model: str
    deviation: float
    field_change: float
    gauge_scale: float
    tolerance: float
    n: int
    dtype: torch.dtype

    @property
    def passed(self) -> bool:
        return self.deviation <= self.tolerance

    def __bool__(self) -> bool:
        return self.passed

    def __float__(self) -> float:
        return self.deviation

    def raise_if_failed(self) -> "GaugeReport":
        """Raise ``AssertionError`` if the velocity changed by more than the tolerance."""
        if not self.passed:
            raise AssertionError(f"{self.model}: not gauge covariant: {self}")
        return self

    def __str__(self) -> str:
        return (f"{self.model}: max |ΔV| / max(1, |V|) = {self.deviation:.3e} (tolerance {self.tolerance:.1e}), "
                f"max |Δv_s| = {self.field_change:.3e}, max |α Π(G)| = {self.gauge_scale:.3e}, n={self.n}, {self.dtype}")


def random_rotation(k: int, generator: Optional[torch.Generator] = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A Haar-random ``g ∈ SO(k)`` (QR of a Gaussian matrix with the sign fix). ``[k, k]``."""
    q, r = torch.linalg.qr(torch.randn(k, k, generator=generator, dtype=dtype))
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def adjoint_matrix(g_alg, g: torch.Tensor) -> torch.Tensor:
    """Matrix of ``Ad_g: ξ ↦ vee(g hat(ξ) gᵀ)`` on ``so(k)`` coordinates. ``[dim, dim]``."""
    basis = g_alg.basis(dtype=g.dtype, device=g.device)  # [dim, k, k]; a checker, not a hot path
    return g_alg.vee(g @ basis @ g.T).T


def graded_adjoint_matrix(algebra, g: torch.Tensor) -> torch.Tensor:
    """``ρ_L(g)`` on the flat graded coordinates of a shipped algebra. ``[dim L, dim L]``.

    Raises:
        TypeError: the algebra is not one whose SO(k) action is known (pass ``representation=``).
    """
    from ..algebra import SoCrossedModule, StringLie2

    if isinstance(algebra, SoCrossedModule):
        ad = adjoint_matrix(algebra.g, g)
        return torch.block_diag(ad, ad, torch.ones(1, 1, dtype=g.dtype, device=g.device))
    if isinstance(algebra, StringLie2):
        return torch.block_diag(adjoint_matrix(algebra.g, g), torch.ones(1, 1, dtype=g.dtype, device=g.device))
    raise TypeError(
        f"graded_adjoint_matrix: no known SO(k) action on {algebra!r}; pass representation=callable(g) -> [dim L, dim L]"
    )


@torch.no_grad()
def _act_on_output(layer: nn.Linear, rep: torch.Tensor, blocks: int = 1) -> None:
    """Left-multiply each of ``blocks`` consecutive output blocks of ``layer`` by ``rep``."""
    W = layer.weight.unflatten(0, (blocks, rep.shape[0]))
    layer.weight.copy_(torch.einsum("ab,mbh->mah", rep, W).flatten(0, 1))
    b = layer.bias.unflatten(0, (blocks, rep.shape[0]))
    layer.bias.copy_(torch.einsum("ab,mb->ma", rep, b).flatten())


def _transform(model: nn.Module, g: torch.Tensor, representation: Optional[Callable]) -> tuple[nn.Module, list]:
    """A gauge-transformed deep copy of ``model`` and the list of its fibre-field networks."""
    from ..models import GaugeFlow, HigherGaugeFlow, TensorGaugeFlow

    D = model.manifold.ambient_dim
    new = copy.deepcopy(model)
    blocks = D * model.channels if isinstance(model, TensorGaugeFlow) else D
    if isinstance(model, GaugeFlow) or (isinstance(model, TensorGaugeFlow) and model.lie):
        rep_fibre, rep_conn = g, adjoint_matrix(model.group if isinstance(model, GaugeFlow) else model.algebra, g)
        _act_on_output(new.section.out_layer, rep_fibre)
        fields = [(model.section, new.section)]
    elif isinstance(model, (HigherGaugeFlow, TensorGaugeFlow)):
        rep = (representation or (lambda h: graded_adjoint_matrix(model.algebra, h)))(g)
        rep_fibre = rep_conn = rep
        fields = list(zip(model.graded_fields, new.graded_fields))
        for f in new.graded_fields:
            _act_on_output(f.out_layer, rep)
    else:
        raise TypeError(f"_transform: expected a GaugeFlow, HigherGaugeFlow or TensorGaugeFlow, got {type(model).__name__}")
    _act_on_output(new.connection.out_layer, rep_conn, blocks=blocks)
    with torch.no_grad():
        new.projection.weight.copy_(new.projection.weight @ torch.linalg.inv(rep_fibre))
    return new, fields


def check_gauge_covariance(
    model: nn.Module,
    n: int = 64,
    seed: int = 0,
    atol: Optional[float] = None,
    g: Optional[torch.Tensor] = None,
    representation: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    raise_on_failure: bool = True,
) -> GaugeReport:
    """Check that a constant gauge transformation of the fibre fields leaves ``V(x, t)`` unchanged.

    The model is copied and evaluated in float64 (the original is not modified).

    Args:
        model: a ``GaugeFlow``, ``HigherGaugeFlow`` or ``TensorGaugeFlow``.
        n: number of random test points ``x ~ p0`` and times ``t ~ U(0, 1)``.
        seed: seed of the points, times and (if not given) ``g``.
        atol: tolerance on the deviation ``max |ΔV| / max(1, max |V|)``; default ``tol("point", float64)`` = 1e-10.
        g: a ``[k, k]`` rotation; default Haar-random.
        representation: ``g -> ρ_L(g)`` for user-defined algebras (L∞ models only).
        raise_on_failure: raise ``AssertionError`` when the deviation exceeds ``atol``.

    Returns:
        A :class:`GaugeReport` (``float(report)`` is the maximal deviation).

    Examples:
        >>> from gaugeflow.manifolds import Sphere
        >>> from gaugeflow.models import GaugeFlow
        >>> check_gauge_covariance(GaugeFlow(Sphere(2), hidden=16)).passed
        True
    """
    from ..models import GaugeFlow, HigherGaugeFlow, TensorGaugeFlow

    if not isinstance(model, (GaugeFlow, HigherGaugeFlow, TensorGaugeFlow)):
        raise TypeError(f"check_gauge_covariance: expected a gauge model (GaugeFlow or HigherGaugeFlow or "
                        f"TensorGaugeFlow), got {type(model).__name__}")
    dtype = torch.float64
    gen = torch.Generator().manual_seed(seed)
    base = copy.deepcopy(model).to(dtype)
    if g is None:
        k = base.k if isinstance(base, (GaugeFlow, TensorGaugeFlow)) else getattr(getattr(base.algebra, "g", None), "k", None)
        if k is None:
            raise TypeError(f"check_gauge_covariance: cannot infer k for {base.algebra!r}; pass g= (and representation=)")
        g = random_rotation(k, gen, dtype)
    g = g.to(dtype)
    new, fields = _transform(base, g, representation)
    x = base.manifold.random_base(n, generator=gen, dtype=dtype)
    t = torch.rand(n, generator=gen, dtype=dtype)
    with torch.no_grad():
        v = base(x, t)
        dev = float((new(x, t) - v).abs().max()) / max(1.0, float(v.abs().max()))
        h, tcol = base.inputs(x, t)
        change = float((fields[0][1](h) - fields[0][0](h)).abs().max())
        alpha = base.alpha(x, t) if isinstance(base, TensorGaugeFlow) else base.alpha(tcol)
        scale = float((alpha * base.gauge_term(x, h)).abs().max())
    atol = tol("point", dtype) if atol is None else float(atol)
    report = GaugeReport(type(model).__name__, dev, change, scale, atol, n, dtype)
    return report.raise_if_failed() if raise_on_failure else report
