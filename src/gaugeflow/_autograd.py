"""A cheaper ``apply`` for the library's ``torch.autograd.Function`` subclasses.

``Function.apply`` binds its arguments against ``inspect.signature(forward)`` on every call when
``setup_context`` is defined (the style functorch transforms need), to fill in default arguments:
about 50 µs of Python per call, several times the work of a small kernel. The library's
Functions take positional arguments without defaults, so the binding is the identity;
:func:`fast_apply` goes straight to the C++ ``apply`` — except under functorch transforms and
``torch.compile``, where it calls ``Function.apply`` unchanged (what both of them expect).
"""
from __future__ import annotations

import torch
from torch._functorch.utils import unwrap_dead_wrappers

__all__ = ["fast_apply"]


def fast_apply(function: type, *args):
    """``function.apply(*args)`` for a ``torch.autograd.Function`` subclass whose ``forward`` has no defaults."""
    if torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active():
        return function.apply(*args)
    return super(torch.autograd.Function, function).apply(*unwrap_dead_wrappers(args))
