"""The RCFM training step against its floor on S², T², H² and SO(3) (issue 19, deliverable 1).

* **step**: ``zero_grad``, ``rcfm_loss(model, x0, x1)`` (times drawn, cut-locus policy, geodesic
  path, network, Riemannian squared norm), ``backward``, ``Adam.step`` — the default call and the
  call with ``host_checks=False`` (cut pairs resolved on the device), the trainer's route with
  ``path_chunk=1``.
* **chunked**: the trainer's route (``TrainConfig.path_chunk = K``, :mod:`gaugeflow.training.prefetch`):
  every ``K`` steps, ``K`` per-step time draws, the pairs of ``K`` steps concatenated and their paths
  built in one call (``build_paths``: cut round, fused pass), then per step ``step_loss`` on its rows,
  ``backward``, ``Adam.step``; timed ``K`` steps at a time and divided by ``K``. This is the ratio
  the target applies to (``ok`` / ``MISSED``).
* **floor**: the same network, loss and Adam step on precomputed ``(x_t, u_t, t)``: everything the
  step does except building the path (``zero_grad``, ``model(x_t, t)``, the same squared norm,
  ``backward``, ``Adam.step``).

``PlainFlow(M, hidden=w)``, batch 1024 of fixed pairs (``x0`` from the base distribution, ``x1``
from four concentrated clusters), Adam(lr 1e-3); step and floor interleaved repetition by
repetition (so load from other processes hits both alike), medians of this thread's CPU time with
one intra-op thread (wall time otherwise; :func:`interleaved_cpu`); ratio = chunked step / floor
(target ≤ 1.10). ``--path-only`` also times the path alone (``GeodesicPath.sample``); ``--chunks``
the chunk sizes timed (default: ``TrainConfig().path_chunk``; the first is the row's ratio).

Run alone: ``python experiments/benchmarks/bench_paths.py [--threads 1] [--reps 30] [--chunks 4 8 16]``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from _harness import Bench, Row, interleaved
from gaugeflow.geometry import Manifold
from gaugeflow.manifolds import SO3, FlatTorus, Hyperbolic, Sphere
from gaugeflow.models import PlainFlow
from gaugeflow.training import GeodesicPath, TrainConfig, rcfm_loss
from gaugeflow.training.loss import _squared_error  # the loss's own plain mean: the floor's loss
from gaugeflow.training.prefetch import build_paths, step_loss

__all__ = ["run", "MANIFOLDS", "TARGET"]

BATCH = 1024
TARGET = 1.10
MANIFOLDS = {"S2": lambda: Sphere(2), "T2": lambda: FlatTorus(2), "H2": lambda: Hyperbolic(2), "SO3": lambda: SO3()}


def interleaved_cpu(bench: Bench, fns: dict, reps: int, warmup: int = 3) -> dict:
    """:func:`_harness.interleaved` timing this thread's CPU time when torch runs one intra-op thread on CPU.

    On a shared machine another process that preempts us adds wall time but no CPU time to this
    thread, so step and floor keep their ratio; otherwise (several threads, CUDA) wall time.
    """
    if bench.device.type != "cpu" or torch.get_num_threads() != 1:
        return interleaved(bench, fns, reps, warmup)
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict = {name: [] for name in names}
    for r in range(reps):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.thread_time()
            fns[name]()
            times[name].append(time.thread_time() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def data_pairs(M: Manifold, n: int, bench: Bench) -> tuple[torch.Tensor, torch.Tensor]:
    """``x0`` from the base distribution; ``x1`` in four clusters (geodesic radius ~0.3). ``[n, D]`` each."""
    gen = torch.Generator().manual_seed(bench.seed)
    x0 = M.random_base(n, generator=gen, dtype=bench.dtype)
    centres = M.random_base(4, generator=gen, dtype=bench.dtype)[torch.arange(n) % 4]
    v = M.proju(centres, torch.randn(n, M.ambient_dim, generator=gen, dtype=bench.dtype))
    x1 = M.exp(centres, 0.3 * v / M.norm(centres, v).clamp_min(1e-6)[:, None] * torch.rand(n, 1, generator=gen, dtype=bench.dtype))
    return x0.to(bench.device), x1.to(bench.device)


def _chunked(M: Manifold, model, opt, x0: torch.Tensor, x1: torch.Tensor, k: int):
    """A closure of ``k`` Adam steps as the trainer takes them with ``path_chunk = k`` (see the module doc).

    ``x0, x1`` hold ``k`` batches of fixed pairs (``[k·B, D]``), cut into the per-step pieces the
    trainer's draws give and concatenated again, as the trainer does.
    """
    path, n = GeodesicPath(M), x0.shape[0] // k
    pieces = [(x0[i * n:(i + 1) * n], x1[i * n:(i + 1) * n]) for i in range(k)]

    def steps():
        ts = [torch.rand(n, dtype=x0.dtype, device=x0.device) for _ in range(k)]  # the trainer's per-step draws
        built = build_paths(path, torch.cat([p[0] for p in pieces]), torch.cat([p[1] for p in pieces]),
                            torch.cat(ts), k)
        for step in built:
            opt.zero_grad(set_to_none=True)
            loss = step_loss(model, M, step)
            loss.backward()
            opt.step()
        return loss.detach()
    return steps


def _steps(M: Manifold, width: int, x0: torch.Tensor, x1: torch.Tensor, bench: Bench, chunks=()) -> dict:
    """Closures of one Adam step each: the default RCFM step, the unchunked trainer's, the floor; and of
    ``K`` chunked trainer steps for each ``K`` in ``chunks`` (``x0, x1``: ``max(chunks)`` batches)."""
    torch.manual_seed(bench.seed)
    names = ("ours", "trainer", "ref", *(f"chunk{k}" for k in chunks))
    models = {name: PlainFlow(M, hidden=width).to(bench.device, bench.dtype) for name in names}
    opts = {name: torch.optim.Adam(m.parameters(), lr=1e-3) for name, m in models.items()}
    chunked = {f"chunk{k}": _chunked(M, models[f"chunk{k}"], opts[f"chunk{k}"], x0[:k * BATCH], x1[:k * BATCH], k)
               for k in chunks}
    x0, x1 = x0[:BATCH], x1[:BATCH]
    t_fixed = torch.rand(x0.shape[0], dtype=x0.dtype, device=x0.device)
    x_t, u_t = GeodesicPath(M).sample(x0, x1, t_fixed)

    def make(name, loss_fn):
        def step():
            opts[name].zero_grad(set_to_none=True)
            loss = loss_fn(models[name])
            loss.backward()
            opts[name].step()
            return loss.detach()
        return step

    return {
        "ours": make("ours", lambda m: rcfm_loss(m, x0, x1)),
        "trainer": make("trainer", lambda m: rcfm_loss(m, x0, x1, host_checks=False)),
        "ref": make("ref", lambda m: _squared_error(M, x_t, m(x_t, t_fixed), u_t, "mean")),
        **chunked,
    }


def run(bench: Bench, widths=(64,), manifolds=tuple(MANIFOLDS), path_only: bool = False, chunks=None) -> list[Row]:
    """One row per manifold and width: chunked trainer step / floor (``ours``); the default call
    (``step``), the unchunked trainer call (``trainer``) and further chunk sizes in ``extra``."""
    chunks = tuple(chunks or (TrainConfig().path_chunk,))
    rows = []
    for key in manifolds:
        M = MANIFOLDS[key]()
        x0, x1 = data_pairs(M, BATCH * max(chunks), bench)
        for w in widths:
            fns = _steps(M, w, x0, x1, bench, chunks)
            if path_only:
                t = torch.rand(BATCH, dtype=x0.dtype, device=x0.device)
                fns["path"] = lambda M=M, t=t: GeodesicPath(M).sample(x0[:BATCH], x1[:BATCH], t, host_checks=False)
            med = interleaved_cpu(bench, fns, bench.reps, warmup=3)
            med.update({f"chunk{k}": med[f"chunk{k}"] / k for k in chunks})  # per step
            main = f"chunk{chunks[0]}"
            row = Row("step / floor", f"{key} B={BATCH} w={w}", med[main], med["ref"], "floor (precomputed x_t, u_t)", TARGET)
            row.extra = {k: v for k, v in med.items() if k not in (main, "ref")}
            row.extra["chunks"] = chunks
            row.note = (f"trainer's step (path_chunk={chunks[0]}) / floor; default call / floor "
                        f"{med['ours'] / med['ref']:.2f}, unchunked trainer / floor {med['trainer'] / med['ref']:.2f}")
            bench.log(row)
            rows.append(row)
    return rows


def format_rows(rows) -> str:
    """Plain table: manifold, floor, default call / floor, unchunked and chunked trainer / floor (and the path alone)."""
    chunks = rows[0].extra["chunks"] if rows else ()
    head = "".join(f"  K={k} [ms]  K={k}/floor" for k in chunks)
    lines = [f"case                 floor [ms]  step/floor  trainer/floor (K=1){head}  path [ms]  target"]
    for r in rows:
        path = r.extra.get("path")
        per = {k: r.ours_s if i == 0 else r.extra[f"chunk{k}"] for i, k in enumerate(chunks)}
        cells = "".join(f"{1e3 * v:11.3f} {v / r.ref_s:11.2f}" for v in per.values())
        lines.append(f"{r.case:<20} {1e3 * r.ref_s:10.3f} {r.extra['ours'] / r.ref_s:11.2f} "
                     f"{r.extra['trainer'] / r.ref_s:20.2f}{cells} {'-' if path is None else f'{1e3 * path:.3f}':>10}  "
                     f"<= {r.target:g} {'ok' if r.ok else 'MISSED'} (K={chunks[0]})")
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--widths", type=int, nargs="+", default=[64])
    p.add_argument("--only", nargs="+", choices=list(MANIFOLDS), default=list(MANIFOLDS))
    p.add_argument("--path-only", action="store_true", help="also time the path alone")
    p.add_argument("--chunks", type=int, nargs="+", default=None,
                   help="path_chunk values timed (default: TrainConfig's; the first gives the row's ratio)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    b = Bench(torch.device("cpu"), reps=a.reps)
    print(format_rows(run(b, tuple(a.widths), tuple(a.only), a.path_only, a.chunks)))
