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
    assert "--threads 1" in readme and "OMP_NUM_THREADS" in readme
