"""Edge terms of ``log_prob`` on a mesh: log Z and NLL of one trained model under three tangent maps.

``python experiments/mesh/tangent_check.py [--train-with face|bisector]`` trains the seed-0 model of
``run.py`` (same settings) with one map, then evaluates the *same weights* with each map (math.md §11.3):

* ``face``: ``proju``, the orthogonal projection onto the face plane (jumps across edges);
* ``vertex``: remove the component along the barycentric vertex normal, then ``proju``;
* ``bisector``: ``Mesh.to_tangent``, the projection along the blended edge bisector normal
  (continuous across edges after unfolding).

Prints raw test NLL, log Z (midpoint rule over every face) and the normalised NLL for each, and
writes ``docs/results/mesh_tangent_<map>.json``; ``--z-steps 24 48`` adds log Z of the bisector map at
other RK4 step counts, ``--z-sub 2`` log Z by a finer quadrature (4 points per face).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import types
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as mesh_run  # noqa: E402

from gaugeflow.manifolds import Mesh  # noqa: E402
from gaugeflow.training.trainer import validation_nll  # noqa: E402


def _vertex_normal_map(M: Mesh):
    """``proju(x, u − (u·ν)ν)`` with ``ν`` the normalised barycentric blend of area-weighted vertex normals."""
    fn = M._tables(torch.float64, None).normals * M.face_areas[:, None]
    vn = torch.zeros(len(M.vertices), 3, dtype=torch.float64).index_add_(0, M.faces.reshape(-1), fn.repeat_interleave(3, 0))
    vn = vn / vn.norm(dim=-1, keepdim=True)

    def to_tangent(self, x, u):
        _, face, b = self._locate(x)
        nu = (b.unsqueeze(-1) * vn.to(x.dtype)[self.faces[face]]).sum(-2)
        nu = nu / nu.norm(dim=-1, keepdim=True)
        return self.proju(x, u - (u * nu).sum(-1, keepdim=True) * nu)
    return to_tangent


def total_mass_sub(model, steps: int, m: int) -> float:
    """``Z`` by the midpoint rule on the ``m²`` congruent sub-triangles of every face (``m = 1``: ``run.total_mass``)."""
    from gaugeflow.sampling import log_prob

    M, p = model.manifold, next(model.parameters())
    i, j = torch.meshgrid(torch.arange(m), torch.arange(m), indexing="ij")
    up, dn = i + j < m, i + j < m - 1
    b1 = torch.cat([(i[up] + 1 / 3) / m, (i[dn] + 2 / 3) / m]).double()
    b2 = torch.cat([(j[up] + 1 / 3) / m, (j[dn] + 2 / 3) / m]).double()
    bary = torch.stack([1 - b1 - b2, b1, b2], -1)
    pts = M.projx(torch.einsum("qk,fkd->fqd", bary, M.vertices.double()[M.faces]).reshape(-1, 3)).to(p.dtype)
    lp = torch.cat([log_prob(model, c, steps=steps, divergence="exact") for c in pts.split(2048)])
    return float((lp.double().exp().reshape(len(M.faces), -1).mean(1) * M.face_areas.double()).sum())


def use_map(M: Mesh, name: str) -> None:
    """Install tangent map ``name`` on the instance ``M`` (models call ``M.to_tangent`` / ``M.from_tangent``)."""
    for attr in ("to_tangent", "from_tangent"):
        M.__dict__.pop(attr, None)
    if name == "face":
        M.to_tangent = M.proju
        M.from_tangent = lambda x, v: v
    elif name == "vertex":
        M.to_tangent = types.MethodType(_vertex_normal_map(M), M)
        M.from_tangent = lambda x, v: v


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-with", choices=("face", "bisector"), default="face")
    parser.add_argument("--z-steps", type=int, nargs="*", default=[], help="extra RK4 step counts for log Z")
    parser.add_argument("--z-sub", type=int, default=1, help="also log Z on m² sub-triangles per face")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    s = mesh_run.SETTINGS["full"]
    M = Mesh.bumpy()
    use_map(M, args.train_with)
    row, model, data = mesh_run.run_seed(M, 0, {**s})
    out = {"trained_with": args.train_with, "seed": 0, "results": {}}
    for name in ("face", "vertex", "bisector"):
        use_map(model.manifold, name)  # the EMA model holds a deep copy of M
        nll = validation_nll(model, data.test[: s["n_test"]], steps=s["nll_steps"], divergence="exact")
        log_z = math.log(mesh_run.total_mass(model, s["nll_steps"]))
        out["results"][name] = {"test_nll": nll, "log_z": log_z, "test_nll_normalized": nll + log_z}
        print(f"trained with {args.train_with}, evaluated with {name}: raw NLL {nll:.3f}, log Z {log_z:.3f}, "
              f"normalised {nll + log_z:.3f}", flush=True)
    use_map(model.manifold, "bisector")
    for steps in args.z_steps:  # how log Z of the bisector map moves with the ODE step count
        log_z = math.log(mesh_run.total_mass(model, steps))
        out.setdefault("log_z_by_steps", {})[str(steps)] = log_z
        print(f"bisector, {steps} RK4 steps: log Z {log_z:.3f}", flush=True)
    if args.z_sub > 1:  # how log Z of the bisector map moves with a finer quadrature
        log_z = math.log(total_mass_sub(model, s["nll_steps"], args.z_sub))
        out["log_z_sub"] = {"m": args.z_sub, "points_per_face": args.z_sub ** 2, "log_z": log_z}
        print(f"bisector, midpoint rule on {args.z_sub ** 2} sub-triangles per face: log Z {log_z:.3f}", flush=True)
    path = mesh_run.ROOT / "docs" / "results" / f"mesh_tangent_{args.train_with}.json"
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
