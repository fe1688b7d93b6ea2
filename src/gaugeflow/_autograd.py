"""A cheaper ``apply`` for the library's ``torch.autograd.Function`` subclasses.

``Function.apply`` binds its arguments against ``inspect.signature(forward)`` on every call when
``setup_context`` is defined (the style functorch transforms need), to fill in default arguments:
about 50 µs of Python per call, several times the work of a small kernel. The library's
Functions take positional arguments without defaults, so the binding is the identity; outside
functorch transforms :class:`FastApply` goes straight to the C++ ``apply``, and under them to
``Function.apply`` unchanged.
"""
from __future__ import annotations

import torch
from torch._functorch.utils import unwrap_dead_wrappers

__all__ = ["FastApply"]


class FastApply:
    """Mixin placed before ``torch.autograd.Function``: ``class F(FastApply, torch.autograd.Function)``."""

    @classmethod
    def apply(cls, *args):
        if torch._C._are_functorch_transforms_active():
            return super().apply(*args)  # Function.apply: functorch's custom_function_call
        return super(torch.autograd.Function, cls).apply(*unwrap_dead_wrappers(args))
