"""data.hide_moshi_audio: Moshi's recorded voice hidden from the transformer's inputs in chosen spoken
samples, while its audio stays a target."""

from __future__ import annotations

import pytest
import torch
from colors import make_colour_shards

from moshivis.config import tiny
from moshivis.models.lm import MoshiLM
from moshivis.train.hidden_voice import chosen, hide_moshi_voice
from moshivis.train.trainer import Trainer
from test_trainer import SINGLE, config, run_recording_inputs


def _codes(B: int = 4, T: int = 10) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 64, (B, 17, T), generator=g)


def test_only_spoken_samples_are_hidden_and_only_moshis_audio() -> None:
    codes = _codes()
    kinds = ["image_speech", "speechless", "audio_only", "text_only"]
    inputs = hide_moshi_voice(codes, kinds, [f"s{i}" for i in range(4)], 1.0, seed=0, step=0)
    assert inputs is not None
    for j, kind in enumerate(kinds):
        hidden = kind in ("image_speech", "audio_only")
        assert bool((inputs[j, 1:9] == -1).all()) is hidden
        assert torch.equal(inputs[j, 0], codes[j, 0]) and torch.equal(inputs[j, 9:], codes[j, 9:])
    assert not (codes == -1).any()  # the batch itself is untouched
    assert hide_moshi_voice(codes, kinds, ["a", "b", "c", "d"], 0.0, seed=0, step=0) is None
    with pytest.raises(ValueError, match="hide probability"):
        hide_moshi_voice(codes, kinds, ["a", "b", "c", "d"], 1.5, seed=0, step=0)


def test_draws_are_seeded_and_near_the_probability() -> None:
    draws = [chosen(0, 7, f"id{i}", 0.3) for i in range(2000)]
    assert draws == [chosen(0, 7, f"id{i}", 0.3) for i in range(2000)]  # same step, same choice
    assert 0.26 < sum(draws) / len(draws) < 0.34
    assert draws != [chosen(0, 8, f"id{i}", 0.3) for i in range(2000)]  # a new step draws anew


def test_lm_reads_inputs_but_predicts_codes() -> None:
    torch.manual_seed(0)
    lm = MoshiLM(tiny().lm).eval()
    cfg = lm.cfg
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, cfg.audio_card, (1, cfg.num_streams, 12), generator=g)
    codes[:, 0] = torch.randint(0, cfg.text_card, (1, 12), generator=g)
    hidden = codes.clone()
    hidden[:, 1:9] = -1
    with torch.no_grad():
        plain, same, blind = lm(codes), lm(codes, inputs=codes.clone()), lm(codes, inputs=hidden)
    torch.testing.assert_close(plain.text_logits, same.text_logits, equal_nan=True)
    torch.testing.assert_close(plain.audio_logits, same.audio_logits, equal_nan=True)
    # Targets come from codes: the same positions are predicted, Moshi's audio included.
    assert torch.equal(plain.text_mask, blind.text_mask) and torch.equal(plain.audio_mask, blind.audio_mask)
    assert blind.audio_mask.any()
    # What the transformer read differs after the first step (step 0 reads only initial tokens).
    assert not torch.allclose(plain.text_logits[..., 2:, :], blind.text_logits[..., 2:, :])
    with pytest.raises(ValueError, match="inputs have shape"):
        lm(codes, inputs=codes[:, :, :5])


def test_trainer_hides_moshis_voice_in_spoken_batches(tmp_path) -> None:
    shards = make_colour_shards(tmp_path, n=8, audio_only=8)
    cfg = config(tmp_path, shards, mode="full", steps=2, **{"data.hide_moshi_audio": 1.0, "data.text_lead": 1,
                                                             "data.audio_only": 1})
    history, seen = run_recording_inputs(Trainer(cfg, SINGLE))
    assert len(history) == 2 and all(h.loss == h.loss for h in history)
    assert seen and all(inputs is not None for _, inputs in seen)
    for codes, inputs in seen:
        spoken = (codes[:, 1:9] != -1).any(dim=(1, 2))  # speechless samples have no Moshi audio
        assert (inputs[spoken, 1:9] == -1).all() and torch.equal(inputs[:, 9:], codes[:, 9:])


@pytest.mark.parametrize("override, message", [({"data.text_lead": -1}, "data.text_lead"),
                                               ({"data.hide_moshi_audio": 1.5}, "data.hide_moshi_audio")])
def test_bad_values_are_named(tmp_path, override, message) -> None:
    shards = make_colour_shards(tmp_path, n=8)
    with pytest.raises(ValueError, match=message):
        Trainer(config(tmp_path, shards, **override), SINGLE)
