"""data.user_frame_dropout: a random share of the user's frames hidden from the inputs of spoken samples."""

from __future__ import annotations

import pytest
import torch
from colors import make_colour_shards

from moshivis.train.trainer import Trainer
from moshivis.train.user_dropout import drop_user_frames
from test_trainer import SINGLE, config, run_recording_inputs


def _codes(B: int = 4, T: int = 400) -> torch.Tensor:
    return torch.randint(0, 64, (B, 17, T), generator=torch.Generator().manual_seed(0))


def test_only_user_frames_of_spoken_samples_drop_near_the_rate() -> None:
    codes = _codes()
    kinds = ["image_speech", "speechless", "audio_only", "text_only"]
    ids = [f"s{i}" for i in range(4)]
    out = drop_user_frames(codes, None, kinds, ids, 0.25, seed=0, step=3)
    assert out is not None and not (codes == -1).any()  # the batch itself is untouched
    for j, kind in enumerate(kinds):
        assert torch.equal(out[j, :9], codes[j, :9])  # text and Moshi's audio never change
        dropped = (out[j, 9:] == -1)
        if kind in ("image_speech", "audio_only"):
            frames = dropped.all(0)
            assert torch.equal(dropped.any(0), frames)  # a frame drops in all user codebooks together
            assert 0.18 < frames.float().mean().item() < 0.32
            assert torch.equal(out[j, 9:, ~frames], codes[j, 9:, ~frames])
        else:
            assert not dropped.any()
    # Seeded by (seed, step, sample): the same again, another step draws anew.
    assert torch.equal(out, drop_user_frames(codes, None, kinds, ids, 0.25, seed=0, step=3))
    assert not torch.equal(out, drop_user_frames(codes, None, kinds, ids, 0.25, seed=0, step=4))


def test_builds_on_earlier_inputs_and_is_off_at_zero() -> None:
    codes = _codes()
    hidden = codes.clone()
    hidden[:, 1:9] = -1  # Moshi's voice hidden first (hide_moshi_voice)
    out = drop_user_frames(codes, hidden, ["audio_only"] * 4, list("abcd"), 0.5, seed=1, step=0)
    assert (out[:, 1:9] == -1).all() and (out[:, 9:] == -1).any()
    assert drop_user_frames(codes, None, ["audio_only"] * 4, list("abcd"), 0.0, seed=1, step=0) is None
    assert drop_user_frames(codes, hidden, ["speechless"] * 4, list("abcd"), 0.5, seed=1, step=0) is hidden
    with pytest.raises(ValueError, match="user frame dropout"):
        drop_user_frames(codes, None, ["audio_only"] * 4, list("abcd"), 1.5, seed=1, step=0)


def test_trainer_drops_user_frames_in_spoken_batches(tmp_path) -> None:
    shards = make_colour_shards(tmp_path, n=8, audio_only=8)
    cfg = config(tmp_path, shards, mode="full", steps=2, **{"data.user_frame_dropout": 0.5, "data.audio_only": 1})
    history, seen = run_recording_inputs(Trainer(cfg, SINGLE))
    assert len(history) == 2 and all(h.loss == h.loss for h in history)
    assert seen and all(inputs is not None for _, inputs in seen)
    for codes, inputs in seen:
        assert torch.equal(inputs[:, :9], codes[:, :9])  # only the user's streams change
        assert (inputs[:, 9:] == -1).any() and not (codes[:, 9:] == -1).all()


def test_bad_value_is_named(tmp_path) -> None:
    shards = make_colour_shards(tmp_path, n=8)
    with pytest.raises(ValueError, match="data.user_frame_dropout"):
        Trainer(config(tmp_path, shards, **{"data.user_frame_dropout": 1.0}), SINGLE)
