"""Value semantics from constructor arguments, shared by manifolds and base distributions.

``ArgsValue.__new__`` records the arguments a class was constructed with, bound to the signature of
its ``__init__`` with defaults applied (so ``Sphere(2) == Sphere(n=2)``). Two objects are equal, and
hash alike, when they have the same class, the same bound arguments and the same :meth:`_extra_key`
(a manifold's attached base distribution). Argument values are compared by value when hashable
(numbers, strings, tuples, other manifolds); lists and dicts by their frozen contents; tensors and
other unhashable objects by identity. A class whose instances carry state not determined by their
constructor arguments overrides :meth:`ArgsValue._key`.
"""
from __future__ import annotations

import inspect
from typing import Any

__all__ = ["ArgsValue"]


class _Identity:
    """Hashable stand-in for an unhashable argument: equal only to a stand-in of the same object."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any):
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)


def _freeze(value: Any) -> Any:
    """A hashable key for one argument value (see module doc)."""
    if isinstance(value, (list, tuple)):
        return (type(value).__name__,) + tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return ("dict",) + tuple((k, _freeze(v)) for k, v in sorted(value.items(), key=lambda kv: repr(kv[0])))
    try:
        hash(value)
    except TypeError:
        return _Identity(value)
    if type(value).__hash__ is object.__hash__ or hasattr(value, "__array__"):  # identity-hashed or a tensor
        return _Identity(value)
    return value


class ArgsValue:
    """Mixin: equality, hashing and a default ``repr`` from the constructor arguments."""

    _args: tuple = ()
    _kwargs: dict = {}
    _bound: tuple = ()
    _arguments: dict = {}

    def __new__(cls, *args: Any, **kwargs: Any):
        obj = super().__new__(cls)
        obj._args, obj._kwargs = args, dict(kwargs)
        try:
            bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)
            bound.apply_defaults()
            items = list(bound.arguments.items())[1:]  # drop self
        except (TypeError, ValueError):  # __init__ will raise its own error for bad arguments
            items = [("args", args), ("kwargs", kwargs)]
        obj._arguments = dict(items)
        obj._bound = tuple((name, _freeze(v)) for name, v in items)
        return obj

    def _argument(self, name: str) -> Any:
        """The constructor argument ``name`` as bound to ``__init__``'s signature (defaults applied)."""
        return self._arguments[name]

    def _extra_key(self) -> tuple:
        """Further state that belongs to the value (none by default)."""
        return ()

    def _key(self) -> tuple:
        """``(class, bound constructor arguments, extra)``: what ``==`` and ``hash`` compare."""
        return (type(self), self._bound, self._extra_key())

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, ArgsValue):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        parts = [repr(a) for a in self._args] + [f"{k}={v!r}" for k, v in self._kwargs.items()]
        return f"{type(self).__name__}({', '.join(parts)})"
