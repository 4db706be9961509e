"""data.text_lead: Moshi's text stream moved earlier than its audio in spoken samples, at load time."""

from __future__ import annotations

import numpy as np
import pytest

from moshivis.data.mixture import collate
from moshivis.data.text_lead import lead_text
from moshivis.data.tokenizer import TEXT_PAD
from moshivis.data.types import Sample


def _sample(kind: str, t: int = 10) -> Sample:
    codes = np.arange(17 * t).reshape(17, t) % 2000
    mask = np.zeros((17, t), dtype=bool)
    mask[0, 4:] = True
    mask[1:9, 2:] = True
    return Sample(f"{kind}-0", kind, codes, mask, None, {})  # type: ignore[arg-type]


def test_lead_text_moves_only_the_text_row_and_its_mask() -> None:
    s = _sample("image_speech")
    codes, mask = lead_text(s.codes, s.loss_mask, 3)
    np.testing.assert_array_equal(codes[0, :7], s.codes[0, 3:])
    assert (codes[0, 7:] == TEXT_PAD).all()
    np.testing.assert_array_equal(mask[0, :7], s.loss_mask[0, 3:])
    assert mask[0, 7:].all()  # the freed end keeps the last frame's mask
    np.testing.assert_array_equal(codes[1:], s.codes[1:])
    np.testing.assert_array_equal(mask[1:], s.loss_mask[1:])
    assert s.codes[0, 0] == 0  # the sample itself is not modified
    c0, m0 = lead_text(s.codes, s.loss_mask, 0)
    np.testing.assert_array_equal(c0, s.codes)
    with pytest.raises(ValueError, match="text lead"):
        lead_text(s.codes, s.loss_mask, -1)


def test_collate_leads_spoken_kinds_only() -> None:
    samples = [_sample(k) for k in ("image_speech", "audio_only", "speechless", "text_only")]
    plain = collate(samples, max_frames=8)
    led = collate(samples, max_frames=8, text_lead=2)
    for j, s in enumerate(samples):
        if s.kind in ("image_speech", "audio_only"):
            assert led["codes"][j, 0].tolist() == s.codes[0, 2:10].tolist()  # crop after the lead: frames 2..9
            assert led["loss_mask"][j, 0].tolist() == s.loss_mask[0, 2:10].tolist()
        else:
            assert led["codes"][j, 0].tolist() == plain["codes"][j, 0].tolist()
        assert led["codes"][j, 1:].tolist() == plain["codes"][j, 1:].tolist()
