"""Gauge-model training steps of this checkout against another checkout of gaugeflow, interleaved.

Times one RCFM training step (``zero_grad``, ``rcfm_loss``, ``backward``, ``Adam.step``) of
``GaugeFlow`` and ``HigherGaugeFlow`` on S² (``D = 3``) and on ℝ^k (``D = k``) for each ``k``,
width 64, batch 1024, float32, one torch thread by default — in two worker processes, one per
library version: this checkout (``new``) and the one given by ``--against`` (``old``; a
repository root or its ``src`` folder, e.g. a ``git worktree add /tmp/base <commit>``). Each
version is imported in its own process, so both can be called ``gaugeflow``. Each case gets a
fresh pair of processes (a user trains one model per process; a process that has already run
other cases carries glibc's heap thresholds and trimmed heap from them, which decided whether a
later case page-faults every step — up to ~1 700 faults, ~3 ms, per step at ℝ¹⁶ in one side only;
``--shared-workers`` keeps one pair for all cases; ``--heap pinned`` fixes glibc's mmap and trim
thresholds in both workers alike, which takes the page faults out of both sides). Both workers build the same model (same seed,
same data) for a case; then the parent asks them in turn, order alternating, to time ``--steps``
steps, ``--reps`` times. A burst of load from other processes
thus hits both alike. Reported per case: the median CPU time per step of each side
(``time.process_time``: on a shared machine it does not count waiting for a core), the median
of the per-repetition ratios new / old, and each side's median minor page faults per step (a
diagnosis: on a VM where a fault costs microseconds, which allocations reach the kernel depends on
the allocator's history in that process and moves a step by several per cent between runs).

Acceptance (issue 15): new / old ≤ ``--target`` (1.20) at every k in {3, 8, 16, 32} for both
models on S² and ℝ^k. The exit status is 1 when a case exceeds it.

Run (from the repository root; heavy, so under the shared lock on a shared machine):

    git worktree add /work/base <commit before the change>
    flock /tmp/gaugeflow-heavy.lock python experiments/benchmarks/bench_gauge_routes.py --against /work/base

Options: ``--ks``, ``--width``, ``--batch``, ``--reps``, ``--steps``, ``--threads``,
``--models``, ``--bases``, ``--target``. Without ``--against`` only this checkout is timed.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KS = (3, 8, 16, 32)
TARGET = 1.20


# ------------------------------------------------------------------ worker side (one per library version)
def _import_library(root: Path):
    """Import ``gaugeflow`` from the checkout at ``root`` (``src/gaugeflow`` plus the top-level ``manifolds``)."""
    for finder in list(sys.meta_path):  # an editable install would map gaugeflow.* back to its own checkout
        if type(finder).__module__.startswith("__editable__"):
            sys.meta_path.remove(finder)
    package = root / "src" / "gaugeflow"
    spec = importlib.util.spec_from_file_location("gaugeflow", package / "__init__.py",
                                                  submodule_search_locations=[str(package), str(root)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["gaugeflow"] = module
    spec.loader.exec_module(module)
    return module


def _build(case: dict):
    """The step closure of one case: model, data and Adam, all seeded."""
    import torch
    from gaugeflow.manifolds import Euclidean, Sphere
    from gaugeflow.models import GaugeFlow, HigherGaugeFlow
    from gaugeflow.training import rcfm_loss

    k = case["k"]
    M = Sphere(2) if case["base"] == "S2" else Euclidean(k)
    cls = {"GaugeFlow": GaugeFlow, "HigherGaugeFlow": HigherGaugeFlow}[case["model"]]
    torch.manual_seed(0)
    model = cls(M, hidden=case["width"], k=k)
    gen = torch.Generator().manual_seed(1)
    x0, x1 = M.random_base(case["batch"], generator=gen), M.random_base(case["batch"], generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        rcfm_loss(model, x0, x1).backward()
        opt.step()

    return step


def _minor_faults() -> int:
    """Minor page faults of this process so far (0 where ``resource`` is unavailable)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def worker(root: str, threads: int) -> None:
    """Serve ``{"case": …}`` (build and warm up) and ``{"time": n}`` (CPU seconds per step) requests on stdin."""
    _import_library(Path(root))
    import torch

    torch.set_num_threads(threads)
    step = None
    for line in sys.stdin:
        request = json.loads(line)
        if "case" in request:
            step = _build(request["case"])
            for _ in range(3):
                step()
            reply = {"ok": True}
        else:
            f0, c0, w0 = _minor_faults(), time.process_time(), time.perf_counter()
            for _ in range(request["time"]):
                step()
            n = request["time"]
            reply = {"cpu": (time.process_time() - c0) / n, "wall": (time.perf_counter() - w0) / n,
                     "faults": (_minor_faults() - f0) / n}
        print(json.dumps(reply), flush=True)


# ------------------------------------------------------------------ parent side
#: ``--heap pinned``: glibc's thresholds fixed (no dynamic mmap threshold, trimming only past 256 MiB),
#: the same in both workers, so neither side's steps page-fault by the accident of its heap history
PINNED_HEAP = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}


class _Worker:
    def __init__(self, root: Path, threads: int, heap: str = "default"):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        if heap == "pinned":
            env.update(PINNED_HEAP)
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", str(root), "--threads", str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def ask(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker exited with status {self.proc.wait()}")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def _checkout(path: str) -> Path:
    root = Path(path).resolve()
    root = root.parent if root.name == "src" else root
    if not (root / "src" / "gaugeflow" / "__init__.py").is_file():
        raise SystemExit(f"--against: expected a gaugeflow checkout (a folder with src/gaugeflow/), got {path}")
    return root


