"""Packaging (issue 21, item 6): ``python -m build`` makes an sdist and, from it, a wheel that holds every
module of the source tree -- ``src/gaugeflow/**.py`` as ``gaugeflow/...`` and ``manifolds/**.py`` as
``gaugeflow/manifolds/...`` -- and nothing else of the checkout; the console script and version agree.

The pyproject lists the packages by hand (``gaugeflow.manifolds`` comes from another folder), so a new
subpackage left out of that list fails here. ``.ci/wheel-smoke`` installs the same wheel into a clean
venv and runs the command line from it.
"""
import subprocess
import sys
import tarfile
import zipfile
from configparser import ConfigParser
from email.parser import Parser
from pathlib import Path

import pytest

from gaugeflow import __version__

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _modules(folder: Path, prefix: str) -> set:
    """``prefix/<path>`` for every ``.py`` file under ``folder`` (caches skipped)."""
    return {f"{prefix}/{p.relative_to(folder).as_posix()}" for p in folder.rglob("*.py")
            if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """The sdist and the wheel built from it by ``python -m build`` (isolated build, as a user's)."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return wheels[0], sdists[0]


def test_wheel_holds_exactly_the_source_modules(dists):
    wheel, _ = dists
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    expected = _modules(ROOT / "src" / "gaugeflow", "gaugeflow") | _modules(ROOT / "manifolds", "gaugeflow/manifolds")
    packaged = {n for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert expected - packaged == set(), f"modules missing from the wheel: {sorted(expected - packaged)}"
    assert packaged - expected == set(), f"files in the wheel that are not package modules: {sorted(packaged - expected)}"
    for sub in ("gaugeflow/manifolds/__init__.py", "gaugeflow/app/__init__.py", "gaugeflow/testing/__init__.py"):
        assert sub in packaged


def test_wheel_metadata_entry_point_and_version(dists):
    wheel, _ = dists
    assert wheel.name == f"gaugeflow-{__version__}-py3-none-any.whl"
    info = f"gaugeflow-{__version__}.dist-info"
    with zipfile.ZipFile(wheel) as zf:
        meta = Parser().parsestr(zf.read(f"{info}/METADATA").decode())
        entry_points = ConfigParser()
        entry_points.read_string(zf.read(f"{info}/entry_points.txt").decode())
    assert meta["Version"] == __version__  # pyproject's version and gaugeflow._version agree
    assert meta["License-Expression"] == "MIT"
    assert entry_points["console_scripts"]["gaugeflow"] == "gaugeflow.cli:main"
    extras = set(meta.get_all("Provides-Extra"))
    assert {"testing", "test", "data", "docs"} <= extras
    requires = meta.get_all("Requires-Dist")
    # gaugeflow.testing needs hypothesis: the `testing` extra brings it, the core does not
    assert any(r.startswith("hypothesis") and 'extra == "testing"' in r for r in requires), requires
    assert not any(r.startswith("hypothesis") and "extra" not in r for r in requires), requires


def test_sdist_rebuilds_the_package(dists):
    _, sdist = dists
    top = sdist.name[: -len(".tar.gz")]
    with tarfile.open(sdist) as tf:
        names = {n[len(top) + 1:] for n in tf.getnames() if n.startswith(top + "/")}
    expected = _modules(ROOT / "src" / "gaugeflow", "src/gaugeflow") | _modules(ROOT / "manifolds", "manifolds")
    assert expected - names == set(), f"modules missing from the sdist: {sorted(expected - names)}"
    assert {"pyproject.toml", "README.md", "CHANGELOG.md", "experiments/demo.toml"} <= names
