"""Image-free polarity facts (`data.polarity_facts`): every question is plain or negated as its answer's echo
says, the verdict follows from the fact, no question is an easy-vqa wording (trained or held out), and the
topic is drawn only when asked for by name, so the default image-free mix is unchanged."""

from __future__ import annotations

import random
import re

import pytest

from moshivis.data.augment import DEFAULT_TOPICS, audio_only_dialogues, check_topics, smalltalk_dialogue
from moshivis.data.easy_vqa_wordings import parse_easy_vqa_question
from moshivis.data.polarity_facts import (
    COLOR_THINGS,
    NEGATED_COLOR,
    NEGATED_SHAPE,
    PLAIN_COLOR,
    PLAIN_SHAPE,
    SHAPE_THINGS,
    polarity_fact,
)
from moshivis.data.synth import SynthConfig

TRUTH = {**dict(COLOR_THINGS), **dict(SHAPE_THINGS)}


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{t\}|\{c\}|\{ac\}|\{s\})", template)
    things = "|".join(re.escape(t) for t in TRUTH)
    return re.compile("".join(f"(?P<t>an? (?:{things}))" if p == "{t}" else "(?P<v>[a-z]+)" if p in ("{c}", "{s}")
                              else "(?P<a>an? [a-z]+)" if p == "{ac}" else re.escape(p) for p in parts), re.I)


def test_echo_polarity_and_verdict_follow_the_question_and_the_fact() -> None:
    rng = random.Random(0)
    kinds = set()
    for _ in range(2000):
        q, a = polarity_fact(rng)
        negated = [t for t in NEGATED_COLOR + NEGATED_SHAPE if _pattern(t).fullmatch(q)]
        plain = [t for t in PLAIN_COLOR + PLAIN_SHAPE if _pattern(t).fullmatch(q)]
        assert len(negated) + len(plain) == 1, (q, negated, plain)  # one template, so one polarity
        is_negated = bool(negated)
        assert a.startswith("Not ") == is_negated, (q, a)
        m = re.match(r"(?:Not )?an? ([a-z]+)", a, re.I)
        asked = m.group(1)
        thing = next(t for t in TRUTH if f" {t} is " in a)
        holds = TRUTH[thing] == asked
        answer_yes = (holds and not is_negated) or (not holds and is_negated)
        assert ("so yes," in a or "so that's right," in a) == answer_yes, (q, a)
        kinds.add((is_negated, holds))
    assert kinds == {(False, False), (False, True), (True, False), (True, True)}


def test_no_question_is_an_easy_vqa_wording() -> None:
    rng = random.Random(1)
    assert all(parse_easy_vqa_question(polarity_fact(rng)[0]) is None for _ in range(3000))


def test_topics_are_named_and_the_default_mix_is_unchanged() -> None:
    assert "polarity" not in DEFAULT_TOPICS and check_topics(None) == DEFAULT_TOPICS
    with pytest.raises(ValueError, match=r"\['polarty'\]"):
        check_topics(["polarty"])
    with pytest.raises(ValueError, match=r"\['nope'\]"):  # a synth config refuses it before any work
        SynthConfig(audio_only_topics=["nope"]).validate()
    d = smalltalk_dialogue(random.Random(3), max_pairs=3, topics=["polarity"])
    assert set(d.meta["topics"]) <= {"polarity", "greeting"} and "polarity" in d.meta["topics"]
    default = [t for d in audio_only_dialogues(300, seed=0, max_pairs=1) for t in d.meta["topics"]]
    assert "polarity" not in default and len(set(default)) == len(DEFAULT_TOPICS)
    # Naming the default topics gives the very same dialogues as naming none.
    named = list(audio_only_dialogues(50, seed=4, topics=list(DEFAULT_TOPICS)))
    assert [d.turns for d in named] == [d.turns for d in audio_only_dialogues(50, seed=4)]
