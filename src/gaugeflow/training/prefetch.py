"""The paths of several training steps built in one call (issue 19; docs/performance.md).

The RCFM target ``(x_t, u_t)`` does not depend on the network, so :class:`PathQueue` draws the pairs
of the next ``K = TrainConfig.path_chunk`` steps — one :meth:`Trainer.draw
<gaugeflow.training.Trainer.draw>` per step, exactly as without chunking — and builds their paths in
**one** call of the conditional path on the ``[K·b, D]`` rows: the same 20–30 operations as for one
step (the cut-locus round and the fused :meth:`Manifold.geodesic_and_cut
<gaugeflow.geometry.Manifold.geodesic_and_cut>`), ``K×`` the arithmetic. On ``[1024, D]`` batches those
operations cost their dispatch (2–5 µs each on CPU, a kernel launch each on CUDA), not their
arithmetic, so the path's share of a step falls by up to ``K×``; each step then only slices its rows.

Nothing about the run depends on ``K``:

* the random stream: every step draws its data indices, ``x0`` and ``t`` (and its OT pairing) in the
  same order from the same generator as with ``K = 1``. Where the pairing draws nothing (the OT
  coupling's exact route, :attr:`Trainer.pairs_in_chunks <gaugeflow.training.Trainer.pairs_in_chunks>`),
  the chunk's ``K`` batches are drawn first and paired in one call, block by block, never across two
  steps: the same pairs, from one cost-matrix product and one host step per chunk instead of per step;
* the paths: the device-side cut round gives a cut pair the start point of the previous pair *of the
  same step* (``GeodesicPath.sample(..., batches=K)``) and every other operation is row by row, so each
  step gets the ``x_t, u_t`` it gets alone (up to rounding, see below; ``tests/test_path_chunk.py``);
* the loss: :func:`step_loss` is the trainer's :func:`~gaugeflow.training.rcfm_loss` (``host_checks=False``)
  on the step's own rows, mask and count;
* the checkpoint: the stream state stored is the one before the *next step's* draw (:meth:`PathQueue.
  stream_state`; the queue keeps the state before each of its steps), as with ``K = 1``.

What ``K`` may change is rounding: a vectorised kernel can round a row of a ``[K·b, D]`` tensor an ulp
differently from the same row in ``[b, D]``. ``path_chunk`` is therefore a trajectory setting (a run
resumes with its own), and chunks are aligned to the step count (:class:`PathQueue`), so a run resumed
mid-chunk, or a window replayed from its start, is bit for bit the uninterrupted run on CPU.

Premetric paths (:class:`~gaugeflow.training.PremetricPath`, meshes) are not chunked: their cost is the
simulation's arithmetic, not dispatch, and ``K`` steps of it would only hold ``K×`` the memory.
Everything here reads nothing back from the device.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Union

import torch

from ..geometry.manifold import Manifold
from .loss import _mask_weights, _squared_error, _weighted_sum
from .paths import GeodesicPath

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

__all__ = ["StepPath", "PathQueue", "build_paths", "step_loss", "chunk_size"]


@dataclass(frozen=True)
class StepPath:
    """One step's rows of a chunk: ``x_t, u_t [b, D]``, ``t [b]`` and ``weight [b] = valid / n_used``, the
    loss's weights (``None``: no pair can be masked, the manifold has no cut locus; the loss is a plain
    mean). :attr:`valid` and :attr:`n_used` are read off the weights."""

    x_t: torch.Tensor
    u_t: torch.Tensor
    t: torch.Tensor
    weight: Optional[torch.Tensor]

    @property
    def valid(self) -> Optional[torch.Tensor]:
        """``[b]`` bool, ``False`` for the masked pairs (``None`` without a cut locus)."""
        return None if self.weight is None else self.weight > 0

    @property
    def n_used(self) -> Union[int, torch.Tensor]:
        """The number of valid pairs, at least 1 (a 0-dim tensor of ``x_t``'s dtype; the int ``b`` without a
        cut locus)."""
        if self.weight is None:
            return self.x_t.shape[0]
        return self.valid.sum().clamp_min(1).to(self.x_t.dtype)


def chunk_size(path: object, path_chunk: int) -> int:
    """The number of steps built per call: ``path_chunk`` for a :class:`GeodesicPath`, else 1."""
    return path_chunk if isinstance(path, GeodesicPath) else 1


def build_paths(path, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, steps: int,
                generator: Optional[torch.Generator] = None) -> list[StepPath]:
    """The paths of ``steps`` consecutive batches of pairs in one call: ``[steps·b, D]`` rows -> a list
    of ``steps`` :class:`StepPath`.

    ``path`` is sampled as the trainer samples it (``host_checks=False``: cut pairs resolved on the
    device, each from its own batch's rows), then cut into per-step views (no copies). ``generator``:
    the path's own draws (premetric resampling; unused by :class:`GeodesicPath` here).
    """
    kw = {"batches": steps} if steps > 1 else {}
    ps = path.sample(x0, x1, t, generator=generator, host_checks=False, **kw)
    b = x0.shape[0] // steps
    x_t, u_t = (v.unflatten(0, (steps, b)).unbind(0) for v in (ps.x_t, ps.u_t))
    ts = ps.t.view(steps, b).unbind(0)
    if not isinstance(ps.n_masked, torch.Tensor):  # no cut locus: nothing masked, the loss is a plain mean
        return [StepPath(*row, None) for row in zip(x_t, u_t, ts)]
    weight = _mask_weights(ps.valid.view(steps, b), ps.x_t.dtype)  # every step's weights in one call
    return [StepPath(*row) for row in zip(x_t, u_t, ts, weight.unbind(0))]


def step_loss(model: torch.nn.Module, manifold: Manifold, step: StepPath) -> torch.Tensor:
    """The RCFM loss on one step's precomputed path: ``Σ_valid ‖V(x_t, t) − u_t‖²_g / n_used``.

    The same operations as :func:`~gaugeflow.training.rcfm_loss` with ``host_checks=False`` after its
    path (bit for bit): the squared norms weighted by ``step.weight`` (a masked pair weighs 0: zero
    contribution, zero gradient); with no cut locus, the mean of the squared norms.
    """
    v = model(step.x_t, step.t)
    if step.weight is None:
        return _squared_error(manifold, step.x_t, v, step.u_t, "mean")
    return _weighted_sum(manifold, step.x_t, v, step.u_t, step.weight)


class PathQueue:
    """The built, not yet consumed steps of a trainer, and the stream state before each of them.

    Chunks are aligned to the step count: chunk ``j`` holds steps ``[jK, (j+1)K)`` whenever it is built
    (also past ``config.steps``: the spare draws change nothing, the stored state is per step). A chunk
    entered at step ``s`` mid-way (a resumed run, a replayed window) is built with its first
    ``s − jK`` batches filled by copies of step ``s``'s pairs and those steps dropped, so every step's
    rows sit where an uninterrupted run puts them: vectorised kernels may round a row differently in
    another layout (an ulp), and a resumed run is the uninterrupted one bit for bit on CPU.

    Args:
        size: steps built per call (``K``; see :func:`chunk_size`).
    """

    def __init__(self, size: int):
        self.size = size
        self._steps: list[StepPath] = []
        self._states: list[torch.Tensor] = []

    @property
    def pending(self) -> int:
        """Steps built and not yet consumed."""
        return len(self._steps)

    def clear(self) -> None:
        """Forget the built steps (after the trainer's generator was set to another state)."""
        self._steps, self._states = [], []

    def stream_state(self, generator: torch.Generator) -> torch.Tensor:
        """The generator's state before the next step's draw (what a checkpoint stores)."""
        return self._states[0] if self._states else generator.get_state()

    def pop(self, trainer: "Trainer") -> StepPath:
        """The next step's path, building the rest of its chunk first when none is left."""
        if not self._steps:
            self._fill(trainer, trainer.step)
        self._states.pop(0)
        return self._steps.pop(0)

    def _fill(self, trainer: "Trainer", step: int) -> None:
        """Draw steps ``step … (j+1)K − 1`` and build their paths as chunk ``j = step // K``."""
        skip = step % self.size
        states, draws = [], []
        together = trainer.pairs_in_chunks  # one OT pairing for the chunk (the same pairs)
        try:
            for ahead in range(self.size - skip):
                trainer._ahead = ahead  # ``trainer.step`` is the step whose batch is drawn (as with K = 1)
                states.append(trainer.generator.get_state())
                draws.append(trainer.draw_unpaired() if together else trainer.draw())
        finally:
            trainer._ahead = 0
        if together:
            draws = trainer.pair(draws)
        draws = [draws[0]] * skip + draws  # placeholders where the chunk's consumed steps were
        x0, x1, t = (torch.cat(parts) if len(parts) > 1 else parts[0] for parts in zip(*draws))
        built = build_paths(trainer.path, x0, x1, t, self.size, trainer.path_generator(step - skip))
        self._steps, self._states = built[skip:], states
