"""mkdocs hook (mkdocs.yml ``hooks:``): lay the package out as installed before mkdocstrings reads it.

``gaugeflow.manifolds`` is installed from ``manifolds/`` (``package-dir`` in pyproject.toml), so the
sources under ``src/`` alone are not the package griffe must read statically. As ``.ci/lint-imports``
does for import-linter, a temporary folder gets a ``gaugeflow/`` of symlinks into this checkout (the
files of ``src/gaugeflow`` plus ``manifolds``) and goes first on ``sys.path``, which the Python
handler searches (the editable install's import hook is invisible to static analysis).
"""
from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layout() -> Path:
    tmp = Path(tempfile.mkdtemp(prefix="gaugeflow-docs-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    pkg = tmp / "gaugeflow"
    pkg.mkdir()
    for entry in (ROOT / "src" / "gaugeflow").iterdir():
        if entry.name != "__pycache__" and not entry.name.endswith(".egg-info"):
            (pkg / entry.name).symlink_to(entry)
    (pkg / "manifolds").symlink_to(ROOT / "manifolds")
    return tmp


def on_startup(command, dirty):
    """Put the installed-package layout first on ``sys.path``, where the Python handler searches."""
    sys.path.insert(0, str(_layout()))
