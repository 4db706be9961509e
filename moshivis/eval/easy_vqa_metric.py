"""easy-vqa accuracy for a model that answers in sentences.

easy-vqa's ground truth is one word ("circle", "blue", "yes"); Moshi says a sentence ("It's a blue
circle.", "No, there isn't a red shape. The shape is blue."). `extract_answer` reads the one-word
answer back from the sentence, by the question's intent (`parse_easy_vqa_question`), then accuracy is the
exact match of that word with the ground truth:

    shape, shape_of_color   the first shape word said ("The red shape is a circle." -> circle)
    color                   the first colour word said that the question did not name
    has_color, has_shape    "yes"/"no" at the start of the verdict
    not_color, not_shape    the fact, not the polarity: "That's right, there is no ..." -> yes;
                            "Actually, there is ..." -> no; otherwise a leading "yes"/"no"

The verdict is the start of the answer, or what follows its first "so" when the answer says what it sees
first ("The shape is blue, so no, there isn't a red shape.": the data's `evidence_first` sentences).

An answer with nothing to read (no shape word, no yes/no) extracts to None and counts as wrong. The raw
exact match of the whole sentence is not reported: it is 0 for a model that talks in sentences.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from moshivis.data.easy_vqa_wordings import EASY_COLORS, EASY_SHAPES, parse_easy_vqa_question

__all__ = ["extract_answer", "easy_vqa_scores"]

_WORD = re.compile(r"[a-z']+")
_COLOR_ALIASES = {"grey": "gray"}


def _words(text: str) -> list[str]:
    return [_COLOR_ALIASES.get(w, w) for w in _WORD.findall(text.lower().replace("’", "'"))]


def _yes_no(words: list[str]) -> str | None:
    for w in words[:3]:  # "Yes, ..." / "Well, no ..." : the polarity comes first in every template
        if w in ("yes", "no"):
            return w
    return None


def extract_answer(question: str, sentence: str) -> str | None:
    """The easy-vqa answer word that `sentence` gives to `question` (module docstring), or None."""
    parsed = parse_easy_vqa_question(question)
    words = _words(sentence)
    if parsed is None or not words:
        return None
    intent = parsed.intent
    if intent in ("shape", "shape_of_color"):
        return next((w.rstrip("s") for w in words if w.rstrip("s") in EASY_SHAPES), None)
    if intent == "color":
        named = parsed.value
        return next((w for w in words if w in EASY_COLORS and w != named), None)
    if "so" in words:  # evidence first: the verdict follows the first "so"
        words = words[words.index("so") + 1:]
    if intent.startswith("not_"):
        text = " ".join(words)
        if text.startswith(("that's right", "that is right")):
            return "yes"
        if text.startswith("actually"):
            return "no"
    return _yes_no(words)


class EasyItem(Protocol):
    id: str
    question: str
    answers: list[str]
    question_type: str | None


def easy_vqa_scores(predictions: Mapping[str, str], ground_truth: Iterable[EasyItem]) -> dict[str, Any]:
    """Accuracy (%) of the extracted answer, overall and per question type (shape / color / yes/no);
    a question with no prediction is wrong (`missing`), an answer with nothing to extract too
    (`unreadable`)."""
    n = right = missing = unreadable = 0
    by_type: dict[str, list[bool]] = defaultdict(list)
    per_item: dict[str, dict[str, Any] | None] = {}
    for item in ground_truth:
        n += 1
        pred = predictions.get(item.id)
        if pred is None:
            missing += 1
            per_item[item.id] = None
            ok = False
        else:
            got = extract_answer(item.question, pred)
            unreadable += got is None
            ok = got is not None and got in {a.strip().lower() for a in item.answers}
            per_item[item.id] = {"extracted": got, "correct": ok}
        right += ok
        by_type[item.question_type or "unknown"].append(ok)
    return {
        "metric": "easy-vqa accuracy (answer word read from the sentence, exact match)",
        "n": n, "missing": missing, "unreadable": unreadable,
        "accuracy": 100.0 * right / n if n else 0.0,
        "per_question_type": {k: {"n": len(v), "accuracy": 100.0 * sum(v) / len(v)} for k, v in sorted(by_type.items())},
        "per_item": per_item,
    }
