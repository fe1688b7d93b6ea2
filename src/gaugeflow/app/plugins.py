"""Plug-ins of the name tables of :mod:`gaugeflow.app.registry`: entry points and ``package.module:Name``.

An installed package offers a manifold, model or data set to the ``gaugeflow`` command by declaring an
entry point in one of the groups of :data:`ENTRY_POINT_GROUPS`, for example in its ``pyproject.toml``::

    [project.entry-points."gaugeflow.manifolds"]
    circle = "circlepkg.geometry:Circle"

and ``gaugeflow train --manifold circle ...`` (or, without an entry point,
``--manifold circlepkg.geometry:Circle``) then builds it; the run's config stores that name, so
``evaluate``, ``sample`` and ``plot`` rebuild the run in any later process where the package is importable.
Nothing is looked up at import time: :class:`~gaugeflow.app.registry.Registry` asks for a name only
when it is not a built-in one.
"""
from __future__ import annotations

import importlib
import inspect
import re
from typing import Any, Callable, Optional

import torch

from ..geometry.manifold import Manifold
from ..training.config import TrainConfig

__all__ = ["ENTRY_POINT_GROUPS", "adapt_manifold", "adapt_model"]

#: entry-point group searched for each kind of plug-in (``[project.entry-points."gaugeflow.manifolds"]``)
ENTRY_POINT_GROUPS = {"manifold": "gaugeflow.manifolds", "model": "gaugeflow.models", "data set": "gaugeflow.data"}
_DIRECT = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")



def _import(label: str, module: str, attr: str, kind: str) -> Any:
    """``module.attr`` imported, any failure one ``ValueError`` line naming the plug-in."""
    try:
        obj = importlib.import_module(module.strip())
        for part in attr.strip().split(".") if attr.strip() else []:
            obj = getattr(obj, part)
    except Exception as err:  # noqa: BLE001 - a plug-in may fail in any way while importing; one line says which
        raise ValueError(f"{kind} plug-in {label} could not be loaded: {type(err).__name__}: {err}") from None
    if not callable(obj) and not isinstance(obj, Manifold) or inspect.isbuiltin(obj):
        raise TypeError(f"{kind} plug-in {label}: expected a class or a Python function, got {type(obj).__name__}")
    return obj


def adapt_manifold(obj: Any, name: str) -> Callable[[int], Manifold]:
    """A manifold plug-in as ``factory(dim) -> Manifold`` (class, instance or factory function)."""
    if isinstance(obj, type) and not issubclass(obj, Manifold):
        raise TypeError(f"manifold plug-in {name!r}: expected a Manifold subclass, an instance or a factory "
                        f"function, got the class {obj.__name__}")

    def make(dim: int) -> Manifold:
        if isinstance(obj, Manifold):
            built = obj
        elif isinstance(obj, type) and issubclass(obj, Manifold):
            required = [p for p in inspect.signature(obj).parameters.values()
                        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            built = obj(dim) if required else obj()
        else:
            try:
                built = obj(dim)
            except TypeError as err:
                raise TypeError(f"manifold plug-in {name!r}: expected a factory f(dim) -> Manifold, and "
                                f"{getattr(obj, '__name__', obj)}({dim}) failed: {err}") from None
        if not isinstance(built, Manifold):
            raise TypeError(f"manifold plug-in {name!r}: expected a gaugeflow.geometry.Manifold, got "
                            f"{type(built).__name__}")
        if built.dim != dim and dim != TrainConfig.dim:
            raise ValueError(f"manifold {name!r} is {built} of intrinsic dimension {built.dim}: leave --dim at its "
                             f"default or pass {built.dim}, got {dim}")
        return built
    return make


def adapt_model(obj: Any, name: str) -> Callable[..., torch.nn.Module]:
    """A model plug-in as ``factory(manifold, *, hidden, k) -> nn.Module`` (``k`` passed on when set)."""
    def make(manifold: Manifold, *, hidden: int, k: Optional[int], **extra: Any) -> torch.nn.Module:
        model = obj(manifold, hidden=hidden, **({} if k is None else {"k": k}), **extra)
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model plug-in {name!r}: expected a torch.nn.Module, got {type(model).__name__}")
        return model
    return make
