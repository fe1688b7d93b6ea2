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


def test_product_forwards_connection_direction_to_each_factor():
    # a mesh factor contracts connections with the raw direction (continuous across edges), a sphere
    # factor with the tangent one; the product must keep each factor's choice on its block
    mesh, sphere = Mesh.icosphere(subdivisions=1), Sphere(2)
    M = Product(mesh, sphere)
    g = torch.Generator().manual_seed(1)
    x = M.random_base(6, generator=g, dtype=torch.float64)
    u = torch.randn(6, 6, generator=g, dtype=torch.float64)
    out = M.connection_direction(x, u)
    assert torch.equal(out[:, :3], mesh.connection_direction(x[:, :3], u[:, :3]))
    assert torch.allclose(out[:, 3:], sphere.connection_direction(x[:, 3:], u[:, 3:]))
    assert torch.equal(out[:, :3], u[:, :3])  # the mesh block is the raw direction, not its projection
