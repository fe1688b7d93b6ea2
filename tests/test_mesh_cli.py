"""Meshes end to end: the trainer's path choice, sampling and likelihoods on a mesh, and the command line
(``--manifold mesh --mesh ...``, ``--path``), with its one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gaugeflow.cli import main
from gaugeflow.data.mesh import eigenfunction_mixture
from gaugeflow.manifolds import Mesh, Sphere
from gaugeflow.models import PlainFlow
from gaugeflow.sampling import exact_divergence, hutchinson_divergence, log_prob, sample
from gaugeflow.training import GeodesicPath, PremetricPath, Trainer, read_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small():
    return Mesh.bumpy(3, n_eigen=48)  # 1 280 faces


def cli(argv, capsys):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def _trainer(model, data, **kw):
    return Trainer(model, data, steps=3, batch_size=16, val_size=0, progress=False, **kw)


def test_trainer_picks_the_path_from_the_capability_flag(small):
    from gaugeflow.data import wrapped_mixture

    data = eigenfunction_mixture(small, (3,), 0.5, n_train=64, n_val=16, n_test=16)
    trainer = _trainer(PlainFlow(small, hidden=8), data)
    try:
        assert isinstance(trainer.path, PremetricPath) and trainer.path.kind == "biharmonic"
        history = trainer.fit()
        assert len(history.loss) == 3 and all(torch.isfinite(torch.tensor(history.loss)))
        assert "PremetricPath" in trainer.state_meta()["path"]  # recorded in every checkpoint
    finally:
        trainer.close()
    trainer = _trainer(PlainFlow(small, hidden=8), data, path="diffusion")
    assert trainer.path.kind == "diffusion"
    trainer.close()
    S = Sphere(2)
    trainer = _trainer(PlainFlow(S, hidden=8), wrapped_mixture(S, n_train=32, n_val=8, n_test=8))
    assert isinstance(trainer.path, GeodesicPath)
    trainer.close()
    with pytest.raises(ValueError, match="has no exact dist"):
        _trainer(PlainFlow(small, hidden=8), data, path="geodesic")


def test_sampling_stays_on_the_surface_and_the_divergence_is_the_face_trace(small):
    M = small
    torch.manual_seed(0)
    model = PlainFlow(M, hidden=16).double()
    x = sample(model, M.random_base(64, generator=torch.Generator().manual_seed(1), dtype=torch.float64), steps=6)
    assert float((M.projx(x) - x).norm(dim=-1).max()) < 1e-12
    field = lambda y: model(y, torch.full((len(y),), 0.3, dtype=y.dtype))  # noqa: E731
    _, div = exact_divergence(field, M, x)
    face, _ = M.locate(x)
    n = M.face_normals[face]
    P = torch.eye(3, dtype=torch.float64) - n[:, :, None] * n[:, None, :]
    J = torch.stack([torch.autograd.functional.jacobian(lambda y: field(y[None])[0], xi) for xi in x])
    assert torch.allclose(div, torch.einsum("bij,bjk,bki->b", P, J, P), atol=1e-10)  # tr(P J P), docs/math.md §7.2
    probes = torch.randn(4000, *x.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    _, est = hutchinson_divergence(field, M, x, probes)
    assert float((est - div).abs().max()) < 0.1 * float(div.abs().max()) + 1e-3
    lp = log_prob(model, x, steps=6)
    lp_h = log_prob(model, x, steps=6, divergence="hutchinson", n_probes=256, generator=torch.Generator().manual_seed(3))
    assert bool(torch.isfinite(lp).all()) and float((lp - lp_h).abs().mean()) < 0.05


# ---------------------------------------------------------------------- the command line
@pytest.fixture(scope="module")
def mesh_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mesh") / "run"
    code = main(["train", "--manifold", "mesh", "--mesh", "bumpy", "--data", "mesh-eigen", "--n-data", "200",
                 "--model", "gauge", "--hidden", "16", "--steps", "6", "--batch-size", "32", "--val-size", "16",
                 "--val-steps", "3", "--no-progress", "--out", str(out)])
    assert code == 0
    return out


def test_cli_trains_on_a_mesh_and_records_the_path(mesh_run):
    cfg = json.loads((mesh_run / "config.json").read_text())
    assert cfg["manifold"] == "mesh" and cfg["mesh"] == "bumpy" and cfg["path"] == "auto"
    meta = read_checkpoint(mesh_run / "checkpoint.safetensors").meta
    assert meta["path"].startswith("PremetricPath(Mesh.bumpy(") and "biharmonic" in meta["path"]


def test_cli_evaluate_and_plot_a_mesh_run(mesh_run, capsys):
    code, out, err = cli(["evaluate", mesh_run, "--n-test", "16", "--n-samples", "64", "--steps", "3"], capsys)
    assert code == 0, err
    assert "test NLL" in out
    code, out, err = cli(["plot", mesh_run, "--grid", "12", "--steps", "3", "--n-samples", "200"], capsys)
    assert code == 0, err
    assert (mesh_run / "figures" / "mesh.png").stat().st_size > 10_000 and "mesh.png" in out


def test_cli_mesh_file_is_stored_absolute(tmp_path, capsys, monkeypatch):
    import trimesh

    trimesh.creation.icosphere(3).export(tmp_path / "ball.obj")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(["train", "--manifold", "mesh", "--mesh", "ball.obj", "--data", "mesh-eigen", "--n-data",
                          "50", "--model", "plain", "--hidden", "8", "--steps", "2", "--batch-size", "8",
                          "--val-size", "0", "--out", "run"], capsys)
    assert code == 0, err
    assert json.loads(Path("run/config.json").read_text())["mesh"] == str((tmp_path / "ball.obj").resolve())


@pytest.mark.parametrize("argv, message", [
    (["--manifold", "mesh"], "manifold 'mesh' needs --mesh icosphere | torus | bumpy | PATH"),
    (["--manifold", "mesh", "--mesh", "nowhere.obj"], "--mesh 'nowhere.obj': expected one of icosphere, torus, bumpy"),
    (["--manifold", "sphere", "--mesh", "bumpy"], "mesh applies to manifold 'mesh' only"),
    (["--manifold", "mesh", "--mesh", "bumpy", "--dim", "3"], "surface of intrinsic dimension 2"),
    (["--manifold", "mesh", "--mesh", "bumpy", "--path", "straight"], "path must be one of auto, geodesic"),
    (["--manifold", "mesh", "--mesh", "bumpy", "--path", "geodesic", "--data", "mesh-eigen"], "has no exact dist"),
    (["--manifold", "sphere", "--data", "mesh-eigen"], "lives on a triangle mesh"),
])
def test_cli_bad_mesh_settings_are_one_line(tmp_path, capsys, argv, message):
    code, out, err = cli(["train", *argv, "--steps", "1", "--out", tmp_path / "run"], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()
