"""Command-line input: bad flags, settings, config files, devices and output paths (exit 2 or 5, one line)."""
from __future__ import annotations

import torch

from .registry import TINY, case

BAD_SETTINGS = [  # (id, flags, message fragment)
    ("IN-01", ["--lr", "-1"], "lr must be > 0"),
    ("IN-02", ["--lr", "nan"], "lr must be finite"),
    ("IN-03", ["--model", "huge"], "unknown model 'huge'"),
    ("IN-04", ["--manifold", "klein-bottle"], "unknown manifold 'klein-bottle'"),
    ("IN-05", ["--data", "nope"], "unknown data set 'nope'"),
    ("IN-06", ["--steps", "-5"], "steps must be >= 0"),
    ("IN-07", ["--steps", "ten"], "invalid int value: 'ten'"),
    ("IN-08", ["--batch-size", "0"], "batch_size must be >= 1"),
    ("IN-09", ["--dim", "0"], "dim must be >= 1"),
    ("IN-10", ["--ema-decay", "1.5"], "ema_decay must be in [0, 1)"),
    ("IN-11", ["--seed", str(2**70)], "seed must be in [0, 2**64 - 1]"),
    ("IN-12", ["--device", "bogus"], "device must be"),
    ("IN-13", ["--device", "cudaX"], "--device: expected auto, cpu, cuda"),
    ("IN-14", ["--threads", "0"], "--threads must be a positive integer"),
    ("IN-15", ["--data", "gaussian-mixture"], "gaussian-mixture lives on Euclidean"),
    ("IN-16", ["--max-nonfinite", "0"], "max_nonfinite must be >= 1"),
    ("IN-17", ["--k", "0"], "k must be >= 1"),
    ("IN-18", ["--schedule", "exp"], "schedule must be one of constant, cosine, linear"),
]


def _bad_setting(flags, fragment):
    def run(ctx):
        out = ctx.path("r")
        ctx.cli("train", *TINY, *flags, "--out", out).fails(2, fragment)  # the last occurrence of a flag wins
        assert not out.exists(), "nothing is created before the settings are checked"
    return run


for _id, _flags, _fragment in BAD_SETTINGS:
    case(_id, "inputs", f"`train {' '.join(_flags)}`", f"exit 2, one line naming the problem ('{_fragment}'); "
         "no folder created")(_bad_setting(_flags, _fragment))


def _no_cuda(ctx):
    if torch.cuda.is_available():  # simulate a CPU-only build on a GPU machine
        ctx.monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@case("IN-20", "inputs", "`train --device cuda` on a machine without CUDA",
      "exit 5 (resource), one line: 'CUDA is not available'; no folder created")
def _(ctx):
    _no_cuda(ctx)
    out = ctx.path("r")
    ctx.train(out, "--device", "cuda").fails(5, "CUDA is not available")
    assert not out.exists()


@case("IN-21", "inputs", "`evaluate RUN --device cuda` on a machine without CUDA",
      "exit 5, one line: 'CUDA is not available'", kept="run unchanged")
def _(ctx):
    from .registry import snapshot
    _no_cuda(ctx)
    run = ctx.run()
    before = snapshot(run)
    ctx.cli("evaluate", run, "--device", "cuda").fails(5, "CUDA is not available")
    assert snapshot(run) == before


@case("IN-22", "inputs", "`sample RUN --device bogus`", "exit 2, one line: '--device: expected auto, cpu, cuda'")
def _(ctx):
    ctx.cli("sample", ctx.run(), "-o", ctx.path("s.npy"), "--device", "bogus").fails(2, "--device: expected")


@case("IN-23", "inputs", "`train --config missing.toml`", "exit 2, one line: 'config file not found'")
def _(ctx):
    ctx.cli("train", "--config", ctx.path("missing.toml"), "--out", ctx.path("r")).fails(2, "config file not found")


@case("IN-24", "inputs", "`train --config` with a TOML syntax error", "exit 2, one line: 'could not be parsed'")
def _(ctx):
    (ctx.path("a.toml")).write_text("steps = [")
    ctx.cli("train", "--config", ctx.path("a.toml"), "--out", ctx.path("r")).fails(2, "could not be parsed")


@case("IN-25", "inputs", "`train --config` with an unknown key", "exit 2, one line: 'unknown setting(s) stepz'")
def _(ctx):
    (ctx.path("c.toml")).write_text("stepz = 3")
    ctx.cli("train", "--config", ctx.path("c.toml"), "--out", ctx.path("r")).fails(2, "unknown setting(s) stepz")


@case("IN-26", "inputs", "`train --config` YAML holding a list, not a mapping", "exit 2, one line: 'expected a table/mapping'")
def _(ctx):
    (ctx.path("e.yaml")).write_text("- 1\n- 2\n")
    ctx.cli("train", "--config", ctx.path("e.yaml"), "--out", ctx.path("r")).fails(2, "expected a table/mapping")


