"""The abstract base manifold: the one interface every geometric object in gaugeflow talks to.

Conventions (shared by every subclass):

* Points live in *ambient coordinates*: the last tensor axis has length ``ambient_dim`` and all
  leading axes are batch axes that broadcast. ``dim`` is the intrinsic dimension.
* Operations are point first, as in geoopt: ``exp(x, u)``, ``log(x, y)``, ``transp(x, y, v)``.
* ``inner``, ``norm``, ``dist`` and ``base_log_prob`` drop the last axis; every other operation
  keeps the shape of ``x`` (after broadcasting).
* Degenerate inputs (``u = 0``, ``y = x``) have finite, correct values *and* gradients: closed forms
  switch to Taylor series below ``tol("taylor", dtype)`` with both ``torch.where`` branches finite.
* The hot-path operations check only cheap things (dtype, last-axis size). Expensive checks
  (on-manifold, tangency, NaN) are opt-in through :meth:`Manifold.check_point` and
  :meth:`Manifold.check_tangent`.

The contract is geometry only. A subclass sets ``dim`` and ``ambient_dim`` and implements
:meth:`~Manifold.projx`, :meth:`~Manifold.proju`, :meth:`~Manifold.exp` and :meth:`~Manifold.log`;
everything else has a correct default it may override for speed (see each method). The base
distribution ``p0`` is a separate object (:mod:`gaugeflow.geometry.base`): ``M.base``, attached with
:meth:`Manifold.with_base`. Run ``gaugeflow.testing.check_manifold(M)`` to verify a new manifold.
"""
from __future__ import annotations

import abc
import copy
import math
import numbers
from typing import Optional

import torch

from .._numerics import broadcast_shapes, check_float, check_last_dim, tol
from ._generic import gram_schmidt_frame, nan_unless_finite, pole_ladder
from ._values import ArgsValue

__all__ = ["Manifold", "CapabilityError", "CAPABILITIES"]

#: closed-form operations a manifold may offer (:attr:`Manifold.capabilities`): ``log`` (the
#: Riemannian logarithm), ``dist`` (the exact geodesic distance), ``transp`` (parallel transport),
#: ``geodesic`` (the minimising geodesic path between two points), ``spectral`` (spectral
#: premetrics ``spectral_distance``/``spectral_embedding``, e.g. on triangle meshes)
CAPABILITIES = ("log", "dist", "transp", "geodesic", "spectral")


class CapabilityError(NotImplementedError):
    """An operation the manifold does not offer in closed form (it is not in ``M.capabilities``)."""


