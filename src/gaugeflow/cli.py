"""The ``gaugeflow`` command: train, evaluate, sample, plot and reproduce experiments.

The only module of gaugeflow that parses ``argv``; it uses the public API only. Every expected failure
ends with one line ``gaugeflow <cmd>: error: ...`` on stderr and a distinct exit status (2 usage,
3 data, 4 checkpoint, 5 resource, 6 run busy, 1 numerical failure; the table is
:data:`gaugeflow.app.errors.EXIT_CODES`); ``--debug`` (or ``GAUGEFLOW_DEBUG=1``) shows the traceback.
Anything unexpected is reported as a bug in gaugeflow, with its traceback, exit status 70.

    gaugeflow train --manifold sphere --data wrapped-mixture --model higher-gauge --steps 200 --out DIR
    gaugeflow evaluate DIR
    gaugeflow sample DIR -n 1000 -o samples.npy
    gaugeflow plot DIR
    gaugeflow reproduce gmm [--quick]
    torchrun --nproc_per_node=2 -m gaugeflow.cli train ...     # data-parallel training (DDP)
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Optional, Sequence

from .app.errors import BUG, DATA, EXIT_HELP, INTERRUPTED, TERMINATED, USAGE, CliError, UsageError, check_device
from .app.errors import classify, expect, report_bug

__all__ = ["main", "build_parser", "UsageError"]


class _Parser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors are one line (plus exit status 2), without the usage block."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Let values such as ``--lr -1e-3`` reach validation (which then names the problem) instead of
        # being mistaken for an option; argparse's own pattern knows no exponent notation.
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|nan)$")

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _train_args(p: argparse.ArgumentParser) -> None:
    add = p.add_argument
    add("--config", metavar="FILE", help="TOML or YAML file of settings (flags given here override it)")
    add("--out", metavar="DIR", help="run directory (config.json, metrics.csv, checkpoint.safetensors)")
    add("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    add("--overwrite", action="store_true", help="start afresh even if --out already holds a run")
    add("--manifold", help="euclidean | sphere | torus | hyperbolic (default sphere)")
    add("--dim", type=int, help="intrinsic dimension of the manifold (default 2)")
    add("--data", help="data set name (default wrapped-mixture; see registry: gaussian-mixture, world-cities, ...)")
    add("--n-data", type=int, help="number of (training) points for generated data sets")
    add("--model", help="plain | gauge | higher-gauge (default higher-gauge)")
    add("--hidden", type=int, help="hidden width of the networks (default 64)")
    add("--k", type=int, help="gauge rank: SO(k) / so(k) crossed module (default: ambient dimension)")
    add("--steps", type=int, help="optimisation steps (default 1000)")
    add("--batch-size", type=int, help="global batch size, split across processes (default 256)")
    add("--lr", type=float, help="learning rate (default 1e-3)")
    add("--optimizer", help="adam | adamw")
    add("--weight-decay", type=float)
    add("--schedule", help="constant | cosine | linear (after --warmup-steps of linear warm-up)")
    add("--warmup-steps", type=int)
    add("--final-lr-fraction", type=float, help="lr at the end of a cosine/linear schedule, as a fraction of --lr")
    add("--ema-decay", type=float, help="weight EMA decay in [0, 1) (default 0.999; 0 disables)")
    add("--grad-clip", type=float, help="max gradient norm (default 1.0; 0 disables clipping)")
    add("--seed", type=int)
    add("--val-every", type=int, help="validation NLL every N steps (0: only at the end)")
    add("--val-size", type=int, help="validation points for the NLL (0: no validation)")
    add("--val-steps", type=int, help="ODE steps of the validation NLL (default 20)")
    add("--checkpoint-every", type=int, help="checkpoint every N steps (0: only at the end)")
    add("--log-every", type=int, help="metrics.csv row every N steps")
    add("--max-nonfinite", type=int, help="stop after this many consecutive non-finite losses (default 20)")
    add("--dtype", help="float32 | float64")
    add("--device", help="auto | cpu | cuda | cuda:N")
    add("--no-progress", action="store_true", help="no progress bar")


_EXAMPLES = """examples:
  gaugeflow train --manifold sphere --data wrapped-mixture --model higher-gauge --steps 200 --out runs/s2
  gaugeflow train --config run.toml --out runs/s2 --resume
  gaugeflow evaluate runs/s2
  gaugeflow sample runs/s2 -n 1000 -o samples.npy
  gaugeflow plot runs/s2
  gaugeflow reproduce gmm --quick
  torchrun --nproc_per_node=2 -m gaugeflow.cli train ... --out runs/ddp
