"""Exit codes and error reporting of the ``gaugeflow`` command (used by :mod:`gaugeflow.cli` only).

Every *expected* failure ends as one line ``gaugeflow <command>: error: <what> `` on stderr and one of
the exit codes below; anything else is a bug in gaugeflow and is reported as one, with its traceback.
The classification never looks at where a ``ValueError`` came from by guessing: the command marks the
code that validates user input with :func:`expect`, and library errors carry their own types
(:class:`~gaugeflow.training.CheckpointError`, :class:`~gaugeflow.data.base.DataError`, ...).
"""
from __future__ import annotations

import contextlib
import errno
import traceback
from typing import Iterator, Optional

__all__ = ["EXIT_CODES", "EXIT_HELP", "CliError", "UsageError", "ResourceError", "expect", "classify",
           "report_bug", "check_device"]

OK, NUMERIC, USAGE, DATA, CHECKPOINT, RESOURCE, BUSY, BUG, INTERRUPTED, TERMINATED = 0, 1, 2, 3, 4, 5, 6, 70, 130, 143

#: exit code -> meaning (the ``gaugeflow --help`` epilog and docs/reliability.md list the same table)
EXIT_CODES = {
    OK: "success",
    NUMERIC: "numerical failure: training diverged, or an ODE solve became non-finite",
    USAGE: "usage: bad flags or settings, a path that cannot be used, a run folder used the wrong way",
    DATA: "data: a data set with unusable points (non-finite, off the manifold, empty) or not installed",
    CHECKPOINT: "checkpoint: truncated, corrupt (digest mismatch), foreign or mismatched checkpoint",
    RESOURCE: "resource: disk full or file-size limit, permission denied, out of memory, device not available",
    BUSY: "busy: another gaugeflow process holds the run folder's lock",
    BUG: "internal error: a bug in gaugeflow (traceback printed; please report it)",
    INTERRUPTED: "interrupted (Ctrl-C / SIGINT); the last checkpoint is intact",
    TERMINATED: "terminated (SIGTERM); the last checkpoint is intact",
}
EXIT_HELP = "exit codes:\n" + "".join(f"  {code:<4}{text}\n" for code, text in EXIT_CODES.items())
BUG_URL = "https://github.com/gaugeflow/gaugeflow/issues"


class CliError(Exception):
    """An expected failure: ``code`` is the exit status, ``str(err)`` the one-line message."""

    code = USAGE

    def __init__(self, message: str, code: Optional[int] = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class UsageError(CliError, ValueError):
    """Bad command-line input detected by the CLI itself (exit 2)."""


class ResourceError(CliError):
    """The machine cannot do what was asked: no such device, no space, no permission (exit 5)."""

    code = RESOURCE


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


@contextlib.contextmanager
def expect(code: Optional[int] = USAGE, missing: Optional[int] = None) -> Iterator[None]:
    """Mark code that validates user input: its plain ``ValueError``/``TypeError`` become a
    :class:`CliError` with ``code`` (``None``: left alone), an ``ImportError`` (an optional extra that
    is not installed) one with ``missing``. Typed library errors pass through unchanged and are
    classified by :func:`classify`."""
    from ..data.base import DataError
    from ..training.checkpoint import CheckpointError
    try:
        yield
    except (CheckpointError, DataError, CliError):
        raise
    except (ValueError, TypeError) as err:
        if code is None:
            raise
        raise CliError(_first_line(err), code) from err
    except ImportError as err:
        if missing is None:
            raise
        raise CliError(f"{_first_line(err)} (an optional dependency of this data set is missing)", missing) from err


def _os_error(err: OSError) -> tuple[int, str]:
    if err.errno is None:  # raised by gaugeflow itself with a full message (e.g. "run directory not found")
        missing = isinstance(err, (FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError))
        return (USAGE if missing else RESOURCE), _first_line(err)
    name = err.filename if err.filename is not None else "a file"
    if err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return RESOURCE, f"disk full while writing {name}; nothing already written was replaced"
    if err.errno == errno.EFBIG:
        return RESOURCE, f"file size limit exceeded while writing {name} (ulimit -f); nothing already written was replaced"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return RESOURCE, f"permission denied: cannot write {name} (read-only folder or file?)"
    if err.errno == errno.ENOMEM:
        return RESOURCE, f"out of memory ({_first_line(err)})"
    if err.errno == errno.ENAMETOOLONG:
        return USAGE, f"file name too long: {name}"
    if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
        return USAGE, f"{err.strerror or _first_line(err)}: {name}"
    return RESOURCE, f"{err.strerror or _first_line(err)}: {name}"


def _out_of_memory(err: BaseException) -> bool:
    if isinstance(err, MemoryError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def classify(err: BaseException) -> Optional[tuple[int, str]]:
    """``(exit code, one-line message)`` for an expected failure, ``None`` for a bug."""
    from ..data.base import DataError
    from ..sampling.solvers import SolverError
    from ..training.checkpoint import CheckpointError
    from ..training.rundir import RunBusyError, RunFolderError
    from ..training.trainer import NonFiniteLossError
    if isinstance(err, CliError):
        return err.code, _first_line(err)
    for types, code in (((RunFolderError,), USAGE), ((RunBusyError,), BUSY), ((CheckpointError,), CHECKPOINT),
                        ((DataError,), DATA), ((NonFiniteLossError, SolverError), NUMERIC)):
        if isinstance(err, types):
            return code, _first_line(err)
    if _out_of_memory(err):
        return RESOURCE, f"out of memory: {_first_line(err)}; use a smaller batch, width or sample count"
    if isinstance(err, OSError):
        return _os_error(err)
    return None


def report_bug(command: str, err: BaseException) -> None:
    """Print the traceback and a line that says this is a bug in gaugeflow."""
    import sys
    traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
    print(f"gaugeflow {command}: internal error (a bug in gaugeflow, not in your input): {type(err).__name__}: "
          f"{_first_line(err)}; please report it with the traceback above at {BUG_URL}", file=sys.stderr)


def check_device(name: Optional[str], flag: str = "--device") -> None:
    """One-line errors for a device string: unknown (usage) or not available here (resource)."""
    import torch
    if name is None or name == "auto":
        return
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise UsageError(f"{flag}: expected auto, cpu, cuda, cuda:N or mps, got {name!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ResourceError(f"{flag} {name}: CUDA is not available ({why}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ResourceError(f"{flag} {name}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ResourceError(f"{flag} {name}: the MPS backend is not available on this machine; use --device cpu")
    elif dev.type != "cpu":
        raise UsageError(f"{flag}: expected auto, cpu, cuda, cuda:N or mps, got {name!r}")
