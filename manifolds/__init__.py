"""Concrete base manifolds (installed as ``gaugeflow.manifolds``)."""
from .euclidean import Euclidean
from .sphere import Sphere

__all__ = ["Euclidean", "Sphere"]
