"""The small networks every flow model is built from (docs/math.md §5, "Networks").

* :class:`MLP` — ``features(x) ⊕ t → out``: two hidden layers of width ``hidden`` with SiLU, as in
  the gauge-flow papers (they use width 32 for small problems and 64 otherwise).
* :class:`TimeWeight` — the scalar weight ``α(t)`` of the gauge term: a ``1 → 16 → 1`` SiLU network.
* :func:`time_column` — turns a scalar or ``[B]`` time into the ``[B, 1]`` column the networks eat.
* :func:`count_parameters` — trainable parameter count, used to match model sizes in studies.
"""
from __future__ import annotations

from typing import Union

import torch
from torch import nn
from torch.nn import functional as F

from ..algebra.batched import outer

__all__ = ["MLP", "TimeWeight", "time_column", "count_parameters"]

TimeLike = Union[float, int, torch.Tensor]


def _check_width(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


class MLP(nn.Module):
    """Two-hidden-layer SiLU perceptron ``ℝ^in → ℝ^out``.

    Args:
        in_dim: input size (``manifold.feature_dim + 1`` for a field on ``M × [0, 1]``).
        out_dim: output size.
        hidden: width of both hidden layers.

    Attributes:
        net: the ``nn.Sequential``; ``net[-1]`` is the output ``nn.Linear`` (the layer the gauge
            covariance checker rotates).

    Shapes: ``[..., in_dim] -> [..., out_dim]``.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 64):
        super().__init__()
        in_dim = _check_width(in_dim, "MLP: in_dim")
        out_dim = _check_width(out_dim, "MLP: out_dim")
        hidden = _check_width(hidden, "MLP: hidden")
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, out_dim)
        )

    @property
    def out_layer(self) -> nn.Linear:
        """The final linear layer (its rows are the output coordinates)."""
        return self.net[-1]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``net(h)``, each layer through :func:`_linear` (the same values as ``self.net(h)``, up to rounding)."""
        return _linear(self.features(h), self.out_layer)

    def features(self, h: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations ``[..., hidden]`` (the input of :attr:`out_layer`)."""
        first, _, middle, _, _ = self.net
        if torch.is_grad_enabled():
            return F.silu(_linear(F.silu(_linear(h, first)), middle))
        # no autograd graph (sampling): SiLU in place on the fresh Linear outputs, which saves
        # allocating and writing two [B, hidden] buffers per call; same values
        return F.silu(_linear(F.silu(_linear(h, first), inplace=True), middle), inplace=True)

    def contracted(self, h: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """``Σ_μ d^μ y_μ`` for the output ``y = self(h)`` read as ``[B, D, n]``, without forming ``y``.

        The output layer is linear, so ``Σ_μ d^μ (W_μ z + b_μ) = (d ⊗ z) W' + d b'`` with ``W'`` the
        ``[D · hidden, n]`` rearrangement of its weight: one GEMM with the same multiply-adds as the
        output layer itself, and a ``[B, D · hidden]`` outer product in place of the ``[B, D, n]``
        output and its gradient. The gauge models use it for ``A[d]`` when ``n > hidden``.

        Args:
            h: network input ``[B, in_dim]``.
            d: ``[B, D]`` with ``D`` dividing ``out_dim``.

        Returns:
            ``[B, out_dim / D]``; equal to ``(self(h).unflatten(-1, (D, -1)) * d[..., None]).sum(-2)``.
        """
        last = self.out_layer
        D = d.shape[-1]
        if d.dim() != 2 or h.dim() != 2 or d.shape[0] != h.shape[0] or last.out_features % D:
            raise ValueError(f"MLP.contracted: expected h [B, {self.net[0].in_features}] and d [B, D] with D "
                             f"dividing {last.out_features}, got {tuple(h.shape)} and {tuple(d.shape)}")
        z = self.features(h)
        n, H = last.out_features // D, last.in_features
        weight = last.weight.view(D, n, H).transpose(1, 2).reshape(D * H, n)
        return torch.addmm(d @ last.bias.view(D, n), _outer(d, z), weight)


def _linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """``layer(x)`` with the weight's gradient formed with its longer side contiguous.

    The weight's gradient is the batch contraction ``gᵀ x`` (``[out, in]``) or, equally, ``(xᵀ g)ᵀ``
    (``[in, out]``). Autograd's rule for ``addmm`` forms it in the layout of the matrix it was given,
    so ``nn.Linear`` (which passes the transposed view ``Wᵀ``) always forms ``[out, in]``. When
    ``out > in`` (a first layer on a few coordinates, ``9 → 64``) that makes the short side the
    contiguous one, the side GEMM kernels vectorise along, and the product runs several times
    slower than in the other layout (figures: docs/performance.md, "One route per operation").
    Handing ``addmm`` the contiguous ``[in, out]`` copy of ``Wᵀ`` (``in · out`` numbers, copied per
    call) makes it form the gradient with the long side contiguous. A rule on the layer's shape only; the
    same values (up to the order of floating-point summation in the weight's gradient), the same
    route on every device, and autograd's own rules for every derivative (higher orders,
    ``torch.func``).

    Args:
        x: ``[B, in]`` (other shapes go through :func:`torch.nn.functional.linear`).
        layer: the ``nn.Linear``.

    Returns:
        ``[B, out]``, equal to ``layer(x)``.
    """
    weight = layer.weight
    if x.dim() == 2 and layer.bias is not None and weight.shape[0] > weight.shape[1]:
        return torch.addmm(layer.bias, x, weight.t().contiguous())
    return F.linear(x, weight, layer.bias)


def _outer(d: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``d ⊗ z`` as ``[B, D · H]`` (``u[b, μ H + h] = d[b, μ] z[b, h]``), the input of a folded output layer
    (:func:`gaugeflow.algebra.batched.outer`: its backward forms no ``[B, D, H]`` temporary)."""
    return outer(d, z)


class TimeWeight(nn.Module):
    """The weight ``α(t)`` of the gauge term: ``1 → 16 → 1`` with a SiLU. ``[B, 1] -> [B, 1]``."""

    def __init__(self, hidden: int = 16):
        super().__init__()
        hidden = _check_width(hidden, "TimeWeight: hidden")
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.SiLU(), nn.Linear(hidden, 1))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.net(t)


def time_column(t: TimeLike, x: torch.Tensor) -> torch.Tensor:
    """Time as a ``[B, 1]`` column matching the batch, dtype and device of ``x`` (``[B, D]``).

    Args:
        t: a Python number, a 0-d tensor, or a ``[B]`` tensor.
        x: ``[B, D]`` points (only its batch size, dtype and device are used).

    Raises:
        TypeError: ``t`` is neither a number nor a tensor.
        ValueError: ``t`` has a shape other than ``[]``, ``[1]`` or ``[B]``.
    """
    if isinstance(t, torch.Tensor) and t.dim() == 1 and t.shape[0] == x.shape[0] and t.dtype == x.dtype \
            and t.device == x.device:
        return t.unsqueeze(-1)  # the training hot path: one time per point, already in place
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        return x.new_full((x.shape[0], 1), float(t))  # the sampling hot path: one op, no host tensor
    if isinstance(t, bool) or not isinstance(t, (int, float, torch.Tensor)):
        raise TypeError(f"t must be a float or a tensor of shape [] or [B], got {type(t).__name__}")
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    batch = x.shape[0]
    if t.dim() == 0 or (t.dim() == 1 and t.shape[0] == 1):
        return t.reshape(1, 1).expand(batch, 1)
    if t.dim() == 1 and t.shape[0] == batch:
        return t.unsqueeze(-1)
    raise ValueError(f"t must have shape [] or [{batch}] (one time per point), got {tuple(t.shape)}")


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) scalar parameters of ``model``.

    Examples:
        >>> count_parameters(MLP(4, 3, hidden=8))   # (4·8+8) + (8·8+8) + (8·3+3)
        139
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_parameters: expected an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
