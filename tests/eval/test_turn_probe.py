"""The turn probe: where word and turn starts are, and that its accuracy is the argmax hitting them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from moshivis.config import tiny
from moshivis.eval.turn_probe import probe, start_positions
from moshivis.models.lm import MoshiLM

P, E = 3, 0  # PAD, EPAD of the tiny config


def test_start_positions() -> None:
    #         0  1  2  3  4   5  6  7  8  9 10 11 12 13 14  15  16
    text = [P, P, P, P, P, P, P, P, P, E, 7, 8, P, E, 9, P, P]
    text = torch.tensor(text)
    words, turns = start_positions(text, P, E, min_gap=8)
    assert words == [10, 14]
    assert turns == [10]  # 8 PADs (1..8) before the EPAD at 9; only one PAD before the second word


class _Oracle:
    """Stands in for a MoshiLM whose text argmax is the target shifted by `shift` frames."""

    def __init__(self, shift: int) -> None:
        self.cfg = tiny().lm
        self.device = torch.device("cpu")
        self.shift = shift

    def __call__(self, codes: torch.Tensor) -> SimpleNamespace:
        text = torch.roll(codes[0, 0], self.shift)
        logits = torch.nn.functional.one_hot(text, self.cfg.text_card).float()[None, None]
        return SimpleNamespace(text_logits=logits)


def _sample() -> torch.Tensor:
    codes = torch.zeros(17, 20, dtype=torch.long)
    codes[0] = torch.tensor([P] * 9 + [E, 7, 8, P, E, 9] + [P] * 5)
    return codes


def test_oracle_scores_one_and_a_late_model_zero() -> None:
    right = probe(_Oracle(0), [_sample()])  # type: ignore[arg-type]
    assert (right.turn_accuracy, right.word_accuracy, right.turn_starts, right.word_starts) == (1.0, 1.0, 1, 2)
    late = probe(_Oracle(1), [_sample()])  # type: ignore[arg-type]
    assert late.turn_accuracy == 0.0 and late.word_accuracy == 0.0


def test_real_model_runs_and_bad_shape_is_named() -> None:
    lm = MoshiLM(tiny().lm).eval()
    res = probe(lm, [_sample(), _sample()], hide_user_acoustic=True)
    assert res.samples == 2 and res.word_starts == 4
    with pytest.raises(ValueError, match=r"shape \(16, 20\)"):
        probe(lm, [_sample()[:16]])
