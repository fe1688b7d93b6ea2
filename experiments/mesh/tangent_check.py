"""Which tangent map makes ``log_prob`` the density of a mesh flow? One trained model, three maps.

``python experiments/mesh/tangent_check.py`` loads the seed-0 EMA model that ``run.py`` saved
(``runs/mesh/seed0_ema.pt``; trained with ``Mesh.to_tangent``) and evaluates the *same weights*
(float64) under each map from network output to tangent vector (math.md §11.3):

* ``face``: ``proju``, the orthogonal projection onto the face plane (flux jumps across edges);
* ``bisector``: the previous ``Mesh.to_tangent``, projection along the blended edge-bisector normal
  ``N(x) = Σ_k b_i b_j N_k`` (flux continuous across edges, divergence ``~ 1/r`` at vertices),
  reimplemented here; connections contracted with ``from_tangent(to_tangent(d))`` as it did;
* ``corner``: ``Mesh.to_tangent``, the shared edge flux functional with barycentric corner
  blending (flux continuous across edges, divergence bounded up to the vertices).

For each: raw test NLL, log Z by 1 and by 4 quadrature points per face, and ``log_prob`` at 12 vs 48
RK4 steps at 2 000 area-uniform points (``mesh_checks``); for ``corner`` also how ``log_prob`` converges
from 12 to 192 steps (1 000 points). Writes ``docs/results/mesh_tangent.json``.
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

import mesh_checks  # noqa: E402
import run as mesh_run  # noqa: E402

from gaugeflow.data.mesh import named_set  # noqa: E402
from gaugeflow.manifolds import Mesh  # noqa: E402
from gaugeflow.manifolds._mesh_tangent import _twins  # noqa: E402
from gaugeflow.models import GaugeFlow  # noqa: E402
from gaugeflow.training.trainer import validation_nll  # noqa: E402

MAPS = ("face", "bisector", "corner")


def bisector_normals(M: Mesh) -> torch.Tensor:
    """``[F, 3, 3]`` float64: per face, the unit bisector of its normal and the neighbour's at each edge."""
    f, n = M._f, M.face_normals.double()
    start, end, twin = _twins(f)
    face = torch.arange(len(f)).repeat_interleave(3)
    out = n[face].clone()
    h = torch.as_tensor((twin >= 0).nonzero()[0])
    g = torch.as_tensor(twin)[h]
    sign = torch.where(torch.as_tensor(start)[h] == torch.as_tensor(end)[g], 1.0, -1.0).double()[:, None]
    bis = n[face[h]] + sign * n[face[g]]
    out[h] = bis / bis.norm(dim=-1, keepdim=True)
    return out.reshape(len(f), 3, 3)


def _bisector_maps(M: Mesh):
    table, normals = bisector_normals(M), M.face_normals.double()

    def blend(self, x):
        _, face, b = self._locate(x)
        n = normals.to(x.dtype)[face]
        w = torch.stack([b[..., 1] * b[..., 2], b[..., 2] * b[..., 0], b[..., 0] * b[..., 1]], -1)
        return n, (w.unsqueeze(-1) * table.to(x.dtype)[face]).sum(-2) + torch.finfo(x.dtype).eps ** 2 * n

    def to_tangent(self, x, u):
        n, N = blend(self, x)
        return u - ((u * n).sum(-1, keepdim=True) / (N * n).sum(-1, keepdim=True)) * N

    def from_tangent(self, x, v):
        _, N = blend(self, x)
        return v - ((v * N).sum(-1, keepdim=True) / (N * N).sum(-1, keepdim=True)) * N
    return to_tangent, from_tangent


def use_map(M: Mesh, name: str) -> None:
    """Install tangent map ``name`` on the instance ``M`` (models call ``to_tangent``, ``connection_direction``)."""
    for attr in ("to_tangent", "from_tangent", "connection_direction"):
        M.__dict__.pop(attr, None)
    if name == "face":
        M.to_tangent, M.from_tangent = M.proju, (lambda x, v: v)
    elif name == "bisector":
        to_t, from_t = _bisector_maps(M)
        M.to_tangent, M.from_tangent = types.MethodType(to_t, M), types.MethodType(from_t, M)
    if name != "corner":  # the previous models contracted connections with from_tangent(to_tangent(d))
        M.connection_direction = lambda x, u: M.from_tangent(x, M.to_tangent(x, u))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", nargs="*", default=list(MAPS), choices=MAPS)
    parser.add_argument("--convergence", type=int, default=1000,
                        help="points for the step-convergence study of the corner map (0: skip)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    s = mesh_run.SETTINGS["full"]
    if not mesh_run.MODEL_PATH.exists():
        raise SystemExit(f"expected the seed-0 weights at {mesh_run.MODEL_PATH}; run experiments/mesh/run.py first")
    M = Mesh.bumpy()
    model = GaugeFlow(M, hidden=s["hidden"])
    model.load_state_dict(torch.load(mesh_run.MODEL_PATH))
    model = model.double()
    test = M.projx(named_set("mesh-eigen", M, seed=0).test[: s["n_test"]].double())  # float32 data onto the float64 surface
    out = {"seed": 0, "trained_with": "corner", "dtype": "float64", "results": {}}
    for name in args.maps:
        use_map(M, name)
        r = {"test_nll": validation_nll(model, test, steps=s["nll_steps"], divergence="exact"),
             "log_z": math.log(mesh_checks.total_mass(model, s["nll_steps"])),
             "log_z_4pt": math.log(mesh_checks.total_mass(model, s["nll_steps"], m=2)),
             "gap": mesh_checks.step_gap(model, s["gap_points"], (s["nll_steps"], s["gap_steps"]))}
        out["results"][name] = r
        print(f"{name}: raw NLL {r['test_nll']:.3f}, log Z {r['log_z']:.3f} / {r['log_z_4pt']:.3f} (1 / 4 points "
              f"per face), within 0.05 at {100 * r['gap']['frac_within']:.1f} % (max {r['gap']['max']:.3f})",
              flush=True)
    if "corner" in args.maps and args.convergence:  # how the step gap of Mesh.to_tangent shrinks with the steps
        use_map(M, "corner")
        out["convergence"] = mesh_checks.step_convergence(model, args.convergence)
        out["convergence_points"] = args.convergence
        for r in out["convergence"]:
            print(f"corner, {r['steps']} vs {r['reference']} steps: within 0.05 at {100 * r['frac_within']:.1f} %, "
                  f"mean {r['mean']:.4f}, max {r['max']:.3f}", flush=True)
    path = mesh_run.ROOT / "docs" / "results" / "mesh_tangent.json"
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
