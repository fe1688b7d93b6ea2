"""Shared machinery of the benchmark suite: interleaved timing, peak memory, fits, tables, machine.

* :func:`interleaved` runs every contender once per repetition, in rotating order, so a burst of
  load from other processes hits all of them alike; the reported number is the median.
* :func:`peak_memory` measures the peak of memory *allocated during one call* (bytes above what was
  live before it): on CUDA with ``torch.cuda.max_memory_allocated``; on CPU by replaying the
  allocation/free events recorded by ``torch.profiler`` (``profile_memory=True``) in time order.
  It is taken in a separate, untimed call so the profiler never perturbs a timing.
* :func:`fit_exponent` is the least-squares slope of ``log time`` against ``log k``.
"""
from __future__ import annotations

import contextlib
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch

_T0 = time.perf_counter()

__all__ = [
    "Bench", "Row", "interleaved", "peak_memory", "fit_exponent", "machine_info", "load_average",
    "format_table", "mib",
]


@dataclass
class Bench:
    """Run-wide settings handed to every benchmark module.

    Attributes:
        device: where tensors live. dtype: floating dtype (float32 unless asked).
        reps: timed repetitions of the cheap cases (training steps, gauge terms).
        reps_long: timed repetitions of the long cases (sampling, likelihood).
        quick: shrink problem sizes for a smoke run (numbers are then not comparable to the docs).
        memory: also measure the peak memory of each contender.
        compile: also time ``torch.compile``-d variants of our models.
    """

    device: torch.device
    dtype: torch.dtype = torch.float32
    reps: int = 30
    reps_long: int = 5
    quick: bool = False
    memory: bool = True
    compile: bool = False
    seed: int = 0

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def log(self, row: "Row") -> None:
        """One progress line per finished comparison (the tables come at the end)."""
        print(f"  [{time.perf_counter() - _T0:6.0f} s] {row.group}: {row.case}: ours {1e3 * row.ours_s:.2f} ms, "
              f"{row.ref_name} {1e3 * row.ref_s:.2f} ms, ratio {row.ratio:.2f}", flush=True)


@dataclass
class Row:
    """One line of a result table: a benchmark, our time, the reference time, and their ratio."""

    group: str
    case: str
    ours_s: float
    ref_s: float
    ref_name: str
    target: Optional[float] = None
    ours_peak: Optional[int] = None
    ref_peak: Optional[int] = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.ours_s / self.ref_s

    @property
    def ok(self) -> Optional[bool]:
        return None if self.target is None else self.ratio <= self.target


def interleaved(bench: Bench, fns: dict[str, Callable[[], object]], reps: int, warmup: int = 2) -> dict[str, float]:
    """Median wall time (s) of each callable over ``reps`` rounds; each round runs all of them.

    The order inside a round rotates, so no contender always runs first (cold caches) or last.
    ``warmup`` untimed rounds come first (lazy initialisation, allocator growth, autotuning).
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    bench.sync()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(reps):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            bench.sync()
            t0 = time.perf_counter()
            fns[name]()
            bench.sync()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def interleaved_steps(bench: Bench, trainers: dict, reps: int, steps: int, warmup: int) -> dict[str, float]:
    """Median seconds per training step (``unchecked_step``) of each trainer: ``warmup`` untimed steps each,
    then ``reps`` rounds of ``steps`` steps each, the order rotating round by round (see :func:`interleaved`).
    Process CPU time on CPU (waiting for a core on a shared machine does not count), synchronised wall
    time on CUDA.

    A trainer draws and builds the paths of ``config.path_chunk`` steps at once (the OT pairing included),
    so ``warmup`` and ``steps`` are rounded up to whole multiples of the largest chunk: every round then
    holds exactly one build per trainer, and its per-step time carries that work's share, as training
    does. (Rounds shorter than a chunk would put the build in only some rounds, and the median would
    leave it out.)"""
    clock, names = (time.perf_counter if bench.device.type == "cuda" else time.process_time), list(trainers)
    chunk = max(getattr(t.config, "path_chunk", 1) for t in trainers.values())
    steps, warmup = -(-steps // chunk) * chunk, -(-warmup // chunk) * chunk
    for name in names:
        for _ in range(warmup):
            trainers[name].unchecked_step()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        for name in names[r % len(names):] + names[:r % len(names)]:
            bench.sync()
            t0 = clock()
            for _ in range(steps):
                trainers[name].unchecked_step()
            bench.sync()
            times[name].append((clock() - t0) / steps)
    return {n: statistics.median(ts) for n, ts in times.items()}


@contextlib.contextmanager
def _quiet_fd2():
    """Silence the C++ profiler's start/stop chatter on file descriptor 2 (Python errors still raise)."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _cpu_peak(fn: Callable[[], object]) -> int:
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with _quiet_fd2(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
        del out
    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        ev = stack.pop()
        if ev.tag == _EventType.Allocation:
            events.append((ev.start_time_ns, ev.extra_fields.alloc_size))
        stack.extend(ev.children)
    events.sort()
    live = peak = 0
    for _, size in events:
        live += size
        peak = max(peak, live)
    return peak


def peak_memory(bench: Bench, fn: Callable[[], object]) -> int:
    """Peak bytes allocated by one call of ``fn`` above what was live before it."""
    if bench.device.type == "cuda":
        bench.sync()
        base = torch.cuda.memory_allocated(bench.device)
        torch.cuda.reset_peak_memory_stats(bench.device)
        out = fn()
        del out
        bench.sync()
        return torch.cuda.max_memory_allocated(bench.device) - base
    return _cpu_peak(fn)


def fit_exponent(ks: Sequence[float], times: Sequence[float]) -> float:
    """Least-squares slope ``p`` of ``log t = p log k + c``."""
    if len(ks) < 2 or len(ks) != len(times):
        raise ValueError(f"fit_exponent: need >= 2 paired points, got {len(ks)} ks and {len(times)} times")
    lx = [math.log(k) for k in ks]
    ly = [math.log(t) for t in times]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def load_average() -> float:
    """1-minute load average (``nan`` where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return float("nan")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(bench: Bench) -> dict:
    """Where the numbers come from: CPU/GPU model, cores, threads, versions, load."""
    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(bench.device),
        "dtype": str(bench.dtype).replace("torch.", ""),
        "load_1min": round(load_average(), 2),
    }
    if bench.device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(bench.device)
    for pkg in ("flow_matching", "torchcfm", "gaugeflow"):
        try:
            from importlib.metadata import version

            info[pkg] = version(pkg.replace("_", "-"))
        except Exception:  # noqa: BLE001 - a missing peer is reported, not fatal here
            info[pkg] = "not installed"
    return info


def mib(n: Optional[int]) -> str:
    return "-" if n is None else f"{n / 2**20:.1f}"


def _ms(s: float) -> str:
    return f"{1e3 * s:.3f}" if s < 0.01 else f"{1e3 * s:.1f}"


def format_table(rows: Sequence[Row]) -> str:
    """Plain-text table: case, ours, reference, ratio (with target), peak memory of both."""
    head = ("benchmark", "reference", "ours [ms]", "ref [ms]", "ours/ref", "target", "ours MiB", "ref MiB")
    lines = [head]
    for r in rows:
        target = "-" if r.target is None else f"<= {r.target:g} {'ok' if r.ok else 'MISSED'}"
        lines.append((f"{r.group}: {r.case}", r.ref_name, _ms(r.ours_s), _ms(r.ref_s), f"{r.ratio:.2f}",
                      target, mib(r.ours_peak), mib(r.ref_peak)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for j, line in enumerate(lines):
        out.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
