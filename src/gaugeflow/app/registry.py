"""Name → factory tables that turn the names of a :class:`~gaugeflow.training.TrainConfig` into objects.

The application layer's composition root: the library packages never look a name up, so these
tables may refer to all of them. Each table is an explicit dict of factories; nothing registers
itself when a module is imported, and the factories import what they build only when called.

* manifolds: ``name -> constructor(dim) -> Manifold`` (``euclidean``, ``sphere``, ``torus``, ``hyperbolic``,
  ``so3``, ``se3``; the two groups have a fixed dimension and accept ``dim`` = 3 resp. 6 or the default 2;
  ``mesh``, a triangle mesh named by the config's ``mesh``: ``icosphere``, ``torus``, ``bumpy`` or a file);
* data sets: ``name -> loader(manifold, *, n, seed) -> ManifoldData`` (``wrapped-mixture``,
  ``gaussian-mixture``, ``world-cities``, ``quakes``, ``protein``, ``protein-frames``, ``mesh-eigen``,
  ``mesh-eigen-fine`` (eigenfunction mixtures on a mesh, :mod:`gaugeflow.data.mesh`)); ``n`` is the requested number of
  (training) points, ``None`` the loader's default; a loader whose data live on one fixed manifold
  raises ``ValueError`` when handed another one;
* models: ``name -> factory(manifold, *, hidden, k) -> nn.Module`` (``plain``, ``gauge``, ``higher-gauge``,
  ``tensor-gauge``); a config's ``rank`` is passed on as ``rank=`` when it is set (``tensor-gauge``
  takes it, default 2; the other built-ins refuse it).

Plug-ins: a name that is not in a table is looked up, when first asked for, among the entry points
that installed packages declare in the groups ``gaugeflow.manifolds``, ``gaugeflow.models`` and
``gaugeflow.data`` (:data:`ENTRY_POINT_GROUPS`, read with :func:`importlib.metadata.entry_points`);
``package.module:Name`` names an object directly. A manifold plug-in is a :class:`Manifold` subclass
(built as ``Class(dim)`` when its constructor has a required argument, else ``Class()``), an instance,
or a factory ``f(dim)``; a model plug-in an ``nn.Module`` subclass or factory called as
``f(manifold, hidden=..., k=...)``; a data plug-in a loader ``f(manifold, *, n, seed)``. The run's
config stores the name, so ``evaluate``, ``sample`` and ``plot`` rebuild a run the same way in a
new process. Like an installed plug-in, a ``package.module:Name`` stored in a run's config is code that
reopening the run imports: open runs of trusted origin only.

Examples:
    >>> from gaugeflow.app import register_data
    >>> register_data("my-points", lambda manifold, *, n, seed: load_my_points(manifold, n, seed))  # doctest: +SKIP
    >>> cfg = TrainConfig(manifold="sphere", dim=2, model="gauge", hidden=32)
    >>> model = build_model(cfg, build_manifold(cfg))
"""
from __future__ import annotations

import dataclasses
from importlib.metadata import entry_points
from typing import Any, Callable, Optional

import torch

from ..geometry.manifold import Manifold
from ..training.config import TrainConfig
from .plugins import _DIRECT, ENTRY_POINT_GROUPS, _import, adapt_manifold, adapt_model

__all__ = ["Registry", "ENTRY_POINT_GROUPS", "MANIFOLDS", "DATASETS", "MODELS", "register_manifold", "register_data", "register_model",
           "check_names", "build_manifold", "build_data", "build_model"]


