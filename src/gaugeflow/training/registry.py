"""Named registries that turn the names of a :class:`~gaugeflow.training.TrainConfig` into objects.

* manifolds: ``name -> constructor(dim) -> Manifold`` (``euclidean``, ``sphere``, ``torus``, ``hyperbolic``);
* data: ``name -> loader(manifold, *, n, seed) -> ManifoldData`` (``wrapped-mixture`` here; data modules
  register theirs with :func:`register_data` when ``gaugeflow.data`` is imported);
* models: ``name -> factory(manifold, *, hidden, k) -> nn.Module`` (``plain``, ``gauge``, ``higher-gauge``).

Example:
    >>> from gaugeflow.training import register_data
    >>> register_data("my-points", lambda manifold, *, n, seed: load_my_points(manifold, n, seed))  # doctest: +SKIP
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Optional

import torch

from ..geometry.manifold import Manifold

__all__ = ["Registry", "MANIFOLDS", "DATASETS", "MODELS", "register_manifold", "register_data", "register_model"]


class Registry:
    """A name -> factory table whose lookups fail with a message listing the known names."""

    def __init__(self, kind: str, providers: tuple[str, ...] = ()):
        self.kind = kind
        self._entries: dict[str, Callable] = {}
        self._providers = providers  # modules imported on first lookup (they register themselves)

    def register(self, name: str, factory: Callable, overwrite: bool = False) -> Callable:
        """Add ``factory`` under ``name``; re-registering a name needs ``overwrite=True``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if not callable(factory):
            raise TypeError(f"{self.kind} {name!r}: expected a callable, got {type(factory).__name__}")
        if name in self._entries and not overwrite and self._entries[name] is not factory:
            raise ValueError(f"{self.kind} {name!r} is already registered (pass overwrite=True to replace it)")
        self._entries[name] = factory
        return factory

    def _load_providers(self) -> None:
        for module in self._providers:
            importlib.import_module(module)

    def names(self) -> list[str]:
        """Sorted registered names (after importing the provider modules)."""
        self._load_providers()
        return sorted(self._entries)

    def get(self, name: str) -> Callable:
        """The factory registered as ``name``; ``ValueError`` naming the known ones otherwise."""
        if name not in self._entries:
            self._load_providers()
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; expected one of: {', '.join(self.names())}")
        return self._entries[name]

    def __contains__(self, name: str) -> bool:
        return name in self.names()


MANIFOLDS = Registry("manifold")
DATASETS = Registry("data set", providers=("gaugeflow.data",))
MODELS = Registry("model")


def register_manifold(name: str, constructor: Callable[[int], Manifold], overwrite: bool = False) -> Callable:
    """Register ``constructor(dim) -> Manifold`` under ``name`` (usable as ``--manifold name``)."""
    return MANIFOLDS.register(name, constructor, overwrite)


def register_data(name: str, loader: Callable[..., Any], overwrite: bool = False) -> Callable:
    """Register ``loader(manifold, *, n, seed) -> ManifoldData`` under ``name`` (``--data name``).

    ``n`` is the requested number of points (``None``: the loader's default); a loader whose data
    live on one fixed manifold raises ``ValueError`` when handed another one.
    """
    return DATASETS.register(name, loader, overwrite)


def register_model(name: str, factory: Callable[..., torch.nn.Module], overwrite: bool = False) -> Callable:
    """Register ``factory(manifold, *, hidden, k) -> nn.Module`` under ``name`` (``--model name``)."""
    return MODELS.register(name, factory, overwrite)


def _manifold_class(name: str) -> Callable[[int], Manifold]:
    def make(dim: int) -> Manifold:
        module = importlib.import_module("gaugeflow.manifolds")
        if not hasattr(module, name):
            raise ValueError(f"manifold class gaugeflow.manifolds.{name} is not available in this installation")
        return getattr(module, name)(dim)
    return make


for _name, _cls in (("euclidean", "Euclidean"), ("sphere", "Sphere"), ("torus", "FlatTorus"), ("hyperbolic", "Hyperbolic")):
    register_manifold(_name, _manifold_class(_cls))


def _model_factory(cls_name: str) -> Callable[..., torch.nn.Module]:
    def make(manifold: Manifold, *, hidden: int, k: Optional[int]) -> torch.nn.Module:
        models = importlib.import_module("gaugeflow.models")
        kwargs: dict[str, Any] = {"hidden": hidden}
        if k is not None and cls_name != "PlainFlow":
            kwargs["k"] = k
        return getattr(models, cls_name)(manifold, **kwargs)
    return make


def _wrapped_mixture(manifold: Manifold, *, n: Optional[int], seed: int):
    from ..data import wrapped_mixture
    return wrapped_mixture(manifold, seed=seed) if n is None else wrapped_mixture(manifold, n_train=n, seed=seed)


register_data("wrapped-mixture", _wrapped_mixture)

for _name, _cls in (("plain", "PlainFlow"), ("gauge", "GaugeFlow"), ("higher-gauge", "HigherGaugeFlow")):
    register_model(_name, _model_factory(_cls))
