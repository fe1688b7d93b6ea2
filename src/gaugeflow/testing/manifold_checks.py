"""``check_manifold``: the whole conformance property suite for any gaugeflow Manifold, in one call.

Examples:
    >>> import torch
    >>> from gaugeflow.manifolds import Sphere
    >>> from gaugeflow.testing import check_manifold
    >>> report = check_manifold(Sphere(2), max_examples=5)   # raises ManifoldCheckError on failure
    >>> report.worst("exp_log", torch.float64) <= 1
    True

Properties (names used in reports): ``projx``, ``proju``, ``exp_log``, ``log_exp``, ``dist``,
``triangle``, ``transp``, ``batched``, ``geodesic`` (hypothesis-driven, on points, tangent vectors
and near-degenerate pairs from :mod:`gaugeflow.testing.strategies`), and ``random_base``,
``base_density`` (Monte Carlo integral of ``exp(base_log_prob)``), ``bad_input``, ``gradients`` and
``cut_screen`` (``cut_locus_screen`` flags every pair ``cut_locus_mask`` flags, on and next to the cut
locus) (deterministic), ``exp`` (retraction axioms: finite, on the manifold, ``exp(x, 0) = x``) and
``premetric`` (``spectral_distance`` is a metric). Each measurement is an error divided by its tolerance; the report keeps the
largest ratio per property and dtype, and a ratio above 1 fails. The geometry properties run on any
manifold; the base-distribution properties (``random_base``, ``base_density``) only when it has a
base distribution (``M.base``, or ``base=`` given here) — otherwise they are listed in
``CheckReport.skipped``.

Capabilities: a property that needs an operation the manifold does not offer in closed form
(``Manifold.capabilities``; e.g. a triangle mesh has no ``log``) is not run; its result is kept in
the report, marked not applicable with the capability it needs (``PropertyResult.not_applicable``,
``CheckReport.not_applicable``, shown as ``n/a`` by ``str(report)``). Which property needs what:
:data:`REQUIRES`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import torch
from hypothesis import HealthCheck, Phase, given, settings, target
from hypothesis import strategies as st

from ..geometry.manifold import Manifold
from ._manifold_properties import HYPOTHESIS_PROPERTIES, REQUIRES
from ._manifold_deterministic import BASE_PROPERTIES, DETERMINISTIC_PROPERTIES
from .strategies import PAIR_KINDS

__all__ = ["check_manifold", "ManifoldCheckError", "CheckReport", "PropertyResult", "PROPERTIES", "REQUIRES"]

#: every property name, in the order they run
PROPERTIES = tuple(HYPOTHESIS_PROPERTIES) + tuple(DETERMINISTIC_PROPERTIES)


class ManifoldCheckError(AssertionError):
    """A manifold failed :func:`check_manifold`; the message lists each failed property with its
    largest violation, and ``.report`` holds the full :class:`CheckReport`."""

    def __init__(self, message: str, report: "CheckReport"):
        super().__init__(message)
        self.report = report


class _Violation(AssertionError):
    """Raised inside one example when a measurement exceeds its tolerance."""


@dataclass
class PropertyResult:
    """Outcome of one property in one dtype: ``worst`` is the largest error/tolerance ratio seen.

    ``not_applicable`` is non-empty (the reason: the capability it needs) when the property was not
    run because the manifold lacks a capability (see :data:`REQUIRES`).
    """

    name: str
    dtype: torch.dtype
    worst: float = 0.0
    detail: str = ""
    failed: bool = False
    error: str = ""
    where: str = ""
    not_applicable: str = ""

    def __str__(self) -> str:
        if self.not_applicable:
            return f"n/a  {self.name:12} {str(self.dtype).replace('torch.', ''):8} {self.not_applicable}"
        status = "FAIL" if self.failed else "ok"
        text = f"{status:4} {self.name:12} {str(self.dtype).replace('torch.', ''):8} worst ratio {self.worst:9.3e}"
        text += (f"  [{self.detail}]" if self.detail else "") + (f"\n       {self.error}" if self.error else "")
        return text + (f"\n       at {self.where}" if self.where else "")


@dataclass
class CheckReport:
    """All :class:`PropertyResult` of one :func:`check_manifold` run."""

    manifold: str
    results: list[PropertyResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[PropertyResult]:
        return [r for r in self.results if r.failed]

    @property
    def not_applicable(self) -> dict[str, str]:
        """``{property: reason}`` for the properties not run for lack of a capability."""
        return {r.name: r.not_applicable for r in self.results if r.not_applicable}

    def worst(self, name: str, dtype: torch.dtype) -> float:
        """Largest error/tolerance ratio of property ``name`` in ``dtype``."""
        for r in self.results:
            if r.name == name and r.dtype == dtype:
                return r.worst
        raise KeyError(f"no result for property {name!r} in {dtype}; ran {[(r.name, r.dtype) for r in self.results]}")

    def __str__(self) -> str:
        skipped = f"\n  skipped (no base distribution): {', '.join(self.skipped)}" if self.skipped else ""
        return f"check_manifold({self.manifold}):\n" + "\n".join(f"  {r}" for r in self.results) + skipped


class _Meter:
    """Callable ``meter(label, error, tolerance)`` recording the worst ratio and raising above 1."""

    def __init__(self, result: PropertyResult, guided: bool):
        self.result, self.guided = result, guided
        self.draws: list = []  # (label, value) drawn in the current hypothesis example (see _Recorder)

    def __call__(self, label: str, error, tolerance) -> None:
        err = torch.as_tensor(error, dtype=torch.float64).detach().cpu().reshape(-1)
        tl = torch.as_tensor(tolerance, dtype=torch.float64).detach().cpu().reshape(-1).expand_as(err)
        ratio = torch.where(torch.isfinite(err), err / tl, torch.full_like(err, math.inf))
        if ratio.numel() == 0:
            return
        i = int(torch.argmax(torch.nan_to_num(ratio, nan=math.inf)))
        worst = float(ratio[i])
        if self.guided:
            target(min(worst, 1e300), label=f"{self.result.name}: {label}")
        if worst > self.result.worst or not self.result.detail:
            self.result.worst = max(worst, self.result.worst)
            self.result.detail = f"{label}: error {float(err[i]):.3e} vs tolerance {float(tl[i]):.3e}"
            self.result.where = _point(self.draws, i, err.numel())
        if not worst <= 1:
            raise _Violation(f"{label}: error {float(err[i]):.3e} > tolerance {float(tl[i]):.3e}")


class _Recorder:
    """Hypothesis ``data`` that keeps this example's draws in ``sink``, so that a violation can name its point."""

    def __init__(self, data, sink: list):
        self._data, self._sink = data, sink

    def draw(self, strategy, label=None):
        value = self._data.draw(strategy, label=label)
        self._sink.append((label, value))
        return value


