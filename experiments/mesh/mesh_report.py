"""docs/results/mesh.md from mesh_results.csv, mesh_settings.json and the mesh_tangent_*.json files of
``tangent_check.py`` (every number from them, except the earlier figures quoted from commit d94e385),
and the figure of the seed-0 model. ``python experiments/mesh/mesh_report.py [FOLDER]`` re-renders the page."""
from __future__ import annotations

import csv
import json
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1].parent


def _mean_std(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def figure(model, data, path: Path, steps: int = 12, max_faces: int = 1200, n_samples: int = 2000) -> Path:
    """Data, model density and model samples on the mesh (:func:`gaugeflow.viz.mesh_figure`)."""
    from gaugeflow.sampling import sample
    from gaugeflow.viz import face_density, mesh_figure

    M = model.manifold
    x0 = M.random_base(n_samples, generator=torch.Generator().manual_seed(0), dtype=data.test.dtype)
    with torch.no_grad():
        xs = sample(model, x0, steps=steps)
    dens = face_density(model, max_faces=max_faces, steps=steps)
    return mesh_figure(M, data.test, dens, path, xs, title=f"GaugeFlow on {M}, data {data.name} (seed 0)")


PAGE = """# Flows on a triangle mesh

Issue 20. A `GaugeFlow` trained on the eigenfunction mixture `mesh-eigen` on the bumpy mesh
(`Mesh.bumpy()`, {faces} faces), against the area-uniform density, which needs no training. The
conditional paths are premetric (`PremetricPath`, biharmonic distance from the first 128 eigenpairs of
the cotangent Laplacian), picked by the trainer because a mesh has no closed-form `log`
([guide](../guide.md), docs/math.md §6).

Reproduce (CPU, one torch thread; {minutes:.0f} min of training in all on the machine that wrote this page):

    python experiments/mesh/run.py             # -> docs/results/mesh_results.csv, mesh.md, figures/mesh.png
    python experiments/mesh/mesh_report.py     # re-render this page from the CSV

## Setup

* Data: `gaugeflow.data.eigenfunction_mixture(Mesh.bumpy(), (3, 8, 15), threshold=0.6)`: an equal-weight
  mixture of the area-uniform densities on the faces where eigenfunction 3, 8 or 15 reaches 60 % of its
  maximum; 5 000 / 1 000 / 1 000 points, drawn anew for each seed. Its density is known exactly, so
  its entropy (the best test NLL any model can reach) is printed beside the results.
* Model: `GaugeFlow(M, hidden={hidden})`, {steps} steps of `fit` (batch {batch_size}, Adam, lr {lr:g},
  cosine schedule, EMA 0.99), premetric paths with {path_steps} midpoint steps and {path_corrections}
  Newton corrections per path.
* Test NLL: exact divergence, {nll_steps} RK4 steps, first {n_test} test points; nats. **Normalised**:
  the model's `log_prob` density `p̂` is integrated over the surface by the midpoint rule on every
  face (`Z = Σ_f p̂(c_f) A_f`), and the table reports the NLL of `p̂ / Z`, i.e. raw NLL + log Z.
  `log_prob` integrates the divergence face by face; that is the whole density change only if the
  field's flux across every edge is continuous. The models turn network outputs into tangent
  vectors with `Mesh.to_tangent`, the projection onto the face plane along the blended edge-bisector
  normal, which makes it so (docs/math.md §11.3). What remains of log Z ({log_z}) does not come from
  edge fluxes; what it does come from is not settled (see the last section).

## Result ({n_seeds} seeds, mean ± standard deviation)

| density | test NLL (nats) |
|---|---|
| area-uniform (`log area`) | {uniform} |
| GaugeFlow, normalised (raw NLL + log Z) | {model} |
| GaugeFlow, raw `log_prob` | {raw} |
| data entropy (best possible) | {entropy} |

GaugeFlow (normalised) beats the uniform baseline by **{margin} nats** (uniform − model, per seed:
{per_seed}).

| seed | GaugeFlow normalised NLL | raw NLL | log Z | uniform | entropy | training (s) |
|---|---|---|---|---|---|---|
{rows}

![data, model density and model samples on the bumpy mesh](figures/mesh.png)

Left: test data; middle: the model's `log_prob` density `p̂` per face (not normalised; exact at
{max_faces} face centroids spread over the surface, nearest centroid elsewhere); right: model samples;
two opposite views.

{tangent}"""


TANGENT = """## Edge terms and the tangent map: one model, three maps

The seed-0 model trained with one map from network output to tangent vector, then evaluated, with
the *same weights*, under each of three maps (`experiments/mesh/tangent_check.py`; raw NLL on the
first {n_test} test points, {nll_steps} RK4 steps):

| trained with | evaluated with | raw NLL | log Z | normalised NLL |
|---|---|---|---|---|
{rows}

`face`: orthogonal projection onto the face plane, `proju` (the behaviour before `Mesh.to_tangent`:
mass is created or destroyed on edges and `log_prob` does not see it); `vertex`: remove the
component along the barycentric vertex normal, then project (continuous across edges only
approximately); `bisector`: `Mesh.to_tangent` (flux continuous across edges). Before
`to_tangent`, with `face` in training and evaluation, this page reported log Z 0.503 ± 0.130 and a
normalised NLL of 2.210 ± 0.068 (3 seeds, commit d94e385).

{steps_line}

What this does **not** settle. `bisector` removes the edge terms exactly, but its field is
discontinuous at vertices (unavoidable, docs/math.md §11.3), and its face-wise divergence grows like
`1/r` at distance `r` from a vertex (on this mesh, for a constant network output, the median |div|
is about `0.01/r`, the largest about `0.14/r`). That is integrable, but an RK4 stage landing very
close to a vertex adds a large, badly resolved term to `log_prob`: log Z does not fall below about
0.06 with more steps, and the finer quadrature above, which exponentiates `log_prob` at 4× more points,
is dominated by such outliers (attributed, not verified point by point). The `vertex` map has no
vertex singularity but keeps part of the edge terms, over-correcting here (log Z < 0), and gives the
lowest normalised NLL on these weights; a normalised `p̂ / Z` is a proper density whatever the map,
but with `face` or `vertex` it is not the density of the flow's samples. The normalised NLLs on this
page rest on one quadrature point per face, which the finer quadrature shows to be unreliable for
this map: treat them as indicative, not as exact likelihoods.
"""


def _tangent_section(folder: Path, nll_steps: int, n_test: int) -> str:
    """The three-map tables from ``mesh_tangent_*.json`` (``tangent_check.py``), or ``""`` without them."""
    rows, by_steps, sub = [], {}, None
    for trained in ("face", "bisector"):
        path = folder / f"mesh_tangent_{trained}.json"
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            rows += [f"| {trained} | {name} | {r['test_nll']:.3f} | {r['log_z']:.3f} | {r['test_nll_normalized']:.3f} |"
                     for name, r in data["results"].items()]
            if trained == "bisector" and data.get("log_z_by_steps"):
                by_steps = {int(k): v for k, v in data["log_z_by_steps"].items()}
                by_steps[nll_steps] = data["results"]["bisector"]["log_z"]
            if trained == "bisector" and data.get("log_z_sub"):
                sub = data["log_z_sub"]
    if not rows:
        return ""
    steps_line = ""
    if by_steps:
        steps_line = ("For the model trained and evaluated with `bisector`, log Z by RK4 step count: "
                      + ", ".join(f"{v:.3f} ({k} steps)" for k, v in sorted(by_steps.items())) + ".")
    if sub:
        steps_line += (f" With {sub['points_per_face']} quadrature points per face instead of one (sub-triangle "
                       f"centroids, {nll_steps} steps), log Z is {sub['log_z']:.3f}.")
    return TANGENT.format(rows="\n".join(rows), n_test=n_test, nll_steps=nll_steps, steps_line=steps_line)


def render(folder: Path) -> Path:
    """Write ``folder/mesh.md`` from ``folder/mesh_results.csv`` and ``folder/mesh_settings.json``."""
    with open(folder / "mesh_results.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    s = json.loads((folder / "mesh_settings.json").read_text(encoding="utf-8"))
    num = lambda key: [float(r[key]) for r in rows]  # noqa: E731
    margins = [u - m for u, m in zip(num("uniform_nll"), num("test_nll_normalized"))]
    table = "\n".join(f"| {r['seed']} | {float(r['test_nll_normalized']):.3f} | {float(r['test_nll']):.3f} | "
                      f"{float(r['log_z']):.3f} | {float(r['uniform_nll']):.3f} | "
                      f"{float(r['entropy']):.3f} | {float(r['train_seconds']):.0f} |" for r in rows)
    text = PAGE.replace("{tangent}", _tangent_section(folder, s["nll_steps"], s["n_test"]).replace("{", "{{").replace("}", "}}")).format(faces=s["faces"], minutes=sum(num("train_seconds")) / 60, hidden=s["hidden"],
                       steps=s["steps"], batch_size=s["batch_size"], lr=s["lr"], path_steps=s["path_steps"],
                       path_corrections=s["path_corrections"], nll_steps=s["nll_steps"], n_test=s["n_test"],
                       n_seeds=len(rows), uniform=_mean_std(num("uniform_nll")), model=_mean_std(num("test_nll_normalized")),
                       entropy=_mean_std(num("entropy")), margin=_mean_std(margins), raw=_mean_std(num("test_nll")),
                       log_z=_mean_std(num("log_z")),
                       per_seed=", ".join(f"{m:.3f}" for m in margins), rows=table, max_faces=1200)
    path = folder / "mesh.md"
    path.write_text(text, encoding="utf-8")
    return path


if __name__ == "__main__":
    print(render(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "results"))
