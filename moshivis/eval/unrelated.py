"""Image-unrelated questions (did the adapted model forget how to talk?), scored by their key word.

The questions come from the same small-talk generator the training data uses (arithmetic, counting,
colours of things, yes/no facts, legs, days, shapes, colour mixing; `moshivis.data.augment`), with a
seed of their own. Each reference answer is a sentence ("Seventeen plus twelve is twenty-nine."); an
answer is right when `key_answer` reads the same key from it as from the reference:

    days         the first word ("Tuesday comes after Monday.")
    yes/no       a leading yes/no ("No, cats can't fly.")
    numbers      the last number said ("... is 29", "3 4 5 6", "A spider has 8 legs.")
    otherwise    the last word ("A banana is usually yellow.", "A wheel is a circle.")

after `normalize_spoken` (lower case, number words to digits), so "twenty-nine" and "29" agree.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from moshivis.data.augment import DEFAULT_TOPICS, SMALLTALK_TOPICS
from moshivis.data.spoken_answers import numbers_in_words
from moshivis.eval.items import EvalItem
from moshivis.eval.text_norm import normalize_spoken

__all__ = ["UNRELATED", "key_answer", "unrelated_items", "unrelated_scores"]

UNRELATED = "unrelated"
_DAYS = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}


def key_answer(sentence: str) -> str | None:
    """The word that decides whether `sentence` answers its question right (module docstring)."""
    words = normalize_spoken(sentence).split()
    if not words:
        return None
    if words[0] in _DAYS:
        return words[0]
    if words[0] in ("yes", "no"):
        return words[0]
    numbers = [w for w in words if w.isdigit()]
    if numbers:
        return numbers[-1]
    return words[-1]


def _spoken(text: str) -> str:
    text = numbers_in_words(text)  # what the voices say, and what training put on the text stream
    return text[:1].upper() + text[1:]


def unrelated_items(n: int, seed: int = 1234) -> list[EvalItem]:
    """`n` distinct image-unrelated questions (topics cycled), `answers` = [reference sentence]."""
    # the base's own image-free topics (named topics such as "polarity" are training data only): the same
    # questions as every earlier results table
    topics = sorted(DEFAULT_TOPICS)
    rng = random.Random(f"unrelated-eval|{seed}")
    seen: set[str] = set()
    items: list[EvalItem] = []
    tries = 0
    while len(items) < n and tries < 100 * n:
        tries += 1
        topic = topics[len(items) % len(topics)]
        q, a = SMALLTALK_TOPICS[topic](rng)
        q, a = _spoken(q), _spoken(a)
        if q in seen and tries < 20 * n:  # the small fixed-fact topics repeat; allow it only when needed
            continue
        seen.add(q)
        items.append(EvalItem(f"{UNRELATED}/{len(items)}", UNRELATED, None, q, [a], "other", topic))
    return items


def unrelated_scores(predictions: Mapping[str, str], items: Iterable[EvalItem]) -> dict[str, Any]:
    """Key-word accuracy (%) overall and per topic; a missing prediction is wrong."""
    by_topic: dict[str, list[bool]] = defaultdict(list)
    n = right = missing = 0
    for it in items:
        n += 1
        pred = predictions.get(it.id)
        missing += pred is None
        ok = pred is not None and key_answer(pred) is not None and key_answer(pred) == key_answer(it.answers[0])
        right += ok
        by_topic[it.question_type or "unknown"].append(ok)
    return {"n": n, "missing": missing, "accuracy": 100.0 * right / n if n else 0.0,
            "per_topic": {k: {"n": len(v), "accuracy": 100.0 * sum(v) / len(v)} for k, v in sorted(by_topic.items())}}
