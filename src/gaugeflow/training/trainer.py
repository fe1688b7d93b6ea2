"""The training loop: RCFM with Adam/AdamW, LR schedules, weight EMA, clipping, checkpoints and DDP.

Determinism: one CPU ``torch.Generator`` seeded with ``config.seed`` draws, every step and in this
order, the global batch's data indices, base points ``x0`` and times ``t``. Every process draws the
whole global batch and keeps its own slice, so a P-process run sees exactly the samples of a
1-process run with the same global batch, and a resumed run (generator state restored from the
checkpoint) continues the very same stream. The paths of ``config.path_chunk`` steps are built in one
call (:mod:`gaugeflow.training.prefetch`); that changes neither the stream nor any step's pairs.

Examples:
    >>> from gaugeflow.manifolds import Sphere
    >>> from gaugeflow.models import GaugeFlow
    >>> from gaugeflow.data import wrapped_mixture
    >>> M = Sphere(2)
    >>> history = fit(GaugeFlow(M, hidden=32), wrapped_mixture(M, seed=0), steps=50, progress=False)
    >>> len(history.loss)
    50
"""
from __future__ import annotations

import copy
import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from tqdm.auto import tqdm

from ..data.base import ManifoldData
from .checkpoint import BEST_NAME, CHECKPOINT_NAME, CheckpointError, atomic_write_bytes, check_compatible, encode_bytes
from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from .resume import TRAJECTORY_KEYS, check_fit_inputs, restore_state
from .rundir import RunFolder
from .config import TrainConfig
from .coupling import check_coupling, ot_pairing
from .distributed import DistEnv
from .flat_adam import FlatAdam
from .loss import rcfm_loss
from .premetric import default_path
from .prefetch import PathQueue, chunk_size, step_loss
from .tools import EMA, METRICS_NAME, TENSORBOARD_NAME, History, TensorBoardLog, lr_factor, require_tensorboard
from .tools import plateaued, write_metrics_csv
from .window import CHECK_EVERY, StepWindow, next_stop

__all__ = ["Trainer", "fit", "NonFiniteLossError", "validation_nll"]


class NonFiniteLossError(RuntimeError):
    """Training produced non-finite losses or gradients for too many consecutive steps."""


def validation_nll(model: torch.nn.Module, x: torch.Tensor, steps: int = 20, env: Optional[DistEnv] = None,
                   divergence: Optional[str] = None) -> float:
    """Mean negative log-likelihood (nats) of points ``x`` ``[n, D]`` under the flow ``model``.

    Uses ``gaugeflow.sampling.log_prob`` with ``divergence`` (``None``: ``log_prob``'s default, a rule
    on the manifold's dimension: exact below ``HUTCHINSON_FROM_DIM``, Hutchinson from it on, with
    probes from a generator seeded with 0 so the same points give the same value). With a
    :class:`DistEnv` of P processes each process evaluates its contiguous share of ``x`` and the sums
    are all-reduced. The global RNG state is left untouched.
    """
    from ..sampling import log_prob

    if x.dim() != 2 or len(x) == 0:
        raise ValueError(f"validation_nll: expected a non-empty [n, D] batch of points, got shape {tuple(x.shape)}")
    env = env or DistEnv(0, 1, 0, x.device)
    chunk = math.ceil(len(x) / env.world)
    part = x[env.rank * chunk:(env.rank + 1) * chunk]
    total = torch.zeros(2, dtype=torch.float64, device=x.device)
    if len(part):
        with torch.random.fork_rng(devices=[]):
            gen = torch.Generator(device=x.device).manual_seed(0)
            lp = log_prob(model, part, steps=steps, divergence=divergence, generator=gen)
        total = torch.stack([-lp.detach().double().sum(), torch.tensor(float(len(part)), device=x.device).double()])
    total = env.all_sum(total)
    return float(total[0] / total[1])


