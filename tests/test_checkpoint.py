"""Checkpoints: round trip, atomic writes, one-line errors for bad files, no unpickling, exact resume after SIGKILL."""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import save_file

from gaugeflow.manifolds import Euclidean, Sphere
from gaugeflow.models import GaugeFlow, PlainFlow
from gaugeflow.training import CheckpointError, TrainConfig, load_checkpoint, read_checkpoint, save_checkpoint
from gaugeflow.training import rundir as ckpt_mod  # atomic writes live there

M = Sphere(2)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(hidden=8, cls=PlainFlow, seed=0):
    torch.manual_seed(seed)
    return cls(M, hidden=hidden)


def _trained_optimizer(model):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = M.random_base(16, generator=torch.Generator().manual_seed(1))
    for _ in range(2):
        opt.zero_grad()
        model(x, 0.3).pow(2).sum().backward()
        opt.step()
    return opt


def test_round_trip_restores_model_optimizer_ema_and_metadata(tmp_path):
    model = _model()
    opt = _trained_optimizer(model)
    ema = {k: v * 0.5 for k, v in model.state_dict().items()}
    cfg = TrainConfig(model="plain", hidden=8, seed=7)
    path = save_checkpoint(tmp_path / "c.safetensors", model, ema=ema, optimizer=opt, config=cfg, step=2,
                           meta={"seed": 7}, tensors={"history/loss": torch.tensor([1.0, 0.5], dtype=torch.float64)})
    fresh = _model(seed=3)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=1e-2)
    ck = load_checkpoint(path, fresh, optimizer=fresh_opt, config=cfg)
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)
        assert torch.equal(ck.group("ema")[k], ema[k])
    a, b = opt.state_dict(), fresh_opt.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i, state in a["state"].items():
        for key, value in state.items():
            assert torch.equal(b["state"][i][key], value), (i, key)
    assert ck.step == 2 and ck.meta["seed"] == 7 and ck.meta["config"]["hidden"] == 8
    assert set(ck.meta["versions"]) == {"gaugeflow", "torch", "python"}
    assert torch.equal(ck.group("history")["loss"], torch.tensor([1.0, 0.5], dtype=torch.float64))
    assert path.read_bytes()[8:9] == b"{"  # a plain safetensors file (JSON header first), no pickle


def test_atomic_write_leaves_old_file_and_no_temp_when_interrupted(tmp_path, monkeypatch):
    model = _model()
    path = save_checkpoint(tmp_path / "c.safetensors", model, step=1)
    before = path.read_bytes()

    def failing_fsync(fd):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(ckpt_mod.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, _model(seed=5), step=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]

    def failing_replace(src, dst):
        raise KeyboardInterrupt  # interruption between writing and renaming

    monkeypatch.setattr(ckpt_mod.os, "replace", failing_replace)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, _model(seed=5), step=3)
    monkeypatch.undo()
    assert read_checkpoint(path).step == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]


def _one_line_error(path, match, **kw):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, **kw)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    assert match in msg, msg
    return msg


