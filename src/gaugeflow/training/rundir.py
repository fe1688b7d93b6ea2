"""Run folders: the manifest that marks a run, one writer per run, atomic writes, safe replacement.

A run folder holds ``gaugeflow-run.json`` (the manifest: "this folder is a gaugeflow run"),
``config.json``, ``metrics.csv``, ``checkpoint.safetensors``, ``best.safetensors`` (once it validates)
and, later, ``evaluation.json`` and ``figures/``. The rules every writer follows:

* **Only runs are written into.** A non-empty folder without a manifest (and without a legacy
  checkpoint) is refused, even with ``overwrite``: gaugeflow never writes over files it did not make.
* **One writer per run.** A writer holds an exclusive, non-blocking lock on ``.gaugeflow.lock``
  (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows) for its whole life; a second writer is
  refused with :class:`RunBusyError`. The kernel drops the lock when the process dies, so a killed
  run never leaves the folder locked. Locks on network file systems are only as good as the server's.
* **Temp files are per writer**: ``.<name>.<pid>.<token>.tmp``; a writer removes only its own, and the
  next lock holder removes those whose process is gone.
* **Replacement is crash-safe.** ``overwrite`` moves the old run's files into ``.gaugeflow-previous``
  (built as ``.gaugeflow-previous.partial`` and renamed when complete) and deletes them only after the
  new run's first checkpoint (:meth:`RunFolder.commit`). Whoever opens the folder next finds either
  the old run restored or the new one committed, never a mixture.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Optional

__all__ = ["RunFolder", "RunFolderError", "RunBusyError", "atomic_write_bytes", "is_run", "check_target", "ensure_idle",
           "MANIFEST_NAME", "LOCK_NAME", "RUN_FILES"]

MANIFEST_NAME = "gaugeflow-run.json"
LOCK_NAME = ".gaugeflow.lock"
CHECKPOINT = "checkpoint.safetensors"
ASIDE, PARTIAL = ".gaugeflow-previous", ".gaugeflow-previous.partial"
#: files a run consists of (moved aside by ``overwrite``); the checkpoint first, the manifest last
RUN_FILES = (CHECKPOINT, "best.safetensors", "evaluation.json", "metrics.csv", "config.json", "figures", "tensorboard",
             MANIFEST_NAME)
_TMP = re.compile(r"^\..+\.(\d+)\.[0-9a-f]+\.tmp$")
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class RunFolderError(ValueError):
    """A folder cannot be used as asked (not a run, already a run, not a directory, nothing to resume)."""


class RunBusyError(RuntimeError):
    """Another process holds the run's lock (it is training or evaluating that run)."""


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temp file of this writer in the same directory,
    ``fsync``, ``os.replace``. On any failure the target is untouched and the temp file removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~_UMASK)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno is not None and err.filename is None:
            err.filename = str(path)  # name the file the user knows, not the temp file
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (not possible on every OS)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def is_run(path: str | Path) -> bool:
    """Whether ``path`` is a run folder: it has a manifest (or, for runs made before manifests, a checkpoint)."""
    path = Path(path)
    return (path / MANIFEST_NAME).is_file() or (path / CHECKPOINT).is_file()


def _stale_temp(name: str) -> bool:
    """A gaugeflow temp file whose writer is gone (a killed run leaves them; the next writer removes them)."""
    m = _TMP.match(name)
    return m is not None and not _alive(int(m.group(1)))


def _entries(path: Path) -> list[str]:
    """What the folder holds, leaving out the lock file and stale temp files of killed gaugeflow writers."""
    return sorted(p.name for p in path.iterdir() if p.name != LOCK_NAME and not _stale_temp(p.name))


def check_target(path: str | Path, mode: str) -> None:
    """Read-only check that ``path`` may be used for a ``"new"``, ``"resume"`` or ``"overwrite"`` run.

    Raises:
        RunFolderError: one line saying what the folder holds and what to do instead.
    """
    path = Path(path)
    if mode not in ("new", "resume", "overwrite"):
        raise ValueError(f"run folder mode must be new, resume or overwrite, got {mode!r}")
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"{path} exists and is not a directory")
    if mode == "resume":
        if not (path / CHECKPOINT).is_file():
            why = ("the run was interrupted before its first checkpoint; start it again with --overwrite"
                   if is_run(path) else "it is not a gaugeflow run")
            raise RunFolderError(f"no checkpoint in {path} to resume from ({why})")
        return
    if not path.exists() or not _entries(path):
        return
    if not is_run(path):
        shown = ", ".join(_entries(path)[:3])
        raise RunFolderError(f"{path} is not empty ({shown}{', ...' if len(_entries(path)) > 3 else ''}) and is not "
                             f"a gaugeflow run (no {MANIFEST_NAME}); choose a new or empty folder")
    if mode == "new":
        raise RunFolderError(f"{path} already holds a run; pass --resume to continue it, --overwrite to replace it, "
                             f"or choose another --out")


def ensure_idle(path: str | Path) -> None:
    """Raise :class:`RunBusyError` if another process holds ``path``'s lock (read-only: creates nothing)."""
    lock = Path(path) / LOCK_NAME
    if not lock.is_file():
        return
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return  # unreadable lock file: the real attempt in RunFolder.open says why
    try:
        free = _lock(fd)
    finally:
        os.close(fd)  # releases the probe's lock
    if not free:
        raise RunBusyError(f"run {path} is in use by another gaugeflow process{_holder(Path(path))}; "
                           f"wait for it to finish or choose another folder")