"""


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="DIR")
    p.add_argument("--n-test", type=int, default=1000, help="test points for the NLL (default 1000)")
    p.add_argument("--n-samples", type=int, default=2000, help="model samples for the metrics (default 2000)")
    p.add_argument("--steps", type=int, default=50, help="ODE steps (default 50)")
    p.add_argument("--device", default="cpu")


def _sample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="DIR")
    p.add_argument("-n", type=int, default=1000, help="number of samples (default 1000)")
    p.add_argument("-o", "--output", required=True, metavar="FILE.npy")
    p.add_argument("--steps", type=int, default=100, help="ODE steps (default 100)")
    p.add_argument("--method", default="rk4", help="euler | midpoint | rk4 | dopri5 ...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")


def _plot_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="DIR")
    p.add_argument("--out", metavar="DIR", help="figure directory (default RUN/figures)")
    p.add_argument("--grid", type=int, default=36, help="density grid: GRID latitudes x 2·GRID longitudes (default 36)")
    p.add_argument("--n-samples", type=int, default=2000)
    p.add_argument("--steps", type=int, default=20, help="ODE steps for densities and samples (default 20)")


def _reproduce_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="experiment name, e.g. gmm")
    p.add_argument("--quick", action="store_true", help="the small, fast variant")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="further arguments passed to the experiment")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gaugeflow`` command (sub-commands train/evaluate/sample/plot/reproduce)."""
    parser = _Parser(prog="gaugeflow", description="Gauge and higher-gauge flow models on Riemannian manifolds.",
                     epilog=_EXAMPLES + "\n" + EXIT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the traceback of any error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of any error")
    common.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice; 1 is "
                        "fastest for small models on a busy machine)")
    commands = [
        ("train", "train a flow model", "Train a flow by Riemannian conditional flow matching.", _train_args, _cmd_train),
        ("evaluate", "test NLL and sample metrics of a run",
         "Test NLL (nats) and sample metrics; also writes DIR/evaluation.json.", _evaluate_args, _cmd_evaluate),
        ("sample", "draw samples from a trained run", "Draw samples and save them as a NumPy .npy file.",
         _sample_args, _cmd_sample),
        ("plot", "figures of a run", "Write figures (PNG) of a run into DIR/figures.", _plot_args, _cmd_plot),
        ("reproduce", "run a packaged experiment", "Run experiments/<NAME>/run.py.", _reproduce_args, _cmd_reproduce),
    ]
    for name, short, description, fill, func in commands:
        p = sub.add_parser(name, parents=[] if name == "reproduce" else [common], help=short, description=description)
        fill(p)
        p.set_defaults(func=func)
    return parser


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
    if values.get("grad_clip") == 0:
        values["grad_clip"] = None
    return values, (args.out or out)


