"""The ``gaugeflow`` command: happy paths (train/evaluate/sample/plot/reproduce, config files) and bad input."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gaugeflow.cli import main

TINY = ["--hidden", "8", "--batch-size", "16", "--n-data", "200", "--no-progress"]
PNG = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cli(argv, capsys):
    """Run the command in-process; returns ``(exit status, stdout, stderr)``."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:  # argparse's own exits (--help, unparsable values)
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def sphere_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "sphere"
    code = main(["train", "--manifold", "sphere", "--data", "wrapped-mixture", "--model", "higher-gauge", "--steps", "40",
                 "--lr", "3e-3", "--val-size", "16", "--out", str(out), *TINY])
    assert code == 0
    return out


def test_train_writes_a_run(sphere_run):
    assert {p.name for p in sphere_run.iterdir()} >= {"checkpoint.safetensors", "config.json", "metrics.csv"}
    cfg = json.loads((sphere_run / "config.json").read_text())
    assert cfg["model"] == "higher-gauge" and cfg["steps"] == 40 and cfg["hidden"] == 8 and cfg["progress"] is False
    assert len((sphere_run / "metrics.csv").read_text().splitlines()) == 41


def test_evaluate_prints_nll_and_metrics_and_writes_json(sphere_run, capsys):
    code, out, err = cli(["evaluate", sphere_run, "--n-test", "100", "--n-samples", "200", "--steps", "5"], capsys)
    assert code == 0, err
    assert "test NLL:" in out and "nats" in out and "energy distance:" in out
    result = json.loads((sphere_run / "evaluation.json").read_text())
    assert result["n_test"] == 100 and result["step"] == 40
    assert math.isfinite(result["test_nll"]) and result["test_nll"] < math.log(4 * math.pi)  # beats the uniform p0
    assert result["energy_distance"] >= 0 and 0 <= result["mode_coverage"] <= 1


def test_sample_writes_points_on_the_manifold(sphere_run, tmp_path, capsys):
    target = tmp_path / "s.npy"
    code, out, err = cli(["sample", sphere_run, "-n", "50", "-o", target, "--steps", "5"], capsys)
    assert code == 0, err
    x = np.load(target)
    assert x.shape == (50, 3) and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)


def test_plot_sphere_writes_pngs(sphere_run, capsys):
    code, out, err = cli(["plot", sphere_run, "--grid", "8", "--steps", "2"], capsys)
    assert code == 0, err
    for name in ("loss.png", "density.png"):
        assert (sphere_run / "figures" / name).read_bytes()[:8] == PNG


@pytest.mark.parametrize("manifold, figure", [("torus", "ramachandran.png"), ("euclidean", "scatter.png")])
def test_plot_torus_and_plane(tmp_path, capsys, manifold, figure):
    run = tmp_path / manifold
    code, _, err = cli(["train", "--manifold", manifold, "--model", "gauge", "--steps", "3", "--val-size", "0",
                        "--out", run, *TINY], capsys)
    assert code == 0, err
    code, out, err = cli(["plot", run, "--grid", "6", "--steps", "2", "--n-samples", "50"], capsys)
    assert code == 0, err
    assert (run / "figures" / figure).read_bytes()[:8] == PNG and figure in out


@pytest.mark.parametrize("suffix, text", [
    (".toml", 'model = "plain"\nsteps = 2\nhidden = 8\nbatch-size = 16\nn_data = 200\nval_size = 0\nlr = 1\n'),
    (".yaml", "model: plain\nsteps: 2\nhidden: 8\nbatch_size: 16\nn-data: 200\nval_size: 0\nlr: 1\n"),
])
def test_config_files_and_flags_override_them(tmp_path, capsys, suffix, text):
    conf = tmp_path / f"run{suffix}"
    conf.write_text(text)
    code, out, err = cli(["train", "--config", conf, "--steps", "3", "--out", tmp_path / "r", "--no-progress"], capsys)
    assert code == 0, err
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (cfg["model"], cfg["steps"], cfg["hidden"], cfg["batch_size"], cfg["lr"]) == ("plain", 3, 8, 16, 1.0)


def test_reproduce_delegates_to_the_experiment_script(tmp_path, monkeypatch, capsys):
    script = tmp_path / "experiments" / "demo" / "run.py"
    script.parent.mkdir(parents=True)
    script.write_text("import sys, pathlib\npathlib.Path('ran.txt').write_text(' '.join(sys.argv[1:]))\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(["reproduce", "demo", "--quick"], capsys)
    assert code == 0, err
    assert (tmp_path / "ran.txt").read_text() == "--quick"


def test_every_config_field_has_a_train_flag():
    import dataclasses

    from gaugeflow.cli import build_parser
    from gaugeflow.training import TrainConfig

    args = build_parser().parse_args(["train"])
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"progress"}  # progress: --no-progress
    assert fields <= set(vars(args)), fields - set(vars(args))


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["sample"], ["plot"], ["reproduce"]])
def test_help(capsys, command):
    code, out, _ = cli([*command, "--help"], capsys)
    assert code == 0 and "usage: gaugeflow" in out


