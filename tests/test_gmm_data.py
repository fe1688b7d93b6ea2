"""Properties of the reconstructed Gaussian-mixture benchmark (docs/math.md §8)."""
import math

import pytest
import torch

from gaugeflow.data import ManifoldData, gaussian_mixture, gmm_means, sample_gaussian_mixture
from gaugeflow.manifolds import Euclidean


@pytest.mark.parametrize("n_dim", [2, 4, 8, 16, 32])
def test_default_means_are_pairwise_separated(n_dim):
    s = 4.0
    mu = gmm_means(n_dim, spread=s, dtype=torch.float64)
    assert mu.shape == (8, n_dim)
    d = torch.cdist(mu, mu).fill_diagonal_(math.inf)
    assert float(d.min()) >= s / 2 - 1e-12


@pytest.mark.parametrize("n_dim, n_components, spread", [(3, 17, 1.5), (5, 31, 2.0), (2, 9, 4.0)])
def test_separation_holds_beyond_defaults(n_dim, n_components, spread):
    mu = gmm_means(n_dim, n_components, spread, dtype=torch.float64)
    d = torch.cdist(mu, mu).fill_diagonal_(math.inf)
    assert float(d.min()) >= spread / 2 - 1e-12


def test_means_follow_the_reconstruction_formula():
    # N = 2, K = 8: signed axes first, then the secondary axis at level 1 (no extra offset for N < 3)
    expected = [[4, 0], [0, 4], [-4, 0], [0, -4], [4, 2], [2, 4], [-4, 2], [2, -4]]
    assert gmm_means(2, 8, 4.0, dtype=torch.float64).tolist() == expected
    # N = 3, K = 7: component 6 is level 1: primary +s on axis 0, +s/2 on axis 1, -s/4 on axis 2
    assert gmm_means(3, 7, 4.0, dtype=torch.float64)[6].tolist() == [4.0, 2.0, -1.0]
    assert gmm_means(1, 2, 3.0, dtype=torch.float64).tolist() == [[3.0], [-3.0]]


def test_dataset_shapes_manifold_meta_and_determinism():
    data = gaussian_mixture(4, n_train=500, n_val=50, n_test=200, seed=3)
    assert isinstance(data, ManifoldData) and data.name == "gaussian-mixture"
    assert data.manifold == Euclidean(4)
    assert (data.train.shape, data.val.shape, data.test.shape) == ((500, 4), (50, 4), (200, 4))
    assert data.meta["means"] == gmm_means(4, dtype=torch.float64).tolist()
    assert sum(data.meta["counts"]["test"]) == 200
    again = gaussian_mixture(4, n_train=500, n_val=50, n_test=200, seed=3)
    assert torch.equal(data.train, again.train) and torch.equal(data.test, again.test)
    other = gaussian_mixture(4, n_train=500, n_val=50, n_test=200, seed=4)
    assert not torch.equal(data.test, other.test)
    # the splits are disjoint draws, not copies of each other
    assert torch.cdist(data.test, data.train).min() > 0
    assert gaussian_mixture(4, n_train=10, n_val=0, n_test=5, dtype=torch.float64).train.dtype == torch.float64


def test_components_are_balanced():
    data = gaussian_mixture(8, n_train=16_000, n_val=0, n_test=10, seed=0)
    counts = torch.tensor(data.meta["counts"]["train"], dtype=torch.float64)
    # multinomial(16000, 1/8): std of a count is sqrt(16000 * 1/8 * 7/8) ~ 41.8; allow 5 std
    assert (counts - 2000).abs().max() < 5 * 41.9


@pytest.mark.parametrize("n_dim", [2, 16])
def test_per_component_mean_and_covariance(n_dim):
    sigma = 0.7
    means = gmm_means(n_dim, 8, 4.0, dtype=torch.float64)
    x, labels = sample_gaussian_mixture(means, sigma, 40_000, torch.Generator().manual_seed(1))
    for k in range(8):
        xk = x[labels == k]
        n = len(xk)
        assert (xk.mean(0) - means[k]).abs().max() < 5 * sigma / math.sqrt(n)
        cov = torch.cov(xk.T)
        # entries of a sample covariance have std ~ sigma^2 * sqrt(2 / n) (diagonal) or sigma^2 / sqrt(n)
        assert (cov - sigma**2 * torch.eye(n_dim, dtype=torch.float64)).abs().max() < 6 * sigma**2 * math.sqrt(2 / n)


def test_points_cluster_at_their_nearest_mean():
    data = gaussian_mixture(16, n_train=2000, n_val=0, n_test=10, seed=0)
    means = torch.tensor(data.meta["means"])
    # in 16 dimensions a point is sigma * sqrt(16) = 2 from its mean, means are >= 5.6 apart
    dmin = torch.cdist(data.train, means).min(dim=1).values
    assert float(dmin.max()) < 0.5 * (math.sqrt(16) + 4)


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(n_dim=1, n_components=3), ValueError, "only 2 components"),
        (dict(n_dim=2, n_components=10), ValueError, "same mean"),
        (dict(n_dim=0), ValueError, "n_dim must be >= 1"),
        (dict(n_dim=2.0), TypeError, "n_dim must be an int"),
        (dict(n_dim=2, sigma=0.0), ValueError, "sigma must be a finite positive"),
        (dict(n_dim=2, sigma=float("nan")), ValueError, "sigma"),
        (dict(n_dim=2, spread=-1.0), ValueError, "spread"),
        (dict(n_dim=2, n_components=0), ValueError, "n_components"),
        (dict(n_dim=2, n_train=0), ValueError, "n_train"),
        (dict(n_dim=2, n_test=0), ValueError, "n_test"),
        (dict(n_dim=2, n_val=-1), ValueError, "n_val"),
        (dict(n_dim=2, seed="0"), TypeError, "seed"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        gaussian_mixture(**{"n_train": 20, "n_test": 5, **kwargs})


def test_one_dimensional_two_component_mixture_is_allowed():
    data = gaussian_mixture(1, n_components=2, n_train=100, n_val=0, n_test=10)
    assert data.train.shape == (100, 1)
    assert sorted(round(m[0]) for m in data.meta["means"]) == [-4, 4]


def test_sampler_rejects_bad_means():
    with pytest.raises(TypeError, match="floating"):
        sample_gaussian_mixture(torch.zeros(3, dtype=torch.long), 1.0, 5)


def test_registered_in_trainer_data_registry():
    from gaugeflow.manifolds import Sphere
    from gaugeflow.app.registry import DATASETS

    loader = DATASETS.get("gaussian-mixture")
    data = loader(Euclidean(8), n=300, seed=2)
    assert data.train.shape == (300, 8) and data.test.shape == (2000, 8)
    assert torch.equal(data.test, gaussian_mixture(8, n_train=300, seed=2).test)
    with pytest.raises(ValueError, match="Euclidean"):
        loader(Sphere(2), n=None, seed=0)
