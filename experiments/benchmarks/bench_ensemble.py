"""Several seeds of one model trained in one step (``torch.func`` model ensembling) against separate models.

Researchers train every model on five or more seeds. The models of this library are small (width 64),
so on one CPU thread a training step is dominated by per-operation costs, and on a GPU by kernel
launches: five members stacked along a leading dimension share every dispatched operation.

Contenders, per case, ``MEMBERS`` members (different initialisations), each on its own precomputed
RCFM paths (geodesic ``x_t, u_t`` at batch 256):

* *separate*: per member ``zero_grad``, :func:`gaugeflow.training.prefetch.step_loss`, ``backward`` and
  a :class:`~gaugeflow.training.flat_adam.FlatAdam` step (the trainer's optimiser);
* *stacked*: the members' parameters stacked (``torch.func.stack_module_state``), one
  ``vmap(functional_call)`` through the same loss, the members' losses summed, one ``backward`` and one
  FlatAdam step over the stacked tensors. Adam is elementwise, so each member's update is its own.

Both start from the same weights and take the same steps on the same paths; after the timing the
script prints the largest difference between the two routes' weights (float32: the stacked route's
batched products round differently, so agreement is to rounding, not bit for bit). Ratio = stacked step /
separate steps; medians over interleaved rounds (``_harness.interleaved``).

Run: ``python experiments/benchmarks/bench_ensemble.py [--reps N] [--members S] [--threads T] [--device cuda]
[--quick]`` (about a minute on one CPU core); also the ``ensemble`` section of ``run_all.py``.
"""
from __future__ import annotations

import argparse
import copy
import sys

import torch
from torch.func import functional_call, stack_module_state, vmap

from _harness import Bench, Row, format_table, interleaved, machine_info
from bench_update import CASES
from gaugeflow.data import wrapped_mixture
from gaugeflow.training import GeodesicPath
from gaugeflow.training.flat_adam import FlatAdam
from gaugeflow.training.prefetch import StepPath, step_loss

__all__ = ["run", "paths", "Separate", "Stacked"]

BATCH, WIDTH, MEMBERS, PATHS = 256, 64, 5, 8


def paths(bench: Bench, manifold, members: int, n: int = PATHS) -> list[list[StepPath]]:
    """``n`` precomputed steps per member: geodesic paths from base points to a wrapped mixture's points."""
    data = wrapped_mixture(manifold, n_train=4096, n_val=16, n_test=16, seed=0)
    gen, geo = torch.Generator().manual_seed(bench.seed), GeodesicPath(manifold)
    out = []
    for _ in range(members):
        steps = []
        for _ in range(n):
            x1 = data.train[torch.randint(len(data.train), (BATCH,), generator=gen)]
            x0 = manifold.random_base(BATCH, generator=gen, dtype=x1.dtype)
            p = geo.sample(x0, x1, torch.rand(BATCH, generator=gen, dtype=x1.dtype), generator=gen)
            steps.append(StepPath(*(v.to(bench.device, bench.dtype) for v in (p.x_t, p.u_t, p.t)), None))
        out.append(steps)
    return out


class Separate:
    """The members as separate models, one optimiser each, stepped one after the other."""

    def __init__(self, models: list[torch.nn.Module], manifold, steps: list[list[StepPath]]):
        self.models, self.manifold, self.steps, self.i = models, manifold, steps, 0
        self.opts = [FlatAdam(m.parameters(), lr=3e-3) for m in models]

    def __call__(self) -> None:
        for model, opt, steps in zip(self.models, self.opts, self.steps):
            opt.zero_grad(set_to_none=True)
            step_loss(model, self.manifold, steps[self.i % len(steps)]).backward()
            opt.step()
        self.i += 1

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: torch.stack([dict(m.named_parameters())[k].detach() for m in self.models])
                for k, _ in self.models[0].named_parameters()}


class Stacked:
    """The members stacked along a leading dimension: one vmapped loss, one backward, one optimiser."""

    def __init__(self, models: list[torch.nn.Module], manifold, steps: list[list[StepPath]]):
        params, self.buffers = stack_module_state(models)
        self.params = {k: torch.nn.Parameter(v.detach()) for k, v in params.items()}
        self.opt = FlatAdam(self.params.values(), lr=3e-3)
        base = copy.deepcopy(models[0]).to("meta")

        def member_loss(p, b, x_t, u_t, t):
            return step_loss(lambda y, s: functional_call(base, (p, b), (y, s)), manifold, StepPath(x_t, u_t, t, None))

        self.loss = vmap(member_loss)
        self.steps = [StepPath(*(torch.stack([getattr(s[j], f) for s in steps]) for f in ("x_t", "u_t", "t")), None)
                      for j in range(len(steps[0]))]
        self.i = 0

    def __call__(self) -> None:
        s = self.steps[self.i % len(self.steps)]
        self.opt.zero_grad(set_to_none=True)
        self.loss(self.params, self.buffers, s.x_t, s.u_t, s.t).sum().backward()
        self.opt.step()
        self.i += 1

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self.params.items()}


def run(bench: Bench, members: int = MEMBERS) -> list[Row]:
    """One row per case: a stacked step of ``members`` models / ``members`` separate steps."""
    rows, reps = [], 5 if bench.quick else bench.reps
    for label, make_manifold, cls in CASES:
        manifold = make_manifold()
        torch.manual_seed(bench.seed)
        models = [cls(manifold, hidden=WIDTH).to(bench.device, bench.dtype) for _ in range(members)]
        steps = paths(bench, manifold, members)
        routes = {"separate": Separate(copy.deepcopy(models), manifold, steps),
                  "stacked": Stacked(copy.deepcopy(models), manifold, steps)}
        med = interleaved(bench, routes, reps)
        a, b = routes["separate"].weights(), routes["stacked"].weights()
        diff = max(float((a[k] - b[k]).abs().max()) for k in a)
        taken = routes["stacked"].i
        row = Row("ensemble", f"{label} x{members}", med["stacked"], med["separate"], f"{members} separate steps",
                  note=f"after {taken} steps each, largest weight difference {diff:.1e}",
                  extra={"members": members, "steps": taken, "max_weight_diff": diff})
        rows.append(row)
        bench.log(row)
    return rows


def main(argv=None) -> list[Row]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--members", type=int, default=MEMBERS)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    bench = Bench(device=torch.device(args.device), reps=args.reps, quick=args.quick, memory=False)
    print(machine_info(bench))
    rows = run(bench, args.members)
    print(f"\nTraining step of {args.members} members stacked / {args.members} separate steps "
          f"(batch {BATCH}, width {WIDTH}, forward + backward + Adam):")
    print(format_table(rows))
    for r in rows:
        print(f"  {r.case}: {r.note}")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
