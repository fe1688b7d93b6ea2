"""Checkpoint files: truncation, bit flips, foreign and pickled files, malformed metadata, non-finite weights."""
from __future__ import annotations

import json
import pickle
import random
import struct

import torch

from .registry import case, snapshot

CKPT = "checkpoint.safetensors"


def _split(data: bytes) -> tuple[int, dict]:
    (n,) = struct.unpack("<Q", data[:8])
    return 8 + n, json.loads(data[8:8 + n])


def _rewrite_meta(path, change):
    """Re-save ``path`` with its gaugeflow metadata changed by ``change(meta)`` and a *valid* digest,
    as a buggy or malicious writer would: only the field checks can catch it."""
    from gaugeflow.training import checkpoint as C
    ck = C.read_checkpoint(path)
    change(ck.meta)
    raw = json.dumps(ck.meta, sort_keys=True)
    first = C.st_save(ck.tensors, metadata={"gaugeflow": raw})
    start, header = _split(first)
    digest = C._digest(header, raw, memoryview(first)[start:])
    path.write_bytes(C.st_save(ck.tensors, metadata={"gaugeflow": raw, C.DIGEST_KEY: digest}))


def _evaluate(ctx, run):
    return ctx.cli("evaluate", run, "--n-test", "8", "--n-samples", "8", "--steps", "2")