class Manifold(ArgsValue, abc.ABC):
    """Abstract Riemannian manifold in ambient coordinates.

    Required: attributes ``dim`` and ``ambient_dim``; methods :meth:`projx`, :meth:`proju`,
    :meth:`exp`, :meth:`log`. Defaults (correct for any manifold, overridable for speed): the metric
    :meth:`inner` (ambient Euclidean product restricted to tangent spaces), :meth:`norm`, :meth:`dist`
    (``‖log‖``), :meth:`transp` (pole ladder), :meth:`geodesic`, :meth:`features`,
    :meth:`cut_locus_mask` (from ``injectivity_radius``), :meth:`tangent_frame` (Gram–Schmidt) and
    the residuals behind :meth:`check_point`/:meth:`check_tangent` (from ``projx``/``proju``).

    Equality and hashing: same class, same constructor arguments (bound to ``__init__``'s signature
    with defaults applied; unhashable arguments such as tensors by identity) and same base
    distribution. Override ``_key()`` if an instance holds state its arguments do not determine.

    Attributes:
        dim: intrinsic dimension ``n``.
        ambient_dim: length ``D`` of the last tensor axis.
        injectivity_radius: largest ``r`` such that ``log(x, ·)`` is unique on the ball of radius ``r``
            (``math.inf``, the default, for Cartan–Hadamard manifolds such as ``ℝ^n`` and ``H^n``).
        diameter: ``sup dist(x, y)`` (``math.inf``, the default, when unbounded or not declared).
            :func:`gaugeflow.testing.check_manifold` uses it to check that ``log`` picks a
            *minimising* geodesic (``‖log(x, y)‖ ≤ diameter``); declare it for a compact manifold.
        base: the base distribution (:class:`~gaugeflow.geometry.BaseDistribution`) or ``None``.
        transp_rungs: rungs of the default pole-ladder :meth:`transp` (1 is exact on symmetric spaces).
        capabilities: frozenset of names from :data:`CAPABILITIES`: what the manifold offers in closed
            form. Default ``{"log", "dist", "transp", "geodesic"}`` (every manifold implementing
            :meth:`log` has the others through the defaults). A manifold without a closed-form
            ``log`` (a triangle mesh) leaves them out and raises :class:`CapabilityError` from those
            methods; generic code and :func:`gaugeflow.testing.check_manifold` read this flag
            (:meth:`has`) instead of guessing.
    """

    dim: int
    ambient_dim: int
    injectivity_radius: float = math.inf
    diameter: float = math.inf
    base = None
    transp_rungs: int = 1
    capabilities: frozenset = frozenset({"log", "dist", "transp", "geodesic"})

    def has(self, capability: str) -> bool:
        """Whether ``capability`` (a name from :data:`CAPABILITIES`) is in :attr:`capabilities`."""
        if capability not in CAPABILITIES:
            raise ValueError(f"{self}: unknown capability {capability!r}; expected one of {CAPABILITIES}")
        return capability in self.capabilities

    def _missing(self, capability: str, instead: str) -> CapabilityError:
        """The :class:`CapabilityError` for an operation needing ``capability``; ``instead``: what to use."""
        return CapabilityError(f"{self} has no closed-form {capability!r} (capabilities: "
                               f"{sorted(self.capabilities)}); {instead}")

    # ------------------------------------------------------------------ required geometry
    @abc.abstractmethod
    def projx(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest point on the manifold. ``[..., D] -> [..., D]``."""

    @abc.abstractmethod
    def proju(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Orthogonal projection (for the metric) of an ambient ``u`` onto ``T_xM``. ``[..., D] -> [..., D]``."""

    @abc.abstractmethod
    def exp(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Riemannian exponential map ``exp_x(u)``. ``[..., D] -> [..., D]``."""

    @abc.abstractmethod
    def log(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Riemannian logarithm ``log_x(y)`` (the minimising geodesic's initial velocity).

        On the cut locus the result is a documented deterministic choice of the right length.
        ``[..., D] -> [..., D]``.
        """

    # ------------------------------------------------------------------ metric (overridable)
    def inner(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Riemannian inner product ``g_x(u, v)``; default the ambient ``u·v``. ``[..., D] -> [...]``."""
        self._inputs(x=x, u=u, v=v)
        out, shape = (u * v).sum(-1), broadcast_shapes(x.shape, u.shape, v.shape)[:-1]
        return out if out.shape == shape else out.expand(shape)  # no autograd view node in the common case

    def norm(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Riemannian norm with a zero (not NaN) gradient at ``u = 0``. ``[..., D] -> [...]``."""
        self._inputs(x=x, u=u)
        return safe_sqrt(self.inner(x, u, u))

    def dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Geodesic distance ``‖log_x(y)‖_x``; NaN where ``x`` or ``y`` is not finite. ``[..., D] -> [...]``."""
        return nan_unless_finite(self.norm(x, self.log(x, y)), x, y)

    def pairwise_sq_dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Squared geodesic distances of every pair, ``C_ij = d(x_i, y_j)²``: ``[..., m, D] × [..., n, D] -> [..., m, n]``.

        A cost matrix (minibatch optimal transport, :mod:`gaugeflow.training.coupling`). Default:
        :meth:`dist` on the broadcast pairs, squared. A manifold may override it with a cheaper form
        that goes through one batched product (the sphere; SO(3) and SE(3) through unit quaternions),
        or with its own closed form (the flat torus; products add their factors' costs); such an
        override may trade the last digits of small distances for speed (documented where it does).
        """
        return self.dist(x.unsqueeze(-2), y.unsqueeze(-3)) ** 2

    def transp(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Parallel transport of ``v ∈ T_xM`` to ``T_yM`` along the minimising geodesic. ``[..., D]``.

        Default: the pole ladder with :attr:`transp_rungs` rungs, exact on symmetric spaces and
        third order otherwise (``O(d³/N²)`` for a geodesic of length ``d`` and ``N`` rungs; see
        :func:`gaugeflow.geometry._generic.pole_ladder`). Costs ``4N`` ``exp``/``log`` calls.
        """
        self._inputs(x=x, y=y, v=v)
        return pole_ladder(self, x, y, v, self.transp_rungs)

    # ------------------------------------------------------------------ flow-matching helpers
    def geodesic(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Point and velocity of the minimising geodesic from ``x0`` (t=0) to ``x1`` (t=1).

        Args:
            x0, x1: ``[..., D]`` endpoints.
            t: ``[...]`` times (broadcast against the batch axes).

        Returns:
            ``(x_t, u_t)`` with ``x_t = exp(x0, t·log(x0, x1))`` and ``u_t = d x_t / dt`` (the initial
            velocity parallel-transported to ``x_t``, finite at ``t = 1``). Default:
            ``u_t = log(x_t, x1)/(1 − t)`` for ``t < ½`` and ``−log(x_t, x0)/t`` otherwise, exact on any
            manifold (a geodesic's velocity points along it) and cheaper than :meth:`transp`.
        """
        u = self.log(x0, x1)
        tt = t[..., None]
        xt = self.exp(x0, tt * u)
        first = tt < 0.5
        ahead = self.log(xt, x1) / (1 - torch.where(first, tt, torch.zeros_like(tt)))
        behind = -self.log(xt, x0) / torch.where(first, torch.ones_like(tt), tt)
        return xt, torch.where(first, ahead, behind)

    def geodesic_and_cut(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor):
        """:meth:`geodesic` and :meth:`cut_locus_mask` of the same pairs, for data that need no gradient.

        :class:`~gaugeflow.training.GeodesicPath` calls it under ``torch.no_grad()`` when no input
        requires a gradient (the RCFM step: ``x0``, ``x1`` and ``t`` are data). An override may
        therefore share the norms and angles of both results and drop what only exact gradients
        need (the Taylor branches, safe square roots); its values must equal :meth:`geodesic`'s to
        rounding on every pair *not* flagged, and be finite on flagged pairs (which the path
        resamples or masks). Default: the two methods, unchanged.

        Args:
            x0, x1: ``[B, D]`` endpoints; t: ``[B]`` times.

        Returns:
            ``(x_t, u_t, cut)``: ``[B, D]``, ``[B, D]`` and ``[B]`` bool.
        """
        x_t, u_t = self.geodesic(x0, x1, t)
        return x_t, u_t, self.cut_locus_mask(x0, x1)

    def cut_locus_mask(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``True`` where ``y`` is within ``tol("cut")`` of the cut locus of ``x``. ``[...]``.

        Default: ``dist(x, y) ≥ injectivity_radius − tol("cut")`` (never when the radius is
        infinite). Exact for round spaces; a manifold whose cut locus lies farther than the
        injectivity radius in some directions (the flat torus) overrides it.
        """
        if math.isinf(self.injectivity_radius):
            return torch.zeros(broadcast_shapes(x.shape, y.shape)[:-1], dtype=torch.bool, device=x.device)
        return self.dist(x, y) >= self.injectivity_radius - tol("cut", x.dtype)

    def cut_locus_screen(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """A superset of :meth:`cut_locus_mask` that may be cheaper to compute. ``[...]``.

        ``True`` wherever :meth:`cut_locus_mask` is, and possibly at a few pairs slightly farther from
        the cut locus. The device-side cut-locus round of :class:`~gaugeflow.training.GeodesicPath`
        (the trainer's) replaces the start points it flags before building the path, whose own exact
        test then masks what is still cut. Default: :meth:`cut_locus_mask` itself; a manifold overrides
        it only where a cheaper test with a stated margin exists (SO(3): a trace).
        """
        return self.cut_locus_mask(x, y)

    def cut_vector(self, x: torch.Tensor, u: torch.Tensor) -> Optional[torch.Tensor]:
        """Tangent vector ``v`` along ``u`` such that ``exp(x, v)`` is the first cut point of that geodesic.

        ``None`` when the manifold has no cut locus (``injectivity_radius`` infinite). The default
        ``injectivity_radius · u/‖u‖`` is right for round spaces; manifolds whose cut locus is nearer
        in some directions (the flat torus) override it. Used by :mod:`gaugeflow.testing`.

        Args:
            x: ``[..., D]`` points.
            u: ``[..., D]`` non-zero tangent vectors at ``x``.

        Returns:
            ``[..., D]`` tangent vectors at ``x``, or ``None``.
        """
        if math.isinf(self.injectivity_radius):
            return None
        return self.injectivity_radius * u / self.norm(x, u)[..., None]

    def stable_radius(self, dtype: torch.dtype) -> float:
        """Tangent-vector norm up to which ``exp``/``log`` keep relative accuracy ``~tol("prop", dtype)``.

        ``math.inf`` (the default) when any norm is fine; the hyperboloid, whose coordinates grow
        like ``e^r``, returns a finite radius. :mod:`gaugeflow.testing` sizes its "huge" tangent
        vectors with it.
        """
        return math.inf

    def tangent_frame(self, x: torch.Tensor) -> torch.Tensor:
        """A ``g``-orthonormal basis of ``T_xM`` as columns. ``[..., D] -> [..., D, dim]``.

        Default: modified Gram–Schmidt with pivoting on ``proju(x, e_j)`` in the metric
        :meth:`inner` (``O(dim·D²)`` per point). Used by the exact divergence (``dim`` backward rows
        instead of ``D``) and by wrapped-normal data. The sphere overrides it with a Householder
        frame, ``ℝ^n`` and the flat torus with the identity.
        """
        self._inputs(x=x)
        return gram_schmidt_frame(self, x)

    @property
    def feature_dim(self) -> int:
        """Length of :meth:`features` (input size of the networks living on this manifold)."""
        return self.ambient_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Continuous network input features of points (identity by default). ``[..., feature_dim]``."""
        self._inputs(x=x)
        return x

    def to_tangent(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Tangent vector at ``x`` read off an unconstrained ambient vector ``u`` (a network's output).

        The models turn every network output into a tangent vector with this map, so it must be
        smooth in ``x``, linear in ``u``, onto ``T_xM``, and *uniformly bounded*:
        ``‖to_tangent(x, u)‖_x ≤ C ‖u‖`` with ``C`` independent of ``x`` — otherwise a field's speed
        grows with the point's coordinates and trajectories run away. The default is :meth:`proju`,
        which satisfies this with ``C = 1`` whenever the metric is the ambient one restricted to
        tangent spaces (an orthogonal projection). A manifold with another metric overrides it (the
        hyperboloid: the Lorentz boost of ``u``'s spatial part from the origin, an isometry).

        Args:
            x: ``[..., D]`` points.
            u: ``[..., D]`` ambient vectors.

        Returns:
            ``[..., D]`` tangent vectors at ``x``.
        """
        return self.proju(x, u)

    def from_tangent(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Bounded ambient representative of a tangent vector: the inverse of :meth:`to_tangent` on ``T_xM``.

        ``to_tangent(x, from_tangent(x, v)) = v`` and ``‖from_tangent(x, v)‖ ≤ C ‖v‖_x`` with ``C``
        independent of ``x``. The models contract their connection networks with the direction field
        in this representation (``A[d] = A · from_tangent(x, d)``), so that contraction stays bounded
        where ambient coordinates of tangent vectors are not (the hyperboloid). Default: ``v`` itself
        (:meth:`proju` fixes tangent vectors; no work).

        Args:
            x: ``[..., D]`` points.
            v: ``[..., D]`` tangent vectors at ``x``.

        Returns:
            ``[..., D]`` ambient vectors.
        """
        return v

    def connection_direction(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The ambient vector the models contract connections with, read off a network output ``u``.

        Default ``from_tangent(x, to_tangent(x, u))``: the tangent direction in the bounded
        representation. It must be bounded (``≤ C ‖u‖``) and continuous in ``x`` wherever ``u`` is and
        :meth:`to_tangent` is continuous; a manifold whose :meth:`to_tangent` is continuous only in
        part overrides it (a mesh returns ``u``, docs/math.md §11.3).

        Args:
            x: ``[..., D]`` points.
            u: ``[..., D]`` ambient vectors (the direction network's output).

        Returns:
            ``[..., D]`` ambient vectors.
        """
        return self.from_tangent(x, self.to_tangent(x, u))

    # ------------------------------------------------------------------ base distribution (composition)
    def with_base(self, base) -> "Manifold":
        """A copy of this manifold whose base distribution is ``base`` (this one is unchanged).

        Args:
            base: a :class:`~gaugeflow.geometry.BaseDistribution` with ``ambient_dim == self.ambient_dim``.

        Returns:
            The new manifold; it compares unequal to manifolds with another base.
        """
        from .base import BaseDistribution

        if not isinstance(base, BaseDistribution):
            raise TypeError(f"{self}.with_base: expected a gaugeflow.geometry.BaseDistribution, got "
                            f"{type(base).__name__}")
        if base.ambient_dim != self.ambient_dim:
            raise ValueError(f"{self}.with_base: the base distribution has ambient dimension {base.ambient_dim}, "
                             f"expected {self.ambient_dim}")
        new = copy.copy(self)
        new.base = base
        return new

    def _require_base(self):
        if self.base is None:
            raise ValueError(
                f"{self} has no base distribution: attach one with M = M.with_base(dist), dist a "
                "gaugeflow.geometry.BaseDistribution (e.g. UniformSphere(n), StandardNormal(n), CallableBase(...))"
            )
        return self.base

    def random_base(self, n: int, generator: Optional[torch.Generator] = None, dtype: Optional[torch.dtype] = None,
                    device: Optional[torch.device] = None) -> torch.Tensor:
        """``n`` samples of the base distribution ``p0`` (``self.base``). Returns ``[n, D]``."""
        return self._require_base().sample(n, generator=generator, dtype=default_dtype(dtype), device=device)

    def base_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density of ``p0`` w.r.t. the Riemannian volume. ``[..., D] -> [...]``."""
        self._inputs(x=x)
        return self._require_base().log_prob(x)

    # ------------------------------------------------------------------ validation (opt-in)
    def _point_residual(self, x: torch.Tensor) -> torch.Tensor:
        """Violation of the manifold constraint per point. ``[..., D] -> [...]``.

        Default: the larger of ``max|x − projx(x)| / (1 + max|x|)`` (``x`` is a fixed point of the
        projection) and ``|tr P_x − dim| / (1 + ‖x‖²)`` (the tangent projector ``P_x = proju(x, ·)`` has rank
        ``dim`` at a point of the manifold: this catches points a naive ``projx`` cannot move, such
        as the zero vector for ``x/‖x‖``).
        """
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        trace = torch.diagonal(self.proju(x.unsqueeze(-2), eye), dim1=-2, dim2=-1).sum(-1)
        fixed = (x - self.projx(x)).abs().amax(-1) / (1 + x.abs().amax(-1))
        return torch.maximum(fixed, (trace - self.dim).abs() / (1 + (x * x).sum(-1)))  # P_x's entries grow like ‖x‖²

    def _tangent_residual(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Violation of tangency per vector; default ``max|u − proju(x, u)|``. ``[..., D] -> [...]``."""
        return (u - self.proju(x, u)).abs().amax(-1)

    def validate(self, x: torch.Tensor, what: str = "x") -> torch.Tensor:
        """Cheap front-door check: floating dtype and last-axis size. Returns ``x``."""
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dim() > 0 and x.shape[-1] == self.ambient_dim:
            return x  # the hot path: no message formatting (validate runs several times per step)
        check_float(x, f"{self}: {what}")
        check_last_dim(x, self.ambient_dim, what, str(self))
        return x

    def _inputs(self, **tensors: torch.Tensor) -> None:
        """:meth:`validate` every keyword argument (name = argument name in the message).

        Costs a few microseconds and no device synchronisation, so concrete manifolds call it at
        the top of every public operation: an integer tensor or a wrong last axis raises
        ``TypeError``/``ValueError`` instead of silently computing on the wrong manifold.
        """
        for name, t in tensors.items():
            self.validate(t, name)

    def check_point(self, x: torch.Tensor, atol: Optional[float] = None) -> torch.Tensor:
        """Raise ``ValueError``/``TypeError`` unless every row of ``x`` is a finite point on the manifold.

        Returns ``x`` so it can be used inline.
        """
        self.validate(x)
        if not torch.isfinite(x).all():
            raise ValueError(f"{self}: points contain NaN or Inf ({int((~torch.isfinite(x)).sum())} entries)")
        atol = tol("point", x.dtype) if atol is None else atol
        res = self._point_residual(x)
        if res.numel() and float(res.max()) > atol:
            raise ValueError(
                f"{self}: {int((res > atol).sum())} of {res.numel()} points are off the manifold; "
                f"largest violation {float(res.max()):.3e} > tolerance {atol:.1e}"
            )
        return x

    def check_tangent(self, x: torch.Tensor, u: torch.Tensor, atol: Optional[float] = None) -> torch.Tensor:
        """Raise unless ``u`` is a finite tangent vector at the point ``x``. Returns ``u``."""
        self.check_point(x)
        self.validate(u, "u")
        if not torch.isfinite(u).all():
            raise ValueError(f"{self}: tangent vectors contain NaN or Inf")
        atol = tol("point", u.dtype) if atol is None else atol
        scale = 1.0 + u.detach().abs().amax(-1)
        res = self._tangent_residual(x, u) / scale
        if res.numel() and float(res.max()) > atol:
            raise ValueError(
                f"{self}: {int((res > atol).sum())} of {res.numel()} vectors are not tangent; "
                f"largest relative violation {float(res.max()):.3e} > tolerance {atol:.1e}"
            )
        return u

    # ------------------------------------------------------------------ value semantics
    def _extra_key(self) -> tuple:
        return (self.base,)


def safe_sqrt(s: torch.Tensor) -> torch.Tensor:
    """``sqrt(max(s, 0))`` whose gradient at ``s = 0`` is 0 instead of Inf/NaN."""
    pos = s > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, s, torch.ones_like(s))), torch.zeros_like(s))


def safe_norm(v: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over the last axis with zero gradient at ``v = 0``. ``[..., D] -> [...]``."""
    return safe_sqrt((v * v).sum(-1))


def check_dimension(owner: str, n) -> int:
    """Return ``n`` as an ``int`` if it is an integer ``>= 1`` (bools rejected), else raise ValueError."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"{owner}: dimension must be an integer >= 1, got {n!r}")
    return int(n)


def default_dtype(dtype: Optional[torch.dtype]) -> torch.dtype:
    """``dtype`` or torch's current default floating dtype."""
    return torch.get_default_dtype() if dtype is None else dtype
