"""Signals, concurrency and resource limits, with real child processes."""
from __future__ import annotations

import os
import random
import resource
import signal
import time

from .registry import ENV, case, same_tensors, snapshot

CKPT = "checkpoint.safetensors"
LONG = ["train", "--model", "plain", "--hidden", "8", "--batch-size", "16", "--n-data", "120", "--no-progress"]


def _wait_for_lock(proc, run, timeout=120.0):
    """Wait until ``proc`` holds ``run``'s lock (its pid is in the lock file) or has finished successfully."""
    deadline, lock = time.monotonic() + timeout, run / ".gaugeflow.lock"
    while time.monotonic() < deadline:
        try:
            if lock.read_text().split()[:1] == [str(proc.pid)]:
                return
        except (OSError, IndexError):
            pass
        if proc.poll() is not None:
            assert proc.returncode == 0, (proc.returncode, proc.stderr.read()[-2000:] if proc.stderr else "")
            return
        time.sleep(0.002)
    raise AssertionError("the trainer never took the lock")


def _rows(run):
    try:
        return (run / "metrics.csv").read_text().count("\n") - 1
    except OSError:
        return -1


KILL_ARGS = [*LONG, "--steps", "160", "--checkpoint-every", "7", "--val-every", "40", "--val-size", "8",
             "--val-steps", "2", "--schedule", "cosine", "--warmup-steps", "5"]


@case("PR-01", "process", "SIGKILL at 10 random moments (start-up, mid-step, mid-checkpoint, around validations), "
      "each followed by `--resume` (or `--overwrite` before the first checkpoint)",
      "metrics.csv byte-identical and every tensor bit-identical to an uninterrupted run; every checkpoint left "
      "behind verifies", kept="every completed step", slow=True, subprocess=True)
def _(ctx):
    from gaugeflow.training import read_checkpoint
    ref, run = ctx.path("ref"), ctx.path("killed")
    full = ctx.popen(*KILL_ARGS, "--out", ref)
    rng, kills = random.Random(1234), 0
    targets = sorted(rng.randrange(-20, 120) for _ in range(10))  # metrics rows to wait for (<0: right at start-up)
    for target in targets:
        resume = (run / CKPT).is_file()
        proc = ctx.popen(*KILL_ARGS, *(["--resume"] if resume else ["--overwrite"] if run.exists() else []), "--out", run)
        _wait_for_lock(proc, run)
        while proc.poll() is None and _rows(run) < target:
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.02))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        proc.stderr.close()
        proc.stdout.close()
        if (run / CKPT).is_file():
            read_checkpoint(run)  # a killed writer never leaves a checkpoint that fails its digest
    assert kills == 10, kills
    ctx.child(*KILL_ARGS, "--resume", "--out", run, timeout=300).ok()
    assert full.wait(timeout=300) == 0, full.stderr.read()[-2000:]
    full.stderr.close()
    full.stdout.close()
    assert (run / "metrics.csv").read_bytes() == (ref / "metrics.csv").read_bytes()
    assert same_tensors(run / CKPT, ref / CKPT)
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def _checkpointing(steps):
    """Training arguments for ``steps`` steps with a checkpoint every 10 steps."""
    return [*LONG, "--steps", str(steps), "--checkpoint-every", "10", "--val-size", "0"]


def _start_until_checkpoint(ctx, run, args):
    """A trainer with ``args`` on ``run``, returned once its first checkpoint is on disk."""
    proc = ctx.popen(*args, "--out", run)
    _wait_for_lock(proc, run)
    while proc.poll() is None and not (run / CKPT).is_file():
        time.sleep(0.005)
    return proc


def _interrupt(ctx, sig, code, word):
    from gaugeflow.training import read_checkpoint
    run, args = ctx.path("r"), _checkpointing(400)
    proc = _start_until_checkpoint(ctx, run, args)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:  # finished before the signal arrived: nothing to check
        return
    assert proc.returncode == code and len(err.strip().splitlines()) == 1 and word in err, (proc.returncode, err)
    done = read_checkpoint(run).step
    ctx.child(*args, "--resume", "--out", run, timeout=300).ok()  # the lock was released
    assert read_checkpoint(run).step == 400 > done


@case("PR-02", "process", "SIGINT (Ctrl-C) mid-run, then `--resume`",
      "exit 130, one line: 'interrupted; the last checkpoint is intact'; the resume finishes the run",
      kept="the last checkpoint", subprocess=True)
def _(ctx):
    _interrupt(ctx, signal.SIGINT, 130, "interrupted")


@case("PR-03", "process", "SIGTERM mid-run, then `--resume`", "exit 143, one line: 'terminated (SIGTERM)'; lock released",
      kept="the last checkpoint", subprocess=True)
def _(ctx):
    _interrupt(ctx, signal.SIGTERM, 143, "terminated")