def _lock(fd: int) -> bool:
    """Try to take an exclusive lock on ``fd`` without waiting; ``False`` when another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows: lock the first byte of the file
        import msvcrt
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except (BlockingIOError, PermissionError):
        return False


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class RunFolder:
    """An open run folder whose lock this process holds; see the module docstring for the rules.

    Attributes:
        path: the folder. recovered: a note when opening repaired an interrupted replacement, else ``None``.
    """

    def __init__(self, path: Path, fd: int):
        self.path, self._fd, self.recovered = path, fd, None

    @classmethod
    def open(cls, path: str | Path, mode: str, command: str = "train") -> "RunFolder":
        """Check ``path`` for ``mode`` (:func:`check_target`), lock it, repair it, and for ``"overwrite"``
        move the old run aside. Creates the folder (and its manifest for new runs).

        Raises:
            RunFolderError: see :func:`check_target`. RunBusyError: another process holds the lock.
            OSError: the folder cannot be created or written (permissions, disk full, name too long).
        """
        path = Path(path)
        ensure_idle(path)
        if not ((path / ASIDE).exists() or (path / PARTIAL).exists()):  # else: checked after the repair
            check_target(path, mode)
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        if not _lock(fd):
            os.close(fd)
            raise RunBusyError(f"run {path} is in use by another gaugeflow process{_holder(path)}; "
                               f"wait for it to finish or choose another folder")
        folder = cls(path, fd)
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {command}\n".encode(), 0)
            folder.recovered = folder._repair()
            check_target(path, mode)  # again, under the lock: another process may have changed it
            folder._remove_stale_temps()
            if mode == "overwrite":
                folder._move_aside()
            if mode != "resume" or not (path / MANIFEST_NAME).is_file():
                folder._write_manifest()
        except BaseException:
            folder.close()
            raise
        return folder

    @classmethod
    def repair(cls, path: str | Path) -> Optional[str]:
        """Finish or undo an interrupted replacement in ``path`` now (under the lock); returns a note or ``None``.

        Raises:
            RunBusyError: another process holds the lock (it is repairing or writing the run itself).
        """
        path = Path(path)
        if not ((path / ASIDE).is_dir() or (path / PARTIAL).is_dir()):
            return None
        ensure_idle(path)
        fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        if not _lock(fd):
            os.close(fd)
            raise RunBusyError(f"run {path} is in use by another gaugeflow process{_holder(path)}; "
                               f"wait for it to finish or choose another folder")
        with cls(path, fd) as folder:
            return folder._repair()

    # ---------------------------------------------------------------- replacement
    def _move_aside(self) -> None:
        present = [name for name in RUN_FILES if (self.path / name).exists()]
        if not present:
            return
        partial = self.path / PARTIAL
        partial.mkdir()
        for name in present:  # checkpoint first: a crash mid-way is repaired by moving everything back
            os.replace(self.path / name, partial / name)
        os.replace(partial, self.path / ASIDE)

    def _repair(self) -> Optional[str]:
        """Finish or undo a replacement that a killed writer left half-done; returns a note or ``None``."""
        partial, aside = self.path / PARTIAL, self.path / ASIDE
        if partial.is_dir():
            self._restore(partial)
            return f"{self.path}: restored the previous run that an interrupted --overwrite had begun to move aside"
        if aside.is_dir():
            if (self.path / CHECKPOINT).is_file():  # the new run reached its first checkpoint
                shutil.rmtree(aside)
                return None
            self._restore(aside)
            return (f"{self.path}: restored the previous run (an --overwrite was interrupted before the new "
                    f"run's first checkpoint)")
        return None

    def _restore(self, source: Path) -> None:
        if source.name == ASIDE:  # the move was complete: every run file at the top is the new run's
            for name in RUN_FILES:
                target = self.path / name
                shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        for item in source.iterdir():
            os.replace(item, self.path / item.name)
        source.rmdir()

    def commit(self) -> None:
        """Delete the replaced run (call after the new run's first checkpoint); a no-op otherwise."""
        aside = self.path / ASIDE
        if aside.is_dir():
            shutil.rmtree(aside)

    def after_checkpoint(self, step: int, config: bytes) -> None:
        """After a new checkpoint at ``step``: ``config.json`` mirrors it, an evaluation of other weights
        (``evaluation.json`` of another step) is removed, and a replaced run is deleted (:meth:`commit`)."""
        atomic_write_bytes(self.path / "config.json", config)
        evaluation = self.path / "evaluation.json"
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if json.loads(evaluation.read_text()).get("step") != step:
                evaluation.unlink()
        self.commit()

    # ---------------------------------------------------------------- housekeeping
    def _write_manifest(self) -> None:
        from .._version import __version__  # not `import gaugeflow`: a library module never imports the root
        info = {"format": "gaugeflow-run", "format_version": 1, "created_by": f"gaugeflow {__version__}",
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        atomic_write_bytes(self.path / MANIFEST_NAME, (json.dumps(info, indent=2) + "\n").encode())

    def _remove_stale_temps(self) -> None:
        for p in self.path.iterdir():
            if _stale_temp(p.name):
                with contextlib.suppress(OSError):
                    p.unlink()

    def close(self) -> None:
        """Release the lock (idempotent). The lock file stays: deleting it would race with new writers."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid, command = (path / LOCK_NAME).read_text().split()[:2]
        return f" (pid {int(pid)}, gaugeflow {command})"
    return ""
