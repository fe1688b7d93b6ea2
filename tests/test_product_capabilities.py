"""Product manifolds advertise only the closed forms every factor offers (Manifold.capabilities)."""
import pytest
import torch

from gaugeflow.geometry.manifold import CapabilityError
from gaugeflow.manifolds import FlatTorus, Mesh, Product, Sphere


def test_product_of_closed_form_factors_keeps_their_capabilities():
    M = Product(Sphere(2), FlatTorus(1))
    assert M.capabilities == frozenset({"log", "dist", "transp", "geodesic"})
    assert M.has("log") and not M.has("spectral")


def test_product_with_a_mesh_factor_lacks_log_and_says_so():
    M = Product(Mesh.icosphere(subdivisions=1), FlatTorus(1))
    assert not M.has("log") and not M.has("dist") and not M.has("spectral")
    x = M.random_base(4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with pytest.raises(CapabilityError):
        M.log(x, x)