@case("IN-27", "inputs", "`train --config` with a string where a number belongs", "exit 2, one line: 'lr must be a number'")
def _(ctx):
    (ctx.path("t.toml")).write_text('lr = "fast"\n')
    ctx.cli("train", "--config", ctx.path("t.toml"), "--out", ctx.path("r")).fails(2, "lr must be a number")


@case("IN-28", "inputs", "`train` without --out", "exit 2, one line: '--out DIR is required'")
def _(ctx):
    ctx.cli("train", "--steps", "2").fails(2, "--out DIR is required")


@case("IN-29", "inputs", "`train --resume --overwrite`", "exit 2, one line: 'exclude each other'")
def _(ctx):
    ctx.train(ctx.path("r"), "--resume", "--overwrite").fails(2, "--resume and --overwrite exclude each other")


@case("IN-30", "inputs", "unknown command `gaugeflow fly`", "exit 2, one line: \"invalid choice: 'fly'\"")
def _(ctx):
    ctx.cli("fly").fails(2, "invalid choice: 'fly'")


@case("IN-31", "inputs", "`sample -n 0`", "exit 2, one line: '-n must be a positive integer'")
def _(ctx):
    ctx.cli("sample", ctx.run(), "-n", "0", "-o", ctx.path("s.npy")).fails(2, "-n must be a positive integer")


@case("IN-32", "inputs", "`sample --method leapfrog`", "exit 2, one line: \"unknown method 'leapfrog'\"")
def _(ctx):
    ctx.cli("sample", ctx.run(), "-o", ctx.path("s.npy"), "--method", "leapfrog").fails(2, "unknown method 'leapfrog'")


@case("IN-33", "inputs", "`sample -o samples.txt`", "exit 2, one line: '-o must name a .npy file'")
def _(ctx):
    ctx.cli("sample", ctx.run(), "-o", ctx.path("s.txt")).fails(2, "-o must name a .npy file")


@case("IN-34", "inputs", "`sample -o` pointing at a folder", "exit 2, one line: 'is a directory'", kept="folder unchanged")
def _(ctx):
    folder = ctx.path("out.npy")
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    ctx.cli("sample", ctx.run(), "-o", folder).fails(2, "is a directory")
    assert (folder / "keep.txt").read_text() == "mine" and len(list(folder.iterdir())) == 1


@case("IN-35", "inputs", "`sample -o` into a folder that does not exist", "exit 2, one line: 'output directory does not exist'")
def _(ctx):
    ctx.cli("sample", ctx.run(), "-o", ctx.path("no") / "s.npy").fails(2, "output directory does not exist")


@case("IN-36", "inputs", "`sample -o` with a file name over 255 characters", "exit 2, one line: 'file name too long'")
def _(ctx):
    ctx.cli("sample", ctx.run(), "-n", "4", "--steps", "2", "-o", ctx.path("x" * 300 + ".npy")).fails(2, "file name too long")


@case("IN-37", "inputs", "`train --out` with a path component over 255 characters", "exit 2, one line: 'file name too long'")
def _(ctx):
    ctx.train(ctx.path("r" * 300)).fails(2, "file name too long")


@case("IN-38", "inputs", "`evaluate --n-test 0` / `plot --grid 0`", "exit 2, one line: 'must be a positive integer'")
def _(ctx):
    run = ctx.run()
    ctx.cli("evaluate", run, "--n-test", "0").fails(2, "--n-test must be a positive integer")
    ctx.cli("plot", run, "--grid", "0").fails(2, "--grid must be a positive integer")


@case("IN-39", "inputs", "`sample --seed -1` and `--seed 2**70`", "exit 2, one line: '--seed must be in [0, 2**64 - 1]'")
def _(ctx):
    run = ctx.run()
    ctx.cli("sample", run, "-o", ctx.path("s.npy"), "--seed", "-1").fails(2, "--seed must be in")
    ctx.cli("sample", run, "-o", ctx.path("s.npy"), "--seed", str(2**70)).fails(2, "--seed must be in")


@case("IN-40", "inputs", "`evaluate`/`sample`/`plot` of a folder that does not exist or holds no checkpoint",
      "exit 2, one line: 'run directory not found' / 'no checkpoint.safetensors in'")
def _(ctx):
    empty = ctx.path("empty")
    empty.mkdir()
    for cmd in (["evaluate"], ["plot"], ["sample", "-o", ctx.path("s.npy")]):
        ctx.cli(cmd[0], ctx.path("missing"), *cmd[1:]).fails(2, "run directory not found")
        ctx.cli(cmd[0], empty, *cmd[1:]).fails(2, "no checkpoint.safetensors in")
    assert list(empty.iterdir()) == []


@case("IN-41", "inputs", "`--debug` on an expected error", "exit code unchanged (2), the traceback is shown")
def _(ctx):
    res = ctx.cli("--debug", "train", *TINY, "--lr", "-1", "--out", ctx.path("r"))
    assert res.code == 2 and "Traceback" in res.err and res.err.strip().splitlines()[-1].endswith("lr must be > 0, got -1.0")
