"""`torchrun --nproc-per-node 2` on CPU (gloo) gives the loss curve of one process with the same global
batch, for DDP and FSDP2; gradient accumulation too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from colors import make_colour_shards
from moshivis.train.config import load_config
from moshivis.train.distributed import DistInfo
from moshivis.train.trainer import Trainer

WORKER = Path(__file__).with_name("dist_worker.py")
STEPS = 6


def overrides(tmp_path: Path, shards: Path, name: str, **extra) -> list[str]:
    base = {"data.shards": f"[{shards}]", "out_dir": str(tmp_path / name), "steps": STEPS, "batch_size": 8,
            "optim.lr": 3e-2, "optim.warmup_steps": 2, "data.max_frames": 12, "tensorboard": "false",
            "save_every": 1000, "data.p_audio": 0.5, "data.audio_only": 0.5, "seed": 3}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dist")
    shards = make_colour_shards(tmp, n=48, audio_only=16)
    single = Trainer(load_config(None, overrides(tmp, shards, "single")),
                     DistInfo(0, 1, 0, torch.device("cpu"))).run(show_progress=False)
    return tmp, shards, [m.loss for m in single]


def torchrun(tmp: Path, shards: Path, mode: str) -> list[float]:
    out = tmp / f"{mode}.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", NO_TORCH_COMPILE="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(WORKER),
           str(out), *overrides(tmp, shards, mode, distributed=mode)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_processes_match_one(setup, mode):
    tmp, shards, single = setup
    losses = torchrun(tmp, shards, mode)
    assert len(losses) == STEPS
    worst = max(abs(a - b) for a, b in zip(losses, single))
    print(f"{mode}: max |loss difference| over {STEPS} steps = {worst:.2e}")
    assert worst < 1e-5, (losses, single)
    assert single[-1] < single[0]  # it trains


def test_gradient_accumulation_matches(setup):
    tmp, shards, single = setup
    accum = Trainer(load_config(None, overrides(tmp, shards, "accum", grad_accum=2)),
                    DistInfo(0, 1, 0, torch.device("cpu"))).run(show_progress=False)
    assert max(abs(a.loss - b) for a, b in zip(accum, single)) < 1e-5
