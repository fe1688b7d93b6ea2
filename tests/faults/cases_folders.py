"""Run folders: only runs are written into, --overwrite validates first and replaces atomically, config,
checkpoint and evaluation agree, temp files belong to their writer, write failures lose nothing."""
from __future__ import annotations

import errno
import json
import os

import torch

from .registry import case, snapshot

CKPT = "checkpoint.safetensors"


def _user_folder(ctx):
    folder = ctx.path("mine")
    folder.mkdir()
    (folder / "config.json").write_text('{"my": "own settings"}')
    (folder / "metrics.csv").write_text("my,own\n1,2\n")
    (folder / "notes.txt").write_text("do not touch")
    return folder


@case("RF-01", "folders", "`train --out` a non-empty folder that is not a run (the user's config.json, metrics.csv, notes)",
      "exit 2, one line: 'is not empty ... and is not a gaugeflow run'", kept="every file byte for byte, no lock file")
def _(ctx):
    folder = _user_folder(ctx)
    before = snapshot(folder)
    ctx.train(folder).fails(2, "is not a gaugeflow run")
    assert snapshot(folder) == before and sorted(p.name for p in folder.iterdir()) == sorted(before)


@case("RF-02", "folders", "`train --overwrite --out` a non-empty folder that is not a run",
      "exit 2, one line: 'is not a gaugeflow run' (--overwrite only replaces runs)", kept="every file byte for byte")
def _(ctx):
    folder = _user_folder(ctx)
    before = snapshot(folder)
    ctx.train(folder, "--overwrite").fails(2, "is not a gaugeflow run")
    assert snapshot(folder) == before


@case("RF-03", "folders", "`train --out RUN` again without --resume/--overwrite",
      "exit 2, one line: 'already holds a run; pass --resume ... --overwrite'", kept="run byte for byte")
def _(ctx):
    run = ctx.run()
    before = snapshot(run)
    ctx.train(run).fails(2, "already holds a run; pass --resume")
    assert snapshot(run) == before


OVERWRITE_INVALID = [("RF-04", ["--lr", "-1"], 2, "lr must be > 0"), ("RF-05", ["--model", "bogus"], 2, "unknown model"),
                     ("RF-06", ["--data", "gaussian-mixture"], 2, "lives on Euclidean"),
                     ("RF-07", ["--seed", str(2**70)], 2, "seed must be in")]


def _overwrite_invalid(flags, code, fragment):
    def run(ctx):
        run_dir = ctx.run()
        (run_dir / "evaluation.json").write_text('{"step": 3}')
        before = snapshot(run_dir)
        ctx.train(run_dir, "--overwrite", *flags).fails(code, fragment)
        assert snapshot(run_dir) == before
    return run


for _id, _flags, _code, _fragment in OVERWRITE_INVALID:
    case(_id, "folders", f"`train --overwrite {' '.join(_flags)}` on an existing run",
         f"exit {_code}, one line ('{_fragment}'), checked before anything is touched",
         kept="old run byte for byte (checkpoint, config, metrics, evaluation)")(_overwrite_invalid(_flags, _code, _fragment))


@case("RF-08", "folders", "`train --overwrite --device cuda` on a machine without CUDA", "exit 5, one line",
      kept="old run byte for byte")
def _(ctx):
    import torch
    if torch.cuda.is_available():
        ctx.monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = ctx.run()
    before = snapshot(run)
    ctx.train(run, "--overwrite", "--device", "cuda").fails(5, "CUDA is not available")
    assert snapshot(run) == before


@case("RF-09", "folders", "`train --overwrite` that succeeds", "exit 0; the old evaluation.json, figures and files are "
      "gone; config.json, checkpoint and metrics.csv are the new run's", kept="the user's own extra files in the folder")
def _(ctx):
    from gaugeflow.training import read_checkpoint
    run = ctx.run()
    (run / "evaluation.json").write_text('{"step": 3}')
    (run / "figures").mkdir()
    (run / "figures" / "loss.png").write_bytes(b"old")
    (run / "my-notes.txt").write_text("mine")
    ctx.train(run, "--overwrite", "--steps", "2").ok()
    assert not (run / "evaluation.json").exists() and not (run / "figures").exists()
    assert (run / "my-notes.txt").read_text() == "mine" and not (run / ".gaugeflow-previous").exists()
    assert json.loads((run / "config.json").read_text())["steps"] == 2 == read_checkpoint(run).step
    assert len((run / "metrics.csv").read_text().splitlines()) == 3


@case("RF-10", "folders", "`--overwrite` interrupted before the new run's first checkpoint",
      "the next command that opens the folder restores the old run and says so", kept="old run byte for byte")
