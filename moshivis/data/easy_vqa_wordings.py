"""easy-vqa question wordings: the package's own question patterns and new paraphrases of each intent,
parsing a question back to its intent (`parse_easy_vqa_question`), a deterministic train / held-out split
of the paraphrases (`wording_split`) so a model can be scored on wordings it never heard, and
`paraphrase`, which rewords a question from one of those sets."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

WordingSet = Literal["train", "heldout", "all"]

EASY_COLORS: tuple[str, ...] = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")
EASY_SHAPES: tuple[str, ...] = ("circle", "rectangle", "triangle")

# Wordings of each easy-vqa question intent. ORIGINALS are the package's own patterns (22 templates,
# covering all its 107 distinct questions); PARAPHRASES are new wordings. Placeholders: {color}, {shape},
# {subject} ("shape" or a shape name). Every wording must parse back to its own intent only (tested).
EASY_ORIGINALS: dict[str, tuple[str, ...]] = {
    "shape": ("what shape is in the image?", "what shape does the image contain?", "what shape is present?"),
    "color": ("what color is the {subject}?", "what is the color of the {subject}?"),
    "shape_of_color": ("what is the {color} shape?",),
    "has_color": ("is there a {color} shape?", "is there a {color} shape in the image?",
                  "is a {color} shape present?", "does the image contain a {color} shape?"),
    "not_color": ("is there not a {color} shape?", "is there not a {color} shape in the image?",
                  "is no {color} shape present?", "does the image not contain a {color} shape?"),
    "has_shape": ("is there a {shape}?", "is there a {shape} in the image?", "is a {shape} present?",
                  "does the image contain a {shape}?"),
    "not_shape": ("is there not a {shape}?", "is there not a {shape} in the image?", "is no {shape} present?",
                  "does the image not contain a {shape}?"),
}
EASY_PARAPHRASES: dict[str, tuple[str, ...]] = {
    "shape": ("which shape do you see?", "what is the shape in this picture?", "what kind of shape is this?",
              "can you tell me what shape is in the picture?", "what shape can you see?", "which shape is shown?",
              "what shape is drawn here?", "what's the shape in the image?", "which shape does the picture show?",
              "what geometric shape is in this picture?"),
    "color": ("what colour is the {subject}?", "which color is the {subject}?",
              "can you tell me the color of the {subject}?", "what's the color of the {subject}?",
              "what color does the {subject} have?", "how is the {subject} colored?",
              "what colour does the {subject} have?", "tell me the colour of the {subject}."),
    "shape_of_color": ("which shape is {color}?", "what shape is the {color} one?", "can you name the {color} shape?",
                       "what is the {color} object in the picture?", "what's the {color} shape?",
                       "which shape is colored {color}?"),
    "has_color": ("do you see anything {color}?", "is the shape {color}?", "can you see a {color} shape?",
                  "is anything in the picture {color}?", "does the picture have a {color} shape?",
                  "is there something {color} in this picture?", "do you see a {color} shape?",
                  "is the shape in the picture {color}?"),
    "not_color": ("is there no {color} shape?", "is it true that there is no {color} shape?",
                  "is the picture free of {color} shapes?", "is there nothing {color} in the image?",
                  "does the picture lack a {color} shape?", "is the shape not {color}?",
                  "are there no {color} shapes here?"),
    "has_shape": ("do you see a {shape}?", "is the shape a {shape}?", "can you see a {shape} in the picture?",
                  "is there a {shape} in this picture?", "does the picture show a {shape}?",
                  "is the shape in the picture a {shape}?", "is that a {shape}?"),
    "not_shape": ("is there no {shape}?", "is it true that there is no {shape} in the picture?",
                  "is the shape not a {shape}?", "does the picture lack a {shape}?",
                  "is the picture free of {shape}s?", "are there no {shape}s here?"),
}


def easy_vqa_meanings() -> list[tuple[str, str | None]]:
    """Every easy-vqa question meaning (intent, the value its placeholder takes): 35 in all, in a fixed
    order (intents as in EASY_ORIGINALS, then colours / shapes as listed)."""
    values: dict[str, list[str | None]] = {
        "shape": [None], "color": ["shape", *EASY_SHAPES], "shape_of_color": list(EASY_COLORS),
        "has_color": list(EASY_COLORS), "not_color": list(EASY_COLORS), "has_shape": list(EASY_SHAPES),
        "not_shape": list(EASY_SHAPES)}
    return [(intent, v) for intent in EASY_ORIGINALS for v in values[intent]]


@dataclass(frozen=True)
class EasyVqaQuestion:
    """A parsed easy-vqa question: intent (a key of EASY_ORIGINALS), the colour / shape / subject it
    names, and the wording template it matched."""

    intent: str
    value: str | None
    template: str

    def fill(self, template: str) -> str:
        return fill_wording(template, self.intent, self.value)


def fill_wording(template: str, intent: str, value: str | None) -> str:
    """A wording template with its placeholder ({color} / {shape} / {subject}) set to `value`."""
    key = {"color": "subject", "shape_of_color": "color", "has_color": "color", "not_color": "color",
           "has_shape": "shape", "not_shape": "shape"}.get(intent)
    return template.format(**{key: value}) if key is not None else template


_PLACEHOLDER_GROUPS = {"{color}": f"(?P<v>{'|'.join(EASY_COLORS)})", "{shape}": f"(?P<v>{'|'.join(EASY_SHAPES)})",
                       "{subject}": f"(?P<v>shape|{'|'.join(EASY_SHAPES)})"}


def template_regex(template: str) -> re.Pattern[str]:
    """A wording's regex (whole question): its placeholder becomes the named group `v` over its values."""
    pattern = re.escape(template)
    for ph, group in _PLACEHOLDER_GROUPS.items():
        pattern = pattern.replace(re.escape(ph), group)
    return re.compile(pattern + r"\Z")


