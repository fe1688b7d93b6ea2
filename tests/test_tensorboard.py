"""Logging (issue 21, item 4). ``--logger tensorboard`` writes event files to RUN/tensorboard -- per-step
loss, gradient norm and learning rate, steps/s per window, validation NLL and the density picture at
each validation -- read back here with TensorBoard's own event reader; metrics.csv is still written,
with the same numbers, and logging does not change the training run. Without the ``tensorboard`` extra
the command says so in one line before touching the run folder. The progress bar shows loss and
steps/s on a terminal (a pseudo-terminal here) and prints nothing into a log (a pipe).
"""
import csv
import fcntl
import importlib.util
import math
import os
import pty
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest

from gaugeflow.cli import main
from gaugeflow.training import TrainConfig

needs_tensorboard = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                       reason="the tensorboard extra is not installed (pip install 'gaugeflow[tensorboard]')")

RUN = ["train", "--manifold", "sphere", "--data", "wrapped-mixture", "--model", "gauge", "--hidden", "16",
       "--batch-size", "64", "--val-every", "10", "--val-size", "64", "--val-steps", "4", "--threads", "1"]


def _events(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def _csv(run):
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _scalars(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 20-step run with --logger tensorboard and the same run with the default (csv) logger."""
    root = tmp_path_factory.mktemp("tb")
    assert main(RUN + ["--steps", "20", "--out", str(root / "tb"), "--logger", "tensorboard"]) == 0
    assert main(RUN + ["--steps", "20", "--out", str(root / "csv")]) == 0
    return root / "tb", root / "csv"


@needs_tensorboard
def test_event_file_holds_the_runs_scalars(runs):
    tb, _ = runs
    acc = _events(tb)
    tags = acc.Tags()
    assert {"train/loss", "train/grad_norm", "train/lr", "train/steps_per_s", "val/nll"} <= set(tags["scalars"])
    rows = _csv(tb)  # log_every 1: one row per step, the validations in val_nll
    loss, lr = _scalars(acc, "train/loss"), _scalars(acc, "train/lr")
    assert [s for s, _ in loss] == list(range(1, 21)) == [int(r["step"]) for r in rows]
    for (_, v), r in zip(loss, rows):  # event files store float32
        assert v == pytest.approx(float(r["loss"]), rel=1e-6)
    for (_, v), r in zip(lr, rows):
        assert v == pytest.approx(float(r["lr"]), rel=1e-6)
    val = _scalars(acc, "val/nll")
    assert [s for s, _ in val] == [10, 20]
    csv_val = {int(r["step"]): float(r["val_nll"]) for r in rows if r["val_nll"]}
    assert [v for _, v in val] == pytest.approx([csv_val[10], csv_val[20]], rel=1e-6)
    rates = _scalars(acc, "train/steps_per_s")
    assert rates and all(math.isfinite(v) and v > 0 for _, v in rates)
    assert rates[-1][0] == 20


@needs_tensorboard
def test_density_picture_at_each_validation(runs):
    tb, _ = runs
    acc = _events(tb)
    assert "density" in acc.Tags()["images"]
    images = acc.Images("density")
    assert [im.step for im in images] == [10, 20]
    import io

    from PIL import Image
    pixels = np.asarray(Image.open(io.BytesIO(images[-1].encoded_image_string)).convert("RGB"))
    assert pixels.shape[0] > 200 and pixels.shape[1] > 300 and pixels.shape[2] == 3
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # a coloured map, not a blank canvas


@needs_tensorboard
def test_logging_does_not_change_the_run(runs):
    tb, plain = runs
    assert (tb / "metrics.csv").read_bytes() == (plain / "metrics.csv").read_bytes()
    assert not (plain / "tensorboard").exists()  # csv is the default logger


@needs_tensorboard
def test_resume_logs_each_step_once(tmp_path):
    out = tmp_path / "run"
    assert main(RUN + ["--steps", "10", "--out", str(out), "--logger", "tensorboard"]) == 0
    assert main(RUN + ["--steps", "20", "--out", str(out), "--logger", "tensorboard", "--resume"]) == 0
    acc = _events(out)
    assert [s for s, _ in _scalars(acc, "train/loss")] == list(range(1, 21))
    assert [s for s, _ in _scalars(acc, "val/nll")] == [10, 20]


def test_missing_extra_is_one_line_and_touches_nothing(tmp_path, monkeypatch, capsys):
    # None in sys.modules makes `import tensorboard` (and torch.utils.tensorboard) raise ImportError
    for name in [m for m in sys.modules if m == "tensorboard" or m.startswith(("tensorboard.", "torch.utils.tensorboard"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    out = tmp_path / "run"
    assert main(RUN + ["--steps", "5", "--out", str(out), "--logger", "tensorboard"]) == 5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("gaugeflow train: error: logger 'tensorboard' needs the optional package 'tensorboard'")
    assert "pip install 'gaugeflow[tensorboard]'" in err[0]
    assert not out.exists()


def test_unknown_logger_is_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="logger must be one of csv, tensorboard, got 'wandb'"):
        TrainConfig(logger="wandb")
    assert main(RUN + ["--steps", "5", "--out", str(tmp_path / "run"), "--logger", "wandb"]) == 2
    assert "logger must be one of csv, tensorboard" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def _train_with_stderr(out, stderr):
    return subprocess.Popen([sys.executable, "-m", "gaugeflow.cli"] + RUN + ["--steps", "40", "--val-size", "0",
                            "--out", str(out)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)


def test_progress_bar_on_a_terminal_shows_loss_and_rate(tmp_path):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a 120-column terminal
    proc = _train_with_stderr(tmp_path / "run", slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=300) == 0
    screen = b"".join(chunks).decode(errors="replace")
    assert "40/40" in screen and "step/s" in screen and "loss=" in screen, screen[-500:]


def test_progress_bar_is_quiet_in_a_log(tmp_path):
    proc = _train_with_stderr(tmp_path / "run", subprocess.PIPE)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode()
    assert b"step/s" not in stderr and b"40/40" not in stderr, stderr.decode()[-500:]
    assert stdout.decode().startswith("trained 40 steps")