def run(args) -> list[dict]:
    old_root = _checkout(args.against) if args.against else None
    sides: dict = {}
    rows = []
    try:
        for k in args.ks:
            for base in args.bases:
                for model in args.models:
                    case = {"model": model, "base": base, "k": k, "width": args.width, "batch": args.batch}
                    pairs = []
                    for _ in range(args.pairs if args.fresh else 1):
                        if args.fresh or not sides:  # a new pair of processes, as a user trains one model per process
                            _close(sides)
                            sides = {"new": _Worker(ROOT, args.threads, args.heap)}
                            if old_root is not None:
                                sides["old"] = _Worker(old_root, args.threads, args.heap)
                        pairs.append(_time_case(sides, case, args))
                    rows.append(_combine(pairs))
                    print(_format(rows[-1], args.target), flush=True)
    finally:
        _close(sides)
    return rows


def _combine(pairs: list[dict]) -> dict:
    """One row from the rows of several process pairs: the median of each figure over the pairs (with one
    pair, that pair's row), and every pair's ratio in ``pair_ratios``."""
    if len(pairs) == 1:
        return pairs[0]
    row = {key: (statistics.median(p[key] for p in pairs) if isinstance(value, float) else value)
           for key, value in pairs[0].items()}
    if "ratio" in row:
        row["pair_ratios"] = [p["ratio"] for p in pairs]
    return row


def _time_case(sides: dict, case: dict, args) -> dict:
    """Build ``case`` in every worker, then time it ``args.reps`` times per side, the order alternating."""
    for w in sides.values():
        w.ask({"case": case})
    times, faults = {name: [] for name in sides}, {name: [] for name in sides}
    for r in range(args.reps):
        for name in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
            reply = sides[name].ask({"time": args.steps})
            times[name].append(reply["cpu"])
            faults[name].append(reply["faults"])
    row = dict(case, **{f"{n}_ms": 1e3 * statistics.median(t) for n, t in times.items()},
               **{f"{n}_faults": statistics.median(f) for n, f in faults.items()})
    if "old" in sides:
        row["ratio"] = statistics.median(a / b for a, b in zip(times["new"], times["old"]))
    return row


def _close(sides: dict) -> None:
    for w in sides.values():
        w.close()
    sides.clear()


def _format(row: dict, target: float) -> str:
    text = f"{row['model']:>15} {row['base']:>3} k={row['k']:<2}  new {row['new_ms']:8.2f} ms"
    if "ratio" in row:
        verdict = "ok" if row["ratio"] <= target else "OVER"
        text += f"  old {row['old_ms']:8.2f} ms  new/old {row['ratio']:.2f} ({verdict})"
    faults = " / ".join(f"{row[f'{n}_faults']:.0f}" for n in ("new", "old") if f"{n}_faults" in row)
    pairs = f"  pairs {' '.join(f'{r:.2f}' for r in row['pair_ratios'])}" if "pair_ratios" in row else ""
    return text + f"  page faults per step {faults}{pairs}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="another gaugeflow checkout (repository root or its src/) to compare with")
    parser.add_argument("--ks", type=int, nargs="+", default=list(KS))
    parser.add_argument("--bases", nargs="+", default=["S2", "Rk"], choices=["S2", "Rk"])
    parser.add_argument("--models", nargs="+", default=["GaugeFlow", "HigherGaugeFlow"], choices=["GaugeFlow", "HigherGaugeFlow"])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=21,
                        help="timed repetitions per side and case (medians reported; with fewer, one slow stretch of a shared machine can decide a cell)")
    parser.add_argument("--steps", type=int, default=5, help="training steps per repetition")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads in each worker")
    parser.add_argument("--target", type=float, default=TARGET)
    parser.add_argument("--shared-workers", dest="fresh", action="store_false",
                        help="time every case in the same two worker processes (default: a fresh pair per case; a "
                             "process that has run other cases carries their allocator state, see the module docstring)")
    parser.add_argument("--pairs", type=int, default=1,
                        help="fresh process pairs per case; with several, every figure is the median over the "
                             "pairs (a process that runs slow throughout is one vote of several)")
    parser.add_argument("--heap", choices=("default", "pinned"), default="default",
                        help="glibc heap of both workers: as the environment gives it, or with fixed mmap and trim "
                             "thresholds (see PINNED_HEAP): a diagnosis of how much of a ratio is page faults")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error(f"--pairs must be at least 1, got {args.pairs}")
    if args.worker:
        worker(args.worker, args.threads)
        return 0
    t0 = time.perf_counter()
    rows = run(args)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{len(rows)} cases in {time.perf_counter() - t0:.0f} s; width {args.width}, batch {args.batch}, "
          f"{args.threads} thread(s), {args.reps} reps × {args.steps} steps, {args.pairs if args.fresh else 1} process pair(s) "
          f"per case, heap {args.heap}; 1-min load {load:.1f}")
    if args.against:
        worst = max(rows, key=lambda r: r["ratio"])
        print(f"worst new/old {worst['ratio']:.2f} ({worst['model']} {worst['base']} k={worst['k']}); target <= {args.target}")
        return 0 if worst["ratio"] <= args.target else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
