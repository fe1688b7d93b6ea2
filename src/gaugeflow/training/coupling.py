"""Minibatch optimal-transport coupling of base and data points on any manifold (docs/math.md §6).

RCFM (§6) regresses the velocity of geodesic paths between pairs ``(x0_i, x1_i)``. With the
*independent* coupling ``x0_i ~ p0`` and ``x1_i ~ data`` are paired as drawn, and the paths of a batch
cross; the marginal field is curved and an ODE solver needs many steps. The *OT* coupling re-pairs
each minibatch by the squared geodesic distance (Tong et al. 2023, Pooladian et al. 2023, on
manifolds): with the cost ``C_ij = d(x0_i, x1_j)²`` (``[m, m]``, by broadcasting ``manifold.dist``)
it solves

    σ* = argmin_σ Σ_i C_{i σ(i)}        (exact, a permutation of the block)

or its entropic relaxation (Sinkhorn, ``ε`` relative to the block's mean cost)

    P* = argmin_{P 1 = 1/m, Pᵀ1 = 1/m} ⟨P, C⟩ − ε H(P),

and trains on ``(x0_i, x1_{σ(i)})``. Paths of a batch then cross less, and fewer solver steps reach
the same likelihood (evidence: ``docs/results/nfe.md``).

Choices, all user-facing parameters of :func:`ot_pairing` (and :class:`~gaugeflow.training.TrainConfig`
fields ``coupling``, ``ot_batch``, ``ot_exact_max``):

* ``block`` (``ot_batch``): the batch is cut into consecutive blocks of ``block`` pairs and each block
  is coupled on its own (``None``: the whole batch is one block). The base points and data indices
  are i.i.d., so every block is itself a minibatch; smaller blocks cost ``O(B·block)`` instead of
  ``O(B²)`` and couple less tightly.
* ``exact_max``: blocks of at most this many pairs are solved exactly by
  ``scipy.optimize.linear_sum_assignment`` — a *host step*: the cost matrix is copied to the CPU (one
  device sync per training step) — and larger blocks by log-domain Sinkhorn on the device, a fixed
  number of iterations (no host sync). A user setting, never tuned to a machine.
* Sinkhorn's plan is turned into pairs by *multinomial resampling per row*: each ``x0_i`` keeps its
  place and draws its partner ``j ~ P_ij / Σ_j P_ij`` (inverse CDF of one uniform per row, drawn from
  the caller's generator). This is not one-to-one: a data point can be drawn twice and another not at
  all, but with converged column marginals every data point is drawn once *in expectation*, so the
  data marginal of the training pairs is unchanged. The exact route is a true permutation.

Distances: ``manifold.dist`` where the manifold has an exact one (no ``capabilities`` attribute, or
``"dist"`` in it); else ``manifold.spectral_distance`` (e.g. meshes); else a one-line ``ValueError``.

Examples:
    >>> import torch
    >>> from gaugeflow.manifolds import Sphere
    >>> M = Sphere(2)
    >>> x0, x1 = M.random_base(8), M.random_base(8)
    >>> j = ot_pairing(M, x0, x1)
    >>> sorted(j.tolist()) == list(range(8))
    True
    >>> bool(pairing_cost(M, x0, x1[j]) <= pairing_cost(M, x0, x1))
    True
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ..geometry.manifold import Manifold

__all__ = ["COUPLINGS", "EXACT_MAX", "SINKHORN_EPSILON", "SINKHORN_ITERS", "squared_distances", "exact_pairing",
           "sinkhorn_log_plan", "sample_rows", "ot_pairing", "pairing_cost", "check_coupling"]

#: names accepted by ``TrainConfig.coupling`` / ``--coupling``
COUPLINGS = ("independent", "ot")
#: default largest block solved exactly (``linear_sum_assignment``); larger blocks use Sinkhorn
EXACT_MAX = 1024
#: default entropic regularisation, as a fraction of the block's mean cost
SINKHORN_EPSILON = 0.01
#: default number of Sinkhorn iterations (a fixed count: no convergence test, no host sync)
SINKHORN_ITERS = 200


def check_coupling(manifold: Manifold, coupling: str = "ot") -> None:
    """Raise a one-line ``ValueError`` unless ``coupling`` is known and usable on ``manifold``."""
    if coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {', '.join(COUPLINGS)}, got {coupling!r}")
    if coupling == "ot" and _distance_fn(manifold) is None:
        raise ValueError(f"coupling 'ot' needs squared geodesic distances, but {manifold} has neither an exact "
                         f"dist (capabilities: {sorted(manifold.capabilities)}) nor "
                         f"spectral_distance; use coupling 'independent'")


def _distance_fn(manifold: Manifold):
    """The exact ``dist`` where the manifold has it, else its premetric ``spectral_distance``, else ``None``."""
    if "dist" in manifold.capabilities:
        return manifold.dist
    spectral = getattr(manifold, "spectral_distance", None)  # a premetric, declared "spectral" or not
    return spectral if callable(spectral) else None


def squared_distances(manifold: Manifold, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """The cost ``C_ij = d(x0_i, x1_j)²`` of every pair: ``[..., m, D] × [..., m, D] -> [..., m, m]``.

    :meth:`Manifold.pairwise_sq_dist` where the manifold has a closed-form ``dist`` (one batched product
    of points on the sphere, of unit quaternions on SO(3) and SE(3); wrapped differences on the torus;
    products add their factors' costs), else the squared premetric (``spectral_distance``).
    """
    check_coupling(manifold)
    if "dist" in manifold.capabilities:
        return manifold.pairwise_sq_dist(x0, x1)
    return _distance_fn(manifold)(x0.unsqueeze(-2), x1.unsqueeze(-3)) ** 2


def pairing_cost(manifold: Manifold, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """Total squared distance ``Σ_i d(x0_i, x1_i)²`` of the pairs as given: ``[B, D] × [B, D] -> []``."""
    check_coupling(manifold)
    return (_distance_fn(manifold)(x0, x1) ** 2).sum()


def exact_pairing(cost: torch.Tensor, offset: bool = False) -> torch.Tensor:
    """Optimal permutations of ``[n, m, m]`` cost blocks: ``[n, m]`` columns ``σ(i)`` (on ``cost``'s device).

    A host step: the costs are copied to the CPU (float64) and each block is solved by
    ``scipy.optimize.linear_sum_assignment`` (Jonker–Volgenant, ``O(m³)``). With ``offset``, block ``k``'s
    columns are shifted by ``k·m`` (indices into the whole batch).
    """
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    host = cost.detach().to("cpu", torch.float64).numpy()
    if not np.isfinite(host).all():
        raise ValueError("ot coupling: the pair costs are not all finite (non-finite points in the batch?)")
    n, m = host.shape[0], host.shape[-1]
    cols = np.stack([linear_sum_assignment(block)[1] for block in host])
    if offset:
        cols += np.arange(0, n * m, m)[:, None]
    return torch.from_numpy(cols).to(cost.device)


def sinkhorn_log_plan(cost: torch.Tensor, epsilon: float = SINKHORN_EPSILON,
                      iters: int = SINKHORN_ITERS) -> torch.Tensor:
    """Log of the entropic OT plan with uniform marginals, log-domain Sinkhorn: ``[n, m, m] -> [n, m, m]``.

    With ``Ĉ = C / ε`` (``ε = epsilon · mean C`` per block) and potentials ``f, g``, alternately
    ``f_i = −log m − LSE_j(g_j − Ĉ_ij)`` and ``g_j = −log m − LSE_i(f_i − Ĉ_ij)``; returns
    ``log P_ij = f_i + g_j − Ĉ_ij``. After the last ``g`` update the column sums are exactly ``1/m``;
    the row sums converge to ``1/m`` as ``iters`` grows (linearly, faster for larger ``ε``).
    """
    m = cost.shape[-1]
    eps = epsilon * cost.mean(dim=(-2, -1), keepdim=True).clamp_min(torch.finfo(cost.dtype).tiny)
    scaled = cost / eps
    log_m = math.log(m)
    g = torch.zeros_like(cost[..., 0, :])
    for _ in range(iters):
        f = -log_m - torch.logsumexp(g.unsqueeze(-2) - scaled, dim=-1)
        g = -log_m - torch.logsumexp(f.unsqueeze(-1) - scaled, dim=-2)
    return f.unsqueeze(-1) + g.unsqueeze(-2) - scaled


def sample_rows(log_plan: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One partner per row drawn from the row-normalised plan by inverse CDF: ``[n, m, m], [n, m] -> [n, m]``.

    ``u`` holds uniforms in ``[0, 1)``; row ``i`` gets the first ``j`` with ``Σ_{k≤j} P_ik / Σ_k P_ik > u_i``.
    """
    cdf = torch.softmax(log_plan, dim=-1).cumsum(-1)
    j = torch.searchsorted(cdf, (u * cdf[..., -1]).unsqueeze(-1), right=True).squeeze(-1)
    return j.clamp_max(log_plan.shape[-1] - 1)


def _check_args(manifold: Manifold, x0: torch.Tensor, x1: torch.Tensor, block: Optional[int], exact_max: int,
                epsilon: float, iters: int) -> int:
    """Validate :func:`ot_pairing`'s inputs; returns the block size."""
    if not isinstance(manifold, Manifold):
        raise TypeError(f"ot_pairing: manifold must be a gaugeflow Manifold, got {type(manifold).__name__}")
    for name, x in (("x0", x0), ("x1", x1)):
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or len(x) == 0:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"ot_pairing: {name} must be a non-empty [B, D] tensor, got {got}")
    if x0.shape != x1.shape:
        raise ValueError(f"ot_pairing: x0 and x1 must have the same shape [B, D], got {tuple(x0.shape)} and "
                         f"{tuple(x1.shape)}")
    B = len(x0)
    for name, value in (("block", block), ("exact_max", exact_max), ("iters", iters)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"ot_pairing: {name} must be a positive integer, got {value!r}")
    m = B if block is None else block
    if B % m:
        raise ValueError(f"ot_pairing: block {m} must divide the batch size {B}")
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not (0 < epsilon < math.inf):
        raise ValueError(f"ot_pairing: epsilon must be a positive finite number, got {epsilon!r}")
    return m


def ot_pairing(manifold: Manifold, x0: torch.Tensor, x1: torch.Tensor, *, block: Optional[int] = None,
               exact_max: int = EXACT_MAX, epsilon: float = SINKHORN_EPSILON, iters: int = SINKHORN_ITERS,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Partners for ``x0`` among ``x1`` by minibatch OT: ``j [B]`` (long, on ``x0``'s device) so that
    ``(x0_i, x1_{j_i})`` are the training pairs.

    Args:
        manifold: the manifold of both batches (its ``dist``, or ``spectral_distance``, gives the cost).
        x0, x1: ``[B, D]`` base points and data points.
        block: couple consecutive blocks of this many pairs (must divide ``B``; ``None``: one block).
        exact_max: blocks of at most this size are solved exactly (a permutation, host step); larger
            ones by Sinkhorn plus multinomial resampling per row (on the device).
        epsilon, iters: Sinkhorn's regularisation (fraction of the mean cost) and iteration count.
        generator: CPU generator of the ``B`` row uniforms of the Sinkhorn route (drawn only there).

    Returns:
        ``[B]`` indices into ``x1``; within block ``k`` they lie in ``[k·block, (k+1)·block)``.

    Raises:
        ValueError/TypeError: bad shapes or settings; a manifold without distances.
    """
    m = _check_args(manifold, x0, x1, block, exact_max, epsilon, iters)
    B, D = x0.shape
    cost = squared_distances(manifold, x0.reshape(B // m, m, D), x1.reshape(B // m, m, D))
    if m <= exact_max:
        return exact_pairing(cost, offset=True).reshape(B)
    u = torch.rand(B // m, m, generator=generator, dtype=cost.dtype).to(cost.device)
    local = sample_rows(sinkhorn_log_plan(cost, epsilon, iters), u)
    return (local + torch.arange(0, B, m, device=cost.device).unsqueeze(-1)).reshape(B)
