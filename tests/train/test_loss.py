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
