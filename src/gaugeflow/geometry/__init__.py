"""Abstract manifolds and the bundles that live over them."""
from .bundles import FiberProduct, FiberProjection, FibreProjection, GradedVectorBundle, VectorBundle
from .manifold import Manifold

__all__ = ["Manifold", "VectorBundle", "GradedVectorBundle", "FiberProduct", "FibreProjection", "FiberProjection"]