def _(ctx):
    from gaugeflow.training import trainer
    run = ctx.run()
    before = snapshot(run)

    def crash(self, *a, **k):
        raise KeyboardInterrupt
    ctx.monkeypatch.setattr(trainer.Trainer, "save", crash)
    res = ctx.train(run, "--overwrite", "--steps", "2")
    assert res.code == 130 and len(res.err.strip().splitlines()) == 1, res.err
    assert (run / ".gaugeflow-previous").is_dir()
    ctx.monkeypatch.undo()
    import warnings
    with warnings.catch_warnings(record=True):
        ctx.cli("evaluate", run, "--n-test", "8", "--n-samples", "8", "--steps", "2").ok()
    after = snapshot(run)
    assert {k: v for k, v in after.items() if k != "evaluation.json"} == before


@case("RF-11", "folders", "`--overwrite` killed between the new run's first checkpoint and the removal of the old run",
      "the next open finishes the replacement (old run deleted, new run kept)", kept="the new run")
def _(ctx):
    from gaugeflow.training import read_checkpoint, rundir
    run = ctx.run()
    ctx.monkeypatch.setattr(rundir.RunFolder, "commit", lambda self: None)  # the process "dies" before commit
    ctx.train(run, "--overwrite", "--steps", "2").ok()
    assert (run / ".gaugeflow-previous").is_dir()
    ctx.monkeypatch.undo()
    ctx.train(run, "--resume", "--steps", "2").ok()
    assert not (run / ".gaugeflow-previous").exists() and read_checkpoint(run).step == 2


@case("RF-12", "folders", "`train --resume` on an empty folder / a folder that is not a run",
      "exit 2, one line: 'no checkpoint in ... to resume from'")
def _(ctx):
    empty = ctx.path("empty")
    empty.mkdir()
    ctx.train(empty, "--resume").fails(2, "no checkpoint in")
    assert list(empty.iterdir()) == []


@case("RF-13", "folders", "`train --resume` on a run interrupted before its first checkpoint",
      "exit 2, one line: 'interrupted before its first checkpoint; start it again with --overwrite'")
def _(ctx):
    run = ctx.path("r")
    run.mkdir()
    (run / "gaugeflow-run.json").write_text("{}")
    ctx.train(run, "--resume").fails(2, "interrupted before its first checkpoint")


@case("RF-14", "folders", "`train --resume --steps 2` after 3 steps", "exit 2, one line: 'already done 3 steps'",
      kept="run byte for byte (config, checkpoint agree)")
def _(ctx):
    run = ctx.run()
    before = snapshot(run)
    ctx.train(run, "--resume", "--steps", "2").fails(2, "already done 3 steps")
    assert snapshot(run) == before


@case("RF-15", "folders", "`train --resume --steps 6` after 3, then `evaluate`",
      "config.json, checkpoint and evaluation.json all say 6 steps; an evaluation of step 3 is removed",
      kept="all 6 steps of history")
def _(ctx):
    from gaugeflow.training import read_checkpoint
    run = ctx.run()
    (run / "evaluation.json").write_text('{"step": 3}')
    ctx.train(run, "--resume", "--steps", "6").ok()
    assert not (run / "evaluation.json").exists()
    assert json.loads((run / "config.json").read_text())["steps"] == 6
    ck = read_checkpoint(run)
    assert ck.step == 6 and ck.meta["config"]["steps"] == 6
    ctx.cli("evaluate", run, "--n-test", "8", "--n-samples", "8", "--steps", "2").ok()
    assert json.loads((run / "evaluation.json").read_text())["step"] == 6


@case("RF-16", "folders", "`train --steps 0`", "exit 0 and a checkpoint of step 0 (with config.json agreeing)")
def _(ctx):
    from gaugeflow.training import read_checkpoint
    run = ctx.path("r")
    ctx.train(run, "--steps", "0").ok()
    assert read_checkpoint(run).step == 0 and json.loads((run / "config.json").read_text())["steps"] == 0


@case("RF-17", "folders", "`train --resume` with a different --lr", "exit 4, one line: 'cannot resume with different "
      "training settings (lr=...)'", kept="run byte for byte")
def _(ctx):
    run = ctx.run()
    before = snapshot(run)
    ctx.train(run, "--resume", "--steps", "5", "--lr", "0.5").fails(4, "cannot resume with different training settings")
    assert snapshot(run) == before


@case("RF-18", "folders", "`train --out FILE` (a file, not a folder)", "exit 2, one line: 'exists and is not a directory'",
      kept="the file")
def _(ctx):
    f = ctx.path("file")
    f.write_text("x")
    ctx.train(f).fails(2, "exists and is not a directory")
    assert f.read_text() == "x"


@case("RF-19", "folders", "a temp file of a killed writer, and one of a live writer, in the run folder",
      "the next lock holder removes the dead writer's temp file only")