class Registry:
    """A name -> factory table whose lookups fail with one line listing the known names.

    Names missing from the table are resolved lazily (on the first :meth:`get`, never at import) as an
    entry point of ``group`` or as ``package.module:Name``; ``adapt(obj, name)`` turns the loaded object
    into a factory of the table's signature. Resolved plug-ins are cached per process.

    Args:
        kind: what the names denote (``"manifold"``), used in error messages.
        entries: the built-in ``name -> factory`` pairs.
        group: the entry-point group of plug-ins (``None``: no plug-ins).
        adapt: ``(obj, name) -> factory`` applied to a loaded plug-in (default: ``obj`` itself).
    """

    def __init__(self, kind: str, entries: Optional[dict[str, Callable]] = None, group: Optional[str] = None,
                 adapt: Optional[Callable[[Any, str], Callable]] = None):
        self.kind, self.group = kind, group
        self._entries: dict[str, Callable] = dict(entries or {})
        self._adapt = adapt or (lambda obj, name: obj)
        self._plugins: dict[str, Callable] = {}

    def register(self, name: str, factory: Callable, overwrite: bool = False) -> Callable:
        """Add ``factory`` under ``name``; re-registering a name needs ``overwrite=True``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if not callable(factory):
            raise TypeError(f"{self.kind} {name!r}: expected a callable, got {type(factory).__name__}")
        if name in self._entries and not overwrite and self._entries[name] is not factory:
            raise ValueError(f"{self.kind} {name!r} is already registered (pass overwrite=True to replace it)")
        self._entries[name] = factory
        self._plugins.pop(name, None)
        return factory

    def names(self) -> list[str]:
        """The registered names (built-ins and :meth:`register`), sorted; plug-ins: :meth:`plugin_names`."""
        return sorted(self._entries)

    def plugin_names(self) -> list[str]:
        """Names of the installed entry points of :attr:`group` that no registered name shadows, sorted."""
        if self.group is None:
            return []
        return sorted({ep.name for ep in entry_points(group=self.group)} - set(self._entries))

    def get(self, name: str) -> Callable:
        """The factory of ``name``: registered, an installed plug-in, or ``package.module:Name``.

        Raises:
            ValueError: unknown name (the line lists the known ones), or a plug-in that cannot be loaded.
            TypeError: the plug-in is not of the expected kind.
        """
        if isinstance(name, str) and name in self._entries:
            return self._entries[name]
        if isinstance(name, str) and name in self._plugins:
            return self._plugins[name]
        obj = self._load(name)
        self._plugins[name] = factory = self._adapt(obj, name)
        return factory

    def _load(self, name: object) -> Any:
        if isinstance(name, str) and self.group is not None and _DIRECT.match(name):
            module, _, attr = name.partition(":")
            return _import(name, module, attr, self.kind)
        found = [ep for ep in entry_points(group=self.group)] if self.group and isinstance(name, str) else []
        found = [ep for ep in found if ep.name == name]
        if not found:
            plugins = self.plugin_names()
            more = f"; installed plug-ins: {', '.join(plugins)}" if plugins else ""
            direct = ", or package.module:Name" if self.group else ""
            raise ValueError(f"unknown {self.kind} {name!r}; expected one of: {', '.join(self.names())}{more}{direct}")
        module, _, attr = found[0].value.partition(":")
        return _import(f"{name!r} (entry point {found[0].value} of group {self.group})", module, attr, self.kind)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


# ---------------------------------------------------------------------- built-in factories
def _manifold(cls_name: str) -> Callable[[int], Manifold]:
    def make(dim: int) -> Manifold:
        from .. import manifolds
        return getattr(manifolds, cls_name)(dim)
    make.__name__ = f"make_{cls_name}"
    return make


def _model(cls_name: str, takes_rank: bool = False) -> Callable[..., torch.nn.Module]:
    def make(manifold: Manifold, *, hidden: int, k: Optional[int], rank: Optional[int] = None) -> torch.nn.Module:
        from .. import models
        kwargs: dict[str, Any] = {"hidden": hidden}
        if k is not None and cls_name != "PlainFlow":
            kwargs["k"] = k
        if rank is not None:
            if not takes_rank:
                raise ValueError(f"rank applies to tensor-gauge (a rank-r gauge field), not to {cls_name}; got rank={rank}")
            kwargs["rank"] = rank
        return getattr(models, cls_name)(manifold, **kwargs)
    make.__name__ = f"make_{cls_name}"
    make.takes_rank = takes_rank
    return make


def _wrapped_mixture(manifold: Manifold, *, n: Optional[int], seed: int):
    from ..data import wrapped_mixture
    return wrapped_mixture(manifold, seed=seed) if n is None else wrapped_mixture(manifold, n_train=n, seed=seed)


def _gaussian_mixture(manifold: Manifold, *, n: Optional[int], seed: int):
    """``n`` is the number of *training* points (validation and test keep their defaults)."""
    from ..data import gaussian_mixture
    from ..manifolds import Euclidean
    if not isinstance(manifold, Euclidean):
        raise ValueError(f"gaussian-mixture lives on Euclidean(N), got {manifold}")
    return gaussian_mixture(manifold.dim, seed=seed, **({} if n is None else {"n_train": n}))


def _real(name: str, loader_name: str, cls_name: str) -> Callable:
    """Adapter ``(manifold, *, n, seed) -> ManifoldData`` of a real-data loader (``n`` = ``max_points``)."""
    def load(manifold: Manifold, *, n: Optional[int], seed: int):
        from .. import data, manifolds
        if manifold != getattr(manifolds, cls_name)(2):
            raise ValueError(f"{name} lives on {cls_name}(2), got {manifold}")
        return getattr(data, loader_name)(seed=seed, max_points=n)
    load.__name__ = f"load_{loader_name}"
    return load


def _group(name: str, cls_name: str, dim: int) -> Callable[[int], Manifold]:
    """Factory of a fixed-dimension group manifold: ``dim`` must be its intrinsic dimension or the config default 2."""
    def make(d: int) -> Manifold:
        from .. import manifolds
        if d not in (2, dim):
            raise ValueError(f"manifold {name!r} is {cls_name}(3) of intrinsic dimension {dim}: leave --dim at its "
                             f"default or pass {dim}, got {d}")
        return getattr(manifolds, cls_name)(3)
    make.__name__ = f"make_{cls_name}"
    return make


#: the procedural meshes of ``--mesh`` (anything else names a mesh file: OBJ, PLY, OFF, STL)
MESH_SHAPES = ("icosphere", "torus", "bumpy")


def _mesh(dim: int, mesh: Optional[str] = None) -> Manifold:
    """``--manifold mesh --mesh icosphere | torus | bumpy | PATH``: a triangle mesh (intrinsic dimension 2)."""
    from pathlib import Path

    from ..manifolds import Mesh
    if dim != 2:
        raise ValueError(f"manifold 'mesh' is a surface of intrinsic dimension 2: leave --dim at 2, got {dim}")
    if not mesh:
        raise ValueError(f"manifold 'mesh' needs --mesh {' | '.join(MESH_SHAPES)} | PATH (an OBJ/PLY/OFF file)")
    if mesh in MESH_SHAPES:
        return getattr(Mesh, mesh)()
    if not Path(mesh).is_file():
        raise ValueError(f"--mesh {mesh!r}: expected one of {', '.join(MESH_SHAPES)} or the path of a mesh file, "
                         f"and no such file exists")
    return Mesh.from_file(mesh)


def _mesh_set(name: str) -> Callable:
    """Loader of a named eigenfunction mixture (:data:`gaugeflow.data.mesh.MESH_SETS`) on a mesh."""
    def load(manifold: Manifold, *, n: Optional[int], seed: int):
        from ..data.mesh import named_set
        return named_set(name, manifold, n=n, seed=seed)
    load.__name__ = f"load_{name.replace('-', '_')}"
    return load


def _protein_frames(manifold: Manifold, *, n: Optional[int], seed: int):
    """``protein-frames`` on ``SO3()`` or on ``SE3(translation_scale=s)`` (the manifold picks the group)."""
    from ..data import protein_frames
    from ..manifolds import SE3, SO3
    if manifold == SO3():
        return protein_frames("so3", seed=seed, max_points=n)
    if isinstance(manifold, SE3):
        return protein_frames("se3", seed=seed, max_points=n, translation_scale=manifold.scale)
    raise ValueError(f"protein-frames lives on SO3() or SE3(), got {manifold}")


MANIFOLDS = Registry("manifold", {"euclidean": _manifold("Euclidean"), "sphere": _manifold("Sphere"),
                                  "torus": _manifold("FlatTorus"), "hyperbolic": _manifold("Hyperbolic"),
                                  "so3": _group("so3", "SpecialOrthogonal", 3),
                                  "se3": _group("se3", "SpecialEuclidean", 6), "mesh": _mesh},
                     group=ENTRY_POINT_GROUPS["manifold"], adapt=adapt_manifold)
DATASETS = Registry("data set", {"wrapped-mixture": _wrapped_mixture, "gaussian-mixture": _gaussian_mixture,
                                 "world-cities": _real("world-cities", "world_cities", "Sphere"),
                                 "quakes": _real("quakes", "quakes", "Sphere"),
                                 "protein": _real("protein", "protein_angles", "FlatTorus"),
                                 "protein-frames": _protein_frames, "mesh-eigen": _mesh_set("mesh-eigen"),
                                 "mesh-eigen-fine": _mesh_set("mesh-eigen-fine")}, group=ENTRY_POINT_GROUPS["data set"])
MODELS = Registry("model", {"plain": _model("PlainFlow"), "gauge": _model("GaugeFlow"),
                            "higher-gauge": _model("HigherGaugeFlow"),
                            "tensor-gauge": _model("TensorGaugeFlow", takes_rank=True)},
                  group=ENTRY_POINT_GROUPS["model"], adapt=adapt_model)


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


# ---------------------------------------------------------------------- building a run from a config
def check_names(cfg: TrainConfig) -> TrainConfig:
    """Check that ``cfg``'s manifold, model and data names are registered (``ValueError`` otherwise).

    :class:`TrainConfig` itself checks types and ranges only; names are looked up here, before
    anything is built or written.
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"expected a TrainConfig, got {type(cfg).__name__}")
    MANIFOLDS.get(cfg.manifold)
    model = MODELS.get(cfg.model)
    if cfg.rank is not None and getattr(model, "takes_rank", True) is False:
        raise ValueError(f"config: rank applies to model tensor-gauge (a rank-r gauge field), not to {cfg.model!r}; "
                         f"got rank={cfg.rank}")
    DATASETS.get(cfg.data)
    return cfg


