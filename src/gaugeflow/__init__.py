"""gaugeflow: gauge and higher-gauge flow models on Riemannian manifolds.

The names a user needs, flat::

    import gaugeflow as gf
    M = gf.Sphere(2)
    data = gf.wrapped_mixture(M, seed=0)
    model = gf.HigherGaugeFlow(M, hidden=64)
    gf.fit(model, data, steps=500)
    x = gf.sample(model, M.random_base(1000), steps=50)
    lp = gf.log_prob(model, data.test, steps=50)

* manifolds: :class:`Euclidean`, :class:`Sphere`, :class:`FlatTorus`, :class:`Hyperbolic`, :class:`SO3`,
  :class:`SE3`, :class:`Product`, :class:`Mesh` (triangle meshes)
  (more in :mod:`gaugeflow.manifolds`; the base class is :class:`gaugeflow.geometry.Manifold`);
* models: :class:`PlainFlow`, :class:`GaugeFlow`, :class:`HigherGaugeFlow`, :class:`TensorGaugeFlow`, with
  the L∞-algebras
  :func:`so_crossed_module` and :func:`string_lie2`;
* training: :func:`fit`, :class:`TrainConfig`; sampling: :func:`sample`, :func:`log_prob`;
* data: :class:`ManifoldData`, :func:`wrapped_mixture`, :func:`gaussian_mixture`, :func:`world_cities`;
* checking your own manifold: :func:`check_manifold` (needs the ``test`` extra: hypothesis; imported on
  first use, so ``import gaugeflow`` imports neither hypothesis nor geomstats).

Everything else lives in the subpackages (:mod:`gaugeflow.training`, :mod:`gaugeflow.sampling`, ...);
modules and names with a leading underscore are internal.
"""
from ._version import __version__
from .algebra import so_crossed_module, string_lie2
from .data import ManifoldData, gaussian_mixture, world_cities, wrapped_mixture
from .manifolds import SE3, SO3, Euclidean, FlatTorus, Hyperbolic, Mesh, Product, Sphere
from .models import GaugeFlow, HigherGaugeFlow, PlainFlow, TensorGaugeFlow
from .sampling import log_prob, sample
from .training import TrainConfig, fit

__all__ = [
    "__version__",
    "Euclidean", "Sphere", "FlatTorus", "Hyperbolic", "SO3", "SE3", "Product", "Mesh",
    "PlainFlow", "GaugeFlow", "HigherGaugeFlow", "TensorGaugeFlow", "so_crossed_module", "string_lie2",
    "fit", "TrainConfig", "sample", "log_prob",
    "ManifoldData", "wrapped_mixture", "gaussian_mixture", "world_cities",
    "check_manifold",
]


def __getattr__(name: str):
    """``check_manifold``, imported on first use (it needs hypothesis, from the ``test`` extra)."""
    if name == "check_manifold":
        try:
            from .testing import check_manifold
        except ModuleNotFoundError as err:
            if err.name is None or not err.name.startswith("hypothesis"):
                raise
            raise ModuleNotFoundError(
                "gaugeflow.check_manifold needs the optional package 'hypothesis', which is not installed; "
                "install it with: pip install 'gaugeflow[test]'", name=err.name) from err
        return check_manifold
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"check_manifold"})