@lru_cache(maxsize=1)
def _easy_patterns() -> list[tuple[re.Pattern[str], str, str]]:
    return [(template_regex(template), intent, template)
            for intent in EASY_ORIGINALS for template in EASY_ORIGINALS[intent] + EASY_PARAPHRASES[intent]]


@lru_cache(maxsize=8192)  # easy-vqa has 107 distinct questions, each parsed many times
def parse_easy_vqa_question(question: str) -> EasyVqaQuestion | None:
    """The intent of an easy-vqa question (original or paraphrased wording), None if it is neither."""
    q = question.strip().lower()
    if q.endswith("."):
        q = q[:-1] + "?"  # "tell me the colour of the shape." is a question too
    for pattern, intent, template in _easy_patterns():
        if m := pattern.match(q) or (pattern.match(q[:-1] + ".") if q.endswith("?") else None):
            return EasyVqaQuestion(intent, m.groupdict().get("v"), template)
    return None


@dataclass(frozen=True)
class WordingSplit:
    """Per intent, the wordings a model may train on (all originals + most paraphrases) and the
    held-out paraphrases kept for evaluation. Disjoint by construction."""

    train: dict[str, tuple[str, ...]]
    heldout: dict[str, tuple[str, ...]]

    def wordings(self, intent: str, which: WordingSet) -> tuple[str, ...]:
        if which == "train":
            return self.train[intent]
        if which == "heldout":
            return self.heldout[intent]
        return self.train[intent] + self.heldout[intent]


@lru_cache(maxsize=32)
def wording_split(heldout_fraction: float = 0.3, seed: int = 0) -> WordingSplit:
    """Deterministic train / held-out split of the paraphrase wordings, per intent: at least one held-out
    and one train paraphrase per intent. Originals are always train: they are the data set's questions."""
    train: dict[str, tuple[str, ...]] = {}
    heldout: dict[str, tuple[str, ...]] = {}
    for intent, paras in EASY_PARAPHRASES.items():
        order = sorted(paras)  # independent of the table's order
        random.Random(f"wording-split|{seed}|{intent}").shuffle(order)
        k = min(max(1, round(heldout_fraction * len(order))), len(order) - 1)
        heldout[intent] = tuple(sorted(order[:k]))
        train[intent] = EASY_ORIGINALS[intent] + tuple(sorted(order[k:]))
    return WordingSplit(train, heldout)


def wording_words(template: str) -> list[str]:
    """A wording's words for edit distances: end punctuation dropped, sentences joined ("look at the image.
    what shape is there?"); a placeholder counts as one word."""
    return template.rstrip("?.").replace(". ", " ").split()


@lru_cache(maxsize=1)
def table_wordings() -> frozenset[str]:
    """Every wording of the tables (originals and paraphrases, training and held-out, all intents)."""
    return frozenset(t for intent in EASY_ORIGINALS for t in EASY_ORIGINALS[intent] + EASY_PARAPHRASES[intent])


@lru_cache(maxsize=4096)
def heldout_edits(template: str, heldout_fraction: float = 0.3, split_seed: int = 0) -> int:
    """The fewest word edits from `template` to any held-out wording of that split, of any intent: the rule
    that keeps new training wordings (drills, frames) away from the wordings a model is scored on unheard."""
    from moshivis.eval.asr_metric import edit_distance

    split = wording_split(heldout_fraction, split_seed)
    words = wording_words(template)
    return min(edit_distance(words, wording_words(h)) for intent in split.heldout for h in split.heldout[intent])


def paraphrase(question: str, rng: random.Random, wordings: WordingSet = "all",
               split: WordingSplit | None = None) -> str:
    """Another wording of an easy-vqa question, same meaning, drawn from `wordings` of `split`
    (default `wording_split()`), never the question's own wording. ValueError if the question is not an
    easy-vqa pattern."""
    parsed = parse_easy_vqa_question(question)
    if parsed is None:
        raise ValueError(f"not an easy-vqa question: {question!r}")
    split = split or wording_split()
    options = [t for t in split.wordings(parsed.intent, wordings) if t != parsed.template]
    return parsed.fill(rng.choice(options))


def paraphrase_template_count() -> int:
    """How many new wordings the paraphrase table adds (originals excluded)."""
    return sum(len(v) for v in EASY_PARAPHRASES.values())
