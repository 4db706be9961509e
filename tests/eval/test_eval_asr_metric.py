"""WER and agreement between the text answer and an ASR transcript of the spoken answer."""

from __future__ import annotations

import math

import pytest

from moshivis.eval.asr_metric import agreement, asr_scores, wer, word_errors


def test_identical_and_normalised_equal() -> None:
    assert wer("the cat sat", "the cat sat") == 0.0
    assert wer("Two cats.", "2 cats") == 0.0  # case, punctuation and number words do not count
    assert wer("Two cats.", "2 cats", normalize=False) == 1.0  # raw: "Two"/"2" and "cats."/"cats" differ


def test_insertion_deletion_substitution() -> None:
    e = word_errors("the cat sat", "the cat sat down")
    assert (e.substitutions, e.deletions, e.insertions, e.reference_words) == (0, 0, 1, 3)
    assert e.wer == pytest.approx(1 / 3)
    e = word_errors("a b c d", "a x c")
    assert (e.substitutions, e.deletions, e.insertions) == (1, 1, 0)
    assert e.wer == pytest.approx(0.5)
    assert wer("a b", "c d e f") == pytest.approx(2.0)  # 2 substitutions + 2 insertions over 2 words


def test_empty_reference() -> None:
    assert wer("", "") == 0.0
    assert math.isinf(wer("", "hello"))
    assert wer("hello there", "") == 1.0


def test_corpus_wer_is_total_edits_over_total_words() -> None:
    out = asr_scores([("1", "yes", "no"), ("2", "a brown dog on the grass", "a brown dog on the grass"),
                      ("3", "Twenty one", "21")])
    # 1 edit over 1 + 6 + 1 words (a mean of per-answer rates would give 1/3).
    assert out["wer"] == pytest.approx(100 * 1 / 8)
    assert out["agreement"] == pytest.approx(100 * 2 / 3)
    assert out["substitutions"] == 1 and out["n"] == 3


def test_agreement() -> None:
    assert agreement("It's red.", "its red")
    assert not agreement("red", "it is red")