def _(ctx):
    run = ctx.run()
    dead = run / f".{CKPT}.999999999.deadbeef.tmp"
    live = run / f".{CKPT}.{os.getppid()}.cafe0123.tmp"
    dead.write_bytes(b"partial")
    live.write_bytes(b"being written")
    ctx.train(run, "--resume", "--steps", "4").ok()
    assert not dead.exists() and live.exists()


def _raiser(exc):
    def fake(*a, **k):
        raise exc
    return fake


def _fail_on(ctx, module, name, exc, after=0):
    """Make ``module.name`` raise ``exc`` from its ``after+1``-th call on."""
    real, calls = getattr(module, name), [0]

    def fake(*a, **k):
        calls[0] += 1
        if calls[0] > after:
            raise exc
        return real(*a, **k)
    ctx.monkeypatch.setattr(module, name, fake)


@case("RF-20", "folders", "disk full (ENOSPC) while writing a checkpoint mid-run",
      "exit 5, one line: 'disk full while writing'; the last checkpoint is intact and --resume continues exactly",
      kept="last checkpoint, metrics up to it")
def _(ctx):
    from gaugeflow.training import checkpoint, read_checkpoint, rundir
    run, real, calls = ctx.path("r"), checkpoint.atomic_write_bytes, [0]

    def full_disk_from_the_second_checkpoint(path, data):
        calls[0] += 1
        if calls[0] < 2:
            return real(path, data)
        with ctx.monkeypatch.context() as m:  # the real write, with a device that fills up at fsync
            m.setattr(rundir.os, "fsync", _raiser(OSError(errno.ENOSPC, "No space left on device", str(path))))
            return real(path, data)
    ctx.monkeypatch.setattr(checkpoint, "atomic_write_bytes", full_disk_from_the_second_checkpoint)
    ctx.train(run, "--steps", "6", "--checkpoint-every", "2").fails(5, "disk full while writing")
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    ctx.monkeypatch.undo()
    done = read_checkpoint(run).step
    assert 0 < done < 6
    ctx.train(run, "--resume", "--steps", "6", "--checkpoint-every", "2").ok()
    ref = ctx.path("ref")
    ctx.train(ref, "--steps", "6", "--checkpoint-every", "2").ok()
    assert (run / "metrics.csv").read_bytes() == (ref / "metrics.csv").read_bytes()


@case("RF-21", "folders", "read-only run folder: `evaluate` cannot write evaluation.json",
      "the numbers are printed, then exit 5, one line: 'permission denied: cannot write'", kept="run byte for byte")
def _(ctx):
    from gaugeflow.training import rundir
    run = ctx.run()
    before = snapshot(run)
    _fail_on(ctx, rundir.os, "open", PermissionError(errno.EACCES, "Permission denied", str(run / "evaluation.json")))
    res = ctx.cli("evaluate", run, "--n-test", "8", "--n-samples", "8", "--steps", "2").fails(5, "permission denied")
    assert "test NLL" in res.out
    ctx.monkeypatch.undo()
    assert snapshot(run) == before


@case("RF-22", "folders", "read-only run folder: `train --resume`", "exit 5, one line: 'permission denied'",
      kept="run byte for byte")
def _(ctx):
    from gaugeflow.training import rundir
    run = ctx.run()
    before = snapshot(run)
    _fail_on(ctx, rundir.os, "open", PermissionError(errno.EROFS, "Read-only file system", str(run / ".gaugeflow.lock")))
    ctx.train(run, "--resume", "--steps", "5").fails(5, "permission denied")
    ctx.monkeypatch.undo()
    assert snapshot(run) == before


@case("RF-23", "folders", "`sample -o` where writing fails with EFBIG (file-size limit)",
      "exit 5, one line: 'file size limit exceeded'; no partial .npy, an existing one unchanged", kept="the old samples file")
def _(ctx):
    from gaugeflow.training import rundir
    run, target = ctx.run(), ctx.path("s.npy")
    target.write_bytes(b"old samples")
    _fail_on(ctx, rundir.os, "fsync", OSError(errno.EFBIG, "File too large", str(target)))
    ctx.cli("sample", run, "-n", "4", "--steps", "2", "-o", target).fails(5, "file size limit exceeded")
    ctx.monkeypatch.undo()
    assert target.read_bytes() == b"old samples" and sorted(p.name for p in ctx.tmp.iterdir()) == ["run", "s.npy"]


@case("RF-24", "folders", "a legacy run (made before run manifests) is still a run", "`--resume` continues it and adds the manifest")
def _(ctx):
    run = ctx.run()
    (run / "gaugeflow-run.json").unlink()
    ctx.train(run).fails(2, "already holds a run")
    ctx.train(run, "--resume", "--steps", "4").ok()
    assert (run / "gaugeflow-run.json").is_file()


@case("RF-25", "folders", "the final validation blows up (ODE solver error) after training",
      "exit 1, one line: 'validation failed: ... the weights of step 4 are saved in .../checkpoint.safetensors'; "
      "`evaluate`-ready checkpoint of step 4 on disk", kept="all trained weights (was: the whole run lost)")