def _point(draws: list, i: int, n: int) -> str:
    """``"x = [..], y = [..]"``: the batch row of the drawn tensors holding flat error index ``i`` of ``n``,
    each coordinate printed exactly (shortest round-trip repr), so the failure can be replayed."""
    named = []
    for label, value in draws:
        parts = value if isinstance(value, tuple) else (value,)
        names = ("x", "y") if label == "pair" else (label,)
        named += [(name, v) for name, v in zip(names, parts) if isinstance(v, torch.Tensor) and v.dim() >= 1]
    if not named or n % named[0][1].shape[0]:
        return ""
    row = i // (n // named[0][1].shape[0])
    fmt = lambda v: "[" + ", ".join(repr(float(c)) for c in v.detach().cpu().reshape(-1)) + "]"  # noqa: E731
    return ", ".join(f"{name} = {fmt(v[row])}" for name, v in named if v.shape[0] > row)


def _run_hypothesis(fn, M, dtype, meter, kinds, max_examples: int, derandomize: bool) -> None:
    # No shrinking: the meter already reports the *largest* violation, and shrinking a failing
    # numerical property can take minutes.
    @settings(max_examples=max_examples, deadline=None, derandomize=derandomize, database=None,
              report_multiple_bugs=False, suppress_health_check=list(HealthCheck), print_blob=False,
              phases=(Phase.explicit, Phase.generate, Phase.target))
    @given(st.data())
    def run(data):
        meter.draws = []
        fn(M, dtype, _Recorder(data, meter.draws), meter, kinds)

    run()


