"""docs/results/mesh.md from mesh_results.csv, mesh_settings.json and the mesh_tangent.json file of
``tangent_check.py`` (every number from them, except the earlier figures quoted from commits d94e385,
6d87054 and 555287a),
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
    python experiments/mesh/tangent_check.py   # -> docs/results/mesh_tangent.json (last section)
    python experiments/mesh/mesh_report.py     # re-render this page from the CSV and JSON

## Setup

* Data: `gaugeflow.data.eigenfunction_mixture(Mesh.bumpy(), (3, 8, 15), threshold=0.6)`: an equal-weight
  mixture of the area-uniform densities on the faces where eigenfunction 3, 8 or 15 reaches 60 % of its
  maximum; 5 000 / 1 000 / 1 000 points, drawn anew for each seed. Its density is known exactly, so
  its entropy (the best test NLL any model can reach) is printed beside the results.
* Model: `GaugeFlow(M, hidden={hidden})`, {steps} steps of `fit` (batch {batch_size}, Adam, lr {lr:g},
  cosine schedule, EMA 0.99), premetric paths with {path_steps} midpoint steps and {path_corrections}
  Newton corrections per path.
* Test NLL: exact divergence, {nll_steps} RK4 steps, first {n_test} test points; nats.
* Is `log_prob` the density of the flow's samples? `log_prob` integrates the divergence face by
  face; that is the whole density change when the field is bounded and its flux across every edge is
  continuous (docs/math.md §11.3), which `Mesh.to_tangent` guarantees. Its face-wise divergence is
  also bounded up to the vertices, so no solver stage meets a singularity; it still jumps at every
  edge a trajectory crosses (unavoidable on a piecewise-flat surface), where fixed RK4 steps are
  accurate to first order only. Checked on each trained model (float64, `experiments/mesh/mesh_checks.py`): the total mass
  `Z = ∫ p̂ dA` of the `log_prob` density `p̂` by the midpoint rule with one point per face (the
  centroid) and with four (the centroids of the four congruent sub-triangles), and `log_prob` at
  {nll_steps} vs {gap_steps} RK4 steps at {gap_points} area-uniform points. **Normalised NLL** = raw NLL + log Z
  (one point per face): the NLL of `p̂ / Z`.

## Result ({n_seeds} seeds, mean ± standard deviation)

| density | test NLL (nats) |
|---|---|
| area-uniform (`log area`) | {uniform} |
| GaugeFlow, raw `log_prob` | {raw} |
| GaugeFlow, normalised (raw NLL + log Z) | {model} |
| data entropy (best possible) | {entropy} |

GaugeFlow beats the uniform baseline by **{margin} nats** (uniform − raw `log_prob` NLL, per seed:
{per_seed}).

| seed | raw NLL | log Z (1 pt/face) | log Z (4 pts/face) | {nll_steps} vs {gap_steps} steps: within 0.05 nat | max gap (nat) | normalised NLL | uniform | entropy | training (s) |
|---|---|---|---|---|---|---|---|---|---|
{rows}

log Z is {log_z} with one point per face and {log_z_4pt} with four: the `log_prob` density
integrates to 1 by both quadratures, so the raw NLL is the NLL of the flow's own density and needs no
normalisation. `log_prob` at {nll_steps} and {gap_steps} RK4 steps agrees within 0.05 nat at {within} of the
points{short}; the largest gap over the seeds is {gap_max} nat. That gap is the first-order error
of fixed steps across edges, not an outlier: see the last section for how it shrinks with the steps.

![data, model density and model samples on the bumpy mesh](figures/mesh.png)

Left: test data; middle: the model's `log_prob` density `p̂` per face (exact at
{max_faces} face centroids spread over the surface, nearest centroid elsewhere); right: model samples;
two opposite views.

{tangent}"""


TANGENT = """## The tangent map: one model, three maps

The seed-0 model above (trained with `Mesh.to_tangent`) evaluated, with the *same weights* in
float64, under three maps from network output to tangent vector (`experiments/mesh/tangent_check.py`;
raw NLL on the first {n_test} test points; {nll_steps} RK4 steps; the step gap at {gap_points} area-uniform points):

| map | raw NLL | log Z (1 pt/face) | log Z (4 pts/face) | {nll_steps} vs {gap_steps} steps: within 0.05 nat | max gap (nat) |
|---|---|---|---|---|---|
{rows}

* `face`: the orthogonal projection onto the face plane, `proju`. Its flux jumps across edges, so
  the flow creates and destroys mass on edges that `log_prob` does not see: `Z ≠ 1` by either
  quadrature. Its `log_prob` is smooth along trajectories (the curvature's share of the density
  change sits in those unseen edge terms), hence the small step gap: well resolved, but not the
  density of the flow's samples.
* `bisector`: the previous `Mesh.to_tangent`, the projection along the blended edge-bisector normal
  `Σ_k b_i b_j N_k`. Its flux is continuous across edges, but the direction of the blend depends
  on the angle about each vertex, so its face-wise divergence grows like `1/r` at distance `r` from a
  vertex. An RK4 stage landing close to a vertex adds a large, badly resolved term to `log_prob`:
  the step counts disagree widely, and the quadratures of `Z` disagree (for a model trained with
  this map, four points per face gave log Z = 19.3; commit 555287a).
* `corner`: `Mesh.to_tangent` now, one shared flux functional per edge blended affinely from the
  corners (docs/math.md §11.3): flux continuous across edges and divergence bounded up to the
  vertices. Both quadratures give `Z ≈ 1`, and the step gap has no outliers. It is not zero: the
  divergence jumps at every edge a trajectory crosses, so fixed RK4 steps converge at first order.
  Gap of `log_prob` to {reference} steps, same weights, {conv_points} area-uniform points:

| RK4 steps | within 0.05 nat of {reference} steps | mean gap (nat) | 99th percentile | max gap |
|---|---|---|---|---|
{conv_rows}

The gap roughly halves each time the steps double: first order. With {nll_steps} steps, as in the
results above, the mean gap is {mean_first} nat, an estimate of the solver error in the raw NLLs;
{enough}

Earlier versions of this page (one point per face): with `face` in training and evaluation, log Z
0.503 ± 0.130 and a normalised NLL of 2.210 ± 0.068 (commit d94e385); with `bisector`, log Z
0.065 ± 0.034 and a normalised NLL of 1.878 ± 0.047 (commit 6d87054).
"""