# ---------------------------------------------------------------------- bad input: one line, a distinct exit code
def _bad(capsys, argv, expected, status=2):
    code, out, err = cli(argv, capsys)
    assert code == status, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("gaugeflow") and "error:" in lines[0]
    assert expected in lines[0], lines[0]


@pytest.mark.parametrize("flags, expected", [
    (["--manifold", "klein-bottle"], "unknown manifold 'klein-bottle'; expected one of: euclidean, hyperbolic, mesh, se3, so3, sphere, torus, or package.module:Name"),
    (["--data", "nope"], "unknown data set 'nope'; expected one of:"),
    (["--model", "huge"], "unknown model 'huge'; expected one of: gauge, higher-gauge, plain, tensor-gauge, or package.module:Name"),
    (["--steps", "-5"], "steps must be >= 0, got -5"),
    (["--steps", "ten"], "argument --steps: invalid int value: 'ten'"),
    (["--lr", "0"], "lr must be > 0, got 0.0"),
    (["--lr", "-1e-3"], "lr must be > 0"),
    (["--lr", "nan"], "lr must be finite"),
    (["--batch-size", "0"], "batch_size must be >= 1, got 0"),
    (["--dim", "0"], "dim must be >= 1"),
    (["--hidden", "-3"], "hidden must be >= 1"),
    (["--ema-decay", "1.5"], "ema_decay must be in [0, 1)"),
    (["--schedule", "exp"], "schedule must be one of constant, cosine, linear"),
    (["--optimizer", "sgd"], "optimizer must be one of adam, adamw"),
    (["--device", "tpu"], "device must be auto, cpu, cuda or cuda:N"),
    (["--data", "gaussian-mixture"], "gaussian-mixture lives on Euclidean"),
    (["--threads", "0"], "--threads must be a positive integer, got 0"),
])
def test_train_bad_values(tmp_path, capsys, flags, expected):
    _bad(capsys, ["train", *flags, "--out", tmp_path / "r", "--no-progress"], expected)
    assert not (tmp_path / "r" / "checkpoint.safetensors").exists()


