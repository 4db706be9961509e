"""`LMConfig.user_input_codebooks`: the user's acoustic codebooks left out of the input, at train and test.

The embedded model hears the user's semantic codebook only, so it cannot key on speaker-specific acoustic
codes; the option must cut those streams out of every path (teacher-forced forward and streaming step),
keep the checkpoint layout (all embedding tables stay), and round-trip through the saved config.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from moshivis.config import ModelConfig, preset, tiny
from moshivis.models.lm import MoshiLM
from moshivis.models.loaders import build_model, load_model, save_checkpoint


def _lm(user_inputs: int | None) -> MoshiLM:
    cfg = tiny().lm
    torch.manual_seed(0)
    return MoshiLM(dataclasses.replace(cfg, user_input_codebooks=user_inputs)).eval()


def _codes(cfg, T: int = 12, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, cfg.audio_card, (1, cfg.num_streams, T), generator=g)
    codes[:, 0] = torch.randint(0, cfg.text_card, (1, T), generator=g)
    return codes


def test_acoustic_user_codebooks_do_not_reach_the_model() -> None:
    lm = _lm(1)
    codes = _codes(lm.cfg)
    other = codes.clone()
    other[:, 10:] = torch.randint(0, lm.cfg.audio_card, other[:, 10:].shape)  # user codebooks 1..7
    with torch.no_grad():
        a, b = lm(codes), lm(other)
    torch.testing.assert_close(a.text_logits, b.text_logits, equal_nan=True)
    torch.testing.assert_close(a.audio_logits, b.audio_logits, equal_nan=True)
    # ... while the semantic one (stream 9) still does.
    sem = codes.clone()
    sem[:, 9] = (sem[:, 9] + 1) % lm.cfg.audio_card
    with torch.no_grad():
        c = lm(sem)
    assert not torch.allclose(a.text_logits[:, :, 2:].nan_to_num(), c.text_logits[:, :, 2:].nan_to_num())


def test_all_user_codebooks_by_default() -> None:
    lm = _lm(None)
    codes = _codes(lm.cfg)
    other = codes.clone()
    other[:, 16] = (other[:, 16] + 1) % lm.cfg.audio_card
    with torch.no_grad():
        assert not torch.allclose(lm(codes).text_logits[:, :, 3:].nan_to_num(),
                                  lm(other).text_logits[:, :, 3:].nan_to_num())


def test_out_of_range_value_is_named() -> None:
    with pytest.raises(ValueError, match="user_input_codebooks=9"):
        _lm(9)


def test_round_trip_and_tinyworld_default(tmp_path: Path) -> None:
    assert preset("tinyworld").lm.user_input_codebooks == 1
    mc = tiny()
    mc.lm.user_input_codebooks = 2
    model = build_model(mc)
    path = tmp_path / "m.safetensors"
    save_checkpoint(model, path)
    back = load_model(path)
    assert back.cfg.lm.user_input_codebooks == 2
    # The layout is unchanged: every embedding table is still there, so checkpoints load strictly either way.
    assert len(back.lm.audio_emb) == mc.lm.n_q
    old = ModelConfig.from_dict({k: v for k, v in tiny().to_dict().items()})
    assert old.lm.user_input_codebooks is None
