"""Resume after a real kill: `moshivis train` is SIGKILLed mid-run, `--resume` finishes it, and every step
after the checkpoint has exactly the loss of an uninterrupted run (CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from colors import make_colour_shards

STEPS = 60


def write_config(tmp: Path, shards: Path, name: str) -> Path:
    cfg = {"out_dir": str(tmp / name), "steps": STEPS, "batch_size": 8, "save_every": 5, "seed": 1,
           "tensorboard": False, "optim": {"lr": 0.01, "warmup_steps": 3},
           "data": {"shards": [str(shards)], "max_frames": 12, "p_audio": 0.5}}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def train_cmd(cfg: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "moshivis.cli", "train", str(cfg), *extra]


def losses(run: Path) -> dict[int, float]:
    """Last logged loss per step (a killed run may have logged steps that were later redone)."""
    out: dict[int, float] = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        m = json.loads(line)
        out[m["step"]] = m["loss"]
    return out


def test_kill_then_resume_equals_uninterrupted(tmp_path):
    shards = make_colour_shards(tmp_path, n=32)
    env = dict(os.environ, OMP_NUM_THREADS="1", NO_TORCH_COMPILE="1")
    cwd = Path(__file__).resolve().parents[2]
    whole = write_config(tmp_path, shards, "whole")
    subprocess.run(train_cmd(whole), env=env, cwd=cwd, check=True, capture_output=True, timeout=300)

    cut = write_config(tmp_path, shards, "cut")
    proc = subprocess.Popen(train_cmd(cut), env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marker = tmp_path / "cut" / "checkpoints" / "step_000010"
    deadline = time.time() + 240
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    done_before = len((tmp_path / "cut" / "metrics.jsonl").read_text().splitlines())
    assert done_before < STEPS

    subprocess.run(train_cmd(cut, "--resume"), env=env, cwd=cwd, check=True, capture_output=True, timeout=300)
    a, b = losses(tmp_path / "whole"), losses(tmp_path / "cut")
    assert sorted(b) == list(range(1, STEPS + 1))
    assert all(a[s] == b[s] for s in range(1, STEPS + 1)), [(s, a[s], b[s]) for s in a if a[s] != b[s]][:5]
