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
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Optional, Sequence

from .app.commands import _positive
from .app.commands import cmd_evaluate as _cmd_evaluate
from .app.commands import cmd_plot as _cmd_plot
from .app.commands import cmd_sample as _cmd_sample
from .app.commands import cmd_train as _cmd_train
from .app.errors import BUG, EXIT_HELP, INTERRUPTED, TERMINATED, UsageError, classify, report_bug
from .app.registry import DATASETS, ENTRY_POINT_GROUPS, MANIFOLDS, MODELS

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


def _choices(table, default: str) -> str:
    """Help text listing a name table: every built-in name, then how plug-ins are named."""
    return (f"{' | '.join(table.names())} (default {default}); or an installed plug-in (entry-point group "
            f"{ENTRY_POINT_GROUPS[table.kind]}) or package.module:Name")


def _train_args(p: argparse.ArgumentParser) -> None:
    add = p.add_argument
    add("--config", metavar="FILE", help="TOML or YAML file of settings (flags given here override it)")
    add("--out", metavar="DIR", help="run directory (config.json, metrics.csv, checkpoint.safetensors)")
    add("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    add("--overwrite", action="store_true", help="start afresh even if --out already holds a run")
    add("--manifold", help=_choices(MANIFOLDS, "sphere"))
    add("--dim", type=int, help="intrinsic dimension of the manifold (default 2)")
    add("--mesh", metavar="icosphere|torus|bumpy|PATH", help="with --manifold mesh: a procedural mesh or a mesh file "
        "(OBJ/PLY/OFF/STL)")
    add("--path", help="conditional path: auto | geodesic | biharmonic | diffusion (default auto: geodesic where the "
        "manifold has a closed-form log, the biharmonic premetric path on a mesh)")
    add("--path-chunk", type=int, help="build the geodesic paths of this many steps in one call (default 16; "
        "1: step by step; changes only rounding)")
    add("--data", help=_choices(DATASETS, "wrapped-mixture"))
    add("--n-data", type=int, help="number of (training) points for generated data sets")
    add("--model", help=_choices(MODELS, "higher-gauge"))
    add("--hidden", type=int, help="hidden width of the networks (default 64)")
    add("--k", type=int, help="gauge rank: SO(k) / so(k) crossed module (default: ambient dimension)")
    add("--rank", type=int, help="tensor-gauge only: number of direction indices r of the gauge field (default 2)")
    add("--steps", type=int, help="optimisation steps (default 1000)")
    add("--batch-size", type=int, help="global batch size, split across processes (default 256)")
    add("--lr", type=float, help="learning rate (default 1e-3)")
    add("--optimizer", help="adam | adamw (default adam)")
    add("--weight-decay", type=float, help="weight decay of the optimiser (default 0)")
    add("--schedule", help="constant | cosine | linear (after --warmup-steps of linear warm-up)")
    add("--warmup-steps", type=int, help="steps of linear lr warm-up (default 0)")
    add("--final-lr-fraction", type=float, help="lr at the end of a cosine/linear schedule, as a fraction of --lr")
    add("--ema-decay", type=float, help="weight EMA decay in [0, 1) (default 0.999; 0 disables)")
    add("--grad-clip", type=float, help="max gradient norm (default 1.0; 0 disables clipping)")
    add("--seed", type=int, help="seed of the weights, data split and batches (default 0)")
    add("--val-every", type=int, help="validation NLL every N steps (0: only at the end)")
    add("--val-size", type=int, help="validation points for the NLL (0: no validation)")
    add("--val-steps", type=int, help="ODE steps of the validation NLL (default 20)")
    add("--plateau-tol", type=_nats_or_off, metavar="NATS|off",
        help="early stopping: stop at the first validation where, with n >= --plateau-min-evals validations, the "
             "lowest validation NLL of the last n/4 (rounded up) is not below the lowest before them by more than "
             "NATS (needs --val-every; default off; 'off' turns it off on --resume); the best weights are kept in "
             "OUT/best.safetensors whenever the run validates")
    add("--plateau-min-evals", type=int, help="validations before early stopping may stop a run (default 6)")
    add("--checkpoint-every", type=int, help="checkpoint every N steps (0: only at the end)")
    add("--log-every", type=int, help="metrics.csv row every N steps")
    add("--max-nonfinite", type=int, help="stop after this many consecutive non-finite losses (default 20)")
    add("--coupling", help="independent | ot (default independent): ot re-pairs base points and data of each "
        "batch by minibatch optimal transport of the squared geodesic distance")
    add("--ot-batch", type=int, help="with --coupling ot: couple blocks of this many pairs (must divide "
        "--batch-size; default the whole batch)")
    add("--ot-exact-max", type=int, help="with --coupling ot: blocks up to this size are solved exactly "
        "(scipy, on the CPU), larger ones by Sinkhorn on the device (default 1024)")
    add("--dtype", help="float32 | float64 (default float32)")
    add("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    add("--no-progress", action="store_true", help="no progress bar (it shows only on a terminal anyway)")
    add("--logger", help="csv | tensorboard (default csv): tensorboard also writes event files to OUT/tensorboard "
        "(needs the extra: pip install 'gaugeflow[tensorboard]'); metrics.csv is always written")


_EXAMPLES = """examples:
  gaugeflow train --manifold sphere --data wrapped-mixture --model higher-gauge --steps 200 --out runs/s2
  gaugeflow train --manifold mesh --mesh bumpy --data mesh-eigen --model gauge --steps 200 --out runs/mesh
  gaugeflow train --config experiments/demo.toml --out runs/demo
  gaugeflow train --config experiments/demo.toml --steps 2000 --out runs/demo --resume
  gaugeflow evaluate runs/s2
  gaugeflow sample runs/s2 -n 1000 -o samples.npy
  gaugeflow plot runs/s2
  gaugeflow reproduce gmm --quick
  torchrun --nproc_per_node=2 -m gaugeflow.cli train ... --out runs/ddp
"""


def _nats_or_off(text: str):
    """``--plateau-tol``: a number of nats, or ``off`` (no early stopping; the setting then becomes ``None``)."""
    if text.strip().lower() == "off":
        return "off"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of nats or 'off', got {text!r}") from None


def _weights_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", choices=("last", "best"), default="last",
                   help="last: the checkpoint's EMA weights (default); best: the EMA weights of the lowest "
                        "validation NLL (RUN/best.safetensors)")


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="DIR")
    _weights_arg(p)
    p.add_argument("--n-test", type=int, default=1000, help="test points for the NLL (default 1000)")
    p.add_argument("--n-samples", type=int, default=2000, help="model samples for the metrics (default 2000)")
    from .sampling.ode import DEFAULT_STEPS
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"rk4 steps of the NLL and the samples (default "
                   f"{DEFAULT_STEPS}: within 0.01 nat of the converged NLL in docs/results/nfe.md)")
    p.add_argument("--divergence", choices=("exact", "hutchinson"), default=None,
                   help="divergence estimator of the NLL (default: log_prob's rule on the manifold's dimension, "
                        "exact below gaugeflow.sampling.divergence.HUTCHINSON_FROM_DIM, Hutchinson with one "
                        "seeded probe from it on)")
    p.add_argument("--device", default="cpu")


