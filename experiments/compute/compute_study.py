"""One part of the equal-compute study: train one (data set, train size, model, seed) trajectory and
evaluate it at the three budgets, with its learning curve and (for the solver seed) the solver sweep.

Pairing: :class:`gaugeflow.training.Trainer` draws, step by step, the batch indices, ``x0`` and ``t``
from one generator seeded with the seed, independently of the model, so every model of a (data set,
size, seed) sees the very same stream; ``stream_hash`` (a hash of the first draws) proves it per row.
Evaluation inputs (test split, FM triples, base points of the samples) depend on the data set only.
"""
from __future__ import annotations

import hashlib
import math
import time

import torch

from gaugeflow.data import ManifoldData, gaussian_mixture, protein_angles, protein_frames, quakes, world_cities
from gaugeflow.metrics import energy_distance, sliced_wasserstein
from gaugeflow.models import count_parameters
from gaugeflow.sampling import SolverError, isolate_failures, log_prob, sample
from gaugeflow.training import TrainConfig, Trainer, rcfm_loss
from gaugeflow.training.tools import plateaued as plateau_criterion

from compute_models import build

REAL = {"world-cities": world_cities, "quakes": quakes, "protein": protein_angles, "protein-frames": protein_frames}
HASHED_STEPS = 8


def load_data(dname: str, spec: dict, fraction: float) -> ManifoldData:
    """The data set of ``spec``; with ``fraction < 1`` a fixed (seed 1234) subset of its train split."""
    if spec["kind"] == "gmm":
        data = gaussian_mixture(spec["n_dim"], **spec["data"])
    else:
        data = REAL[dname](seed=0, max_points=spec["max_points"])
    if fraction < 1.0:
        n = max(2, round(fraction * len(data.train)))
        keep = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(1234))[:n]
        data = ManifoldData(data.name, data.manifold, data.train[keep], data.val, data.test, dict(data.meta))
    return data


def nll(model, x: torch.Tensor, steps: int, method: str = "rk4", tol: float = 1e-5) -> tuple[float, int]:
    """Mean exact-divergence NLL (nats) over the points whose solve succeeded, and the failures."""
    fn = lambda y: log_prob(model, y, steps=steps, method=method, divergence="exact", atol=tol, rtol=tol)  # noqa: E731
    lp = torch.cat([isolate_failures(fn, x[i:i + 1000], ()) for i in range(0, len(x), 1000)]).double()
    ok = lp[torch.isfinite(lp)]
    return (float(-ok.mean()) if len(ok) else math.nan), int(len(lp) - len(ok))


@torch.no_grad()
def fm_loss(model, data: ManifoldData, ev: dict) -> float:
    """Mean RCFM loss on fixed test triples: every one of the first ``fm_points`` test points with
    ``fm_repeats`` draws of ``(x0, t)`` from a generator that depends on nothing but the data set."""
    M = model.manifold
    x1 = data.test[: ev["fm_points"]].repeat(ev["fm_repeats"], 1)
    g = torch.Generator().manual_seed(104729)
    x0 = M.random_base(len(x1), generator=g, dtype=x1.dtype)
    t = torch.rand(len(x1), generator=g, dtype=x1.dtype)
    return float(rcfm_loss(model, x0, x1, t, generator=torch.Generator().manual_seed(7)))


def samples(model, n: int, steps, method: str = "rk4", tol: float = 1e-5) -> tuple[torch.Tensor, int]:
    """``n`` samples from fixed base points (seed 271) and the solver's velocity evaluations."""
    M = model.manifold
    x0 = M.random_base(n, generator=torch.Generator().manual_seed(271), dtype=torch.get_default_dtype())
    try:
        xs, info = sample(model, x0, steps=steps, method=method, return_info=True, atol=tol, rtol=tol)
        return xs, info.nfe
    except SolverError:
        fn = lambda y: sample(model, y, steps=steps, method=method, atol=tol, rtol=tol)  # noqa: E731
        return isolate_failures(fn, x0, (x0.shape[-1],)), -1


def sample_distances(xs: torch.Tensor, data: ManifoldData, euclidean: bool) -> dict:
    """Energy distance (geodesic; ambient for ℝ^N) and sliced W2 to the test split, over the samples that
    did not escape: non-finite, or (in ℝ^N) farther than ``3 · max ‖test point‖`` from the origin (a gauge
    term grows like a power of ``|x|``, so a rare trajectory can run away); the escaped share is reported."""
    ok = torch.isfinite(xs).all(dim=1)
    if euclidean:
        ok &= xs.nan_to_num(0.0).norm(dim=1) <= 3.0 * float(data.test.norm(dim=1).max())
    kept = xs[ok]
    M = None if euclidean else data.manifold
    nan = math.nan
    return {"energy_distance": energy_distance(kept, data.test, manifold=M, max_points=len(xs)) if len(kept) else nan,
            "sliced_w2": sliced_wasserstein(kept, data.test) if len(kept) else nan,
            "escaped_fraction": float((~ok).double().mean())}


def full_eval(model, data: ManifoldData, ev: dict, euclidean: bool) -> dict:
    """Test NLL on the full test split (exact divergence), test FM loss and sample distances."""
    start = time.perf_counter()
    value, fails = nll(model, data.test, ev["nll_steps"], ev["nll_method"])
    xs, _ = samples(model, ev["n_samples"], ev["nll_steps"])
    return {"test_nll": value, "nll_failures": fails, "test_fm": fm_loss(model, data, ev),
            **sample_distances(xs, data, euclidean), "eval_s": time.perf_counter() - start}


class PairedTrainer(Trainer):
    """A :class:`Trainer` that hashes its first ``HASHED_STEPS`` draws (batch points, ``x0``, ``t``).

    The hash takes each step's batch as the stream draws it (:meth:`Trainer.draw_unpaired`: the data points
    in drawn order, before any OT re-pairing), so a model trained with OT hashes like the others exactly
    when it sees the same stream.
    """

    def draw_unpaired(self):
        x0, x1, t = super().draw_unpaired()
        if getattr(self, "_hashed", 0) < HASHED_STEPS:
            if not hasattr(self, "digest"):
                self.digest = hashlib.sha256()
            for part in (x0, x1, t):
                self.digest.update(part.detach().cpu().numpy().tobytes())
            self._hashed = getattr(self, "_hashed", 0) + 1
        return x0, x1, t


def plateaued(vals: list[float], ev: dict) -> bool:
    """The plateau criterion: ``n ≥ plateau_min_evals`` and the best of the last ``⌈n/4⌉`` values is
    not below the best before them by more than ``plateau_tol`` (the library's early-stopping rule,
    :func:`gaugeflow.training.tools.plateaued`)."""
    return plateau_criterion(vals, ev["plateau_tol"], ev["plateau_min_evals"])
