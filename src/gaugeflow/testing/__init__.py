"""Public testing tools: hypothesis strategies and conformance checks users run on their own objects.

Requires the ``test`` extra (``hypothesis``). Import explicitly (``import gaugeflow.testing``);
``import gaugeflow`` does not import it.

Manifolds:
    :func:`check_manifold` runs the whole manifold property suite in one call;
    :func:`points`, :func:`tangent_vectors`, :func:`point_pairs` are the strategies it uses.
"""
from .algebra_checks import AlgebraCheckError, AlgebraReport, check_lie_algebra, check_linf_algebra
from .manifold_checks import PROPERTIES, REQUIRES, CheckReport, ManifoldCheckError, PropertyResult, check_manifold
from .strategies import NEAR_OFFSET, PAIR_KINDS, huge_norm, point_pairs, points, tangent_norms, tangent_vectors

__all__ = [
    "check_manifold", "ManifoldCheckError", "CheckReport", "PropertyResult", "PROPERTIES", "REQUIRES",
    "points", "tangent_vectors", "tangent_norms", "point_pairs", "huge_norm", "PAIR_KINDS", "NEAR_OFFSET",
]
__all__ += ["check_lie_algebra", "check_linf_algebra", "AlgebraReport", "AlgebraCheckError"]
from .gauge_checks import GaugeReport, check_gauge_covariance, random_rotation  # noqa: E402

__all__ += ["check_gauge_covariance", "GaugeReport", "random_rotation"]
