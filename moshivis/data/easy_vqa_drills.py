"""Polarity drill wordings: new yes/no wordings made from the TRAINING wordings' own parts, so a listener
must hear the negating word itself ("not", "no", "nothing", "lack") rather than recall a whole wording.

Stop 22 found spoken yes/no answers echo the wrong polarity for held-out wordings one word away from a
trained one of the other polarity ("does the picture HAVE ..." heard as the trained "does the picture LACK
..."). Here every training yes/no wording is rewritten by a small table of rules (`_RULES`): some flip the
polarity (plain <-> negated, so the intent flips has_* <-> not_*), some only swap a noun or a place
("image" / "picture", "in the image" / "here"). The closure under two rewrites, less every wording already in
the tables, is the drill set.

The held-out wordings must stay unheard: a drill is kept only if it is at least `min_edits` word edits
(default 2) from EVERY held-out wording of every intent; a placeholder counts as one word. The rule was
fixed before any run, not tuned on results.
"""

from __future__ import annotations

import re
from functools import lru_cache

from moshivis.data.easy_vqa_wordings import heldout_edits, table_wordings, template_regex, wording_split

YES_NO_INTENTS: dict[str, str] = {"has_color": "not_color", "not_color": "has_color",
                                  "has_shape": "not_shape", "not_shape": "has_shape"}

# (pattern, replacement, flips polarity). Patterns match a whole template with its placeholders; X is
# "{color} shape", "{shape}" or "{color}", kept as written.
_X = r"(\{color\} shapes?|\{shape\}s?|\{color\})"
_RULES: tuple[tuple[str, str, bool], ...] = (
    # plain -> negated
    (r"^is there a " + _X, r"is there not a \1", True),
    (r"^is there a " + _X, r"is there no \1", True),
    (r"^is a " + _X + " present", r"is no \1 present", True),
    (r"^does the (image|picture) (contain|show) a ", r"does the \1 not \2 a ", True),
    (r"^does the (image|picture) (contain|show) a ", r"does the \1 lack a ", True),
    (r"^is the shape( in the picture)? a ", r"is the shape\1 not a ", True),
    (r"^is the shape( in the picture)? \{color\}", r"is the shape\1 not {color}", True),
    (r"^is anything in the picture ", r"is nothing in the picture ", True),
    (r"^is it true that there is a ", r"is it true that there is no ", True),
    # negated -> plain
    (r"^is there (not a|no) " + _X, r"is there a \2", True),
    (r"^is no " + _X + " present", r"is a \1 present", True),
    (r"^does the (image|picture) not (contain|show) a ", r"does the \1 \2 a ", True),
    (r"^does the (image|picture) lack a ", r"does the \1 contain a ", True),
    (r"^does the (image|picture) lack a ", r"does the \1 show a ", True),
    (r"^are there no " + _X + " here", r"are there any \1 here", True),
    (r"^is it true that there is no ", r"is it true that there is a ", True),
    (r"^is the shape( in the picture)? not ", r"is the shape\1 ", True),
    (r"^is there nothing \{color\}", r"is there anything {color}", True),
    (r"^is nothing in the picture ", r"is anything in the picture ", True),
    # same polarity: nouns and places
    (r"\bthe image\b", "the picture", False),
    (r"\bthe picture\b", "the image", False),
    (r" in the (image|picture)\?$", r" here?", False),
    (r"^([^ ]+ (?:(?!present).)*)\?$", r"\1 in the image?", False),  # a place phrase where there is none
)


def _rewrites(template: str) -> list[tuple[str, bool]]:
    """Each rule's rewrite of `template` (once, where it applies), with whether it flips the polarity."""
    out = []
    for pattern, repl, flips in _RULES:
        new = re.sub(pattern, repl, template, count=1)
        if new != template and len(re.findall(r"\b(?:image|picture|here)\b", new)) <= 1:
            out.append((new, flips))  # one mention of the picture at most: "... in the picture in the image?"
    return out


@lru_cache(maxsize=8)
def drill_wordings(heldout_fraction: float = 0.3, split_seed: int = 0, min_edits: int = 2,
                   ) -> dict[str, tuple[str, ...]]:
    """Per yes/no intent, the drill wordings (sorted): rewrites (at most two) of that split's training
    wordings that are in no wording table and at least `min_edits` word edits from every held-out wording."""
    split = wording_split(heldout_fraction, split_seed)
    tables = table_wordings()
    found: dict[str, set[str]] = {intent: set() for intent in YES_NO_INTENTS}
    frontier = [(t, intent) for intent in YES_NO_INTENTS for t in split.train[intent]]
    for _ in range(2):
        nxt = []
        for template, intent in frontier:
            for new, flips in _rewrites(template):
                new_intent = YES_NO_INTENTS[intent] if flips else intent
                if new in tables or new in found[new_intent]:
                    continue
                found[new_intent].add(new)
                nxt.append((new, new_intent))
        frontier = nxt
    return {intent: tuple(sorted(t for t in found[intent]
                                 if heldout_edits(t, heldout_fraction, split_seed) >= min_edits))
            for intent in YES_NO_INTENTS}


def _allowed(intent: str, heldout_fraction: float, split_seed: int) -> set[str]:
    return set(wording_split(heldout_fraction, split_seed).train[intent]) | set(
        drill_wordings(heldout_fraction, split_seed)[intent])


@lru_cache(maxsize=4096)
def polarity_twins(template: str, intent: str, heldout_fraction: float = 0.3, split_seed: int = 0,
                   ) -> tuple[str, ...]:
    """The wordings one polarity rewrite away from `template` (a yes/no wording of `intent`) that a
    model may train on (training or drill wordings of the flipped intent): "is there a {color} shape?" ->
    ("is there no {color} shape in ...", "is there not a {color} shape?", ...). Empty when there is none."""
    if intent not in YES_NO_INTENTS:
        raise ValueError(f"not a yes/no intent: {intent!r}")
    allowed = _allowed(YES_NO_INTENTS[intent], heldout_fraction, split_seed)
    return tuple(sorted({new for new, flips in _rewrites(template) if flips and new in allowed}))


@lru_cache(maxsize=8)
def _drill_patterns(heldout_fraction: float, split_seed: int) -> list[tuple[re.Pattern[str], str, str]]:
    return [(template_regex(t), intent, t)
            for intent, templates in drill_wordings(heldout_fraction, split_seed).items() for t in templates]


def parse_drill(question: str, heldout_fraction: float = 0.3, split_seed: int = 0,
                ) -> tuple[str, str, str] | None:
    """(intent, value, template) of a question asked in a drill wording, None if it is not one."""
    q = question.strip().lower()
    for pattern, intent, template in _drill_patterns(heldout_fraction, split_seed):
        if m := pattern.match(q):
            return intent, m.group("v"), template
    return None
