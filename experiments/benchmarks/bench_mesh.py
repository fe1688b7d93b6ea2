"""The cost of meshes (issue 20): premetric paths and training steps on triangle meshes.

* **path**: ``PremetricPath(M).sample`` (biharmonic, defaults: 8 midpoint steps, 3 Newton
  corrections) for 1 024 pairs with ``host_checks=False``, on torus meshes of 10 000, 40 000 and
  160 000 faces (``Mesh.torus`` with 100×50, 200×100, 400×200 sections), with the one-off
  eigen-decomposition (128 eigenpairs, ``scipy.sparse.linalg.eigsh``) beside it.
* **step**: one full RCFM training step (``rcfm_loss`` with the premetric path, ``backward``,
  ``Adam.step``) of ``PlainFlow(M, hidden=64)``, batch 1 024, against the same step on ``Sphere(2)``
  with its closed-form geodesic path; ratio = mesh / sphere.
* **eigenpairs**: on the 10 000-face torus, the eigen-decomposition and the path for k ∈ {32, 64,
  128, 256} eigenpairs (the embedding has k − 1 coordinates).

Medians over ``reps_long`` interleaved repetitions (wall time); float64 mesh points (the mesh's dtype);
fitted exponents of time against face count.

Run alone: ``python experiments/benchmarks/bench_mesh.py [--quick] [--threads 1]``.
"""
from __future__ import annotations

import argparse
import time

import torch

from _harness import Bench, fit_exponent, interleaved
from gaugeflow.manifolds import Mesh, Sphere
from gaugeflow.models import PlainFlow
from gaugeflow.training import PremetricPath, rcfm_loss

__all__ = ["run", "format_summary", "FACES", "EIGEN"]

BATCH = 1024
FACES = {10_000: (100, 50), 40_000: (200, 100), 160_000: (400, 200)}
EIGEN = (32, 64, 128, 256)


def _torus(faces: int, n_eigen: int = 128) -> tuple[Mesh, float]:
    """The torus mesh with ``faces`` faces and the seconds its eigen-decomposition took."""
    major, minor = FACES[faces]
    M = Mesh.torus(1.0, 0.4, major, minor, n_eigen=n_eigen)
    t0 = time.perf_counter()
    M.eigenpairs  # computed once per mesh (cached)
    return M, time.perf_counter() - t0


def _pairs(M, n: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    return M.random_base(n, generator=g, dtype=dtype), M.random_base(n, generator=g, dtype=dtype), \
        torch.rand(n, generator=g, dtype=dtype)


def _step(M, path, batch: int):
    """A closure running one RCFM training step of PlainFlow(M, hidden=64) on fixed pairs."""
    torch.manual_seed(0)
    model = PlainFlow(M, hidden=64).double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x0, x1, t = _pairs(M, batch)

    def step():
        opt.zero_grad(set_to_none=True)
        rcfm_loss(model, x0, x1, t, path=path, host_checks=False).backward()
        opt.step()
    return step


def run(bench: Bench) -> dict:
    """Every measurement of the module docstring; returns plain numbers (seconds)."""
    batch = 128 if bench.quick else BATCH
    faces = (10_000,) if bench.quick else tuple(FACES)
    out: dict = {"batch": batch, "faces": {}, "eigen": {}}
    sphere = Sphere(2)
    for k in ((32, 128) if bench.quick else EIGEN):  # ascending: each k is a fresh solve
        M, eig_s = _torus(10_000, n_eigen=k)
        path = PremetricPath(M)
        x0, x1, t = _pairs(M, batch)
        times = interleaved(bench, {"path": lambda: path.sample(x0, x1, t, host_checks=False)}, bench.reps_long, 1)
        out["eigen"][k] = {"eigsh_s": eig_s, "path_s": times["path"]}
    for F in faces:
        M, eig_s = _torus(F)
        if F == 10_000 and 128 in out["eigen"]:  # solved above (eigsh results are cached per mesh in-process)
            eig_s = out["eigen"][128]["eigsh_s"]
        path = PremetricPath(M)
        x0, x1, t = _pairs(M, batch)
        times = interleaved(bench, {
            "path": lambda: path.sample(x0, x1, t, host_checks=False),
            "mesh step": _step(M, path, batch),
            "sphere step": _step(sphere, None, batch),
        }, bench.reps_long, warmup=1)
        out["faces"][F] = {"eigsh_s": eig_s, **{k.replace(" ", "_") + "_s": v for k, v in times.items()}}
        print(f"  {F} faces: eigsh {eig_s:.1f} s, path {times['path']:.3f} s, step {times['mesh step']:.3f} s "
              f"(sphere {times['sphere step'] * 1e3:.1f} ms)", flush=True)
    if len(faces) > 1:
        out["path_exponent"] = fit_exponent(list(faces), [out["faces"][F]["path_s"] for F in faces])
        out["eigsh_exponent"] = fit_exponent(list(faces), [out["faces"][F]["eigsh_s"] for F in faces])
    return out


def format_summary(res: dict) -> str:
    """The two printed tables."""
    lines = [f"faces | eigsh (once) | path, {res['batch']} pairs | training step | sphere step | step ratio",
             "---|---|---|---|---|---"]
    for F, r in res["faces"].items():
        lines.append(f"{F:,} | {r['eigsh_s']:.1f} s | {r['path_s']:.3f} s | {r['mesh_step_s']:.3f} s | "
                     f"{r['sphere_step_s'] * 1e3:.1f} ms | {r['mesh_step_s'] / r['sphere_step_s']:.0f}x")
    if "path_exponent" in res:
        lines.append(f"(time ∝ faces^p: path p = {res['path_exponent']:.2f}, eigsh p = {res['eigsh_exponent']:.2f})")
    lines += ["", f"eigenpairs (10,000 faces) | eigsh (once) | path, {res['batch']} pairs", "---|---|---"]
    lines += [f"{k} | {r['eigsh_s']:.1f} s | {r['path_s']:.3f} s" for k, r in res["eigen"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--reps-long", type=int, default=3)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(Bench(torch.device("cpu"), torch.float64, reps_long=args.reps_long, quick=args.quick))
    print(format_summary(result))