@case("PR-04", "process", "two trainers on one run folder at once (second: plain, --resume, --overwrite; and `evaluate`)",
      "each second process: exit 6, one line 'is in use by another gaugeflow process (pid N, gaugeflow train)'; "
      "the first finishes, its checkpoint verifies and its metrics.csv is whole",
      kept="the first trainer's run, untouched by the others", subprocess=True)
def _(ctx):
    from gaugeflow.training import read_checkpoint
    run, args = ctx.path("r"), _checkpointing(60)
    first = _start_until_checkpoint(ctx, run, args)
    os.kill(first.pid, signal.SIGSTOP)  # hold the first trainer mid-run, lock held, while the others try
    try:
        before = snapshot(run)
        for extra in ([], ["--resume"], ["--overwrite"]):
            ctx.child(*args, *extra, "--out", run).fails(6, f"is in use by another gaugeflow process (pid {first.pid}")
        ctx.child("evaluate", run, "--n-test", "8").fails(6, "is in use by another gaugeflow process")
        assert snapshot(run) == before
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    assert read_checkpoint(run).step == 60 and _rows(run) == 60


@case("PR-05", "process", "SIGKILL during `--overwrite`, after the old run was moved aside and before the new "
      "run's first checkpoint", "the next command on the folder (`evaluate`) restores the old run byte for byte; `--resume` continues it",
      kept="old run byte for byte", subprocess=True)
def _(ctx):
    from gaugeflow.training import read_checkpoint
    run = ctx.run()
    before = snapshot(run)
    proc = ctx.popen(*LONG, "--steps", "100000", "--val-size", "0", "--overwrite", "--out", run)
    _wait_for_lock(proc, run)
    # the lock is taken before the old run is moved aside, so the old run's metrics.csv is still at the top
    # for a moment: wait for the move, then for the new run's first row
    while proc.poll() is None and not ((run / ".gaugeflow-previous").is_dir() and _rows(run) >= 1):
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert (run / ".gaugeflow-previous").is_dir() and not (run / CKPT).exists()
    ctx.cli("evaluate", run, "--n-test", "8", "--n-samples", "8", "--steps", "2").ok()  # opens (and repairs) the run
    after = {k: v for k, v in snapshot(run).items() if k != "evaluation.json"}
    assert after == before, sorted(k for k in set(after) | set(before) if after.get(k) != before.get(k))
    ctx.train(run, "--resume", "--steps", "5").ok()
    assert read_checkpoint(run).step == 5


def _limit(kind, value):
    def apply():
        resource.setrlimit(kind, (value, value))
    return apply


@case("PR-06", "process", "out of memory (`ulimit -v 4 GB`, a batch needing 6 GB)",
      "exit 5, one line: 'out of memory: ... use a smaller batch'", subprocess=True)
def _(ctx):
    res = ctx.child(*LONG, "--hidden", "512", "--batch-size", "3000000", "--steps", "2", "--val-size", "0",
                    "--out", ctx.path("r"), preexec=_limit(resource.RLIMIT_AS, 4 * 1024**3))
    res.fails(5, "out of memory")


@case("PR-07", "process", "file-size limit (`ulimit -f 32 KB`) while `--resume` writes a 90 KB checkpoint",
      "exit 5, one line: 'file size limit exceeded while writing .../checkpoint.safetensors'; the old checkpoint "
      "is intact and a later `--resume` continues", kept="the last checkpoint byte for byte", subprocess=True)
def _(ctx):
    from gaugeflow.training import read_checkpoint
    run = ctx.path("r")
    args = [*LONG, "--hidden", "64", "--val-size", "0"]
    ctx.cli(*args, "--steps", "2", "--out", run).ok()
    ckpt = (run / CKPT).read_bytes()
    assert len(ckpt) > 64 * 1024
    res = ctx.child(*args, "--steps", "4", "--resume", "--out", run, preexec=_limit(resource.RLIMIT_FSIZE, 32 * 1024))
    res.fails(5, f"file size limit exceeded while writing {run / CKPT}")
    assert (run / CKPT).read_bytes() == ckpt and not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    ctx.cli(*args, "--steps", "4", "--resume", "--out", run).ok()
    assert read_checkpoint(run).step == 4


@case("PR-08", "process", "the installed console script on bad input", "exit 2, exactly one stderr line, no traceback",
      subprocess=True)
def _(ctx):
    import subprocess
    import sys
    from pathlib import Path
    exe = Path(sys.executable).with_name("gaugeflow")
    proc = subprocess.run([str(exe), "train", "--model", "huge", "--out", str(ctx.path("r"))], capture_output=True,
                          text=True, env=ENV, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == ("gaugeflow train: error: unknown model 'huge'; "
                                                             "expected one of: gauge, higher-gauge, plain, tensor-gauge, "
                                                             "or package.module:Name")
