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


def _lm(user_inputs: int | None, model_inputs: int | None = None) -> MoshiLM:
    cfg = tiny().lm
    torch.manual_seed(0)
    return MoshiLM(dataclasses.replace(cfg, user_input_codebooks=user_inputs,
                                       model_input_codebooks=model_inputs)).eval()


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


def test_own_acoustic_codebooks_are_not_fed_back() -> None:
    """model_input_codebooks=1: the model's codebooks 1..7 (streams 2..8) do not reach the temporal
    transformer, so its text logits ignore them; its own semantic codebook still does."""
    lm = _lm(1, 1)
    codes = _codes(lm.cfg)
    other = codes.clone()
    other[:, 2:9] = torch.randint(0, lm.cfg.audio_card, other[:, 2:9].shape)
    with torch.no_grad():
        a, b = lm.forward_temporal(codes), lm.forward_temporal(other)
    torch.testing.assert_close(a[1], b[1])
    sem = codes.clone()
    sem[:, 1] = (sem[:, 1] + 1) % lm.cfg.audio_card
    with torch.no_grad():
        assert not torch.allclose(a[1], lm.forward_temporal(sem)[1])


def test_out_of_range_value_is_named() -> None:
    with pytest.raises(ValueError, match="user_input_codebooks=9"):
        _lm(9)
    with pytest.raises(ValueError, match="model_input_codebooks=-1"):
        _lm(None, -1)


def test_round_trip_and_tinyworld_default(tmp_path: Path) -> None:
    assert preset("tinyworld").lm.audio_inputs == (0, 8)  # the semantic codebook of each side
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
