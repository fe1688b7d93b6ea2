"""Every public name of DESIGN.md that exists so far imports from its documented module.

Data-driven: modules append their names to PUBLIC_API (one entry per module).
"""
import importlib
import inspect

import pytest
import torch

PUBLIC_API = {
    "gaugeflow.manifolds": ["Euclidean", "Sphere", "FlatTorus", "Hyperbolic", "Product", "from_geoopt", "from_geomstats"],
    "gaugeflow.geometry": ["Manifold", "VectorBundle", "GradedVectorBundle", "FiberProduct"],
    "gaugeflow.algebra": ["so", "so_crossed_module", "string_lie2"],
    "gaugeflow.models": ["PlainFlow", "GaugeFlow", "HigherGaugeFlow"],
    "gaugeflow.training": ["GeodesicPath", "rcfm_loss", "fit"],
    "gaugeflow.sampling": ["sample", "log_prob"],
    "gaugeflow.data": ["gaussian_mixture", "wrapped_mixture"],
    "gaugeflow.testing": ["check_manifold", "ManifoldCheckError", "CheckReport", "points", "tangent_vectors",
                          "point_pairs", "PAIR_KINDS"],
}

MANIFOLD_METHODS = ["projx", "proju", "inner", "norm", "exp", "log", "dist", "transp", "random_base",
                    "base_log_prob", "check_point", "check_tangent", "geodesic", "features", "cut_locus_mask"]


@pytest.mark.parametrize("module, name", [(m, n) for m, names in PUBLIC_API.items() for n in names])
def test_public_name_is_importable_and_exported(module, name):
    mod = importlib.import_module(module)
    assert hasattr(mod, name), f"{module}.{name} missing"
    if hasattr(mod, "__all__"):
        assert name in mod.__all__, f"{name} not in {module}.__all__"


def test_manifold_contract_of_design_md():
    from gaugeflow.manifolds import Euclidean, FlatTorus, Hyperbolic, Product, Sphere

    M = Sphere(2)
    assert M.dim == 2 and M.ambient_dim == 3
    params = inspect.signature(M.random_base).parameters
    assert list(params) == ["n", "generator", "dtype", "device"]
    for M in [Euclidean(2), Sphere(2), FlatTorus(2), Hyperbolic(2), Product(Sphere(1), FlatTorus(1))]:
        assert all(callable(getattr(M, m)) for m in MANIFOLD_METHODS)
        x = M.random_base(5, generator=torch.Generator().manual_seed(0))
        u = M.log(x, x.flip(0))
        for out in (M.inner(x, u, u), M.norm(x, u), M.dist(x, x.flip(0)), M.base_log_prob(x)):
            assert out.shape == (5,)  # inner/norm/dist/base_log_prob drop the last axis
        for out in (M.projx(x), M.proju(x, u), M.exp(x, u), u, M.transp(x, x.flip(0), u)):
            assert out.shape == x.shape
        with pytest.raises(ValueError):
            M.check_point(x[:, :1] if M.ambient_dim > 1 else torch.cat([x, x], -1))
