"""The VQAv2 accuracy, as the official evaluation script (GT-Vision-Lab/VQA, `vqaEval.py`) defines it.

Per question, with the N (= 10) human answers g_1..g_N and the prediction p:

    acc = 1/N * sum_i min(1, #{j != i : g_j == p} / 3)

i.e. the average, over the N leave-one-annotator-out subsets of N-1 answers, of "at least 3 of them
agree with p" (partial credit 1/3 per matching annotator). Overall accuracy is the mean over questions;
per answer type (yes/no, number, other) and per question type ("what color", "how many", ...) are the
means over the questions of each type. Results are percentages.

Answer processing, exactly as the script does it:
- Prediction and human answers: "\\n" and "\\t" become spaces, then leading/trailing whitespace is stripped.
- ONLY when the N human answers are not all the same string, both the human answers and the prediction
  are normalised (`normalize_answer`): punctuation (`process_punctuation`), then number words, articles
  and contractions (`process_digit_article`). When all human answers are identical, nothing else is done:
  "Yes" scores 0 against ten "yes". `always_normalize=True` lifts that rule (not the official number).

`process_punctuation` (the script's rules, reproduced including their quirks):
- each of ; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? ! is deleted when it is next to a space in the input
  (e.g. "yes, no") or when the input contains a comma between two digits ("1,000"); otherwise it becomes
  a space ("red/white" -> "red white"). Apostrophes, colons and other symbols are kept.
- a period not followed by a digit is deleted ("yes." -> "yes", "3.5" kept). The script's pattern looks
  like "not preceded by a digit" too but its lookbehind is written as a lookahead that never fires, so
  "5." loses its period as well; and the script passes `re.UNICODE` where `sub` takes its `count`, so at
  most 32 periods go. Both kept here so that scores match the official ones.
`process_digit_article`: lower case, split on whitespace, number words "none"/"zero".."ten" -> digits,
articles a/an/the dropped, then written-without-apostrophe contractions restored ("dont" -> "don't").
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

__all__ = [
    "CONTRACTIONS", "NUMBER_WORDS", "ARTICLES", "process_punctuation", "process_digit_article",
    "normalize_answer", "vqa_accuracy", "vqa_scores",
]

# Characters handled by the punctuation rule (the script's list; note: no "'", ":" or ".").
PUNCTUATION: tuple[str, ...] = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">",
                                "<", "@", "`", ",", "?", "!")
_COMMA_BETWEEN_DIGITS = re.compile(r"(\d)(,)(\d)")
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")
_MAX_PERIODS = 32  # the script's accidental `count=re.UNICODE` (== 32)

NUMBER_WORDS: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
ARTICLES: frozenset[str] = frozenset({"a", "an", "the"})

# English contractions, written properly. The script maps each form with exactly ONE apostrophe left out
# back to the proper form ("dont" -> "don't"; "couldnt've" and "couldn'tve" -> "couldn't've"; never
# "couldntve"), which `_contraction_map` rebuilds. The script's forms starting with a capital "I"
# ("I'm", "I've", "I'd've") are left out: the text is lower-cased before the lookup, so they never apply.
_CONTRACTED_FORMS: tuple[str, ...] = (
    "ain't", "aren't", "can't", "could've", "couldn't", "couldn't've", "didn't", "doesn't", "don't",
    "hadn't", "hadn't've", "hasn't", "haven't", "he'd", "he'd've", "he's", "how'd", "how'll", "how's",
    "isn't", "it'd", "it'd've", "it'll", "ma'am", "mightn't", "mightn't've", "might've", "mustn't",
    "must've", "needn't", "not've", "o'clock", "oughtn't", "'ow's'at", "shan't", "she'd've", "should've",
    "shouldn't", "shouldn't've", "somebody'd've", "somebody'll", "somebody's", "someone'd", "someone'd've",
    "someone'll", "someone's", "something'd", "something'd've", "something'll", "that's", "there'd",
    "there'd've", "there're", "there's", "they'd", "they'd've", "they'll", "they're", "they've", "'twas",
    "wasn't", "we'd've", "we've", "weren't", "what'll", "what're", "what's", "what've", "when's", "where'd",
    "where's", "where've", "who'd", "who'd've", "who'll", "who's", "who've", "why'll", "why're", "why's",
    "won't", "would've", "wouldn't", "wouldn't've", "y'all", "y'all'll", "y'all'd've", "you'd", "you'd've",
    "you'll", "you're", "you've",
)
# One entry of the script's map goes the other way; kept so that scores match.
_SCRIPT_ODDITIES: dict[str, str] = {"somebody'd": "somebodyd"}


def _contraction_map() -> dict[str, str]:
    table: dict[str, str] = {}
    for form in _CONTRACTED_FORMS:
        for pos in (i for i, c in enumerate(form) if c == "'"):
            table[form[:pos] + form[pos + 1:]] = form
    table.update(_SCRIPT_ODDITIES)
    return table


CONTRACTIONS: dict[str, str] = _contraction_map()


def _clean_whitespace(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def process_punctuation(text: str) -> str:
    """The script's punctuation rule (module docstring). The conditions look at the input, not at the
    text as it is being rewritten, as in the script."""
    digit_comma = _COMMA_BETWEEN_DIGITS.search(text) is not None
    out = text
    for p in PUNCTUATION:
        next_to_space = (p + " " in text) or (" " + p in text)
        out = out.replace(p, "" if (next_to_space or digit_comma) else " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=_MAX_PERIODS)


def process_digit_article(text: str) -> str:
    """Lower case; number words -> digits; articles dropped; contractions restored; single spaces."""
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    return " ".join(CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES)


def normalize_answer(text: str) -> str:
    """Full normalisation of one answer (what the script applies when the human answers differ)."""
    return process_digit_article(process_punctuation(_clean_whitespace(text)))


def vqa_accuracy(prediction: str, answers: Sequence[str], always_normalize: bool = False) -> float:
    """Accuracy in [0, 1] of one prediction against all human answers (usually 10), module docstring."""
    if not answers:
        raise ValueError("vqa_accuracy: no human answers")
    gts = [_clean_whitespace(a) for a in answers]
    pred = _clean_whitespace(prediction)
    if always_normalize or len(set(gts)) > 1:
        # The script normalises the human answers with both steps too (its master version), not only
        # the punctuation: otherwise "Two" among the answers could never match a normalised "2".
        gts = [process_digit_article(process_punctuation(g)) for g in gts]
        pred = process_digit_article(process_punctuation(pred))
    matches = sum(g == pred for g in gts)
    # Leave annotator i out: the others hold `matches - (g_i == pred)` matches.
    return sum(min(1.0, (matches - (g == pred)) / 3.0) for g in gts) / len(gts)


class VQAGroundTruth(Protocol):
    """What `vqa_scores` needs of an item (`moshivis.eval.items.EvalItem` has it)."""

    id: str
    answers: list[str]
    answer_type: str | None
    question_type: str | None


def vqa_scores(
    predictions: Mapping[str, str],
    ground_truth: Iterable[VQAGroundTruth],
    always_normalize: bool = False,
) -> dict[str, Any]:
    """Accuracy over `ground_truth`, as percentages: overall, per answer type, per question type.

    A question without a prediction scores 0 and is counted in `missing` (the official script refuses to
    run instead; scoring it 0 keeps the denominator the benchmark's). `per_item` holds each question's
    accuracy in [0, 1] (None where missing).
    """
    per_item: dict[str, float | None] = {}
    by_answer_type: dict[str, list[float]] = defaultdict(list)
    by_question_type: dict[str, list[float]] = defaultdict(list)
    total = 0.0
    missing = 0
    for item in ground_truth:
        pred = predictions.get(item.id)
        if pred is None:
            acc, missing = 0.0, missing + 1
            per_item[item.id] = None
        else:
            acc = vqa_accuracy(pred, item.answers, always_normalize)
            per_item[item.id] = acc
        total += acc
        by_answer_type[item.answer_type or "unknown"].append(acc)
        by_question_type[item.question_type or "unknown"].append(acc)
    n = len(per_item)

    def pct(values: list[float]) -> float:
        return 100.0 * sum(values) / len(values) if values else 0.0

    return {
        "metric": "vqa_accuracy",
        "accuracy": 100.0 * total / n if n else 0.0,
        "per_answer_type": {k: pct(v) for k, v in sorted(by_answer_type.items())},
        "per_question_type": {k: pct(v) for k, v in sorted(by_question_type.items())},
        "n": n,
        "missing": missing,
        "always_normalize": always_normalize,
        "per_item": per_item,
    }
