"""Early stopping on a validation plateau and the best weights (``plateau_tol``, ``best.safetensors``).

The criterion is the equal-compute study's (``gaugeflow.training.tools.plateaued``): a run stops at the
*first* validation where it holds, the best weights are the EMA weights of the lowest validation NLL,
written before the checkpoint that records that validation, and both survive a resume and an overwrite.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from gaugeflow.app import load_run
from gaugeflow.cli import main
from gaugeflow.data import wrapped_mixture
from gaugeflow.manifolds import Sphere
from gaugeflow.models import PlainFlow
from gaugeflow.training import TrainConfig, Trainer
from gaugeflow.training.checkpoint import read_checkpoint
from gaugeflow.training.tools import plateaued
from gaugeflow.training.trainer import validation_nll

pytestmark = pytest.mark.usefixtures("one_torch_thread")

M = Sphere(2)
DATA = wrapped_mixture(M, n_train=512, n_val=64, n_test=64, seed=0)
SETTINGS = dict(model="plain", hidden=16, n_data=512, batch_size=32, lr=3e-3, val_every=10, val_size=24, val_steps=2, progress=False, ema_decay=0.9)
TINY = ["--model", "plain", "--hidden", "8", "--batch-size", "16", "--n-data", "200", "--no-progress",
        "--val-size", "16", "--val-steps", "2"]


def _trainer(out=None, resume=False, **changes):
    torch.manual_seed(0)
    cfg = TrainConfig(**{**SETTINGS, "steps": 400, "plateau_tol": 0.05, "plateau_min_evals": 4, **changes})
    return Trainer(PlainFlow(M, hidden=16), DATA, cfg, out=out, resume=resume)


def _vals(tr) -> list[float]:
    return [v for _, v in tr.history.val]


def test_the_criterion():
    assert not plateaued([3.0, 2.0, 1.0], tol=0.01, min_evals=4)  # too few validations
    assert plateaued([3.0, 2.0, 2.0, 2.0], tol=0.01, min_evals=4)  # the last quarter gains nothing
    assert not plateaued([3.0, 2.0, 2.0, 1.9], tol=0.01, min_evals=4)  # it gains 0.1 > tol
    assert plateaued([3.0, 2.0, 2.0, 1.995], tol=0.01, min_evals=4)  # it gains 0.005 <= tol
    assert not plateaued([3.0, 2.5, 2.0, 1.5, 1.4, 1.3, 1.25, 1.2], tol=0.01, min_evals=4)  # last 2 of 8 still gain
    assert plateaued([3.0, 2.0, 2.0, math.nan], tol=0.01, min_evals=4)  # non-finite: never an improvement
    assert not plateaued([math.inf, math.nan, 2.0, 1.0], tol=0.01, min_evals=4)
    # the study's criterion is this one
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments" / "compute"))
    try:
        from compute_study import plateaued as study_plateaued
    finally:
        sys.path.pop(0)
    for vals in ([3.0, 2.0, 2.0, 2.0], [3.0, 2.0, 2.0, 1.9], [1.0] * 5, [5.0, 4.0, 3.0, 2.9, 2.89, 2.888]):
        assert study_plateaued(vals, {"plateau_tol": 0.01, "plateau_min_evals": 4}) == plateaued(vals, 0.01, 4)


def test_the_run_stops_at_the_first_validation_where_the_criterion_holds(tmp_path):
    tr = _trainer(out=tmp_path / "run")
    try:
        history = tr.fit()
    finally:
        tr.close()
    vals = _vals(tr)
    assert tr.stopped_early and history.steps < 400
    assert history.steps == tr.history.val[-1][0]  # it stopped right at a validation
    assert plateaued(vals, 0.05, 4) and not plateaued(vals[:-1], 0.05, 4)
    # the best: the lowest validation and the EMA weights of that step, kept in memory and on disk
    step, value = min(tr.history.val, key=lambda sv: sv[1])
    assert tr.best == (step, value)
    ckpt = read_checkpoint(tmp_path / "run" / "best.safetensors")
    assert ckpt.step == step and ckpt.meta["best_val_nll"] == value
    for k, v in tr.best_state.items():
        assert torch.equal(ckpt.group("model")[k], v)
    x = DATA.val[:24]
    assert validation_nll(tr.best_model(), x, 2) == pytest.approx(value, abs=1e-6)
    # the run folder reopens at either weights
    best, last = load_run(tmp_path / "run", weights="best"), load_run(tmp_path / "run")
    assert best.checkpoint.step == step and last.checkpoint.step == history.steps
    assert validation_nll(best.model, x, 2) == pytest.approx(value, abs=1e-6)
    assert validation_nll(last.model, x, 2) == pytest.approx(vals[-1], abs=1e-6)


def test_without_a_tolerance_every_step_runs_and_the_best_is_still_kept():
    tr = _trainer(steps=60, plateau_tol=None)
    history = tr.fit()
    assert history.steps == 60 and not tr.stopped_early and len(tr.history.val) == 6
    assert tr.best == min(tr.history.val, key=lambda sv: sv[1]) and tr.best_model() is not None


def test_a_stopped_run_resumes_as_finished_and_continues_without_the_criterion(tmp_path):
    out = tmp_path / "run"
    tr = _trainer(out=out)
    try:
        first = tr.fit().steps
        best, best_state = tr.best, tr.best_state
    finally:
        tr.close()
    again = _trainer(out=out, resume=True, steps=800)
    try:
        assert again.stopped_early and again.fit().steps == first  # nothing more to do
        assert again.best == best
        assert all(torch.equal(again.best_state[k], v) for k, v in best_state.items())
    finally:
        again.close()
    more = _trainer(out=out, resume=True, steps=first + 20, plateau_tol=None)
    try:
        assert more.fit().steps == first + 20
    finally:
        more.close()
    assert read_checkpoint(out / "best.safetensors").step == more.best[0]


def test_overwrite_removes_the_old_runs_best_weights(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--steps", "20", "--val-every", "10", "--out", str(out)]) == 0
    assert (out / "best.safetensors").is_file()
    assert main(["train", *TINY, "--steps", "5", "--val-size", "0", "--overwrite", "--out", str(out)]) == 0
    assert not (out / "best.safetensors").exists()  # it belonged to the replaced run
    capsys.readouterr()


def test_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", *TINY, "--lr", "3e-3", "--steps", "600", "--val-every", "10", "--plateau-tol", "0.1",
            "--plateau-min-evals", "4", "--out", str(out)]
    assert main(args) == 0
    said = capsys.readouterr().out
    assert "stopped early at step" in said and "best validation NLL" in said
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["plateau_tol"] == 0.1 and cfg["plateau_min_evals"] == 4
    stopped = read_checkpoint(out / "checkpoint.safetensors").step
    assert stopped < 600
    # resumed with early stopping turned off, it trains on
    assert main(["train", "--resume", "--out", str(out), "--steps", str(stopped + 10), "--plateau-tol", "off",
                 "--no-progress"]) == 0
    assert read_checkpoint(out / "checkpoint.safetensors").step == stopped + 10
    capsys.readouterr()
    # evaluate / sample / plot read the best weights on request
    assert main(["evaluate", str(out), "--weights", "best", "--n-test", "20", "--n-samples", "20", "--steps", "2"]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    assert result["weights"] == "best" and result["step"] == read_checkpoint(out / "best.safetensors").step
    assert main(["sample", str(out), "--weights", "best", "-n", "5", "--steps", "2", "-o", str(tmp_path / "s.npy")]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("flags, expected", [
    (["--plateau-tol", "0.01"], "plateau_tol needs validation during training (val_every > 0 and val_size > 0)"),
    (["--plateau-tol", "0.01", "--val-every", "10", "--val-size", "0"], "plateau_tol needs validation"),
    (["--plateau-tol", "-1", "--val-every", "10"], "plateau_tol must be >= 0 nats"),
    (["--plateau-tol", "soon"], "expected a number of nats or 'off', got 'soon'"),
    (["--plateau-min-evals", "1"], "plateau_min_evals must be >= 2"),
])
def test_bad_settings_are_one_line(tmp_path, capsys, flags, expected):
    try:
        code = main(["train", *TINY, "--steps", "5", *flags, "--out", str(tmp_path / "r")])
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "r" / "checkpoint.safetensors").exists()


def test_best_weights_missing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--steps", "3", "--val-size", "0", "--out", str(out)]) == 0
    capsys.readouterr()
    code = main(["evaluate", str(out), "--weights", "best"])
    err = capsys.readouterr().err
    assert code != 0 and len(err.strip().splitlines()) == 1 and "no best.safetensors in" in err, err
    with pytest.raises(ValueError, match="weights must be 'last' or 'best'"):
        load_run(out, weights="first")


def test_a_kill_between_the_best_weights_and_the_checkpoint_resumes_to_the_same_run(tmp_path, monkeypatch):
    ref = _trainer(steps=40, plateau_tol=None)
    ref.fit()
    out, save = tmp_path / "run", Trainer.save

    def killed_after_the_validation_of_step_20(self, path=None):
        if self.step == 20 and 20 in dict(self.history.val):  # the checkpoint that would record it
            raise KeyboardInterrupt
        return save(self, path)

    monkeypatch.setattr(Trainer, "save", killed_after_the_validation_of_step_20)
    tr = _trainer(out=out, steps=40, plateau_tol=None)
    with pytest.raises(KeyboardInterrupt):
        tr.fit()
    tr.close()
    monkeypatch.setattr(Trainer, "save", save)
    assert read_checkpoint(out / "best.safetensors").step == 20  # written; the checkpoint is of step 20, unvalidated
    assert 20 not in dict(read_checkpoint(out / "checkpoint.safetensors").group("history")["val"].tolist())
    again = _trainer(out=out, resume=True, steps=40, plateau_tol=None)
    try:
        again.fit()
    finally:
        again.close()
    assert again.history.val == ref.history.val and again.best == ref.best
    assert all(torch.equal(again.best_state[k], v) for k, v in ref.best_state.items())
    assert read_checkpoint(out / "best.safetensors").step == ref.best[0]
