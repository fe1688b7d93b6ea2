"""Adapters that make geoopt manifolds and geomstats spaces usable as gaugeflow base manifolds.

Both return an :class:`~gaugeflow.manifolds._external.ExternalManifold`: point-first operations,
shapes ``[..., D]``, input validation, and a base distribution. The base distribution is the one
you pass (``base_sampler`` and ``base_log_prob``, both or neither) or, for the spaces gaugeflow knows,
a default: uniform on the unit sphere, the wrapped normal at the origin of the hyperboloid, the
standard normal on Euclidean space. Anything else raises ``ValueError`` asking for one.

Caveats of the wrapped libraries (documented here, tested in ``tests/test_manifolds_adapters.py``):

* geoopt 0.5.1 ``Sphere.transp`` is a projection (not parallel transport, not isometric); the
  adapter substitutes the closed-form parallel transport of the unit sphere for geoopt ``Sphere``.
  geoopt's ``Sphere.expmap``/``logmap`` have NaN or wrong gradients at ``u = 0``/``y = x``, and both
  geoopt and geomstats return ``log = 0`` at antipodal points: prefer the native
  :class:`~gaugeflow.manifolds.Sphere` for training.
* geomstats is imported only inside :func:`from_geomstats`. With its numpy backend the adapter
  converts to float64 numpy and back to the input dtype, so it cannot propagate gradients: it raises
  ``RuntimeError`` if called on tensors that require grad while grad mode is on. With the pytorch
  backend (``GEOMSTATS_BACKEND=pytorch`` before the first geomstats import) tensors pass through.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from gaugeflow.geometry.base import CallableBase, StandardNormal, UniformSphere, WrappedNormal

from ._external import ExternalManifold, Ops
from .sphere import Sphere

__all__ = ["from_geoopt", "from_geomstats"]

#: stable radius of hyperboloids computed in the input precision (the wrapped libraries do not
#: switch to float64 as gaugeflow's ``Hyperbolic`` does): relative error ``eps·e^{2r}`` in the chord
_HYPERBOLIC_STABLE_RADIUS = {torch.float32: 4.0, torch.float64: 12.0}


def _resolve_base(who: str, kind: str, default, sampler: Optional[Callable], log_prob: Optional[Callable],
                  dim: int, ambient_dim: int):
    """User-supplied base distribution, else the default ``default(dim)``, else a ValueError naming the fix."""
    if (sampler is None) != (log_prob is None):
        raise ValueError(f"{who}: pass both base_sampler and base_log_prob, or neither (got only one)")
    if sampler is not None:
        return CallableBase(sampler, log_prob, ambient_dim)
    if default is None:
        raise ValueError(
            f"{who}: no default base distribution for {kind}; pass base_sampler=(n, generator, dtype, device) -> "
            "[n, D] and base_log_prob=(x [..., D]) -> [...] (log-density w.r.t. the Riemannian volume)"
        )
    return default(dim)


def from_geoopt(
    manifold,
    ambient_dim: int,
    dim: Optional[int] = None,
    base_sampler: Optional[Callable] = None,
    base_log_prob: Optional[Callable] = None,
    injectivity_radius: Optional[float] = None,
) -> ExternalManifold:
    """Wrap a geoopt manifold (``geoopt.Sphere``, ``geoopt.Lorentz``, ``geoopt.Euclidean``, …).

    Args:
        manifold: a ``geoopt.manifolds.Manifold`` acting on the last axis.
        ambient_dim: length ``D`` of the last axis (geoopt manifolds are size-agnostic).
        dim: intrinsic dimension; defaults to ``D − 1`` (Sphere, Lorentz) or ``D`` (Euclidean).
        base_sampler, base_log_prob: the base distribution (both or neither); defaults: uniform
            (Sphere), wrapped normal at the origin (Lorentz, any ``k``), standard normal (Euclidean).
        injectivity_radius: defaults to ``π`` (Sphere) or ``∞`` (Lorentz, Euclidean).

    Returns:
        A gaugeflow :class:`~gaugeflow.geometry.Manifold`.

    Examples:
        >>> import geoopt
        >>> M = from_geoopt(geoopt.Sphere(), ambient_dim=3)
        >>> M.random_base(4).shape
        torch.Size([4, 3])
    """
    import geoopt

    if not isinstance(manifold, geoopt.manifolds.base.Manifold):
        raise TypeError(f"from_geoopt: expected a geoopt manifold, got {type(manifold).__name__}")
    if not isinstance(ambient_dim, int) or ambient_dim < 2:
        raise ValueError(f"from_geoopt: ambient_dim must be an integer >= 2, got {ambient_dim!r}")
    kind = type(manifold).__name__
    m = manifold
    transp = m.transp
    if isinstance(m, geoopt.Sphere):
        if getattr(m, "projector", None) is not None:
            raise ValueError("from_geoopt: subspace-restricted geoopt Sphere is not supported; pass a plain Sphere()")
        known = (ambient_dim - 1, math.pi, UniformSphere)
        transp = Sphere(ambient_dim - 1).transp  # closed-form parallel transport of the unit sphere
    elif isinstance(m, geoopt.Lorentz):
        k = float(m.k)
        known = (ambient_dim - 1, math.inf, lambda n: WrappedNormal(n, k=k))
    elif isinstance(m, geoopt.Euclidean):
        known = (ambient_dim, math.inf, StandardNormal)
    else:
        known = (dim, injectivity_radius, None)
    dim = known[0] if dim is None else dim
    if dim is None or injectivity_radius is None and known[1] is None:
        raise ValueError(f"from_geoopt: geoopt {kind} is not known to gaugeflow; pass dim= and injectivity_radius=")
    radius = known[1] if injectivity_radius is None else injectivity_radius
    base = _resolve_base("from_geoopt", f"geoopt {kind}", known[2], base_sampler, base_log_prob, dim, ambient_dim)
    ops = Ops(
        projx=m.projx,
        proju=m.proju,
        inner=lambda x, u, v: m.inner(x, u, v),
        exp=m.expmap,
        log=m.logmap,
        dist=m.dist,
        transp=transp,
    )
    stable = _HYPERBOLIC_STABLE_RADIUS if isinstance(m, geoopt.Lorentz) else None
    return ExternalManifold(f"from_geoopt({kind})", dim, ambient_dim, ops, base, radius, key=manifold,
                            stable_radius=stable)


def _geomstats_call(fn: Callable, backend: str, n_out_axes: int) -> Callable:
    """Lift a geomstats function of ``[N, D]`` arrays to broadcasting torch tensors ``[..., D]``.

    ``n_out_axes`` is 1 for vector results and 0 for scalars (inner, dist).
    """

    def call(*args: torch.Tensor) -> torch.Tensor:
        args = torch.broadcast_tensors(*args)
        batch, dtype, device = args[0].shape[:-1], args[0].dtype, args[0].device
        if backend == "pytorch":
            out = fn(*(a.reshape(-1, a.shape[-1]).to(torch.float64) for a in args))
            out = torch.as_tensor(out)
        else:
            if torch.is_grad_enabled() and any(a.requires_grad for a in args):
                raise RuntimeError(
                    "from_geomstats: the geomstats numpy backend cannot propagate gradients; call under "
                    "torch.no_grad() or set GEOMSTATS_BACKEND=pytorch before geomstats is first imported"
                )
            out = torch.tensor(fn(*(a.detach().reshape(-1, a.shape[-1]).cpu().double().numpy() for a in args)))
        shape = batch + args[0].shape[-1:] if n_out_axes else batch
        return out.reshape(shape).to(dtype=dtype, device=device)

    return call


def from_geomstats(
    space,
    base_sampler: Optional[Callable] = None,
    base_log_prob: Optional[Callable] = None,
    injectivity_radius: Optional[float] = None,
) -> ExternalManifold:
    """Wrap a geomstats manifold with a metric (``Hypersphere``, ``Hyperboloid``, ``Euclidean``, …).

    geomstats' ``(tangent_vec, base_point)`` argument order is translated to gaugeflow's point-first
    order. Only spaces whose points are vectors (``space.shape == (D,)``) are supported.

    Args:
        space: a geomstats manifold equipped with ``space.metric``.
        base_sampler, base_log_prob: the base distribution (both or neither); defaults: uniform
            (Hypersphere), wrapped normal at the origin (Hyperboloid), standard normal (Euclidean).
        injectivity_radius: defaults to ``π`` (Hypersphere) or ``∞`` (Hyperboloid, Euclidean).

    Returns:
        A gaugeflow :class:`~gaugeflow.geometry.Manifold`.
    """
    import geomstats.backend as gs
    from geomstats.geometry.euclidean import Euclidean
    from geomstats.geometry.hyperboloid import Hyperboloid
    from geomstats.geometry.hypersphere import Hypersphere

    shape = getattr(space, "shape", None)
    if shape is None or not hasattr(space, "metric"):
        raise TypeError(f"from_geomstats: expected a geomstats manifold with a metric, got {type(space).__name__}")
    if len(shape) != 1:
        raise ValueError(f"from_geomstats: only vector-shaped spaces are supported (shape (D,)), got shape {shape}")
    kind = type(space).__name__
    known = {Hypersphere: (math.pi, UniformSphere), Hyperboloid: (math.inf, WrappedNormal),
             Euclidean: (math.inf, StandardNormal)}
    default_radius, default_base = next((v for t, v in known.items() if isinstance(space, t)), (None, None))
    radius = default_radius if injectivity_radius is None else injectivity_radius
    if radius is None:
        raise ValueError(f"from_geomstats: geomstats {kind} is not known to gaugeflow; pass injectivity_radius=")
    base = _resolve_base("from_geomstats", f"geomstats {kind}", default_base, base_sampler, base_log_prob,
                         space.dim, shape[0])
    backend = "pytorch" if gs.__name__.endswith("pytorch") else "numpy"
    g, metric = (lambda f, k=1: _geomstats_call(f, backend, k)), space.metric
    ops = Ops(
        projx=g(space.projection),
        proju=g(lambda x, u: space.to_tangent(u, x)),
        inner=g(lambda x, u, v: metric.inner_product(u, v, x), 0),
        exp=g(lambda x, u: metric.exp(u, x)),
        log=g(lambda x, y: metric.log(y, x)),
        dist=g(metric.dist, 0),
        transp=g(lambda x, y, v: metric.parallel_transport(v, x, end_point=y)),
    )
    stable = _HYPERBOLIC_STABLE_RADIUS if isinstance(space, Hyperboloid) else None
    return ExternalManifold(f"from_geomstats({kind}({space.dim}))", space.dim, shape[0], ops, base, radius,
                            key=space, stable_radius=stable)
