"""The training loss: masks, weights, and step-level normalisation."""

from __future__ import annotations

import torch

from testkit import random_codes, tiny_model
from moshivis.train.loss import LossWeights, moshi_loss, target_weight_sums


def test_loss_masks_and_weights():
    model = tiny_model()
    codes = random_codes(model.cfg, 2, 10)
    codes[:, 0] = codes[:, 0] % 90 + 4  # words only...
    codes[:, 0, ::3] = 3  # ... and some text padding
    codes[1, 5, 4] = -1  # a missing target
    mask = torch.ones_like(codes, dtype=torch.bool)
    mask[:, 9:] = False
    mask[0, 0] = False  # sample 0: no text targets
    w = LossWeights(text_padding=0.5, semantic=100.0)
    with torch.no_grad():
        out = model(codes)
        res = moshi_loss(out, codes, mask, w)
    tw, aw = target_weight_sums(codes, mask, model.cfg.lm.delays, w)
    torch.testing.assert_close(res.text_weight, tw)
    torch.testing.assert_close(res.audio_weight, aw)
    # Text: only sample 1; 10 frames, padding at 0, 3, 6, 9 weighs 0.5.
    assert res.text_weight.item() == 6 + 4 * 0.5
    # Audio: codebook 0 has 10 valid frames per sample, acoustic ones 9 (one-step delay), one -1 target.
    assert res.audio_weight.item() == 2 * (100 * 10 + 7 * 9) - 1
    assert torch.isnan(res.per_sample_text[0]) and not torch.isnan(res.per_sample_text[1])
    # A hand computation of the text term.
    lg = out.text_logits[1, 0]
    ce = torch.nn.functional.cross_entropy(lg, codes[1, 0], reduction="none")
    wt = torch.where(codes[1, 0] == 3, 0.5, 1.0)
    torch.testing.assert_close(res.text, (ce * wt).sum() / wt.sum())


def test_split_batches_sum_to_the_whole():
    """Two half-batches normalised by the whole batch's weights add up to the whole batch's loss."""
    model = tiny_model()
    codes = random_codes(model.cfg, 4, 8)
    mask = torch.ones_like(codes, dtype=torch.bool)
    mask[:, 9:] = False
    mask[2, 0, :5] = False
    w = LossWeights()
    with torch.no_grad():
        whole = moshi_loss(model(codes), codes, mask, w).total(w)
        tw, aw = target_weight_sums(codes, mask, model.cfg.lm.delays, w)
        parts = sum(moshi_loss(model(codes[i:i + 2]), codes[i:i + 2], mask[i:i + 2], w).total(w, tw, aw)
                    for i in (0, 2))
    torch.testing.assert_close(parts, whole)


def test_key_pieces_follow_the_cue_across_padding():
    from moshivis.train.loss import key_pieces

    SO, YES, NO, W = 50, 60, 61, 70
    text = torch.tensor([[W, SO, 3, 3, YES, W, YES, 0, SO, NO],   # after SO (padding skipped): YES, NO
                         [YES, SO, W, YES, -1, SO, -1, NO, 3, 3]])  # YES first (nothing before), W breaks, -1 skipped
    got = key_pieces(text, SO, (YES, NO))
    assert got.tolist() == [[False, False, False, False, True, False, False, False, False, True],
                            [False, False, False, False, False, False, False, True, False, False]]
    # after -1: every YES / NO piece wherever it stands (padding and -1 never count)
    assert key_pieces(text, -1, (YES, NO)).tolist() == [
        [False, False, False, False, True, False, True, False, False, True],
        [True, False, False, True, False, False, False, True, False, False]]


def test_key_weight_scales_only_the_key_targets():
    model = tiny_model()
    codes = random_codes(model.cfg, 1, 12)
    codes[:, 0] = torch.tensor([[70, 50, 3, 60, 70, 60, 70, 50, 61, 70, 3, 70]])  # keys at frames 3 and 8
    mask = torch.ones_like(codes, dtype=torch.bool)
    mask[:, 9:] = False
    base, keyed = LossWeights(), LossWeights(key=10.0, key_after=50, key_ids=(60, 61))
    with torch.no_grad():
        out = model(codes)
        r0, r1 = moshi_loss(out, codes, mask, base), moshi_loss(out, codes, mask, keyed)
    assert r1.text_weight.item() == r0.text_weight.item() + 2 * 9.0
    torch.testing.assert_close(r1.text_weight, target_weight_sums(codes, mask, model.cfg.lm.delays, keyed)[0])
    torch.testing.assert_close(r1.audio_sum, r0.audio_sum)  # audio untouched
    ce = torch.nn.functional.cross_entropy(out.text_logits[0, 0], codes[0, 0], reduction="none")
    wt = torch.where(codes[0, 0] == 3, 0.5, 1.0)
    wt[3] = wt[8] = 10.0
    torch.testing.assert_close(r1.text, (ce * wt).sum() / wt.sum())


def test_key_tokens_reach_the_loss_from_the_config():
    import pytest

    from moshivis.train.config import OptimSection
    from moshivis.train.setup import loss_weights

    w = loss_weights(OptimSection(key_weight=20.0, key_tokens=(244, 12, 40)))
    assert (w.key, w.key_after, w.key_ids) == (20.0, 244, (12, 40))
    assert loss_weights(OptimSection()).key_ids == ()
    from moshivis.train.config import TrainConfig

    cfg = TrainConfig()
    cfg.optim.key_tokens = (244,)
    with pytest.raises(ValueError, match="key_tokens"):
        cfg.validate()


def test_config_lists_check_their_elements():
    """List values are checked element by element (a typo names key and index), fixed tuples by length."""
    import pytest

    from moshivis.train.config import load_config

    assert load_config(None, ["optim.key_tokens=[244, 12]"]).optim.key_tokens == (244, 12)
    with pytest.raises(ValueError, match=r"optim.key_tokens\[1\]: expected a number"):
        load_config(None, ["optim.key_tokens=[244, so]"])
    with pytest.raises(ValueError, match="optim.betas: expected 2 items"):
        load_config(None, ["optim.betas=[0.9]"])
