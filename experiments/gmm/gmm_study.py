"""One job of the Gaussian-mixture study: train one model for one (N, seed) cell and evaluate it.

Pairing (the point of the design): every model of a cell ``(N, seed)`` is trained by
:class:`gaugeflow.training.Trainer` with ``TrainConfig.seed = seed``, whose single generator draws,
step by step, the batch indices, ``x0`` and ``t`` independently of the model, so all models see the
very same stream. Evaluation triples ``(x0, x1, t)`` depend only on ``N`` (:func:`fm_triples`), so the
FM losses of all models and seeds of one ``N`` are computed on identical inputs. The data set is the
same for every seed (data seed fixed in the config); the seed changes initialisation and stream.

Only the public gaugeflow API is used. Every job runs single-threaded (``torch.set_num_threads(1)``)
so that results do not depend on the number of worker processes.
"""
from __future__ import annotations

import math
import time
from typing import Any

import torch

from gaugeflow.data import gaussian_mixture
from gaugeflow.manifolds import Euclidean
from gaugeflow.metrics import energy_distance, mode_coverage, sliced_wasserstein
from gaugeflow.models import GaugeFlow, HigherGaugeFlow, PlainFlow, TensorGaugeFlow, count_parameters
from gaugeflow.sampling import isolate_failures, log_prob, sample
from gaugeflow.training import TrainConfig, Trainer, rcfm_loss

MODELS = ("plain", "plain-matched", "gauge", "higher-gauge", "tensor-gauge")
TENSOR_RANK = 2  # rank r of TensorGaugeFlow's gauge field (so(k) action, default S = r channels)
LABELS = {"plain": "Plain (papers' width)", "plain-matched": "Plain (param-matched)",
          "gauge": "GFM", "higher-gauge": "HGFM", "tensor-gauge": f"TGFM (r = {TENSOR_RANK})"}


def width_for(n_dim: int, width: dict[str, int]) -> int:
    """Hidden width of the gauge models (and of the papers' plain baseline): docs/math.md §5.5."""
    return width["small"] if n_dim <= width["small_max_dim"] else width["large"]


