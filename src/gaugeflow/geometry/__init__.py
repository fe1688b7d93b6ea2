"""Abstract manifolds and the bundles that live over them."""
from .bundles import FiberProduct, FibreProjection, GradedVectorBundle, VectorBundle
from .manifold import Manifold
from .base import (BaseDistribution, CallableBase, ProductBase, StandardNormal, UniformSphere, UniformTorus,
                   WrappedNormal)

__all__ = ["Manifold", "VectorBundle", "GradedVectorBundle", "FiberProduct", "FibreProjection"]
__all__ += ["BaseDistribution", "UniformSphere", "StandardNormal", "UniformTorus", "WrappedNormal", "ProductBase",
            "CallableBase"]
