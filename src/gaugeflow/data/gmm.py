"""The Gaussian-mixture benchmark of the gauge-flow papers on ℝ^N (docs/math.md §8, a reconstruction).

The papers describe K equally weighted isotropic components ``N(μ_k, σ²I)`` whose means are built
from a *primary axis*, a *secondary axis* (once the signed axes ``±s e_i`` are used up) and an
*extra offset* (higher dimension, many components), without publishing the constants. The
reconstruction used here (every constant is a parameter): for component ``k`` let ``i = k mod N``,
``r = ⌊k / N⌋`` and the level ``ℓ = ⌊k / 2N⌋``; then

* primary:   ``μ_k[i] = s · (−1)^r``
* secondary: ``μ_k[(i+1) mod N] += ℓ · s / 2``   (N ≥ 2, ℓ > 0)
* extra:     ``μ_k[(i+2) mod N] −= ℓ · s / 4``   (N ≥ 3, ℓ > 0)

With the defaults (K = 8, s = 4) the means are pairwise at least ``s / 2`` apart for every
N ≥ 2. Configurations whose means coincide (N = 1 with K > 2, or e.g. N = 2 with K ≥ 10) are
rejected with a ``ValueError``. The application's data table (:mod:`gaugeflow.app.registry`) names it
``"gaussian-mixture"`` (``gaugeflow train --manifold euclidean --dim N --data gaussian-mixture``).

Examples:
    >>> data = gaussian_mixture(2, seed=0)
    >>> data.train.shape, torch.tensor(data.meta["means"]).shape
    (torch.Size([10000, 2]), torch.Size([8, 2]))
"""
from __future__ import annotations

from typing import Optional

import torch

from gaugeflow.manifolds import Euclidean

from .base import ManifoldData

__all__ = ["gaussian_mixture", "gmm_means", "sample_gaussian_mixture"]


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"gaussian_mixture: {name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"gaussian_mixture: {name} must be >= {minimum}, got {value}")
    return value


def _check_positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"gaussian_mixture: {name} must be a real number, got {type(value).__name__} ({value!r})")
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"gaussian_mixture: {name} must be a finite positive number, got {value!r}")
    return float(value)


