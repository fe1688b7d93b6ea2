import math

import pytest
import torch

from gaugeflow.manifolds import Sphere
from gaugeflow.metrics import energy_distance, mode_coverage, sliced_wasserstein


def test_energy_distance_separates_and_vanishes():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(800, 2, generator=g)
    b = torch.randn(800, 2, generator=g)
    c = torch.randn(800, 2, generator=g) + 1.0
    same, diff = energy_distance(a, b), energy_distance(a, c)
    assert abs(same) < 0.02
    assert diff > 0.3
    assert energy_distance(a, a) == pytest.approx(0.0, abs=1e-12)


def test_energy_distance_on_sphere_uses_geodesic_distance():
    M = Sphere(2)
    g = torch.Generator().manual_seed(1)
    x = M.random_base(500, generator=g, dtype=torch.float64)
    north = M.projx(torch.randn(500, 3, generator=g, dtype=torch.float64) * 0.1 + torch.tensor([0, 0, 1.0]))
    assert energy_distance(x, M.random_base(500, generator=g, dtype=torch.float64), M) < 0.02
    # geodesic E d between uniform points on S^2 is pi/2; a point mass at the pole is at mean distance pi/2 too,
    # but the energy distance still sees the concentration
    assert energy_distance(x, north, M) > 0.5


def test_sliced_wasserstein_matches_shift_in_1d():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(4000, 1, generator=g, dtype=torch.float64)
    assert sliced_wasserstein(a, a + 0.5, n_projections=4) == pytest.approx(0.5, rel=1e-6)


def test_mode_coverage_counts_modes_and_outliers():
    means = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    s = torch.cat([means[0].expand(50, 2), means[1].expand(50, 2), torch.full((10, 2), 100.0)])
    cov = mode_coverage(s, means, radius=1.0)
    assert cov.fraction == pytest.approx(2 / 3)
    assert cov.counts == (50, 50, 0)
    assert cov.outliers == pytest.approx(10 / 110)
    with pytest.raises(ValueError, match="radius"):
        mode_coverage(s, means, radius=0)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\[n, D\]"):
        energy_distance(torch.zeros(3), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="last axes differ"):
        sliced_wasserstein(torch.zeros(3, 2), torch.zeros(3, 1))
    assert math.isfinite(energy_distance(torch.zeros(5, 2), torch.ones(5, 2)))
