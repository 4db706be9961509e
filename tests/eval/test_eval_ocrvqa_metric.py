"""OCR-VQA exact match (PaliGemma's rule) vs the spoken-normalised match, and the normaliser itself."""

from __future__ import annotations

import pytest

from moshivis.eval.items import EvalItem
from moshivis.eval.ocrvqa_metric import exact_match, normalized_match, ocrvqa_scores
from moshivis.eval.text_norm import normalize_spoken

# (prediction, ground truth, exact, normalised)
PAIRS = [
    ("Harry Potter", "Harry Potter", True, True),
    ("  Harry Potter \n", "Harry Potter", True, True),  # surrounding whitespace is stripped
    ("harry potter", "Harry Potter", False, True),  # case counts for exact match only
    ("Harry Potter.", "Harry Potter", False, True),  # so does punctuation
    ("Harry  Potter", "Harry Potter", False, True),  # and inner spacing
    ("Twenty Thousand Leagues Under the Sea", "20,000 Leagues Under the Sea", False, True),
    ("Rock & Roll", "rock and roll", False, True),
    ("J.K. Rowling", "JK Rowling", False, True),
    ("Self-Help", "Self Help", False, True),
    ("Don't Panic", "Dont Panic", False, True),
    ("Yes", "No", False, False),
    ("The Hobbit", "Hobbit", False, False),  # articles are words a listener hears: kept
    ("...", "!!!", False, False),  # nothing left after normalising is never a match
]


@pytest.mark.parametrize("pred,gt,exact,norm", PAIRS)
def test_exact_vs_normalised(pred: str, gt: str, exact: bool, norm: bool) -> None:
    assert exact_match(pred, gt) is exact
    assert normalized_match(pred, gt) is norm


def test_normalizer_cases() -> None:
    assert normalize_spoken("One hundred and five Dalmatians") == "105 dalmatians"
    assert normalize_spoken("The Twenty-First Century") == "the 21st century"
    assert normalize_spoken("2nd Edition") == normalize_spoken("Second Edition") == "2nd edition"
    assert normalize_spoken("Pokémon: 2.5 stars, 50% off!") == "pokemon 2.5 stars 50 percent off"
    assert normalize_spoken("one two three") == "1 2 3"  # digits said one by one stay separate


def test_scores_per_type_and_missing() -> None:
    items = [
        EvalItem("b_0", "ocrvqa", None, "Who wrote this book?", ["J.K. Rowling"], "other", "author"),
        EvalItem("b_1", "ocrvqa", None, "What is the title of this book?", ["Harry Potter"], "other", "title"),
        EvalItem("b_2", "ocrvqa", None, "Is this a comedy book?", ["No"], "yes/no", "yes/no"),
        EvalItem("b_3", "ocrvqa", None, "What is the genre of this book?", ["Humor"], "other", "genre"),
    ]
    out = ocrvqa_scores({"b_0": "J.K. Rowling", "b_1": "harry potter", "b_2": "Yes"}, items)
    assert out["exact_match"] == pytest.approx(25.0)
    assert out["normalized_match"] == pytest.approx(50.0)
    assert out["per_question_type"]["title"] == {"exact_match": 0.0, "normalized_match": 100.0, "n": 1}
    assert out["missing"] == 1 and out["per_item"]["b_3"] is None