def gmm_means(n_dim: int, n_components: int = 8, spread: float = 4.0, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Component means of the reconstructed benchmark (formula in the module docstring).

    Args:
        n_dim: dimension ``N`` of the space (≥ 1).
        n_components: number of components ``K`` (≥ 1).
        spread: the spread ``s`` (> 0): distance of the primary means from the origin.
        dtype: floating dtype of the result (default: torch's default dtype).

    Returns:
        ``[K, N]`` tensor of pairwise distinct means.

    Raises:
        TypeError, ValueError: on bad arguments, or when the configuration gives coinciding means
            (N = 1 with K > 2; N = 2 with K ≥ 10; ...).
    """
    n = _check_int(n_dim, "n_dim", 1)
    k_total = _check_int(n_components, "n_components", 1)
    s = _check_positive(spread, "spread")
    if n == 1 and k_total > 2:
        raise ValueError(
            f"gaussian_mixture: in 1 dimension only 2 components (±spread) are distinct, got n_components={k_total}"
        )
    mu = torch.zeros(k_total, n, dtype=torch.float64)
    for k in range(k_total):
        i, r, level = k % n, k // n, k // (2 * n)
        mu[k, i] = s * (-1) ** r
        if level > 0 and n >= 2:
            mu[k, (i + 1) % n] += level * s / 2
        if level > 0 and n >= 3:
            mu[k, (i + 2) % n] -= level * s / 4
    if k_total > 1:
        d = torch.cdist(mu, mu).fill_diagonal_(float("inf"))
        if float(d.min()) < 1e-9 * s:
            a, b = divmod(int(d.argmin()), k_total)
            raise ValueError(
                f"gaussian_mixture: components {a} and {b} get the same mean {mu[a].tolist()} for n_dim={n}, "
                f"n_components={k_total}; use fewer components or a higher dimension"
            )
    return mu.to(torch.get_default_dtype() if dtype is None else dtype)


def sample_gaussian_mixture(
    means: torch.Tensor, sigma: float, n: int, generator: Optional[torch.Generator] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` points from the equally weighted mixture ``(1/K) Σ_k N(μ_k, σ² I)``.

    Args:
        means: ``[K, N]`` component means (its dtype is the output dtype).
        sigma: component standard deviation ``σ > 0``.
        n: number of samples (≥ 0).
        generator: optional ``torch.Generator`` for reproducibility.

    Returns:
        ``(x, labels)``: ``[n, N]`` points and ``[n]`` int64 component indices (uniform over ``K``).
    """
    if not isinstance(means, torch.Tensor) or means.dim() != 2 or not means.is_floating_point():
        raise TypeError(f"sample_gaussian_mixture: means must be a floating [K, N] tensor, got {means!r}")
    s = _check_positive(sigma, "sigma")
    _check_int(n, "n", 0)
    labels = torch.randint(len(means), (n,), generator=generator)
    noise = torch.randn(n, means.shape[1], generator=generator, dtype=means.dtype)
    return means[labels] + s * noise, labels


def gaussian_mixture(
    n_dim: int,
    n_components: int = 8,
    sigma: float = 0.5,
    spread: float = 4.0,
    n_train: int = 10_000,
    n_val: int = 1_000,
    n_test: int = 2_000,
    seed: int = 0,
    dtype: Optional[torch.dtype] = None,
) -> ManifoldData:
    """The papers' Gaussian-mixture benchmark on ``Euclidean(n_dim)`` with a fixed seeded split.

    The three splits are consecutive blocks of one stream of ``n_train + n_val + n_test`` samples drawn
    with ``torch.Generator().manual_seed(seed)``, so the same arguments always give the same tensors and
    the test set is independent of the model seeds of an experiment.

    Args:
        n_dim: dimension ``N`` (≥ 1). n_components: ``K`` (≥ 1). sigma: component std ``σ``.
        spread: ``s`` of the mean construction. n_train, n_val, n_test: split sizes (train, test ≥ 1).
        seed: data seed. dtype: floating dtype of the points (default: torch's default dtype).

    Returns:
        :class:`ManifoldData` named ``"gaussian-mixture"``; ``meta`` holds the generator parameters,
        ``"means"`` (``K`` lists of ``N`` floats) and per-split component ``"counts"``.
    """
    means = gmm_means(n_dim, n_components, spread, dtype=torch.float64)
    sig = _check_positive(sigma, "sigma")
    n_tr, n_va, n_te = _check_int(n_train, "n_train", 1), _check_int(n_val, "n_val", 0), _check_int(n_test, "n_test", 1)
    _check_int(seed, "seed", 0)
    x, labels = sample_gaussian_mixture(means, sig, n_tr + n_va + n_te, torch.Generator().manual_seed(seed))
    x = x.to(torch.get_default_dtype() if dtype is None else dtype)
    cuts = (0, n_tr, n_tr + n_va, n_tr + n_va + n_te)
    splits = {name: x[a:b] for name, a, b in zip(("train", "val", "test"), cuts[:-1], cuts[1:])}
    counts = {
        name: torch.bincount(labels[a:b], minlength=n_components).tolist()
        for name, a, b in zip(("train", "val", "test"), cuts[:-1], cuts[1:])
    }
    meta = {
        "generator": "gaugeflow.data.gaussian_mixture", "n_dim": n_dim, "n_components": n_components,
        "sigma": sig, "spread": float(spread), "seed": seed, "means": means.tolist(), "counts": counts,
    }
    return ManifoldData("gaussian-mixture", Euclidean(n_dim), splits["train"], splits["val"], splits["test"], meta)
