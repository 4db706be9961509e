"""`moshivis train --dry-run`: exact parameter accounting and activations measured on the meta device."""

from __future__ import annotations

import json

import pytest

from moshivis.cli import main
from moshivis.train.config import load_config
from moshivis.train.memory import measure_activations, training_memory

GB = 1024 ** 3


@pytest.mark.parametrize("ckpt", [False, True])
def test_meta_measurement_equals_a_real_forward(ckpt):
    """The meta-device count is the count of the same forward run for real (tiny preset, CPU)."""
    cfg = load_config(None, ["model.preset=tiny"])
    meta = measure_activations(cfg, 2, 10, ckpt)
    real = measure_activations(cfg, 2, 10, ckpt, device="cpu")
    assert meta == real > 0


def test_7b_dry_run_accounting(capsys):
    assert main(["train", "--dry-run", "--json", "model.preset=moshika-vis-7b", "batch_size=64",
                 "data.max_frames=375", "model.activation_checkpointing=true", "--gpus", "8"]) == 0
    r = json.loads(capsys.readouterr().out)
    gb = r["gb"]
    assert r["micro_batch_per_gpu"] == 8 and r["seconds"] == 30
    assert r["trainable_params"] == 206_184_448
    assert gb["parameters"] == pytest.approx((r["frozen_params"] * 2 + r["trainable_params"] * 4) / 8 / GB)
    assert gb["gradients"] == pytest.approx(r["trainable_params"] * 4 / 8 / GB)
    assert gb["optimizer"] == pytest.approx(r["trainable_params"] * 8 / 8 / GB)
    assert 0 < gb["activations"] < gb["total"] < 80 and r["fits"]


def test_checkpointing_cuts_activations():
    cfg = load_config(None, ["model.preset=small", "batch_size=2", "data.max_frames=50"])
    off = training_memory(cfg, gpus=1)
    cfg.model.activation_checkpointing = True
    on = training_memory(cfg, gpus=1)
    assert on["gb"]["activations"] < 0.5 * off["gb"]["activations"]
    assert on["gb"]["recompute_peak"] > 0 and off["gb"]["recompute_peak"] == 0