def build(model: str, n_dim: int, hidden: int, k: int | None, seed: int) -> torch.nn.Module:
    """Model ``model`` on ``Euclidean(n_dim)`` with weights initialised from ``seed`` (global RNG untouched)."""
    M = Euclidean(n_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if model in ("plain", "plain-matched"):
            return PlainFlow(M, hidden=hidden)
        if model == "gauge":
            return GaugeFlow(M, hidden=hidden, k=k)
        if model == "higher-gauge":
            return HigherGaugeFlow(M, hidden=hidden, k=k)
        if model == "tensor-gauge":
            return TensorGaugeFlow(M, rank=TENSOR_RANK, hidden=hidden, k=k)
    raise ValueError(f"unknown model {model!r}; expected one of {MODELS}")


def matched_width(n_dim: int, target: int) -> int:
    """Width ``w`` whose ``PlainFlow(Euclidean(n_dim), hidden=w)`` parameter count is closest to ``target``."""
    M = Euclidean(n_dim)
    count = lambda w: count_parameters(PlainFlow(M, hidden=w))  # noqa: E731
    lo, hi = 1, 1
    while count(hi) < target:
        hi *= 2
    while lo < hi:  # smallest w with count(w) >= target (count is increasing in w)
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if count(mid) < target else (lo, mid)
    return lo if lo == 1 or abs(count(lo) - target) <= abs(count(lo - 1) - target) else lo - 1


def fm_triples(x1: torch.Tensor, repeats: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fixed evaluation triples: every point of ``x1 [n, N]`` with ``repeats`` draws of ``(x0, t)``."""
    g = torch.Generator().manual_seed(seed)
    x1r = x1.repeat(repeats, 1)
    x0 = torch.randn(x1r.shape, generator=g, dtype=x1.dtype)
    return x0, x1r, torch.rand(len(x1r), generator=g, dtype=x1.dtype)


@torch.no_grad()
def fm_loss(model: torch.nn.Module, triples, chunk: int = 2048) -> float:
    """Mean RCFM loss over fixed triples (chunked; the model in eval mode)."""
    x0, x1, t = triples
    total = 0.0
    for i in range(0, len(x0), chunk):
        part = slice(i, i + chunk)
        total += float(rcfm_loss(model, x0[part], x1[part], t[part])) * len(x0[part])
    return total / len(x0)


def mode_radius(n_dim: int, sigma: float) -> float:
    """Radius of a component: ``σ (√N + 3)``, above the 99.9 % quantile of ``‖x − μ‖`` for N ≤ 32."""
    return sigma * (math.sqrt(n_dim) + 3.0)


def nll_metrics(model: torch.nn.Module, data, ev: dict[str, Any], n_dim: int) -> dict[str, Any]:
    """Mean test NLL (nats) over the points whose backward solve succeeded, its SEM, and the failures."""
    exact = n_dim <= ev["exact_max_dim"]
    probes = 1 if exact else ev["hutchinson_probes"]
    fn = lambda x: log_prob(model, x, steps=ev["nll_steps"], method=ev["nll_method"],  # noqa: E731
                            divergence="exact" if exact else "hutchinson", n_probes=probes,
                            generator=torch.Generator().manual_seed(31 + n_dim))
    lp = isolate_failures(fn, data.test[: ev["nll_points"]], ()).double()
    ok = lp[torch.isfinite(lp)]
    return {"test_nll": float(-ok.mean()) if len(ok) else float("nan"),
            "test_nll_sem": float(ok.std() / math.sqrt(len(ok))) if len(ok) > 1 else float("nan"),
            "nll_failures": int(len(lp) - len(ok)), "nll_divergence": "exact" if exact else f"hutchinson-{probes}"}


def sample_metrics(model: torch.nn.Module, data, ev: dict[str, Any], n_dim: int) -> tuple[dict[str, Any], torch.Tensor]:
    """Energy distance, sliced W2, mode coverage/TV of generated points, and the escaped fraction.

    A sample *escaped* when its solve failed or it lies beyond ``3 · max ‖test point‖``; distances are
    computed on the other samples, and escaped ones count as outliers in the mode metrics.
    """
    x0 = Euclidean(n_dim).random_base(ev["n_samples"], generator=torch.Generator().manual_seed(271 + n_dim))
    fn = lambda x: sample(model, x, steps=ev["sample_steps"], method=ev["sample_method"])  # noqa: E731
    xs = isolate_failures(fn, x0, (n_dim,))
    bound = 3.0 * float(data.test.norm(dim=1).max())
    escaped = ~torch.isfinite(xs).all(dim=1) | (xs.nan_to_num(0.0).norm(dim=1) > bound)
    kept = xs[~escaped]
    means = torch.tensor(data.meta["means"], dtype=xs.dtype)
    far = torch.full((n_dim,), 10.0 * bound, dtype=xs.dtype)  # farther than the radius from every mean
    cover = mode_coverage(torch.where(escaped[:, None], far, xs), means, mode_radius(n_dim, data.meta["sigma"]),
                          min_share=ev["mode_min_share"])
    share = torch.tensor(cover.counts, dtype=torch.float64) / len(xs)
    nan = float("nan")
    return {
        "escaped_fraction": float(escaped.double().mean()),
        "energy_distance": energy_distance(kept, data.test, max_points=ev["n_samples"]) if len(kept) else nan,
        "sliced_wasserstein": sliced_wasserstein(kept, data.test) if len(kept) else nan,
        "mode_coverage": cover.fraction, "mode_outliers": cover.outliers,
        "mode_tv": float(0.5 * (share - 1.0 / len(means)).abs().sum() + 0.5 * cover.outliers),
    }, xs


def evaluate(model: torch.nn.Module, data, cfg: dict[str, Any], n_dim: int) -> tuple[dict[str, Any], torch.Tensor]:
    """FM losses on the fixed triples, test NLL, sample distances and mode coverage of one trained model.

    Returns the metrics and the ``[n_samples, N]`` generated points.
    """
    ev = cfg["eval"]
    n = ev["fm_points"]
    out = {
        "train_fm": fm_loss(model, fm_triples(data.train[:n], ev["fm_repeats"], 7919 + n_dim)),
        "test_fm": fm_loss(model, fm_triples(data.test[:n], ev["fm_repeats"], 104729 + n_dim)),
        **nll_metrics(model, data, ev, n_dim),
    }
    metrics, xs = sample_metrics(model, data, ev, n_dim)
    return {**out, **metrics}, xs


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one ``(model, N, seed)``; returns the CSV row (plus samples for N = 2).

    ``job`` holds ``model, n_dim, seed, hidden, k`` and the study config ``cfg``.
    """
    torch.set_num_threads(1)
    cfg, n_dim, seed = job["cfg"], job["n_dim"], job["seed"]
    d = cfg["data"]
    data = gaussian_mixture(n_dim, n_components=d["n_components"], sigma=d["sigma"], spread=d["spread"],
                            n_train=d["n_train"], n_val=d["n_val"], n_test=d["n_test"], seed=d["seed"])
    model = build(job["model"], n_dim, job["hidden"], job["k"], seed)
    tc = TrainConfig(manifold="euclidean", dim=n_dim, data="gaussian-mixture", model="plain", hidden=job["hidden"],
                     seed=seed, device="cpu", progress=False, **cfg["train"])
    trainer = Trainer(model, data, tc)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(tc.steps):
        trainer.train_step()
    train_s, train_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    tail = trainer.history.loss[-max(1, tc.steps // 10):]
    ema = trainer.ema_model()
    start, cpu_start = time.perf_counter(), time.process_time()
    metrics, xs = evaluate(ema, data, cfg, n_dim)
    row = {
        "model": job["model"], "label": LABELS[job["model"]], "N": n_dim, "seed": seed, "hidden": job["hidden"],
        "k": "" if job["model"].startswith("plain") else (job["k"] or n_dim),  # gauge rank; default k = D
        "params": count_parameters(ema), "steps": tc.steps, "batch_size": tc.batch_size,
        "train_fm_running": sum(tail) / len(tail), **metrics,
        "skipped_steps": trainer.history.skipped, "train_seconds": train_s,
        "eval_seconds": time.perf_counter() - start, "train_cpu_seconds": train_cpu,
        "eval_cpu_seconds": time.process_time() - cpu_start,
    }
    row["train_seconds_per_step"] = train_s / max(tc.steps, 1)
    return {"row": row, "samples": xs.tolist() if n_dim == 2 else None}
