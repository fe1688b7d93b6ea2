"""Multi-process training: ``torchrun --nproc_per_node=2`` of the ``gaugeflow train`` command on CPU (gloo).

Checks: identical parameters on both ranks after 50 steps; the 2-process run's (all-reduced) loss curve and
final weights match a 1-process run with the same global batch to float tolerance; only rank 0 writes.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from gaugeflow.training import read_checkpoint

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
STEPS = 50
ARGS = ["train", "--manifold", "sphere", "--data", "wrapped-mixture", "--model", "higher-gauge", "--hidden", "8",
        "--batch-size", "32", "--n-data", "300", "--steps", str(STEPS), "--val-size", "0", "--no-progress",
        "--device", "cpu"]

# Runs the real CLI under torchrun; the only addition is that every rank dumps its final weights.
RANK_DUMP = textwrap.dedent("""
    import os, sys
    from safetensors.torch import save_file
    import gaugeflow.training.trainer as T

    _fit = T.Trainer.fit

    def fit(self):
        history = _fit(self)
        state = {k: v.detach().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, os.path.join(sys.argv[1], f"rank{self.env.rank}-of-{self.env.world}.safetensors"))
        return history

    T.Trainer.fit = fit
    from gaugeflow.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def _losses(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(tmp_path):
    script, dumps = tmp_path / "rank_dump.py", tmp_path / "dumps"
    script.write_text(RANK_DUMP)
    dumps.mkdir()
    ddp_cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(script), str(dumps), *ARGS, "--out", str(tmp_path / "ddp")]
    single_cmd = [sys.executable, "-m", "gaugeflow.cli", *ARGS, "--out", str(tmp_path / "single")]
    single = subprocess.Popen(single_cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ddp = subprocess.run(ddp_cmd, env=ENV, capture_output=True, text=True, timeout=400)
    out, err = single.communicate(timeout=400)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert single.returncode == 0, err[-3000:]
    assert ddp.stdout.count("trained 50 steps") == 1  # only rank 0 reports

    r0, r1 = (load_file(str(dumps / f"rank{r}-of-2.safetensors")) for r in (0, 1))
    assert r0.keys() == r1.keys()
    assert all(torch.equal(r0[k], r1[k]) for k in r0)  # DDP keeps the replicas identical, bit for bit

    loss_ddp, loss_single = _losses(tmp_path / "ddp"), _losses(tmp_path / "single")
    assert len(loss_ddp) == len(loss_single) == STEPS  # rank 1 wrote no rows
    torch.testing.assert_close(torch.tensor(loss_ddp), torch.tensor(loss_single), rtol=1e-4, atol=1e-5)
    ck_ddp, ck_single = read_checkpoint(tmp_path / "ddp"), read_checkpoint(tmp_path / "single")
    assert ck_ddp.meta["world_size"] == 2 and ck_single.meta["world_size"] == 1
    for name, value in ck_single.group("model").items():
        torch.testing.assert_close(ck_ddp.group("model")[name], value, rtol=1e-3, atol=1e-4)
        assert torch.equal(ck_ddp.group("model")[name], r0[name])  # rank 0 wrote its own weights
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == [  # rank 0's run, its manifest and lock only
        ".gaugeflow.lock", "checkpoint.safetensors", "config.json", "gaugeflow-run.json", "metrics.csv"]