def test_diverging_training_stops_with_exit_1_and_one_line(tmp_path, capsys):
    code, out, err = cli(["train", "--model", "plain", "--lr", "1e30", "--max-nonfinite", "3", "--steps", "50",
                          "--val-size", "0", "--out", tmp_path, *TINY], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "non-finite for 3 consecutive steps" in err and "lower the learning rate (lr=1e+30)" in err


def test_train_bad_files_and_dirs(tmp_path, capsys):
    _bad(capsys, ["train", "--steps", "2"], "--out DIR is required")
    _bad(capsys, ["train", "--config", tmp_path / "missing.toml", "--out", tmp_path / "r"], "config file not found")
    for name, text, expected in [("a.toml", "steps = [", "could not be parsed"), ("b.yaml", "steps: [1, 2", "could not be parsed"),
                                 ("c.toml", "stepz = 3", "unknown setting(s) stepz"), ("d.json", "{}", "expected a .toml"),
                                 ("e.yaml", "- 1\n- 2\n", "expected a table/mapping")]:
        (tmp_path / name).write_text(text)
        _bad(capsys, ["train", "--config", tmp_path / name, "--out", tmp_path / "r"], expected)
    _bad(capsys, ["train", "--resume", "--out", tmp_path / "empty"], "no checkpoint in")
    (tmp_path / "file").write_text("x")
    _bad(capsys, ["train", "--out", tmp_path / "file"], "exists and is not a directory")


def test_train_refuses_to_overwrite_a_run(sphere_run, capsys):
    _bad(capsys, ["train", "--out", sphere_run], "already holds a run; pass --resume")
    _bad(capsys, ["train", "--out", sphere_run, "--resume", "--overwrite"], "--resume and --overwrite exclude each other")


def test_overwrite_replaces_a_run(tmp_path, capsys):
    args = ["train", "--model", "plain", "--val-size", "0", "--out", tmp_path, *TINY]
    assert cli([*args, "--steps", "3"], capsys)[0] == 0
    code, _, err = cli([*args, "--steps", "2", "--overwrite"], capsys)
    assert code == 0, err
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 3
    assert json.loads((tmp_path / "config.json").read_text())["steps"] == 2


def test_run_commands_bad_input(sphere_run, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for command in (["evaluate"], ["plot"], ["sample", "-o", tmp_path / "s.npy"]):
        _bad(capsys, [*command[:1], tmp_path / "missing", *command[1:]], "run directory not found")
        _bad(capsys, [*command[:1], empty, *command[1:]], "no checkpoint.safetensors in")
    broken = tmp_path / "broken"
    broken.mkdir()
    data = (sphere_run / "checkpoint.safetensors").read_bytes()
    (broken / "checkpoint.safetensors").write_bytes(data[: len(data) // 3])
    _bad(capsys, ["evaluate", broken], "truncated checkpoint", status=4)
    _bad(capsys, ["sample", sphere_run, "-o", tmp_path / "s.txt"], "-o must name a .npy file")
    _bad(capsys, ["sample", sphere_run, "-n", "0", "-o", tmp_path / "s.npy"], "-n must be a positive integer, got 0")
    _bad(capsys, ["sample", sphere_run, "-o", tmp_path / "no" / "s.npy"], "output directory does not exist")
    _bad(capsys, ["evaluate", sphere_run, "--n-test", "-1"], "--n-test must be a positive integer")
    _bad(capsys, ["plot", sphere_run, "--grid", "0"], "--grid must be a positive integer")
    _bad(capsys, ["sample", sphere_run, "-o", tmp_path / "s.npy", "--method", "leapfrog"], "unknown method 'leapfrog'")


def test_unknown_command_and_experiment(tmp_path, monkeypatch, capsys):
    _bad(capsys, ["fly"], "invalid choice: 'fly'")
    _bad(capsys, [], "the following arguments are required: COMMAND")
    monkeypatch.chdir(tmp_path)
    _bad(capsys, ["reproduce", "nope"], "experiment 'nope' not found: expected experiments/nope/run.py")


def test_console_script_reports_one_line_without_traceback(tmp_path):
    exe = Path(sys.executable).with_name("gaugeflow")
    assert exe.is_file(), "the console script `gaugeflow` is installed next to the interpreter (pip install -e .)"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(exe), "train", "--model", "huge", "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("gaugeflow train: error: unknown model 'huge'; "
                                   "expected one of: gauge, higher-gauge, plain, tensor-gauge, or package.module:Name")


# ---------------------------------------------------------------------- hyperbolic space end to end
# Network outputs become velocities through Manifold.to_tangent (on the hyperboloid the boost from the
# origin, an isometry) and network inputs are Poincaré-ball coordinates, so a learned field's speed does
# not grow with the distance from the origin and forward solves from far base points stay finite.


@pytest.mark.parametrize("model", ["plain", "gauge", "higher-gauge"])
def test_hyperbolic_end_to_end(tmp_path, capsys, model):
    """train (with its final validation), evaluate, sample and plot on H²: finite numbers, points on the sheet."""
    run = tmp_path / model
    code, out, err = cli(["train", "--manifold", "hyperbolic", "--model", model, "--steps", "30", "--lr", "3e-3",
                          "--val-size", "32", "--out", run, *TINY], capsys)
    assert code == 0, err
    assert "validation NLL" in out and json.loads((run / "config.json").read_text())["manifold"] == "hyperbolic"
    code, out, err = cli(["evaluate", run, "--n-test", "64", "--n-samples", "64", "--steps", "10"], capsys)
    assert code == 0, err
    result = json.loads((run / "evaluation.json").read_text())
    assert math.isfinite(result["test_nll"]) and math.isfinite(result["energy_distance"]) and result["step"] == 30
    code, _, err = cli(["sample", run, "-n", "64", "--steps", "10", "-o", tmp_path / "h.npy"], capsys)
    assert code == 0, err
    x = np.load(tmp_path / "h.npy").astype(np.float64)
    assert x.shape == (64, 3) and np.isfinite(x).all() and (x[:, 0] >= 1).all()
    lorentz = -x[:, 0] ** 2 + (x[:, 1:] ** 2).sum(1)
    assert np.allclose(lorentz, -1, rtol=0, atol=1e-3 * (1 + (x ** 2).sum(1)).max())
    code, out, err = cli(["plot", run, "--steps", "4", "--n-samples", "64"], capsys)
    assert code == 0, err
    assert (run / "figures" / "scatter.png").read_bytes()[:8] == PNG


@pytest.mark.parametrize("env, flag, expected", [({}, [], 1), ({"OMP_NUM_THREADS": "2"}, [], None), ({}, ["--threads", "2"], 2)])
def test_the_command_runs_on_one_thread_unless_told_otherwise(monkeypatch, tmp_path, capsys, env, flag, expected):
    import torch

    from gaugeflow.cli import main

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        assert main(["evaluate", str(tmp_path / "no-run"), *flag]) != 0  # fails after the thread setting
        assert torch.get_num_threads() == (3 if expected is None else expected)
    finally:
        torch.set_num_threads(before)
