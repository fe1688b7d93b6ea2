"""Every public name of DESIGN.md imports from its documented module; the flat ``import gaugeflow`` API.

Data-driven: modules append their names to PUBLIC_API (one entry per module).
"""
import importlib
import inspect
import subprocess
import sys

import pytest
import torch

PUBLIC_API = {
    "gaugeflow.manifolds": ["Euclidean", "Sphere", "FlatTorus", "Hyperbolic", "Product", "from_geoopt", "from_geomstats"],
    "gaugeflow.geometry": ["Manifold", "VectorBundle", "GradedVectorBundle", "FiberProduct"],
    "gaugeflow.algebra": ["so", "so_crossed_module", "string_lie2"],
    "gaugeflow.models": ["PlainFlow", "GaugeFlow", "HigherGaugeFlow"],
    "gaugeflow.training": ["GeodesicPath", "rcfm_loss", "fit", "TrainConfig", "build_manifold", "build_data", "build_model",
                           "register_manifold", "register_data", "register_model", "load_run", "Run"],
    "gaugeflow.app": ["build_manifold", "build_data", "build_model", "register_manifold", "register_data",
                      "register_model", "check_names", "load_run", "Run", "MANIFOLDS", "DATASETS", "MODELS"],
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


FLAT = ["Euclidean", "Sphere", "FlatTorus", "Hyperbolic", "SO3", "SE3", "Product", "PlainFlow", "GaugeFlow",
        "HigherGaugeFlow", "TensorGaugeFlow",
        "so_crossed_module", "string_lie2", "fit", "TrainConfig", "sample", "log_prob", "check_manifold",
        "ManifoldData", "wrapped_mixture", "gaussian_mixture", "world_cities", "__version__"]
SOURCE = {"Sphere": "gaugeflow.manifolds", "FlatTorus": "gaugeflow.manifolds", "GaugeFlow": "gaugeflow.models",
          "HigherGaugeFlow": "gaugeflow.models", "fit": "gaugeflow.training", "sample": "gaugeflow.sampling",
          "log_prob": "gaugeflow.sampling", "check_manifold": "gaugeflow.testing", "TrainConfig": "gaugeflow.training",
          "ManifoldData": "gaugeflow.data", "world_cities": "gaugeflow.data", "SO3": "gaugeflow.manifolds",
          "SE3": "gaugeflow.manifolds", "TensorGaugeFlow": "gaugeflow.models"}


@pytest.mark.parametrize("name", FLAT)
def test_flat_api_names_are_the_subpackages_objects(name):
    import gaugeflow

    assert name in gaugeflow.__all__ and name in dir(gaugeflow)
    if name in SOURCE:  # one object per thing: the flat name is the subpackage's object, not a copy
        assert getattr(gaugeflow, name) is getattr(importlib.import_module(SOURCE[name]), name)


def test_flat_api_runs_end_to_end():
    import gaugeflow as gf

    M = gf.Sphere(2)
    data = gf.wrapped_mixture(M, n_train=64, n_val=8, n_test=8, seed=0)
    model = gf.GaugeFlow(M, hidden=8)
    hist = gf.fit(model, data, gf.TrainConfig(steps=3, batch_size=16, val_size=0, progress=False))
    assert hist.steps == 3
    x = gf.sample(model, M.random_base(4, generator=torch.Generator().manual_seed(0)), steps=2)
    assert x.shape == (4, 3) and torch.allclose(x.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert gf.log_prob(model, data.test[:4], steps=2).shape == (4,)
    report = gf.check_manifold(gf.FlatTorus(2), max_examples=5)
    assert report is not None


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_gaugeflow_imports_neither_geomstats_nor_hypothesis():
    proc = _run_python("import sys, gaugeflow; gaugeflow.Sphere(2); "
                       "print(sorted({m.split('.')[0] for m in sys.modules} & {'geomstats', 'hypothesis', 'geoopt'}))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_check_manifold_without_hypothesis_names_the_test_extra():
    code = ("import sys; sys.modules['hypothesis'] = None\n"  # an import of hypothesis now fails
            "import gaugeflow\n"
            "try:\n    gaugeflow.check_manifold\nexcept ModuleNotFoundError as e:\n    print('ERR', e)\n")
    proc = _run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ERR") and "pip install 'gaugeflow[test]'" in proc.stdout
    assert "hypothesis" in proc.stdout


def test_unknown_flat_name_is_an_attribute_error():
    import gaugeflow

    with pytest.raises(AttributeError, match="has no attribute 'FiberProjection'"):
        gaugeflow.FiberProjection  # noqa: B018
