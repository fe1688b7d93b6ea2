"""The documented surface (issue 21): the command line's --help and --version, the README's examples."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gaugeflow
from gaugeflow.app.registry import DATASETS, MANIFOLDS, MODELS
from gaugeflow.cli import build_parser
from gaugeflow.sampling.solvers import FIXED_SOLVERS, torchdiffeq_methods
from gaugeflow.training.config import _CHOICES

ROOT = Path(__file__).resolve().parents[1]


def _help(command: str) -> str:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return " ".join(sub.choices[command].format_help().split())  # line breaks of the formatter undone


def test_train_help_lists_every_choice_of_every_table():
    text = _help("train")
    for table, flag in ((MANIFOLDS, "--manifold"), (DATASETS, "--data"), (MODELS, "--model")):
        listed = re.search(rf"{flag} [A-Z_]+ ([^(\[]*?) \(default", text).group(1).replace(" ", "").split("|")
        assert listed == table.names(), (flag, listed)
        assert "entry-point group gaugeflow." in text and "package.module:Name" in text
    for key, values in _CHOICES.items():
        assert " | ".join(values) in text, key


def test_sample_help_lists_every_ode_method():
    listed = re.search(r"--method METHOD (.*)", _help("sample")).group(1)
    for method in tuple(FIXED_SOLVERS) + tuple(torchdiffeq_methods()):
        assert re.search(rf"(^|\| ){method}( |$)", listed), method


def test_version_flag_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"gaugeflow {gaugeflow.__version__} (torch ")


def test_readme_config_examples_name_shipped_files():
    readme = (ROOT / "README.md").read_text()
    configs = re.findall(r"--config (\S+)", readme)
    assert configs, "the README shows a --config example"
    for path in configs:
        assert (ROOT / path).is_file(), path
    cli_doc = _help("train") + build_parser().epilog
    for path in re.findall(r"--config (\S+\.(?:toml|ya?ml))", cli_doc):
        assert (ROOT / path).is_file(), path
    assert "one CPU thread unless told otherwise" in readme and "--threads N" in readme and "OMP_NUM_THREADS" in readme


# ---------------------------------------------------------------------- the tutorial runs as written
TUTORIAL = ROOT / "docs" / "tutorial-plugin.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", TUTORIAL.read_text(), re.S)


@pytest.fixture(scope="module")
def tutorial(one_torch_thread):
    """The tutorial's Python blocks, executed in order in one namespace (as a reader would)."""
    namespace: dict = {}
    for i, block in enumerate(_blocks("python")):
        exec(compile(block, f"{TUTORIAL}:block{i}", "exec"), namespace)  # noqa: S102 - the documented code
    return namespace


def test_tutorial_python_blocks_check_train_and_beat_the_uniform_density(tutorial):
    import math

    import torch

    report, M = tutorial["report"], tutorial["M"]
    assert not report.failures and not report.skipped  # the base distribution is checked too
    assert {r.name for r in report.results} >= {"exp_log", "transp", "random_base", "base_density"}
    assert len(tutorial["history"].loss) == 300
    x1 = tutorial["x1"]
    assert x1.shape == (500, 2) and torch.allclose(x1.norm(dim=-1), torch.ones(500), atol=1e-4)
    assert float(tutorial["nll"]) < math.log(2 * math.pi) - 0.3  # the flow learned the three modes


@pytest.mark.slow
def test_tutorial_shell_commands_run_on_the_installed_package(tmp_path):
    import os
    import shlex
    import tomllib

    (cls_block,) = [b for b in _blocks("python") if "class Circle" in b]
    (toml_block,) = _blocks("toml")
    (shell_block,) = _blocks("bash")
    project = tomllib.loads(toml_block)["project"]
    site = tmp_path / "site"
    (site / "circlepkg").mkdir(parents=True)
    (site / "circlepkg" / "__init__.py").write_text(cls_block)
    info = site / f"{project['name']}-{project['version']}.dist-info"  # what `pip install` leaves behind
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    groups = project["entry-points"]
    (info / "entry_points.txt").write_text("".join(
        f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for g, eps in groups.items()))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site)] + sys.path), "OMP_NUM_THREADS": "1",
           "MPLBACKEND": "Agg"}
    lines = [ln for ln in shell_block.splitlines() if ln.strip()]
    assert [ln.split()[1] for ln in lines] == ["train", "evaluate", "sample", "plot"]
    for line in lines:
        argv = shlex.split(line)
        assert argv[0] == "gaugeflow"
        proc = subprocess.run([sys.executable, "-m", "gaugeflow.cli", *argv[1:]], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (line, proc.stdout, proc.stderr)
    assert (tmp_path / "runs" / "circle" / "evaluation.json").is_file()
    assert (tmp_path / "circle_samples.npy").is_file()
    assert (tmp_path / "runs" / "circle" / "figures" / "scatter.png").is_file()


# ---------------------------------------------------------------------- the API reference
SUBPACKAGES = ["gaugeflow", "gaugeflow.geometry", "gaugeflow.manifolds", "gaugeflow.algebra", "gaugeflow.models",
               "gaugeflow.training", "gaugeflow.sampling", "gaugeflow.data", "gaugeflow.metrics", "gaugeflow.testing",
               "gaugeflow.viz", "gaugeflow.app", "gaugeflow.cli"]


def _page(module: str) -> Path:
    return ROOT / "docs" / "api" / f"{module.split('.')[-1]}.md"


def test_every_public_subpackage_has_an_api_page_in_the_nav():
    import pkgutil

    found = {f"gaugeflow.{m.name}" for m in pkgutil.iter_modules(gaugeflow.__path__) if not m.name.startswith("_")}
    assert found <= set(SUBPACKAGES), f"subpackages without an API page: {sorted(found - set(SUBPACKAGES))}"
    nav = (ROOT / "mkdocs.yml").read_text()
    for module in SUBPACKAGES:
        assert f"\n::: {module}\n" in _page(module).read_text(), module
        assert f"api/{_page(module).name}" in nav, module


@pytest.mark.slow
def test_built_api_reference_documents_every_name_in_each_all(tmp_path):
    """``mkdocs build --strict`` (needs the docs extra), then every ``__all__`` name has its anchor."""
    import importlib
    import os

    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for module in SUBPACKAGES:
        ids = set(re.findall(r'id="([^"]+)"', (site / "api" / _page(module).stem / "index.html").read_text()))
        missing = [name for name in importlib.import_module(module).__all__
                   if f"{module}.{name}" not in ids and not any(i.endswith(f".{module.split('.')[-1]}.{name}.{name}")
                                                                 for i in ids)]
        assert not missing, f"{module}: no API entry for {missing}"
    assert "Circle" in (site / "tutorial-plugin" / "index.html").read_text()
