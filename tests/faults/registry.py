"""The fault suite's case table and the helpers every case uses.

A case is a function registered with :func:`case`: an id, a group (inputs, run folders, checkpoints,
data, API, processes), what is done, the behaviour expected, and whether the user's files are
checked to be unchanged ("nothing lost"). ``test_faults.py`` runs every case; ``make_report.py``
writes ``docs/reliability.md`` from the same table, so the page and the suite cannot drift apart.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

CASES: list["Case"] = []
GROUPS = {"inputs": "command-line input", "folders": "run folders", "checkpoints": "checkpoint files",
          "data": "data", "api": "library API", "process": "signals, concurrency and resources"}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
TINY = ["--model", "plain", "--hidden", "8", "--batch-size", "16", "--n-data", "120", "--val-size", "0",
        "--no-progress", "--steps", "3"]


@dataclass(frozen=True)
class Case:
    """One fault: ``run(ctx)`` does it and asserts the behaviour; ``lost`` says what is checked kept."""

    id: str
    group: str
    title: str
    expect: str
    run: Callable[["Ctx"], None]
    kept: str = "n/a (nothing to lose)"
    slow: bool = False
    subprocess: bool = False


def case(id: str, group: str, title: str, expect: str, kept: str = "n/a (nothing to lose)", slow: bool = False,
         subprocess: bool = False):
    """Register the decorated function as a fault case."""
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}")

    def register(fn: Callable[["Ctx"], None]) -> Callable[["Ctx"], None]:
        if any(c.id == id for c in CASES):
            raise ValueError(f"duplicate case id {id}")
        CASES.append(Case(id, group, title, expect, fn, kept, slow, subprocess))
        return fn
    return register


@dataclass
class Result:
    code: int
    out: str
    err: str

    def fails(self, code: int, fragment: str) -> "Result":
        """Assert exit ``code`` and exactly one stderr line, no traceback, containing ``fragment``."""
        lines = self.err.strip().splitlines()
        assert self.code == code, (self.code, self.out[-500:], self.err[-2000:])
        assert len(lines) == 1 and "Traceback" not in self.err, self.err[-2000:]
        assert lines[0].startswith("gaugeflow") and "error:" in lines[0], lines[0]
        assert fragment in lines[0], (fragment, lines[0])
        return self

    def ok(self) -> "Result":
        assert self.code == 0, (self.code, self.err[-2000:])
        return self


@dataclass
class Ctx:
    """Per-case helpers: a fresh ``tmp`` folder, a trained run to copy, the command in-process or as a child."""

    tmp: Path
    template: Callable[[], Path]
    monkeypatch: object = None
    _n: list = field(default_factory=lambda: [0])

    def path(self, name: str) -> Path:
        return self.tmp / name

    def run(self, name: str = "run") -> Path:
        """A private copy of a small trained run (sphere, plain, 3 steps)."""
        target = self.tmp / name
        shutil.copytree(self.template(), target)
        return target

    def cli(self, *argv) -> Result:
        """``gaugeflow.cli.main(argv)`` in this process, stdout/stderr captured."""
        from gaugeflow.cli import main
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in argv])
            except SystemExit as stop:  # argparse's own exits
                code = stop.code
        return Result(code, out.getvalue(), err.getvalue())

    def train(self, out: Path, *extra) -> Result:
        return self.cli("train", *TINY, *extra, "--out", out)

    def child(self, *argv, preexec: Optional[Callable[[], None]] = None, timeout: float = 120, env=None) -> Result:
        """The command in a child process (for signals and resource limits)."""
        proc = subprocess.run([sys.executable, "-m", "gaugeflow.cli", *map(str, argv)], capture_output=True,
                              text=True, timeout=timeout, env=env or ENV, preexec_fn=preexec)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *argv, **kw) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "gaugeflow.cli", *map(str, argv)], env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def snapshot(folder: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every file below ``folder`` (the lock file excluded)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".gaugeflow.lock"}


def same_tensors(a: Path, b: Path) -> bool:
    from gaugeflow.training import read_checkpoint
    x, y = read_checkpoint(a), read_checkpoint(b)
    return x.tensors.keys() == y.tensors.keys() and all(torch.equal(x.tensors[k], y.tensors[k]) for k in x.tensors)


def load_all() -> list[Case]:
    """Import every case module (registration happens at import) and return the table in id order."""
    from . import cases_api, cases_checkpoints, cases_data, cases_folders, cases_inputs, cases_process  # noqa: F401
    return sorted(CASES, key=lambda c: c.id)
