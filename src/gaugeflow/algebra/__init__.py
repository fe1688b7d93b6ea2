"""Lie algebras and 2-term L∞-algebras in coordinates.

* :class:`so` — ``so(k)`` with ``hat``/``vee``/``bracket``/``act`` (docs/math.md §2).
* :func:`bracket_sums` — batched sums of ``so(k)`` brackets ``Σ s [x_a, y_b]`` as one differentiable
  PyTorch function (hat, batched products, coordinates; any device, any order of derivative).
* :class:`GradedSpace` — graded vector spaces with flat coordinates, degree 0 first.
* :class:`LInfinityAlgebra` (abstract), :class:`TwoTermLInfinity` (user-defined from component
  maps), and the shipped :func:`so_crossed_module` and :func:`string_lie2` (docs/math.md §3). The sign
  convention is documented once, in :mod:`gaugeflow.algebra.linf`.
"""
from .bracket_sums import bracket_sums
from .graded import GradedSpace
from .lie2 import SoCrossedModule, StringLie2, so_crossed_module, string_lie2
from .linf import LInfinityAlgebra, TwoTermLInfinity
from .orthogonal import so

__all__ = [
    "so",
    "bracket_sums",
    "GradedSpace",
    "LInfinityAlgebra",
    "TwoTermLInfinity",
    "SoCrossedModule",
    "StringLie2",
    "so_crossed_module",
    "string_lie2",
]
