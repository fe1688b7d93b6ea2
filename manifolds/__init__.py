"""Concrete base manifolds (installed as ``gaugeflow.manifolds``).

``Euclidean``, ``Sphere``, ``FlatTorus``, ``Hyperbolic`` (Lorentz model) and ``Product`` implement
:class:`gaugeflow.geometry.Manifold`; ``from_geoopt`` and ``from_geomstats`` wrap those libraries'
manifolds (geomstats is imported lazily, only when ``from_geomstats`` is called).
"""
from .adapters import from_geomstats, from_geoopt
from .euclidean import Euclidean
from .hyperbolic import Hyperbolic
from .product import Product
from .sphere import Sphere
from .torus import FlatTorus

__all__ = ["Euclidean", "Sphere", "FlatTorus", "Hyperbolic", "Product", "from_geoopt", "from_geomstats"]