class Trainer:
    """Trains a flow ``model`` on ``data`` by Riemannian conditional flow matching.

    Args:
        model: ``nn.Module`` with ``model(x, t) -> [B, D]`` tangent vectors and ``model.manifold``.
        data: a :class:`~gaugeflow.data.ManifoldData` on the same manifold.
        config: a :class:`TrainConfig`; keyword ``overrides`` replace its fields.
        out: run folder for ``config.json``, ``metrics.csv``, ``checkpoint.safetensors`` and, once the run
            validates, ``best.safetensors`` (``None``: nothing is written). Only process 0 writes, holding
            the folder's lock (see :mod:`gaugeflow.training.rundir`: a non-empty folder that is not a run is
            refused).
        resume: ``True`` (the checkpoint in ``out``) or a checkpoint path to continue from.
        overwrite: replace the run in ``out`` (moved aside, deleted after the new run's first checkpoint).

    Attributes:
        check_every: ``fit`` reads losses and checks their finiteness once per window of at most this
            many steps (default :data:`~gaugeflow.training.window.CHECK_EVERY` = 32), never per step;
            a window with a non-finite step is replayed step by step (:mod:`gaugeflow.training.window`).
        validation_figure: with ``config.logger == "tensorboard"``, a picture of the EMA model logged
            at each validation (``figure(model) -> uint8 [H, W, 3]`` or ``None``; the command line sets
            one from :mod:`gaugeflow.viz`, which this layer does not import). ``None``: scalars only.
    """

    check_every: int = CHECK_EVERY
    _ahead: int = 0  # set by PathQueue while it draws the batches of later steps (see ``step``)
    validation_figure: Optional[Callable[[torch.nn.Module], Any]] = None

    def __init__(self, model: torch.nn.Module, data: ManifoldData, config: Optional[TrainConfig] = None,
                 out: Optional[str | Path] = None, resume: bool | str | Path = False, overwrite: bool = False,
                 **overrides: Any):
        cfg = (config or TrainConfig()).replace(**overrides) if overrides else (config or TrainConfig())
        cfg, manifold = check_fit_inputs(model, data, cfg, out, resume, overwrite)
        check_coupling(manifold, cfg.coupling)  # a manifold without distances is refused before any step
        self.config, self.manifold, self.data = cfg, manifold, data
        # geodesic where the manifold has a closed-form log, else premetric (a mesh); recorded in the checkpoint
        self.path = default_path(manifold, cfg.path)
        self.out = Path(out) if out is not None else None
        self.run: Optional[RunFolder] = None
        self.env = DistEnv.setup(cfg.device)
        try:
            self._setup(model, data, resume, overwrite)
        except BaseException:
            self.close()
            raise

    def _setup(self, model: torch.nn.Module, data: ManifoldData, resume: bool | str | Path, overwrite: bool) -> None:
        """Everything after the device: model, optimiser, streams; then the run folder; then the resume."""
        cfg = self.config
        if cfg.batch_size % self.env.world:
            raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the number of processes {self.env.world}")
        self.model = model.to(self.env.device)
        self.net = self._wrap(self.model)
        self.train_x = data.train.to(self.env.device, cfg.torch_dtype)
        self.optimizer = self._make_optimizer()
        self.ema = EMA(self.model, cfg.ema_decay)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self._paths = PathQueue(chunk_size(self.path, cfg.path_chunk))  # built paths of the next steps
        self.history, self.consecutive_nonfinite = History(), 0
        self._window = StepWindow()  # steps applied in fit whose losses are not read yet (see .window)
        self._saved_step: Optional[int] = None
        #: the EMA weights of :attr:`best` (``None`` before the first validation)
        self.best_state: Optional[dict[str, torch.Tensor]] = None
        if cfg.logger == "tensorboard":
            require_tensorboard()  # a missing extra is one line before the run folder is touched
        if self.out is not None and self.env.is_main:  # validated everything first: only now touch the folder
            self.run = RunFolder.open(self.out, "resume" if resume is True else "overwrite" if overwrite else "new")
            if self.run.recovered:
                warnings.warn(self.run.recovered, RuntimeWarning, stacklevel=3)
        if resume:
            self.resume(self.out / CHECKPOINT_NAME if resume is True else resume)

    def _wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if not self.env.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel
        ids = [self.env.device.index] if self.env.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    @property
    def step(self) -> int:
        """Steps done; while the paths of later steps are drawn ahead, the step whose batch :meth:`draw` draws."""
        return self.history.steps + self._window.pending + self._ahead

    # ------------------------------------------------------------------ one step
    def draw(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This process's slice of the next global batch: ``x0, x1 [b, D]`` and ``t [b]``.

        :meth:`draw_unpaired`, then :meth:`pair` on that one batch. Training builds the paths of
        ``config.path_chunk`` steps at a time (:class:`~gaugeflow.training.prefetch.PathQueue`): it calls
        this once per step, or, where the pairing draws nothing from the stream (:attr:`pairs_in_chunks`),
        :meth:`draw_unpaired` once per step and :meth:`pair` once on all of them, which gives every step the
        same pairs.

        With ``config.coupling == "ot"`` every process re-pairs the whole global batch by
        :func:`~gaugeflow.training.coupling.ot_pairing` (after ``t`` is drawn; its Sinkhorn route draws
        its row uniforms from the same stream), so P processes and a resumed run see the same pairs.
        """
        return self.pair([self.draw_unpaired()])[0]

    def draw_unpaired(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The stream's draws of one step, the next *global* batch as drawn: ``x0, x1 [B, D]``, ``t [B]``.

        In this order from :attr:`generator`: ``B`` data indices, ``B`` base points, ``B`` times; ``x1`` holds
        the indexed training points in the order drawn (before any OT re-pairing). With the independent
        coupling only this process's slice is moved to the device (the other rows come back empty).
        """
        cfg, g, B = self.config, self.generator, self.config.batch_size
        idx = torch.randint(len(self.train_x), (B,), generator=g)
        x0 = self.manifold.random_base(B, generator=g, dtype=cfg.torch_dtype)
        t = torch.rand(B, generator=g, dtype=cfg.torch_dtype)
        dev = self.env.device
        if cfg.coupling == "independent":
            part = self._part()
            x0, idx, t = x0[part], idx[part], t[part]
        return x0.to(dev), self.train_x[idx.to(dev)], t.to(dev)

    @property
    def pairs_in_chunks(self) -> bool:
        """Whether the batches of several steps may be paired in one :meth:`pair` call: the OT coupling's
        exact route (blocks of at most ``config.ot_exact_max`` pairs), which draws nothing from the stream.
        The Sinkhorn route draws each step's row uniforms right after its batch, so it pairs step by step."""
        cfg = self.config
        return cfg.coupling == "ot" and (cfg.ot_batch or cfg.batch_size) <= cfg.ot_exact_max

    def pair(self, batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
             ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Couple the global batches of consecutive steps (from :meth:`draw_unpaired`) and keep this
        process's slice of each: a list of ``x0, x1 [b, D]``, ``t [b]``.

        Independent coupling: the batches as drawn. OT: one :func:`~gaugeflow.training.coupling.ot_pairing`
        on all their rows, in blocks of ``config.ot_batch`` pairs (default: one step's batch), so no block
        spans two steps and each step gets the pairs it gets alone; one cost-matrix product and one host
        step for the lot. Several batches only where :attr:`pairs_in_chunks` (else the Sinkhorn route's
        draws would leave the stream's order).
        """
        cfg = self.config
        if cfg.coupling == "independent":
            return list(batches)
        if len(batches) > 1 and not self.pairs_in_chunks:
            raise ValueError("Trainer.pair: the Sinkhorn route draws from the stream per step; pair one batch at a time")
        x0, x1, t = (torch.cat(parts) if len(parts) > 1 else parts[0] for parts in zip(*batches))
        x1 = x1[ot_pairing(self.manifold, x0, x1, block=cfg.ot_batch or cfg.batch_size, exact_max=cfg.ot_exact_max,
                           generator=self.generator)]
        part = self._part()
        return [tuple(v[k + part.start:k + part.stop] for v in (x0, x1, t)) for k in range(0, len(x0), cfg.batch_size)]

    def _part(self) -> slice:
        """This process's rows of a global batch."""
        b = self.config.batch_size // self.env.world
        return slice(self.env.rank * b, (self.env.rank + 1) * b)

    def loss(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """RCFM loss ``mean ‖V(x_t, t) − u_t‖²_g`` of the (possibly DDP-wrapped) network on these pairs, as a
        training step computes it (which builds its path ahead, :mod:`gaugeflow.training.prefetch`)."""
        return rcfm_loss(self.net, x0, x1, t, manifold=self.manifold, path=self.path,
                         generator=self.path_generator(),
                         host_checks=False)  # times are drawn here; cut pairs resolved on the device

    def path_generator(self, step: Optional[int] = None) -> torch.Generator:
        """The generator of a path's own draws (premetric resampling), keyed by (seed, step, rank) (``step``:
        default the current one; a chunk's first step): deterministic, resumable without extra state, and it
        never advances the shared batch stream."""
        step = self.step if step is None else step
        key = ((self.config.seed * 1_000_003 + step) * 4096 + self.env.rank) % (2**63)
        return torch.Generator().manual_seed(key)

    def stream_state(self) -> torch.Tensor:
        """The batch stream's state before the next step's draw (steps built ahead not counted)."""
        return self._paths.stream_state(self.generator)

    def set_stream_state(self, state: torch.Tensor) -> None:
        """Continue the batch stream from ``state`` (a :meth:`stream_state`); steps built ahead are dropped."""
        self.generator.set_state(state)
        self._paths.clear()

    # The update: Adam/AdamW on one flat vector (FlatAdam), clipping on torch's multi-tensor route, the EMA in
    # one flat lerp (tools.EMA); the same route on every device, and torch's per-tensor update bit for bit
    # (tests/test_trainer_route.py); experiments/benchmarks/bench_update.py times the two.
    def _make_optimizer(self) -> torch.optim.Optimizer:
        """Adam or AdamW (``config.optimizer``) over the model's parameters (:class:`FlatAdam`)."""
        cfg = self.config
        return FlatAdam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                        decoupled_weight_decay=cfg.optimizer == "adamw")

    def _clip_gradients(self) -> torch.Tensor:
        """Clip the gradients to total norm ``config.grad_clip`` (none: ``inf``); their norm before clipping."""
        clip = self.config.grad_clip if self.config.grad_clip is not None else math.inf
        return torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip, foreach=True)

    def _gradients(self) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Draw a batch, set the step's lr, backpropagate and clip: ``(loss, grad_norm, lr)``, no host sync."""
        cfg = self.config
        path = self._paths.pop(self)  # this step's x_t, u_t, t (built K steps at a time)
        lr = cfg.lr * lr_factor(self.step, cfg.steps, cfg.schedule, cfg.warmup_steps, cfg.final_lr_fraction)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss = step_loss(self.net, self.manifold, path)
        loss.backward()
        gnorm = self._clip_gradients()
        return self.env.all_mean(loss.detach()), gnorm.detach(), lr

    def unchecked_step(self) -> tuple[torch.Tensor, torch.Tensor, float]:
        """One step applied without reading its loss: ``(loss, grad_norm, lr)`` as in ``fit``'s windows."""
        loss, gnorm, lr = self._gradients()
        self.optimizer.step()
        self.ema.update(self.model)
        return loss, gnorm, lr

    def train_step(self) -> float:
        """One checked optimisation step: reads the (process-averaged) loss on the host and skips the step
        (weights, optimiser and EMA unchanged) when the loss or gradient norm is non-finite.

        ``fit`` reads losses only every :data:`~gaugeflow.training.window.CHECK_EVERY` steps (see
        :mod:`gaugeflow.training.window`); this is the per-step reference it falls back on.
        """
        cfg = self.config
        self._window.settle(self)
        loss, gnorm, lr = self._gradients()
        value, gnorm = float(loss), float(gnorm)
        if math.isfinite(value) and math.isfinite(gnorm):
            self.optimizer.step()
            self.ema.update(self.model)
            self.consecutive_nonfinite = 0
        else:
            self.optimizer.zero_grad(set_to_none=True)
            self.history.skipped += 1
            self.consecutive_nonfinite += 1
        self.history.loss.append(value)
        self.history.grad_norm.append(gnorm)
        self.history.lr.append(lr)
        if self.consecutive_nonfinite >= cfg.max_nonfinite:
            raise NonFiniteLossError(
                f"training stopped at step {self.step}: loss or gradient was non-finite for "
                f"{self.consecutive_nonfinite} consecutive steps ({self.history.skipped} skipped in total); "
                f"lower the learning rate (lr={cfg.lr:g}), enable gradient clipping or check the data")
        return value

    # ------------------------------------------------------------------ evaluation
    def ema_model(self) -> torch.nn.Module:
        """A copy of the model carrying the EMA weights (in eval mode)."""
        return self._model_with(self.ema.shadow)

    def best_model(self) -> Optional[torch.nn.Module]:
        """A copy of the model carrying the EMA weights of the lowest validation NLL so far (:attr:`best`),
        in eval mode; ``None`` before the first validation (or after a resume whose ``best.safetensors``
        is missing, until the next new best)."""
        return None if self.best_state is None else self._model_with(self.best_state)

    def _model_with(self, state: dict[str, torch.Tensor]) -> torch.nn.Module:
        model = copy.deepcopy(self.model)
        model.load_state_dict(state)
        return model.eval()

    @property
    def best(self) -> Optional[tuple[int, float]]:
        """``(step, validation NLL)`` of the lowest finite validation NLL so far (the first of equals), or ``None``."""
        finite = [(s, v) for s, v in self.history.val if math.isfinite(v)]
        return min(finite, key=lambda sv: sv[1]) if finite else None

    @property
    def stopped_early(self) -> bool:
        """Whether the validation NLL has met the early-stopping criterion (``config.plateau_tol``); a run
        that has stops (and, resumed, trains no further)."""
        cfg = self.config
        return cfg.plateau_tol is not None and plateaued([v for _, v in self.history.val], cfg.plateau_tol,
                                                         cfg.plateau_min_evals)

    def validate(self) -> float:
        """Validation NLL (nats) of the EMA model on the first ``val_size`` validation points."""
        x = self.data.val[: self.config.val_size].to(self.env.device, self.config.torch_dtype)
        return validation_nll(self.ema_model(), x, self.config.val_steps, self.env)

    # ------------------------------------------------------------------ persistence
    def state_meta(self) -> dict[str, Any]:
        return {"seed": self.config.seed, "skipped": self.history.skipped,
                "consecutive_nonfinite": self.consecutive_nonfinite, "ema_updates": self.ema.updates,
                "rng": {"stream": encode_bytes(self.stream_state()), "torch": encode_bytes(torch.get_rng_state())},
                "world_size": self.env.world, "path": repr(self.path),
                "data": {"name": self.data.name, "sizes": [len(self.data.train), len(self.data.val), len(self.data.test)]}}

    def save(self, path: Optional[str | Path] = None) -> Optional[Path]:
        """Write a checkpoint (process 0 only); returns its path (``None`` on other processes)."""
        self._window.settle(self)  # pending steps enter the history first (or are replayed)
        path = Path(path) if path is not None else (self.out / CHECKPOINT_NAME if self.out else None)
        if path is None:
            raise ValueError("Trainer.save: no path given and the trainer has no out directory")
        if not self.env.is_main:
            return None
        written = save_checkpoint(path, self.model, ema=self.ema.shadow, optimizer=self.optimizer, config=self.config,
                                  step=self.step, meta=self.state_meta(), tensors=self.history.tensors())
        if self.run is not None and written == self.run.path / CHECKPOINT_NAME:
            self.run.after_checkpoint(self.step, self._config_bytes())
        self._saved_step = self.step
        return written

    def _config_bytes(self) -> bytes:
        return json.dumps(self.config.to_dict(), indent=2, sort_keys=True).encode()

    def resume(self, path: str | Path) -> None:
        """Restore weights, EMA, optimiser, RNG streams, counters and history from a checkpoint."""
        ckpt = load_checkpoint(path, self.model, optimizer=self.optimizer, config=self.config,
                               map_location=self.env.device)
        restore_state(self, ckpt)  # checks every metadata field first (one-line CheckpointError)
        self._paths.clear()  # the stream restarts at the checkpoint's next step
        self._restore_best(Path(path).parent / BEST_NAME if Path(path).is_file() else Path(path) / BEST_NAME)

    def _restore_best(self, path: Path) -> None:
        """The weights of the restored history's best validation, from ``best.safetensors`` when that file
        holds them (same step); otherwise they are known again at the next new best."""
        self.best_state, best = None, self.best
        if best is None or not path.is_file():
            return
        try:
            ckpt = read_checkpoint(path, self.env.device)
            check_compatible(ckpt, self.model, self.config)
        except CheckpointError as err:
            warnings.warn(f"{err}; the best weights are kept again from the next new best", RuntimeWarning, stacklevel=3)
            return
        if ckpt.step == best[0]:
            self.best_state = ckpt.weights(self.model)

    # ------------------------------------------------------------------ the loop
    def fit(self) -> History:
        """Run until ``config.steps`` steps are done; returns the :class:`History`."""
        cfg, main = self.config, self.env.is_main
        board = self._open_tensorboard() if main else None
        self._catch_up(board)
        log = self._open_log() if main else None
        # the bar (loss, steps/s) only on a terminal: a CI log or a redirected stderr stays quiet
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True,
                   disable=not (cfg.progress and main and sys.stderr.isatty()))
        try:
            while self.step < cfg.steps and not self.stopped_early:
                before, started = self.step, time.perf_counter()  # a window of steps, losses read at its end
                loss = self._window.run(self, next_stop(self, self.check_every))
                step, seconds = self.step, time.perf_counter() - started
                if board is not None:
                    board.steps(self.history, before, seconds)
                if self._val_due(step):
                    if self.out:
                        self.save()  # the weights are on disk before the validation, which can fail
                    self._validate_at(step, board)
                    bar.set_postfix_str(f"val_nll={self.history.val[-1][1]:.3f}", refresh=False)
                if log is not None:
                    write_metrics_csv(log.name, self.history, cfg.log_every, cfg.steps, start=before, handle=log)
                if self.out and (self._val_due(step) or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0)
                                 or step == cfg.steps):
                    self.save()
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                bar.update(step - before)
            if self.out is not None and self._saved_step != self.step:
                self.save()  # steps=0, or a resume with nothing left to do: the folder still ends with a checkpoint
        finally:
            bar.close()
            if log is not None:
                log.close()
            if board is not None:
                board.close()
        return self.history

    def _validate_at(self, step: int, board: Optional[TensorBoardLog]) -> None:
        """Validation NLL at ``step`` into the history (and TensorBoard, with the model's picture); a new
        lowest value keeps the EMA weights as the best (``best.safetensors`` in the run folder, written
        before the checkpoint that holds this validation)."""
        value, before = self.validate(), self.best
        self.history.val.append((step, value))
        if math.isfinite(value) and (before is None or value < before[1]):
            self.best_state = {k: v.detach().clone() for k, v in self.ema.shadow.items()}
            if self.out is not None and self.env.is_main:
                save_checkpoint(self.out / BEST_NAME, self.best_model(), config=self.config, step=step,
                                meta={"skipped": self.history.skipped, "best_val_nll": value},
                                tensors=self.history.tensors())
        if board is not None:
            board.validation(step, value, self.ema_model() if self.validation_figure else None)

    def _open_tensorboard(self) -> Optional[TensorBoardLog]:
        if self.config.logger != "tensorboard" or self.out is None:
            return None
        # resumed at step T (all of 1..T in the checkpoint): a killed run's events after T are dropped
        purge = self.step + 1 if self.step else None
        return TensorBoardLog(self.out / TENSORBOARD_NAME, purge_step=purge, figure=self.validation_figure)

    def _val_due(self, step: int) -> bool:
        cfg = self.config
        return bool(cfg.val_size) and step > 0 and ((cfg.val_every and step % cfg.val_every == 0) or step == cfg.steps)

    def _catch_up(self, board: Optional[TensorBoardLog] = None) -> None:
        """A resumed run killed between a checkpoint and its validation validates first (same numbers)."""
        if self._val_due(self.step) and self.step not in dict(self.history.val):
            self._validate_at(self.step, board)
            if self.out is not None:
                self.save()

    def _open_log(self):
        if self.out is None:
            return None
        self.out.mkdir(parents=True, exist_ok=True)
        if not (self.out / CHECKPOINT_NAME).exists():  # else config.json mirrors the checkpoint (see save)
            atomic_write_bytes(self.out / "config.json", self._config_bytes())
        path = self.out / METRICS_NAME
        write_metrics_csv(path, self.history, self.config.log_every, self.config.steps)  # rewrite up to the resume point
        return open(path, "a", encoding="utf-8")

    def close(self) -> None:
        """Release the run folder's lock and leave the process group if this trainer created it."""
        if self.run is not None:
            self.run.close()
        self.env.close()


def fit(model: torch.nn.Module, data: ManifoldData, config: Optional[TrainConfig] = None,
        out: Optional[str | Path] = None, resume: bool | str | Path = False, overwrite: bool = False,
        **overrides: Any) -> History:
    """Train ``model`` on ``data`` (see :class:`Trainer`); returns the :class:`History`.

    Keyword ``overrides`` are :class:`TrainConfig` fields (``steps=200, lr=3e-4, ...``).
    """
    trainer = Trainer(model, data, config, out=out, resume=resume, overwrite=overwrite, **overrides)
    try:
        return trainer.fit()
    finally:
        trainer.close()
