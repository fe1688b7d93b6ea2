"""Concrete base manifolds (installed as ``gaugeflow.manifolds``).

``Euclidean``, ``Sphere``, ``FlatTorus``, ``Hyperbolic`` (Lorentz model), ``SpecialOrthogonal`` (``SO3``),
``SpecialEuclidean`` (``SE3``), ``Product`` and ``Mesh`` (triangle meshes; trimesh/scipy, the ``mesh`` extra) implement
:class:`gaugeflow.geometry.Manifold`; ``from_geoopt`` and ``from_geomstats`` wrap those libraries'
manifolds (geomstats is imported lazily, only when ``from_geomstats`` is called).
"""
from .adapters import from_geomstats, from_geoopt
from .euclidean import Euclidean
from .hyperbolic import Hyperbolic
from .mesh import Mesh
from .product import Product
from .se3 import SE3, SpecialEuclidean
from .so3 import SO3, SpecialOrthogonal
from .sphere import Sphere
from .torus import FlatTorus

__all__ = ["Euclidean", "Sphere", "FlatTorus", "Hyperbolic", "Product", "SpecialOrthogonal", "SO3",
           "SpecialEuclidean", "SE3", "from_geoopt", "from_geomstats", "Mesh"]
