"""The application layer: name tables, building a run from its config, reopening a run.

Everything here may import every library package; no library package imports it (import-linter
contracts in ``pyproject.toml``). The ``gaugeflow`` command (:mod:`gaugeflow.cli`) sits on top.

* :mod:`.registry` — ``name -> factory`` tables for manifolds, data sets and models
  (:func:`register_manifold`, :func:`register_data`, :func:`register_model`), :func:`check_names`
  and :func:`build_manifold`, :func:`build_data`, :func:`build_model`;
* :mod:`.runs` — :func:`load_run` reopens a run directory as a :class:`Run`.
"""
from .registry import (DATASETS, MANIFOLDS, MODELS, Registry, build_data, build_manifold, build_model, check_names,
                       register_data, register_manifold, register_model)
from .runs import Run, load_run

__all__ = [
    "Registry", "MANIFOLDS", "DATASETS", "MODELS", "register_manifold", "register_data", "register_model",
    "check_names", "build_manifold", "build_data", "build_model", "Run", "load_run",
]