def build_manifold(cfg: TrainConfig) -> Manifold:
    """The manifold named by ``cfg.manifold`` with intrinsic dimension ``cfg.dim`` (``mesh``: also ``cfg.mesh``)."""
    factory = MANIFOLDS.get(check_names(cfg).manifold)
    if factory is _mesh:
        return _mesh(cfg.dim, cfg.mesh)
    if cfg.mesh is not None:
        raise ValueError(f"config: mesh applies to manifold 'mesh' only, got mesh={cfg.mesh!r} with manifold {cfg.manifold!r}")
    return factory(cfg.dim)


def build_data(cfg: TrainConfig, manifold: Optional[Manifold] = None):
    """Load ``cfg.data`` on ``manifold`` (built from ``cfg`` when omitted), cast to ``cfg.dtype``."""
    manifold = build_manifold(cfg) if manifold is None else manifold
    data = DATASETS.get(check_names(cfg).data)(manifold, n=cfg.n_data, seed=cfg.seed)
    if data.manifold != manifold:
        raise ValueError(f"data set {cfg.data!r} lives on {data.manifold}, but the run asks for {manifold}")
    if data.train.dtype != cfg.torch_dtype:
        data = dataclasses.replace(data, train=data.train.to(cfg.torch_dtype), val=data.val.to(cfg.torch_dtype),
                                   test=data.test.to(cfg.torch_dtype))
    return data


def build_model(cfg: TrainConfig, manifold: Optional[Manifold] = None) -> torch.nn.Module:
    """Instantiate ``cfg.model`` on ``manifold`` with weights initialised from ``cfg.seed``.

    The global RNG state is left untouched (initialisation runs under ``torch.random.fork_rng``).
    """
    manifold = build_manifold(cfg) if manifold is None else manifold
    factory = MODELS.get(check_names(cfg).model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        extra = {} if cfg.rank is None else {"rank": cfg.rank}
        model = factory(manifold, hidden=cfg.hidden, k=cfg.k, **extra)
    return model.to(cfg.torch_dtype)