def _sample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="DIR")
    _weights_arg(p)
    p.add_argument("-n", type=int, default=1000, help="number of samples (default 1000)")
    p.add_argument("-o", "--output", required=True, metavar="FILE.npy")
    from .sampling.ode import DEFAULT_STEPS
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"ODE steps (default {DEFAULT_STEPS}, see "
                   "docs/results/nfe.md)")
    from .sampling.solvers import FIXED_SOLVERS, torchdiffeq_methods
    p.add_argument("--method", default="rk4", help=f"{' | '.join(FIXED_SOLVERS)} (fixed steps with the manifold's "
                   f"own maps; default rk4) | {' | '.join(torchdiffeq_methods())} (torchdiffeq, adaptive or fixed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")


def _plot_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="DIR")
    _weights_arg(p)
    p.add_argument("--out", metavar="DIR", help="figure directory (default RUN/figures)")
    p.add_argument("--grid", type=int, default=72, help="density grid: GRID latitudes x 2·GRID longitudes on S², "
                   "GRID x GRID on T², one ODE solve per point, drawn smoothly between them (default 72)")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--log", dest="scale", action="store_const", const="log",
                       help="log colour scale (default where the density's max/min > 100)")
    scale.add_argument("--linear", dest="scale", action="store_const", const="linear",
                       help="linear colour scale (default where the density's max/min <= 100)")
    p.set_defaults(scale="auto")
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
    parser.add_argument("--version", action="version", version=_version_line())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of any error")
    common.add_argument("--threads", type=int, help="CPU threads for torch (default: OMP_NUM_THREADS if set, "
                        "else 1 — the small models here train fastest on one thread, and torchrun also starts one "
                        "per process; raise it for wide models on an idle many-core machine)")
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


def _version_line() -> str:
    import platform

    import torch

    from ._version import __version__
    return f"gaugeflow {__version__} (torch {torch.__version__}, Python {platform.python_version()})"


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
            if threads is None and not os.environ.get("OMP_NUM_THREADS"):
                threads = 1  # see --threads: one thread unless asked otherwise
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
