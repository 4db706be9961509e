"""VQAv2 accuracy against hand-worked cases from the published definition."""

from __future__ import annotations

import pytest

from moshivis.eval.items import EvalItem
from moshivis.eval.vqa_metric import (
    CONTRACTIONS, normalize_answer, process_digit_article, process_punctuation, vqa_accuracy, vqa_scores,
)


def by_hand(matches: int, n: int = 10) -> float:
    """The definition spelled out: for each held-out annotator, matches among the other n-1 over 3,
    capped at 1, averaged over the n annotators."""
    answers_match = [True] * matches + [False] * (n - matches)
    total = 0.0
    for held_out in range(n):
        others = sum(m for k, m in enumerate(answers_match) if k != held_out)
        total += min(1.0, others / 3)
    return total / n


def ten(pred_matches: int, match: str = "cat", other: str = "dog") -> list[str]:
    return [match] * pred_matches + [other] * (10 - pred_matches)


def test_ten_identical_answers_score_one() -> None:
    assert vqa_accuracy("yes", ["yes"] * 10) == 1.0


@pytest.mark.parametrize("matches,expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_leave_one_out_average(matches: int, expected: float) -> None:
    # 2 matches: 8 subsets keep both (2/3), 2 subsets keep one (1/3): (8*2/3 + 2*1/3)/10 = 0.6.
    # 3 matches: 7 subsets keep all three (1), 3 keep two (2/3): (7 + 3*2/3)/10 = 0.9.
    assert by_hand(matches) == pytest.approx(expected)
    assert vqa_accuracy("cat", ten(matches)) == pytest.approx(expected)


def test_number_words_become_digits_when_answers_differ() -> None:
    answers = ["2"] * 4 + ["3"] * 6
    assert vqa_accuracy("Two", answers) == 1.0
    assert process_digit_article("None of the Two") == "0 of 2"


def test_articles_are_dropped() -> None:
    assert vqa_accuracy("the dog", ["dog"] * 5 + ["cat"] * 5) == 1.0
    assert vqa_accuracy("A dog", ["dog"] * 5 + ["cat"] * 5) == 1.0


def test_contractions_are_restored() -> None:
    assert vqa_accuracy("dont", ["don't"] * 5 + ["no"] * 5) == 1.0
    assert vqa_accuracy("isnt", ["isn't"] * 5 + ["no"] * 5) == 1.0
    assert CONTRACTIONS["dont"] == "don't" and CONTRACTIONS["isnt"] == "isn't"
    # Exactly one apostrophe left out maps back; both left out does not (as in the script's table).
    assert CONTRACTIONS["couldnt've"] == CONTRACTIONS["couldn'tve"] == "couldn't've"
    assert "couldntve" not in CONTRACTIONS
    assert CONTRACTIONS["somebody'd"] == "somebodyd"  # the script's reversed entry, kept for equal scores


def test_period_and_punctuation_rules() -> None:
    assert vqa_accuracy("yes.", ["yes"] * 9 + ["no"]) == 1.0
    assert process_punctuation("yes.") == "yes"
    assert process_punctuation("3.5") == "3.5"  # a period before a digit stays
    assert process_punctuation("5.") == "5"  # the script's lookbehind never fires: "5." loses its period
    assert process_punctuation("red,white") == "red white"  # not next to a space: becomes a space
    assert process_punctuation("yes, no") == "yes no"  # next to a space: deleted
    assert process_punctuation("t-shirt") == "t shirt"
    assert process_punctuation("it's") == "it's"  # apostrophes are not in the list


def test_comma_between_digits() -> None:
    assert process_punctuation("1,000") == "1000"
    # With a digit comma anywhere, every listed mark is deleted rather than spaced.
    assert process_punctuation("1,000-2,000") == "10002000"
    assert normalize_answer("1,000") == "1000"
    assert vqa_accuracy("1,000", ["1000"] * 5 + ["1,000"] * 5) == 1.0


def test_normalisation_only_when_human_answers_differ() -> None:
    # Unanimous answers: the prediction is compared as is (whitespace aside), as in the official script.
    assert vqa_accuracy("yes.", ["yes"] * 10) == 0.0
    assert vqa_accuracy("Yes", ["yes"] * 10) == 0.0
    assert vqa_accuracy("two", ["2"] * 10) == 0.0
    assert vqa_accuracy("  yes\n", ["yes"] * 10) == 1.0
    # Differing answers: both sides normalised.
    assert vqa_accuracy("yes.", ["yes"] * 9 + ["yes!"]) == 1.0
    # The non-official switch normalises always.
    assert vqa_accuracy("two", ["2"] * 10, always_normalize=True) == 1.0


def test_scores_with_breakdowns_and_missing() -> None:
    items = [
        EvalItem("1", "vqav2", None, "q", ["yes"] * 10, "yes/no", "is the"),
        EvalItem("2", "vqav2", None, "q", ten(2), "other", "what"),
        EvalItem("3", "vqav2", None, "q", ["2"] * 3 + ["3"] * 7, "number", "how many"),
        EvalItem("4", "vqav2", None, "q", ["no"] * 10, "yes/no", "is the"),
    ]
    out = vqa_scores({"1": "yes", "2": "cat", "3": "three"}, items)
    # 1.0, 0.6, three -> "3" matches 7 -> 1.0, missing -> 0.
    assert out["accuracy"] == pytest.approx(100 * (1.0 + 0.6 + 1.0 + 0.0) / 4)
    assert out["per_answer_type"] == pytest.approx({"number": 100.0, "other": 60.0, "yes/no": 50.0})
    assert out["per_question_type"]["is the"] == pytest.approx(50.0)
    assert out["missing"] == 1 and out["n"] == 4 and out["per_item"]["4"] is None
