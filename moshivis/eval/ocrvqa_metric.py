"""OCR-VQA accuracy: exact match as PaliGemma reports it, and a spoken-normalised match beside it.

Exact match (the headline number, comparable with PaliGemma's 73.2 and MoshiVis' figure):
    PaliGemma's evaluator (big_vision `proj/paligemma/transfers/vqa.py`, used by its `ocrvqa` config)
    decodes the model output up to EOS and scores `float(answer == gt)` against the one ground-truth
    answer of each question, case-sensitively, with no other processing (its `to_lower` option is off for
    OCR-VQA); the accuracy is the mean over all test questions (each question one example). We do the
    same after stripping leading/trailing whitespace from both strings (a text stream decoded from
    SentencePiece pieces can carry a leading space that PaliGemma's decoder does not produce). Case,
    inner spaces and punctuation still count: "Harry Potter" != "harry potter" != "Harry Potter.".

Normalised match (reported beside it, never instead): both strings through
    `moshivis.eval.text_norm.normalize_spoken` (lower case, punctuation without a spoken form removed,
    "&" -> "and", number words and digits unified, ...), then compared. It measures whether the answer
    a listener hears is right, which the exact match undercounts for a speech model.

An item may hold several acceptable answers; a prediction matches if it matches any of them (OCR-VQA has
exactly one; easy-vqa, scored with the same functions, too).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from moshivis.eval.text_norm import normalize_spoken

__all__ = ["exact_match", "normalized_match", "ocrvqa_scores"]


def exact_match(prediction: str, answers: str | Sequence[str]) -> bool:
    """PaliGemma's OCR-VQA match: `prediction.strip() == answer.strip()` for some answer."""
    options = [answers] if isinstance(answers, str) else answers
    pred = prediction.strip()
    return any(pred == a.strip() for a in options)


def normalized_match(prediction: str, answers: str | Sequence[str]) -> bool:
    """Match after `normalize_spoken` on both sides. Two empty strings do not match: an answer that
    normalises to nothing (all punctuation) must not be right by default."""
    options = [answers] if isinstance(answers, str) else answers
    pred = normalize_spoken(prediction)
    return bool(pred) and any(pred == normalize_spoken(a) for a in options)


class QAGroundTruth(Protocol):
    """What `ocrvqa_scores` needs of an item (`moshivis.eval.items.EvalItem` has it)."""

    id: str
    answers: list[str]
    question_type: str | None


def ocrvqa_scores(predictions: Mapping[str, str], ground_truth: Iterable[QAGroundTruth]) -> dict[str, Any]:
    """Exact-match and normalised-match accuracy (percentages), overall and per question type.

    A question without a prediction counts as wrong (`missing` says how many).
    """
    n = missing = exact_total = norm_total = 0
    by_type: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    per_item: dict[str, dict[str, bool] | None] = {}
    for item in ground_truth:
        n += 1
        pred = predictions.get(item.id)
        if pred is None:
            missing += 1
            per_item[item.id] = None
            ex = norm = False
        else:
            ex, norm = exact_match(pred, item.answers), normalized_match(pred, item.answers)
            per_item[item.id] = {"exact": ex, "normalized": norm}
        exact_total += ex
        norm_total += norm
        by_type[item.question_type or "unknown"].append((ex, norm))

    def pct(k: int, d: int) -> float:
        return 100.0 * k / d if d else 0.0

    return {
        "metric": "exact_match",
        "exact_match": pct(exact_total, n),
        "normalized_match": pct(norm_total, n),
        "per_question_type": {
            t: {"exact_match": pct(sum(e for e, _ in v), len(v)),
                "normalized_match": pct(sum(m for _, m in v), len(v)), "n": len(v)}
            for t, v in sorted(by_type.items())
        },
        "n": n,
        "missing": missing,
        "per_item": per_item,
    }
