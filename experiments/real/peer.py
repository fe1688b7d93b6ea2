"""The peer a user would pick today: facebookresearch ``flow_matching`` (PyPI 1.0.10, CC BY-NC 4.0).

It is *called as a library* (its ``GeodesicProbPath``, ``CondOTScheduler``, ``Sphere`` and
``FlatTorus``); nothing of its code is copied. The training recipe follows its Riemannian example
notebooks (``examples/2d_riemannian_flow_matching_{sphere,flat_torus}.ipynb``):

* an ambient MLP on ``(x, t)`` whose output is projected with the manifold's ``proju`` after
  ``projx`` of the input ("ProjectToTangent"); on the flat torus the input ``(x, t)`` goes through
  first-order Fourier features ``(sin, cos)`` as in the torus notebook;
* the conditional path ``GeodesicProbPath(CondOTScheduler(), manifold).sample(x_0, x_1, t)``;
* the loss ``mean((v(x_t, t) − dx_t)²)`` (plain MSE over all ambient coordinates), Adam.

What is *not* taken from the notebooks, so that the comparison is fair: the network has the same
size as ours (two hidden SiLU layers of the same width instead of the notebooks' four layers of
512), the same optimiser settings, steps, batch size and training stream seed, and ``x_0`` is drawn
from the same uniform base distribution as ours (the notebooks wrap a Gaussian; a uniform base is
needed for an exact likelihood and is what a user would choose on a compact manifold).

The trained field is evaluated with *our* ``gaugeflow.sampling.log_prob`` / ``sample``: the class
below exposes ``model(x, t)`` and ``model.manifold`` (a gaugeflow manifold), which is all the
evaluator needs.
"""
from __future__ import annotations

import time

import torch
from torch import nn

__all__ = ["PeerField", "train_peer", "flow_matching_version"]


def _fm():
    """Import the pieces of flow_matching we call; a clear error if the bench extra is missing."""
    try:
        from flow_matching.path import GeodesicProbPath
        from flow_matching.path.scheduler import CondOTScheduler
        from flow_matching.utils.manifolds import FlatTorus, Sphere
    except ImportError as err:
        raise ImportError(f"the flow_matching peer needs: pip install 'gaugeflow[bench]' ({err})") from err
    return GeodesicProbPath, CondOTScheduler, Sphere, FlatTorus


def flow_matching_version() -> str:
    from importlib.metadata import version

    return version("flow-matching")


class PeerField(nn.Module):
    """Ambient MLP velocity field projected to the tangent space with flow_matching's manifold.

    Args:
        manifold: the *gaugeflow* manifold (``Sphere(2)`` or ``FlatTorus(2)``), kept as ``.manifold``
            for our evaluator.
        hidden: width of the two hidden layers (same as our models').

    Shapes: ``x [B, D]``, ``t`` scalar, ``[B]`` or ``[B, 1]`` → ``[B, D]``.
    """

    def __init__(self, manifold, hidden: int):
        super().__init__()
        _, _, FMSphere, FMTorus = _fm()
        kind = type(manifold).__name__
        if kind not in ("Sphere", "FlatTorus"):
            raise ValueError(f"PeerField supports Sphere and FlatTorus, got {manifold}")
        self.manifold = manifold
        self.fourier = kind == "FlatTorus"
        self.fm_manifold = FMTorus() if self.fourier else FMSphere()
        d = manifold.ambient_dim
        in_dim = 2 * (d + 1) if self.fourier else d + 1
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, d))

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        x = self.fm_manifold.projx(x)
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1, 1).expand(x.shape[0], 1)
        h = torch.cat([x, t], dim=-1)
        if self.fourier:
            h = torch.cat([torch.sin(h), torch.cos(h)], dim=-1)
        return self.fm_manifold.proju(x, self.net(h))


def train_peer(field: PeerField, train: torch.Tensor, *, steps: int, batch_size: int, lr: float,
               seed: int) -> dict:
    """Train ``field`` with flow_matching's geodesic CondOT path and MSE; returns timing and loss stats.

    The stream (batch indices, ``x_0`` from the uniform base, ``t ~ U(0, 1)``) is drawn from a
    generator seeded with ``seed``. A non-finite loss (flow_matching's unclamped ``acos`` can give
    NaN for nearly equal ``x_0, x_1``) skips the step and is counted.
    """
    GeodesicProbPath, CondOTScheduler, _, _ = _fm()
    path = GeodesicProbPath(scheduler=CondOTScheduler(), manifold=field.fm_manifold)
    opt = torch.optim.Adam(field.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses, skipped = [], 0
    start = time.perf_counter()
    for _ in range(steps):
        x1 = train[torch.randint(len(train), (batch_size,), generator=gen)]
        x0 = field.manifold.random_base(batch_size, generator=gen, dtype=train.dtype)
        t = torch.rand(batch_size, generator=gen, dtype=train.dtype)
        ps = path.sample(x_0=x0, x_1=x1, t=t)
        loss = (field(ps.x_t, ps.t) - ps.dx_t).pow(2).mean()
        if not torch.isfinite(loss):
            skipped += 1
            continue
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    elapsed = time.perf_counter() - start
    tail = losses[-max(1, len(losses) // 10):]
    return {"train_s": elapsed, "s_per_step": elapsed / max(steps, 1), "final_loss": sum(tail) / len(tail),
            "nonfinite_steps": skipped}