def test_truncated_checkpoint_is_named(tmp_path):
    path = save_checkpoint(tmp_path / "c.safetensors", _model(), step=1)
    data = path.read_bytes()
    for cut in (len(data) - 7, len(data) // 2, 20, 3, 0):
        path.write_bytes(data[:cut])
        msg = _one_line_error(path, "truncated")
        assert "Traceback" not in msg


def test_foreign_files_are_named(tmp_path):
    text = tmp_path / "notes.safetensors"
    text.write_text("this is not a checkpoint at all, just some text\n")
    _one_line_error(text, "not a gaugeflow checkpoint")
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(other), metadata={"producer": "someone else"})
    _one_line_error(other, "foreign safetensors file")
    pt = tmp_path / "model.pt"
    torch.save(_model().state_dict(), pt)
    _one_line_error(pt, "not a gaugeflow checkpoint")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_loading_never_unpickles(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(pickle.dumps({"model": _Evil(str(marker))}))
    assert pickle.loads(bad.read_bytes()) and marker.exists()  # the payload really fires when unpickled
    marker.unlink()
    _one_line_error(bad, "not a gaugeflow checkpoint")
    assert not marker.exists()


def test_mismatched_model_is_named(tmp_path):
    cfg = TrainConfig(model="plain", hidden=8)
    path = save_checkpoint(tmp_path / "c.safetensors", _model(hidden=8), config=cfg)
    _one_line_error(path, "parameter 'velocity", model=_model(hidden=16))
    _one_line_error(path, "hidden=8 in checkpoint vs 16", model=_model(hidden=8), config=cfg.replace(hidden=16))
    _one_line_error(path, "holds a PlainFlow, the model is a GaugeFlow", model=_model(cls=GaugeFlow))
    # same parameter shapes (ambient dimension 3 both), different manifold: still refused
    _one_line_error(path, "trained on Sphere(2), the model lives on Euclidean(3)", model=PlainFlow(Euclidean(3), hidden=8))
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.safetensors")


# ---------------------------------------------------------------------- kill -9 and resume through the CLI
STEPS = 60
ARGS = ["train", "--manifold", "sphere", "--data", "wrapped-mixture", "--model", "higher-gauge", "--hidden", "8",
        "--batch-size", "32", "--n-data", "300", "--steps", str(STEPS), "--checkpoint-every", "10",
        "--schedule", "cosine", "--warmup-steps", "5", "--val-size", "0", "--no-progress"]


def _cli(args, out):
    return [sys.executable, "-m", "gaugeflow.cli", *args, "--out", str(out)]


def test_sigkill_mid_run_then_resume_reproduces_the_loss_curve_exactly(tmp_path):
    full_dir, run_dir = tmp_path / "full", tmp_path / "killed"
    full = subprocess.Popen(_cli(ARGS, full_dir), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    victim = subprocess.Popen(_cli(ARGS, run_dir), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = run_dir / "checkpoint.safetensors"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, victim.stderr.read().decode()[-2000:]
    killed_at = read_checkpoint(ckpt).step
    assert 0 < killed_at < STEPS
    resumed = subprocess.run(_cli(ARGS + ["--resume"], run_dir), env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert full.wait(timeout=300) == 0, full.stderr.read().decode()[-2000:]
    curve_full = (full_dir / "metrics.csv").read_text().splitlines()
    curve_resumed = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(curve_full) == STEPS + 1
    assert curve_resumed == curve_full  # every loss, grad norm and lr, bit for bit (floats written with repr)
    a, b = read_checkpoint(full_dir), read_checkpoint(run_dir)
    assert a.step == b.step == STEPS
    assert a.tensors.keys() == b.tensors.keys()
    assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)  # weights, EMA, Adam state
    assert json.loads((run_dir / "config.json").read_text())["steps"] == STEPS


def test_checkpoints_from_before_the_graded_fields_rename_still_load(tmp_path):
    """HigherGaugeFlow's graded-field networks were saved as ``fields.*``; such checkpoints load."""
    from gaugeflow.models import HigherGaugeFlow
    from gaugeflow.training.checkpoint import Checkpoint, check_compatible

    torch.manual_seed(0)
    model = HigherGaugeFlow(Sphere(2), hidden=8)
    old = {"model/" + k.replace("graded_fields.", "fields."): v + 1 for k, v in model.state_dict().items()}
    old |= {"ema/" + k[len("model/"):]: v for k, v in old.items()}
    ckpt = Checkpoint(tmp_path / "old.safetensors", {"model_class": "HigherGaugeFlow", "manifold": "Sphere(2)"}, old)
    check_compatible(ckpt, model)
    for prefix in ("model", "ema"):
        weights = ckpt.weights(model, prefix)
        assert sorted(weights) == sorted(model.state_dict())
        fresh = HigherGaugeFlow(Sphere(2), hidden=8)
        fresh.load_state_dict(weights)
        assert torch.equal(fresh.graded_fields[0].out_layer.bias, old[prefix + "/fields.0.net.4.bias"])