@case("CK-01", "checkpoints", "truncated checkpoint (cut at 1/3)", "exit 4, one line: 'truncated checkpoint'")
def _(ctx):
    run = ctx.run()
    data = (run / CKPT).read_bytes()
    (run / CKPT).write_bytes(data[: len(data) // 3])
    _evaluate(ctx, run).fails(4, "truncated checkpoint")


@case("CK-02", "checkpoints", "empty checkpoint file", "exit 4, one line: 'truncated or empty checkpoint (0 bytes)'")
def _(ctx):
    run = ctx.run()
    (run / CKPT).write_bytes(b"")
    _evaluate(ctx, run).fails(4, "truncated or empty checkpoint")


@case("CK-03", "checkpoints", "one flipped exponent bit in the tensor payload",
      "exit 4, one line: 'content digest mismatch' (was: exit 0 and test NLL -3.4e35)", kept="the file is never rewritten")
def _(ctx):
    run = ctx.run()
    data = bytearray((run / CKPT).read_bytes())
    start, header = _split(bytes(data))
    name = next(k for k, v in header.items() if k.startswith("model/") and v["dtype"] == "F32")
    offset = start + header[name]["data_offsets"][0]
    data[offset + 3] ^= 0x40  # the top exponent bit of the first float32 weight
    (run / CKPT).write_bytes(bytes(data))
    before = snapshot(run)
    _evaluate(ctx, run).fails(4, "content digest mismatch")
    assert snapshot(run) == before


@case("CK-04", "checkpoints", "20 random bit flips in the tensor payload (5 seeds)", "exit 4, one line: 'content digest mismatch'")
def _(ctx):
    clean = (ctx.run() / CKPT).read_bytes()
    start, _ = _split(clean)
    for seed in range(5):
        rng, data = random.Random(seed), bytearray(clean)
        for _ in range(20):
            data[rng.randrange(start, len(data))] ^= 1 << rng.randrange(8)
        run = ctx.run(f"r{seed}")
        (run / CKPT).write_bytes(bytes(data))
        _evaluate(ctx, run).fails(4, "content digest mismatch")


@case("CK-05", "checkpoints", "one flipped bit in the metadata block (a digit of the step)",
      "exit 4, one line: 'content digest mismatch'")
def _(ctx):
    run = ctx.run()
    data = (run / CKPT).read_bytes()
    start, _ = _split(data)
    at = data.index(b'\\"step\\": 3', 0, start) + len(b'\\"step\\": ')
    flipped = bytearray(data)
    flipped[at] ^= 0x01  # '3' -> '2'
    (run / CKPT).write_bytes(bytes(flipped))
    _evaluate(ctx, run).fails(4, "content digest mismatch")


@case("CK-06", "checkpoints", "content digest removed from a current-format checkpoint", "exit 4, one line: 'digest ... is missing'")
def _(ctx):
    from gaugeflow.training import checkpoint as C
    run = ctx.run()
    ck = C.read_checkpoint(run)
    (run / CKPT).write_bytes(C.st_save(ck.tensors, metadata={"gaugeflow": json.dumps(ck.meta, sort_keys=True)}))
    _evaluate(ctx, run).fails(4, "is missing")


@case("CK-07", "checkpoints", "a pickle (with a payload that would create a file) named checkpoint.safetensors",
      "exit 4, one line: 'not a gaugeflow checkpoint'; nothing is unpickled")
def _(ctx):
    run, marker = ctx.run(), ctx.path("pwned")
    (run / CKPT).write_bytes(pickle.dumps({"model": _Evil(str(marker))}))
    _evaluate(ctx, run).fails(4, "not a gaugeflow checkpoint")
    assert not marker.exists()


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@case("CK-08", "checkpoints", "a foreign safetensors file (no gaugeflow block)", "exit 4, one line: 'foreign safetensors file'")
def _(ctx):
    from safetensors.torch import save_file
    run = ctx.run()
    save_file({"w": torch.zeros(3)}, str(run / CKPT), metadata={"producer": "someone else"})
    _evaluate(ctx, run).fails(4, "foreign safetensors file")


@case("CK-09", "checkpoints", "metadata without `rng` (valid digest), then `train --resume`",
      "exit 4, one line: \"metadata field 'rng.stream': expected base64 text\"", kept="run unchanged")
def _(ctx):
    run = ctx.run()
    _rewrite_meta(run / CKPT, lambda m: m.pop("rng"))
    before = snapshot(run)
    ctx.train(run, "--resume", "--steps", "5").fails(4, "metadata field 'rng.stream'")
    assert snapshot(run) == before


@case("CK-10", "checkpoints", "metadata with a cut `rng` stream", "exit 4, one line: 'expected 5056 bytes of generator state'")
def _(ctx):
    run = ctx.run()
    _rewrite_meta(run / CKPT, lambda m: m["rng"].update(stream=m["rng"]["stream"][:400]))
    ctx.train(run, "--resume", "--steps", "5").fails(4, "bytes of generator state")


@case("CK-11", "checkpoints", "metadata field `skipped` of the wrong type (\"x\")",
      "exit 4, one line: \"metadata field 'skipped': expected an integer ... got 'x' (str)\"")
def _(ctx):
    run = ctx.run()
    _rewrite_meta(run / CKPT, lambda m: m.update(skipped="x"))
    ctx.train(run, "--resume", "--steps", "5").fails(4, "metadata field 'skipped': expected an integer")


@case("CK-12", "checkpoints", "metadata field `step` of the wrong type", "exit 4, one line: \"metadata field 'step'\"")
def _(ctx):
    run = ctx.run()
    _rewrite_meta(run / CKPT, lambda m: m.update(step="three"))
    _evaluate(ctx, run).fails(4, "metadata field 'step'")


@case("CK-13", "checkpoints", "a stored seed of 2**70 (beyond torch's range)", "exit 4 (evaluate) / 2 (resume), one line naming the seed")
def _(ctx):
    run = ctx.run()
    _rewrite_meta(run / CKPT, lambda m: m["config"].update(seed=2**70))
    _evaluate(ctx, run).fails(4, "config.seed")
    ctx.train(run, "--resume", "--steps", "5").fails(2, "seed must be in")


@case("CK-14", "checkpoints", "a checkpoint whose weights are NaN (valid digest): `evaluate`, `sample`",
      "exit 4, one line: 'weight tensor(s) hold NaN or Inf' (was: SolverError traceback)")
def _(ctx):
    from gaugeflow.training import checkpoint as C
    run = ctx.run()
    ck = C.read_checkpoint(run)
    tensors = {k: (torch.full_like(v, float("nan")) if k.startswith(("model/", "ema/")) and v.is_floating_point() else v)
               for k, v in ck.tensors.items()}
    raw = json.dumps(ck.meta, sort_keys=True)
    first = C.st_save(tensors, metadata={"gaugeflow": raw})
    start, header = _split(first)
    (run / CKPT).write_bytes(C.st_save(tensors, metadata={"gaugeflow": raw, C.DIGEST_KEY: C._digest(header, raw, memoryview(first)[start:])}))
    _evaluate(ctx, run).fails(4, "hold NaN or Inf")
    ctx.cli("sample", run, "-n", "4", "-o", ctx.path("s.npy")).fails(4, "hold NaN or Inf")


@case("CK-15", "checkpoints", "finite but huge weights: the ODE solve blows up in `sample`",
      "exit 1 (numerical), one line: 'non-finite'")
def _(ctx):
    run = ctx.run()
    _rewrite_tensors(run, lambda k, v: v * 1e30 if k.startswith(("model/", "ema/")) and v.dim() == 2 else v)
    res = ctx.cli("sample", run, "-n", "8", "--steps", "4", "-o", ctx.path("s.npy"))
    res.fails(1, "non-finite")
    assert not ctx.path("s.npy").exists()


def _rewrite_tensors(run, change):
    from gaugeflow.training import checkpoint as C
    ck = C.read_checkpoint(run)
    tensors = {k: change(k, v) for k, v in ck.tensors.items()}
    raw = json.dumps(ck.meta, sort_keys=True)
    first = C.st_save(tensors, metadata={"gaugeflow": raw})
    start, header = _split(first)
    (run / CKPT).write_bytes(C.st_save(tensors, metadata={"gaugeflow": raw, C.DIGEST_KEY: C._digest(header, raw, memoryview(first)[start:])}))


@case("CK-16", "checkpoints", "a checkpoint of a newer format version", "exit 4, one line: 'newer than this gaugeflow understands'")
def _(ctx):
    run = ctx.run()
    _rewrite_meta(run / CKPT, lambda m: m.update(format_version=99))
    _evaluate(ctx, run).fails(4, "newer than this gaugeflow understands")


@case("CK-17", "checkpoints", "history tensors missing (valid digest)", "exit 4, one line: 'history tensors missing or malformed'")
def _(ctx):
    from gaugeflow.training import checkpoint as C
    run = ctx.run()
    ck = C.read_checkpoint(run)
    tensors = {k: v for k, v in ck.tensors.items() if not k.startswith("history/")}
    raw = json.dumps(ck.meta, sort_keys=True)
    first = C.st_save(tensors, metadata={"gaugeflow": raw})
    start, header = _split(first)
    (run / CKPT).write_bytes(C.st_save(tensors, metadata={"gaugeflow": raw, C.DIGEST_KEY: C._digest(header, raw, memoryview(first)[start:])}))
    ctx.train(run, "--resume", "--steps", "5").fails(4, "history tensors missing or malformed")


@case("CK-18", "checkpoints", "header JSON damaged (tensor table not a mapping of entries)",
      "exit 4, one line: 'corrupt checkpoint header'")
def _(ctx):
    run = ctx.run()
    data = (run / CKPT).read_bytes()
    start, header = _split(data)
    name = next(k for k in header if k != "__metadata__")
    bad = data[:start].replace(b'"data_offsets"', b'"data_offsetz"', 1)
    assert name and bad != data[:start]
    (run / CKPT).write_bytes(bad + data[start:])
    _evaluate(ctx, run).fails(4, "corrupt checkpoint header")


@case("CK-19", "checkpoints", "`checkpoint.safetensors` is a folder", "exit 2, one line: 'no checkpoint.safetensors in'")
def _(ctx):
    run = ctx.run()
    (run / CKPT).unlink()
    (run / CKPT).mkdir()
    _evaluate(ctx, run).fails(2, "no checkpoint.safetensors in")


@case("CK-20", "checkpoints", "load a checkpoint into a model of another width (API)",
      "CheckpointError, one line naming the file and the parameter shapes")
def _(ctx):
    import pytest

    from gaugeflow.manifolds import Sphere
    from gaugeflow.models import PlainFlow
    from gaugeflow.training import CheckpointError, load_checkpoint
    run = ctx.run()
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(run / CKPT, PlainFlow(Sphere(2), hidden=16))
    assert "\n" not in str(info.value) and str(run / CKPT) in str(info.value) and "shape" in str(info.value)