def _enough(conv: list) -> str:
    """The sentence naming the fewest steps that bring 99 % of the points within 0.05 nat of the reference."""
    ok = [r for r in conv if r["frac_within"] >= 0.99]
    if not ok:
        return "no step count below the reference brings 99 % of the points within 0.05 nat of it."
    return (f"{ok[0]['steps']} steps bring {100 * ok[0]['frac_within']:.1f} % of the points within 0.05 nat of "
            f"{ok[0]['reference']} steps (largest gap {ok[0]['max']:.3f} nat).")


def _tangent_section(folder: Path, s: dict) -> str:
    """The three-map table from ``mesh_tangent.json`` (``tangent_check.py``), or ``""`` without it."""
    path = folder / "mesh_tangent.json"
    if not path.exists():
        return ""
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = [f"| `{name}` | {r['test_nll']:.3f} | {r['log_z']:.3f} | {r['log_z_4pt']:.3f} | "
            f"{100 * r['gap']['frac_within']:.1f} % | {r['gap']['max']:.3f} |" for name, r in data["results"].items()]
    conv = data.get("convergence", [])
    conv_rows = "\n".join(f"| {r['steps']} | {100 * r['frac_within']:.1f} % | {r['mean']:.4f} | {r['q99']:.3f} | "
                          f"{r['max']:.3f} |" for r in conv)
    return TANGENT.format(rows="\n".join(rows), n_test=s["n_test"], nll_steps=s["nll_steps"],
                          gap_steps=s["gap_steps"], gap_points=s["gap_points"], conv_rows=conv_rows,
                          reference=conv[0]["reference"] if conv else "-", conv_points=data.get("convergence_points", "-"),
                          mean_first=f"{conv[0]['mean']:.3f}" if conv else "-", enough=_enough(conv))


def render(folder: Path) -> Path:
    """Write ``folder/mesh.md`` from ``folder/mesh_results.csv``, ``mesh_settings.json`` and ``mesh_tangent.json``."""
    with open(folder / "mesh_results.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    s = json.loads((folder / "mesh_settings.json").read_text(encoding="utf-8"))
    num = lambda key: [float(r[key]) for r in rows]  # noqa: E731
    margins = [u - m for u, m in zip(num("uniform_nll"), num("test_nll"))]
    table = "\n".join(
        f"| {r['seed']} | {float(r['test_nll']):.3f} | {float(r['log_z']):.3f} | {float(r['log_z_4pt']):.3f} | "
        f"{100 * float(r['gap_within']):.1f} % | {float(r['gap_max']):.3f} | {float(r['test_nll_normalized']):.3f} | "
        f"{float(r['uniform_nll']):.3f} | {float(r['entropy']):.3f} | {float(r['train_seconds']):.0f} |" for r in rows)
    within = min(num("gap_within"))
    short = "" if within >= 0.99 else " (short of 99 %)"
    text = PAGE.replace("{tangent}", _tangent_section(folder, s).replace("{", "{{").replace("}", "}}")).format(
        faces=s["faces"], minutes=sum(num("train_seconds")) / 60, hidden=s["hidden"], steps=s["steps"],
        batch_size=s["batch_size"], lr=s["lr"], path_steps=s["path_steps"], path_corrections=s["path_corrections"],
        nll_steps=s["nll_steps"], n_test=s["n_test"], gap_steps=s["gap_steps"], gap_points=s["gap_points"],
        n_seeds=len(rows), uniform=_mean_std(num("uniform_nll")), model=_mean_std(num("test_nll_normalized")),
        entropy=_mean_std(num("entropy")), margin=_mean_std(margins), raw=_mean_std(num("test_nll")),
        log_z=_mean_std(num("log_z")), log_z_4pt=_mean_std(num("log_z_4pt")),
        within=(f"{100 * within:.1f} %" if len(rows) == 1 else
                f"{100 * within:.1f} % to {100 * max(num('gap_within')):.1f} % (by seed)"),
        short=short, gap_max=f"{max(num('gap_max')):.3f}", per_seed=", ".join(f"{m:.3f}" for m in margins), rows=table,
        max_faces=1200)
    path = folder / "mesh.md"
    path.write_text(text, encoding="utf-8")
    return path


if __name__ == "__main__":
    print(render(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "results"))