def _(ctx):
    from gaugeflow.sampling.solvers import SolverError
    from gaugeflow.training import read_checkpoint, trainer
    run = ctx.path("r")

    def blow_up(self):
        raise SolverError("RK4: the ODE state became non-finite (NaN/Inf) at t = 0.02")
    ctx.monkeypatch.setattr(trainer.Trainer, "validate", blow_up)
    ctx.train(run, "--steps", "4", "--val-size", "8").fails(1, "the weights of step 4 are saved in")
    ctx.monkeypatch.undo()
    assert read_checkpoint(run).step == 4
    ctx.cli("sample", run, "-n", "4", "--steps", "2", "-o", ctx.path("s.npy")).ok()
    ctx.train(run, "--resume", "--steps", "4", "--val-size", "8").ok()  # the resume validates first, then is done
    assert read_checkpoint(run).meta["step"] == 4 and len(read_checkpoint(run).group("history")["val"]) == 1


@case("RF-26", "folders", "a writer killed while creating the run's manifest left only its temp file "
      "(`.gaugeflow-run.json.<pid>.<token>.tmp`, the pid gone)",
      "the folder counts as empty: a plain `train` uses it, the stale temp file is removed; a live writer's temp "
      "file still counts", kept="the user's folder stays usable (was: refused as 'not a gaugeflow run')")
def _(ctx):
    run = ctx.path("r")
    run.mkdir()
    dead = 2**22 + 12345  # above the default pid_max: no such process
    stale = run / f".gaugeflow-run.json.{dead}.0a1b2c3d.tmp"
    stale.write_text("{")
    live = run / f".gaugeflow-run.json.{os.getpid()}.0a1b2c3d.tmp"
    live.write_text("{")
    ctx.train(run).fails(2, "is not a gaugeflow run")  # someone is still writing there
    live.unlink()
    ctx.train(run).ok()
    assert not stale.exists() and (run / "gaugeflow-run.json").is_file()


@case("RF-27", "folders", "the run killed after writing `best.safetensors` and before the checkpoint that records "
      "that validation", "`--resume` validates that step again and ends with the uninterrupted run's best weights, "
      "history and checkpoint", kept="the best weights and every trained step")
def _(ctx):
    from gaugeflow.training import read_checkpoint, trainer
    flags = ("--steps", "8", "--val-every", "4", "--val-size", "8", "--val-steps", "2")
    ref, run, save = ctx.path("ref"), ctx.path("r"), trainer.Trainer.save
    ctx.train(ref, *flags).ok()

    def killed(self, path=None):
        if self.step == 8 and 8 in dict(self.history.val):  # the checkpoint that would record step 8's validation
            raise KeyboardInterrupt
        return save(self, path)
    ctx.monkeypatch.setattr(trainer.Trainer, "save", killed)
    try:
        ctx.train(run, *flags)
    except KeyboardInterrupt:
        pass
    ctx.monkeypatch.undo()
    assert 8 not in dict(read_checkpoint(run).group("history")["val"].tolist())
    ctx.train(run, "--resume", *flags).ok()
    for name in ("checkpoint.safetensors", "best.safetensors"):
        a, b = read_checkpoint(ref / name), read_checkpoint(run / name)
        assert a.step == b.step and all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors), name


@case("RF-28", "folders", "`best.safetensors` truncated, then the run resumes; `evaluate --weights best` of it",
      "the resume warns and goes on (the best weights are written again at the next new best); `evaluate --weights "
      "best`: exit 4, one line: 'truncated checkpoint'", kept="the run and its checkpoint")
def _(ctx):
    import warnings

    from gaugeflow.training import read_checkpoint
    run = ctx.path("r")
    ctx.train(run, "--steps", "4", "--val-every", "2", "--val-size", "8", "--val-steps", "2").ok()
    best = run / "best.safetensors"
    best.write_bytes(best.read_bytes()[:100])
    ctx.cli("evaluate", run, "--weights", "best").fails(4, "truncated checkpoint")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        ctx.train(run, "--resume", "--steps", "12", "--val-every", "2", "--val-size", "8", "--val-steps", "2").ok()
    assert any("truncated checkpoint" in str(w.message) for w in said)
    vals = dict(read_checkpoint(run).group("history")["val"].tolist())
    before, after = min(v for s, v in vals.items() if s <= 4), min(v for s, v in vals.items() if s > 4)
    if after < before:  # a new best after the resume: the file is whole again and holds it
        step = read_checkpoint(best).step
        assert step > 4 and vals[step] == after
    else:  # none: the damaged file is left as it is (evaluate still says so)
        ctx.cli("evaluate", run, "--weights", "best").fails(4, "truncated checkpoint")
