"""The bodies of the ``gaugeflow`` sub-commands train, evaluate, sample and plot (argv is parsed in
:mod:`gaugeflow.cli`): settings checked before any file is touched, run folders opened under their lock,
and every expected failure raised as an error that :mod:`gaugeflow.app.errors` turns into one line.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Optional

from .errors import DATA, USAGE, CliError, ResourceError, UsageError, check_device, expect

__all__ = ["cmd_train", "cmd_evaluate", "cmd_sample", "cmd_plot"]


def _positive(name: str, value: Optional[int]) -> None:
    if value is not None and value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value}")


# ---------------------------------------------------------------------- train
def _train_settings(args: argparse.Namespace) -> tuple[dict, Optional[str]]:
    from gaugeflow.training.config import load_config_file

    values = dict(load_config_file(args.config)) if args.config else {}
    out = values.pop("out", None)
    flags = {k: v for k, v in vars(args).items()
             if k not in ("config", "out", "resume", "overwrite", "no_progress", "threads", "func", "command", "debug")
             and v is not None}
    values.update(flags)
    if args.no_progress:
        values["progress"] = False
    mesh = values.get("mesh")
    if isinstance(mesh, str) and Path(mesh).is_file():  # a mesh file: stored absolute, so the run reopens anywhere
        values["mesh"] = str(Path(mesh).resolve())
    if values.get("grad_clip") == 0:
        values["grad_clip"] = None
    if values.get("plateau_tol") == "off":
        values["plateau_tol"] = None
    return values, (args.out or out)


def cmd_train(args: argparse.Namespace) -> int:
    from gaugeflow.training import Trainer
    from gaugeflow.training.rundir import RunFolder, check_target, ensure_idle

    with expect(USAGE):
        values, out = _train_settings(args)
    if not out:
        raise UsageError("--out DIR is required (the run directory)")
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    out, main = Path(out), int(os.environ.get("RANK", "0")) == 0
    mode = "resume" if args.resume else "overwrite" if args.overwrite else "new"
    if main:
        ensure_idle(out)  # another trainer there: refused before anything else is said or done
        _note("train", RunFolder.repair(out))  # an interrupted --overwrite: old run restored or new one kept
        check_target(out, mode)  # read-only: nothing is touched before every setting has been checked
    cfg, manifold, data, model = _build_run(values, out if args.resume else None)
    figure = _validation_figure(cfg, data)
    with expect(USAGE):
        trainer = Trainer(model, data, cfg, out=out, resume=args.resume, overwrite=args.overwrite)
    trainer.validation_figure = figure
    try:
        history = _train(trainer, out)
    finally:
        trainer.close()
    if main:
        val = f", validation NLL {history.val[-1][1]:.4f} nats" if history.val else ""
        final = f": final loss {history.loss[-1]:.4f}" if history.loss else ""
        print(f"trained {history.steps} steps ({history.skipped} skipped){final}{val}; run in {out}")
        if trainer.stopped_early:
            print(f"stopped early at step {history.steps} of {cfg.steps}: the validation NLL has plateaued "
                  f"(no gain over {cfg.plateau_tol:g} nats in the last quarter of {len(history.val)} validations)")
        if trainer.best is not None:
            print(f"best validation NLL {trainer.best[1]:.4f} nats at step {trainer.best[0]} "
                  f"({out / 'best.safetensors'}; --weights best)")
    return 0


def _build_run(values: dict, resume_from: Optional[Path]):
    """Settings -> (config, manifold, data, model), every user-caused failure a one-line error; with
    ``resume_from`` the stored config fills in what the flags leave out."""
    from gaugeflow.app import build_data, build_manifold, build_model, check_names
    from gaugeflow.training import TrainConfig, read_checkpoint

    done = 0
    if resume_from is not None:
        ckpt = read_checkpoint(resume_from / "checkpoint.safetensors")
        stored, done = ckpt.meta.get("config", {}), ckpt.step
        values = {**(stored if isinstance(stored, dict) else {}), **values}
    with expect(USAGE):
        cfg = check_names(TrainConfig.from_dict(values))
        if cfg.seed > 2**64 - 1:
            raise UsageError(f"seed must be in [0, 2**64 - 1], got {cfg.seed}")
        if cfg.steps < done:
            raise UsageError(f"--resume: the run has already done {done} steps; --steps {cfg.steps} is fewer "
                             f"(give --steps {done} or more to continue it)")
        check_device(cfg.device)
        manifold = build_manifold(cfg)
        model = build_model(cfg, manifold)
    with expect(USAGE, missing=DATA):  # a loader refusing the settings is a usage error
        data = build_data(cfg, manifold)
    return cfg, manifold, data, model


def _validation_figure(cfg, data):
    """For ``--logger tensorboard``: the density picture drawn at each validation (``None`` otherwise);
    a missing ``tensorboard`` extra is one line here, before the run folder is touched."""
    if cfg.logger != "tensorboard":
        return None
    from gaugeflow.training.tools import require_tensorboard
    from gaugeflow.viz import density_image

    try:
        require_tensorboard()
    except ImportError as err:
        raise ResourceError(str(err)) from None
    points, title = data.val[:1000], f"{cfg.model} flow, data {data.name}"
    return lambda model: density_image(model, points, title=title)


def _train(trainer, out: Path):
    """Run the loop; a numerical failure says where the trained weights are (they are never lost)."""
    from gaugeflow.sampling.solvers import SolverError

    try:
        return trainer.fit()
    except SolverError as err:
        ckpt = out / "checkpoint.safetensors"
        where = f"; the weights of step {trainer.step} are saved in {ckpt}" if ckpt.is_file() else ""
        first = (str(err).strip().splitlines() or ["ODE solve failed"])[0]
        raise SolverError(f"validation failed: {first}{where}") from err


# ---------------------------------------------------------------------- evaluate / sample / plot
def _samples(run, n: int, steps: int, method: str = "rk4", seed: int = 0):
    import torch

    from gaugeflow.sampling import sample

    x0 = run.manifold.random_base(n, generator=torch.Generator().manual_seed(seed), dtype=run.data.test.dtype)
    with torch.no_grad():
        return sample(run.model, x0.to(run.data.test.device), steps=steps, method=method)


@contextlib.contextmanager
def _locked(run_arg: str, command: str):
    """Hold the run folder's lock while a command writes into it (refused while a trainer runs there).

    A folder this process may not write into is evaluated anyway (``None`` is yielded); writing the
    result then fails with its own one-line error after the numbers have been printed.
    """
    from gaugeflow.training.rundir import RunFolder

    path = Path(run_arg)
    folder = path if path.is_dir() else path.parent
    if folder.is_dir():
        _note(command, RunFolder.repair(folder))
    if not (folder / "checkpoint.safetensors").is_file():
        yield None  # load_run names what is missing
        return
    try:
        lock = RunFolder.open(folder, "resume", command)
    except PermissionError:
        lock = None
    try:
        yield lock
    finally:
        if lock is not None:
            lock.close()


def _note(command: str, note: Optional[str]) -> None:
    if note:
        print(f"gaugeflow {command}: note: {note}", file=sys.stderr)


def _open_run(args: argparse.Namespace, device: str = "cpu"):
    from gaugeflow.app import load_run

    check_device(device)
    with expect(None, missing=DATA):
        return load_run(args.run, device=device, weights=getattr(args, "weights", "last"))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from gaugeflow.metrics import energy_distance, mode_coverage, sliced_wasserstein
    from gaugeflow.training.checkpoint import atomic_write_bytes
    from gaugeflow.sampling.divergence import default_divergence
    from gaugeflow.training.trainer import validation_nll

    for name in ("n_test", "n_samples", "steps"):
        _positive("--" + name.replace("_", "-"), getattr(args, name))
    with _locked(args.run, "evaluate"):
        run = _open_run(args, args.device)
        test = run.data.test[: args.n_test]
        if len(test) == 0:
            raise CliError(f"data set {run.data.name!r} of this run has no test points to evaluate", DATA)
        divergence = getattr(args, "divergence", None) or default_divergence(run.manifold)
        result = {"run": str(run.path), "weights": args.weights, "step": run.checkpoint.step, "n_test": len(test),
                  "test_nll": validation_nll(run.model, test, args.steps, divergence=divergence),
                  "divergence": divergence}
        xs = _samples(run, args.n_samples, args.steps)
        # with the geodesic distance where the manifold has one in closed form, else (a mesh) the ambient chord
        exact = "dist" in getattr(run.manifold, "capabilities", ("dist",))
        result["energy_distance"] = energy_distance(xs, run.data.test, run.manifold if exact else None)
        result["sliced_wasserstein"] = sliced_wasserstein(xs, run.data.test)
        meta = run.data.meta
        width = meta.get("sigma", meta.get("scale"))  # gaussian-mixture: sigma; wrapped-mixture: scale
        if "means" in meta and width is not None:
            means = _as_tensor(meta["means"], xs)
            cov = mode_coverage(xs, means, radius=3 * float(width), manifold=run.manifold)
            result.update(mode_coverage=cov.fraction, outliers=cov.outliers)
        print(f"test NLL: {result['test_nll']:.4f} nats ({len(test)} test points, step {result['step']}, "
              f"{divergence} divergence)")
        for key in ("energy_distance", "sliced_wasserstein", "mode_coverage", "outliers"):
            if key in result:
                print(f"{key.replace('_', ' ')}: {result[key]:.5g}")
        atomic_write_bytes(run.path / "evaluation.json", json.dumps(result, indent=2).encode())
    print(f"wrote {run.path / 'evaluation.json'}")
    return 0


def _as_tensor(values, like):
    import torch
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def cmd_sample(args: argparse.Namespace) -> int:
    import io

    import numpy as np

    from gaugeflow.training.checkpoint import atomic_write_bytes

    _positive("-n", args.n)
    _positive("--steps", args.steps)
    if not 0 <= args.seed <= 2**64 - 1:
        raise UsageError(f"--seed must be in [0, 2**64 - 1], got {args.seed}")
    output = Path(args.output)
    if output.is_dir():
        raise UsageError(f"-o {output} is a directory; expected the path of a .npy file to write")
    if output.suffix != ".npy":
        raise UsageError(f"-o must name a .npy file, got {output}")
    if not output.parent.is_dir():
        raise UsageError(f"output directory does not exist: {output.parent}")
    run = _open_run(args, args.device)
    from gaugeflow.sampling.solvers import FIXED_SOLVERS, torchdiffeq_methods
    known = tuple(FIXED_SOLVERS) + tuple(torchdiffeq_methods())
    if args.method not in known:
        raise UsageError(f"unknown method {args.method!r}; expected one of {', '.join(known)}")
    xs = _samples(run, args.n, args.steps, args.method, args.seed).detach().cpu().numpy()
    buf = io.BytesIO()
    np.save(buf, xs)
    atomic_write_bytes(output, buf.getvalue())
    print(f"wrote {len(xs)} samples on {run.manifold} to {output}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from gaugeflow.viz import plot_run

    for name in ("grid", "n_samples", "steps"):
        _positive("--" + name.replace("_", "-"), getattr(args, name))
    with _locked(args.run, "plot") if args.out is None else contextlib.nullcontext():
        run = _open_run(args)
        files = plot_run(run, Path(args.out) if args.out else run.path / "figures", args.grid, args.n_samples,
                         args.steps, getattr(args, "scale", "auto"))
    for f in files:
        print(f"wrote {f}")
    return 0