def check_manifold(
    manifold: Manifold,
    dtypes: Sequence[torch.dtype] = (torch.float32, torch.float64),
    max_examples: int = 20,
    kinds: Sequence[str] = PAIR_KINDS,
    gradients: bool = True,
    properties: Optional[Iterable[str]] = None,
    derandomize: bool = True,
    base_samples: int = 20000,
    base=None,
) -> CheckReport:
    """Run the conformance property suite on ``manifold`` and raise if any property fails.

    Args:
        manifold: any :class:`~gaugeflow.geometry.Manifold`.
        dtypes: floating dtypes to test in (each property runs once per dtype).
        max_examples: hypothesis examples per property and dtype (each example is a batch of 4).
        kinds: pair kinds drawn (subset of :data:`~gaugeflow.testing.strategies.PAIR_KINDS`); drop
            ``"cut"``/``"near_cut"`` for manifolds whose ``log`` is undefined at the cut locus.
        gradients: include the ``gradients`` property (finite gradients in every dtype; float64
            ``torch.autograd.gradcheck`` of ``exp`` at ``u = 0`` and ``log``/``dist`` at ``y = x``
            and ``y`` within 1e-7 of ``x``).
        properties: names from :data:`PROPERTIES` to run (default: all).
        derandomize: reproducible hypothesis runs (same examples every call).
        base_samples: Monte Carlo samples of the ``base_density`` check.
        base: a :class:`~gaugeflow.geometry.BaseDistribution` to check with the manifold (attached
            with ``manifold.with_base(base)``); default the manifold's own ``base``, if any.

    Returns:
        The :class:`CheckReport` (largest error/tolerance ratio per property and dtype).

    Raises:
        ManifoldCheckError: the first line names the (first) failed property and dtype, its largest
            violation and the point where it occurred (for the hypothesis-driven properties), then any
            further failed properties; one block per failure follows.
        ValueError: unknown property names.
    """
    if not isinstance(manifold, Manifold):
        raise TypeError(f"check_manifold: expected a gaugeflow Manifold, got {type(manifold).__name__}")
    names = list(PROPERTIES if properties is None else properties)
    unknown = [n for n in names if n not in PROPERTIES]
    if unknown:
        raise ValueError(f"check_manifold: unknown properties {unknown}; expected names from {PROPERTIES}")
    if not gradients and "gradients" in names:
        names.remove("gradients")
    if base is not None:
        manifold = manifold.with_base(base)
    report = CheckReport(repr(manifold))
    if manifold.base is None:
        report.skipped = [n for n in names if n in BASE_PROPERTIES]
        names = [n for n in names if n not in BASE_PROPERTIES]
    for dtype in dtypes:
        for name in names:
            result = PropertyResult(name, dtype)
            missing = [c for c in REQUIRES.get(name, ()) if c not in manifold.capabilities]
            if missing:
                result.not_applicable = (f"needs capability {', '.join(map(repr, missing))} "
                                         f"(capabilities: {sorted(manifold.capabilities)})")
                report.results.append(result)
                continue
            meter = _Meter(result, guided=name in HYPOTHESIS_PROPERTIES)
            try:
                if name in HYPOTHESIS_PROPERTIES:
                    _run_hypothesis(HYPOTHESIS_PROPERTIES[name], manifold, dtype, meter, kinds, max_examples, derandomize)
                else:
                    DETERMINISTIC_PROPERTIES[name](manifold, dtype, meter, base_samples=base_samples)
            except _Violation as exc:
                result.failed, result.error = True, str(exc)
            except Exception as exc:  # an operation raised: that is a failure of the property too
                result.failed, result.error = True, f"raised {type(exc).__name__}: {exc}"
            report.results.append(result)
    if report.failures:
        lines = "\n".join(f"  {r}" for r in report.failures)
        raise ManifoldCheckError(f"check_manifold({manifold}): {_headline(report.failures)}\n{lines}", report)
    return report


def _headline(failures: list[PropertyResult]) -> str:
    """``exp_log (float64) failed: <largest violation> at x = [..], y = [..]; also failed: ...``."""
    tag = lambda r: f"{r.name} ({str(r.dtype).replace('torch.', '')})"  # noqa: E731
    first = failures[0]
    line = f"{tag(first)} failed: {first.error or first.detail}" + (f" at {first.where}" if first.where else "")
    more = failures[1:]
    return line + (f"; also failed: {', '.join(tag(r) for r in more)}" if more else "")