def _cmd_train(args: argparse.Namespace) -> int:
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
    with expect(USAGE):
        trainer = Trainer(model, data, cfg, out=out, resume=args.resume, overwrite=args.overwrite)
    try:
        history = _train(trainer, out)
    finally:
        trainer.close()
    if main:
        val = f", validation NLL {history.val[-1][1]:.4f} nats" if history.val else ""
        final = f": final loss {history.loss[-1]:.4f}" if history.loss else ""
        print(f"trained {history.steps} steps ({history.skipped} skipped){final}{val}; run in {out}")
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
        return load_run(args.run, device=device)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from gaugeflow.metrics import energy_distance, mode_coverage, sliced_wasserstein
    from gaugeflow.training.checkpoint import atomic_write_bytes
    from gaugeflow.training.trainer import validation_nll

    for name in ("n_test", "n_samples", "steps"):
        _positive("--" + name.replace("_", "-"), getattr(args, name))
    with _locked(args.run, "evaluate"):
        run = _open_run(args, args.device)
        test = run.data.test[: args.n_test]
        if len(test) == 0:
            raise CliError(f"data set {run.data.name!r} of this run has no test points to evaluate", DATA)
        result = {"run": str(run.path), "step": run.checkpoint.step, "n_test": len(test),
                  "test_nll": validation_nll(run.model, test, args.steps)}
        xs = _samples(run, args.n_samples, args.steps)
        result["energy_distance"] = energy_distance(xs, run.data.test, run.manifold)
        result["sliced_wasserstein"] = sliced_wasserstein(xs, run.data.test)
        meta = run.data.meta
        width = meta.get("sigma", meta.get("scale"))  # gaussian-mixture: sigma; wrapped-mixture: scale
        if "means" in meta and width is not None:
            means = _as_tensor(meta["means"], xs)
            cov = mode_coverage(xs, means, radius=3 * float(width), manifold=run.manifold)
            result.update(mode_coverage=cov.fraction, outliers=cov.outliers)
        print(f"test NLL: {result['test_nll']:.4f} nats ({len(test)} test points, step {result['step']})")
        for key in ("energy_distance", "sliced_wasserstein", "mode_coverage", "outliers"):
            if key in result:
                print(f"{key.replace('_', ' ')}: {result[key]:.5g}")
        atomic_write_bytes(run.path / "evaluation.json", json.dumps(result, indent=2).encode())
    print(f"wrote {run.path / 'evaluation.json'}")
    return 0


def _as_tensor(values, like):
    import torch
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def _cmd_sample(args: argparse.Namespace) -> int:
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


def _cmd_plot(args: argparse.Namespace) -> int:
    from gaugeflow.viz import plot_run

    for name in ("grid", "n_samples", "steps"):
        _positive("--" + name.replace("_", "-"), getattr(args, name))
    with _locked(args.run, "plot") if args.out is None else contextlib.nullcontext():
        run = _open_run(args)
        files = plot_run(run, Path(args.out) if args.out else run.path / "figures", args.grid, args.n_samples,
                         args.steps)
    for f in files:
        print(f"wrote {f}")
    return 0


# ---------------------------------------------------------------------- reproduce
def _find_experiment(name: str) -> Optional[Path]:
    roots = [Path.cwd(), Path(__file__).resolve().parents[2]]
    for root in roots:
        script = root / "experiments" / name / "run.py"
        if script.is_file():
            return script
    return None


def _cmd_reproduce(args: argparse.Namespace) -> int:
    import runpy

    import gaugeflow

    entry = getattr(gaugeflow, "experiments_entry", None)
    if callable(entry):
        return int(entry(args.name, quick=args.quick, argv=list(args.extra)) or 0)
    script = _find_experiment(args.name)
    if script is None:
        raise FileNotFoundError(f"experiment {args.name!r} not found: expected experiments/{args.name}/run.py "
                                f"in the current directory or the gaugeflow source checkout")
    saved = sys.argv
    sys.argv = [str(script)] + (["--quick"] if args.quick else []) + list(args.extra)
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.argv = saved
    return 0


# ---------------------------------------------------------------------- entry point
class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``finally`` blocks release the run's lock."""


@contextlib.contextmanager
def _sigterm_as_exception():
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``gaugeflow`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Exit statuses: see :data:`gaugeflow.app.errors.EXIT_CODES` (also printed by ``gaugeflow --help``).
    """
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False) or bool(os.environ.get("GAUGEFLOW_DEBUG"))
    try:
        with _sigterm_as_exception():
            threads = getattr(args, "threads", None)
            if threads is not None:
                _positive("--threads", threads)
                import torch
                torch.set_num_threads(threads)
            return args.func(args)
    except KeyboardInterrupt:
        print(f"gaugeflow {args.command}: interrupted; the last checkpoint is intact", file=sys.stderr)
        return INTERRUPTED
    except _Terminated:
        print(f"gaugeflow {args.command}: terminated (SIGTERM); the last checkpoint is intact", file=sys.stderr)
        return TERMINATED
    except Exception as err:  # noqa: BLE001 - every error ends here: expected ones as one line, others as bugs
        known = classify(err)
        if known is None:
            report_bug(args.command, err)
            return BUG
        if debug:
            import traceback
            traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
        print(f"gaugeflow {args.command}: error: {known[1]}", file=sys.stderr)
        return known[0]


if __name__ == "__main__":
    sys.exit(main())
