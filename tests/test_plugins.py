"""Plug-ins from the shell (issue 21, item 2): a manifold, a data set and a model of another installed
package, found through the entry-point groups gaugeflow.manifolds / .data / .models or named directly
as package.module:Name, train, evaluate, sample and plot in separate ``gaugeflow`` processes.

The "installed package" is made in the test: a module ``circlepkg`` plus a minimal
``circlepkg-0.1.dist-info`` (METADATA + entry_points.txt) on a directory put on the path, which is all
``importlib.metadata`` needs to see an installed distribution.
"""
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from gaugeflow.app import build_manifold, load_run
from gaugeflow.app.registry import DATASETS, MANIFOLDS, MODELS
from gaugeflow.cli import main
from gaugeflow.training import TrainConfig

CIRCLEPKG = '''
import math, torch
from gaugeflow.geometry import Manifold, UniformSphere


class Circle(Manifold):
    """The unit circle S^1 in R^2 with its uniform base distribution."""

    dim, ambient_dim, injectivity_radius = 1, 2, math.pi
    base = UniformSphere(1)

    def projx(self, x):
        return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def proju(self, x, u):
        return u - (x * u).sum(-1, keepdim=True) * x

    def exp(self, x, u):
        jx = torch.stack([-x[..., 1], x[..., 0]], -1)
        theta = (jx * u).sum(-1, keepdim=True)
        return torch.cos(theta) * x + torch.sin(theta) * jx

    def log(self, x, y):
        jx = torch.stack([-x[..., 1], x[..., 0]], -1)
        return torch.atan2((jx * y).sum(-1, keepdim=True), (x * y).sum(-1, keepdim=True)) * jx


def circle_mixture(manifold, *, n, seed):
    from gaugeflow.data import wrapped_mixture
    return wrapped_mixture(manifold, n_components=3, n_train=n or 256, n_val=32, n_test=64, seed=seed)


def small_plain(manifold, *, hidden, k=None):
    from gaugeflow.models import PlainFlow
    return PlainFlow(manifold, hidden=hidden)


NOT_A_MANIFOLD = 42
'''

ENTRY_POINTS = """\
[gaugeflow.manifolds]
circle = circlepkg:Circle
broken = circlepkg_missing:Thing

[gaugeflow.data]
circle-mixture = circlepkg:circle_mixture

[gaugeflow.models]
circle-plain = circlepkg:small_plain
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A directory holding circlepkg and its dist-info, on sys.path; the registries' plug-in caches emptied."""
    root = tmp_path / "site"
    (root / "circlepkg").mkdir(parents=True)
    (root / "circlepkg" / "__init__.py").write_text(textwrap.dedent(CIRCLEPKG))
    info = root / "circlepkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: circlepkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(root))
    for table in (MANIFOLDS, DATASETS, MODELS):
        monkeypatch.setattr(table, "_plugins", {})
    yield root
    sys.modules.pop("circlepkg", None)


def test_entry_points_are_found_lazily_and_listed_in_the_unknown_name_error(site):
    assert MANIFOLDS.plugin_names() == ["broken", "circle"] and "circle" not in MANIFOLDS.names()
    M = build_manifold(TrainConfig(manifold="circle", dim=1))
    assert type(M).__name__ == "Circle" and M.dim == 1
    assert build_manifold(TrainConfig(manifold="circle")) == M  # the default dim is accepted, like so3
    with pytest.raises(ValueError, match=r"unknown manifold 'klein'; expected one of: euclidean, .*sphere, torus; "
                                         r"installed plug-ins: broken, circle, or package.module:Name$"):
        MANIFOLDS.get("klein")
    with pytest.raises(ValueError, match=r"manifold 'circle' is Circle\(\) of intrinsic dimension 1: leave --dim at "
                                         r"its default or pass 1, got 3"):
        build_manifold(TrainConfig(manifold="circle", dim=3))
    with pytest.raises(ValueError, match=r"^manifold plug-in 'broken' \(entry point circlepkg_missing:Thing of group "
                                         r"gaugeflow.manifolds\) could not be loaded: ModuleNotFoundError"):
        MANIFOLDS.get("broken")


def test_direct_form_and_its_one_line_errors(site, tmp_path, capsys):
    assert MANIFOLDS.get("circlepkg:Circle")(1) == MANIFOLDS.get("circle")(1)
    assert MANIFOLDS.get("gaugeflow.manifolds:Sphere")(3).dim == 3  # a class with a required argument gets dim
    cases = [("os:getcwd", "expected a class or a Python function, got builtin_function_or_method"),
             ("circlepkg:NOT_A_MANIFOLD", "expected a class or a Python function, got int"),
             ("circlepkg:small_plain", "expected a factory f(dim) -> Manifold, and small_plain(2) failed"),
             ("gaugeflow.models:PlainFlow", "expected a Manifold subclass, an instance or a factory function, got the class PlainFlow"),
             ("circlepkg:Nope", "could not be loaded: AttributeError")]
    for name, expected in cases:
        code = main(["train", "--manifold", name, "--out", str(tmp_path / "r"), "--steps", "1"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and expected in err[0], (name, code, err)
        assert not (tmp_path / "r").exists()


def test_a_direct_form_run_reopens_in_process(site, tmp_path, capsys, one_torch_thread):
    out = tmp_path / "run"
    code = main(["train", "--manifold", "circlepkg:Circle", "--dim", "1", "--data", "circlepkg:circle_mixture",
                 "--model", "circlepkg:small_plain", "--hidden", "8", "--steps", "3", "--batch-size", "32",
                 "--val-size", "0", "--no-progress", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    run = load_run(out)
    assert run.config.manifold == "circlepkg:Circle" and type(run.manifold).__name__ == "Circle"
    assert run.data.test.shape == (64, 2) and run.config.data == "circlepkg:circle_mixture"


@pytest.mark.slow
def test_installed_plugin_trains_evaluates_samples_and_plots_in_four_processes(site, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site)] + sys.path), "OMP_NUM_THREADS": "1",
           "MPLBACKEND": "Agg"}
    out = tmp_path / "run"

    def gaugeflow(*argv):
        proc = subprocess.run([sys.executable, "-m", "gaugeflow.cli", *argv], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
        return proc.stdout

    gaugeflow("train", "--manifold", "circle", "--dim", "1", "--data", "circle-mixture", "--model", "circle-plain",
              "--hidden", "16", "--steps", "30", "--batch-size", "64", "--val-size", "0", "--no-progress",
              "--threads", "1", "--out", str(out))
    assert json.loads((out / "config.json").read_text())["manifold"] == "circle"
    gaugeflow("evaluate", str(out), "--n-test", "64", "--n-samples", "128", "--steps", "8", "--threads", "1")
    assert math.isfinite(json.loads((out / "evaluation.json").read_text())["test_nll"])
    gaugeflow("sample", str(out), "-n", "50", "--steps", "8", "-o", str(tmp_path / "s.npy"), "--threads", "1")
    xs = torch.from_numpy(np.load(tmp_path / "s.npy"))
    assert xs.shape == (50, 2) and torch.allclose(xs.norm(dim=-1), torch.ones(50, dtype=xs.dtype), atol=1e-4)
    printed = gaugeflow("plot", str(out), "--n-samples", "100", "--steps", "4", "--threads", "1")
    assert (out / "figures" / "scatter.png").stat().st_size > 1000 and "scatter.png" in printed
