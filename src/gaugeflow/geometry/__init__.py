"""Abstract manifolds and the bundles that live over them."""
from .manifold import Manifold

__all__ = ["Manifold"]
