"""Polarity drill wordings (`easy_vqa_drills`): built from training wordings only, far from every held-out
wording, each with the polarity its negating words say; dialogues asked in them answer by that polarity."""

from __future__ import annotations

import re

import pytest

from moshivis.data.easy_vqa_drills import YES_NO_INTENTS, drill_wordings
from moshivis.data.easy_vqa_wordings import EASY_ORIGINALS, EASY_PARAPHRASES, wording_split, wording_words
from moshivis.data.sources import SourceRow, read_easy_vqa
from moshivis.data.synth import SynthConfig
from moshivis.data.templates import TemplateConfig, make_dialogue
from moshivis.eval.asr_metric import edit_distance

NEGATING = re.compile(r"\b(not|no|nothing|lack|free of)\b")


def test_drills_are_new_far_from_heldout_and_say_their_polarity() -> None:
    drills = drill_wordings()
    split = wording_split()
    tables = {t for i in EASY_ORIGINALS for t in EASY_ORIGINALS[i] + EASY_PARAPHRASES[i]}
    heldout = [t for i in split.heldout for t in split.heldout[i]]
    assert set(drills) == set(YES_NO_INTENTS)
    for intent, wordings in drills.items():
        assert len(wordings) >= 10, intent
        for t in wordings:
            assert t not in tables
            assert min(edit_distance(wording_words(t), wording_words(h)) for h in heldout) >= 2, t
            assert bool(NEGATING.search(t)) == intent.startswith("not_"), (intent, t)
            assert ("{color}" in t) == intent.endswith("color") and ("{shape}" in t) == intent.endswith("shape"), t
            assert len(re.findall(r"\b(?:image|picture|here)\b", t)) <= 1, t
    # the rule is strict: at min_edits 1 the held-out wordings' one-edit neighbours come back
    assert sum(map(len, drill_wordings(min_edits=1).values())) > sum(map(len, drills.values()))
    assert "does the picture have a {color} shape?" not in drill_wordings(min_edits=1)["has_color"]  # held-out itself


def test_drill_dialogues_answer_by_the_drills_polarity() -> None:
    rows = [r for r in read_easy_vqa("train", limit=40) if isinstance(r, SourceRow)]
    drills = {t: intent for intent, ws in drill_wordings().items() for t in ws}
    cfg = TemplateConfig(min_turns=16, max_turns=16, drill_prob=1.0, evidence_first=True, echo_question=True,
                         present_questions=True)
    seen = {"has": 0, "not": 0}
    for k, row in enumerate(rows):
        d = make_dialogue(row, "properties", seed=k, config=cfg)
        for i, turn in enumerate(d.turns):
            if turn.speaker != "user":
                continue
            q = turn.text.lower()
            match = [(t, intent) for t, intent in drills.items()
                     if re.fullmatch(re.escape(t).replace(r"\{color\}", r"\w+").replace(r"\{shape\}", r"\w+"), q)]
            if not match:
                continue
            negated = match[0][1].startswith("not_")
            answer = d.turns[i + 1].text
            assert answer.startswith("Not ") == negated, (turn.text, answer)
            seen["not" if negated else "has"] += 1
    assert seen["has"] >= 10 and seen["not"] >= 10, seen


def test_drill_prob_stays_out_of_old_manifests() -> None:
    # runs synthesised before drills existed must still resume: their stored config has no drill_prob
    plain = SynthConfig().manifest_config("tiny:x", "t.model")
    assert "drill_prob" not in plain["synth"]["dialogues"]
    drilled = SynthConfig.from_dict({"dialogues": {"drill_prob": 0.5}}).manifest_config("tiny:x", "t.model")
    assert drilled["synth"]["dialogues"]["drill_prob"] == 0.5


def test_drill_prob_must_be_a_probability() -> None:
    with pytest.raises(ValueError, match="drill_prob"):
        SynthConfig.from_dict({"dialogues": {"drill_prob": 1.5}}).validate()


def test_polarity_twins_flip_the_question_and_the_answer() -> None:
    from moshivis.data.easy_vqa_drills import polarity_twins

    assert polarity_twins("is there a {color} shape?", "has_color") == ("is there not a {color} shape?",)
    # the one-word twin of "does the picture lack ..." would be within one edit of a held-out wording
    assert polarity_twins("does the picture lack a {color} shape?", "not_color") == ()
    with pytest.raises(ValueError, match="yes/no intent"):
        polarity_twins("what shape is present?", "shape")
    rows = [r for r in read_easy_vqa("train", limit=40) if isinstance(r, SourceRow)]
    cfg = TemplateConfig(min_turns=2, max_turns=2, drill_prob=0.5, paraphrase_prob=0.5, polarity_twins=1.0,
                         evidence_first=True, echo_question=True, present_questions=True, opener_prob=0.0)
    pairs = 0
    for k, row in enumerate(rows):
        d = make_dialogue(row, "properties", seed=k, config=cfg)
        assert len(d.turns) in (2, 4) and len(d.meta["exchange_types"]) == len(d.turns) // 2
        if len(d.turns) == 4:
            pairs += 1
            q1, a1, q2, a2 = (t.text for t in d.turns)
            # same colour / shape asked, opposite polarity in the echo, the verdict flips
            assert a1.startswith("Not ") != a2.startswith("Not "), (q1, q2)
            assert bool(NEGATING.search(q1.lower())) != bool(NEGATING.search(q2.lower())), (q1, q2)
            assert set(q1.lower().rstrip("?").split()) ^ set(q2.lower().rstrip("?").split()) <= {
                "a", "not", "no", "nothing", "anything", "lack", "contain", "show", "any"}, (q1, q2)
    assert pairs >= 10
    # no draw at 0: the dialogues of runs made before the option stay the same
    plain = TemplateConfig(min_turns=2, max_turns=2, evidence_first=True, echo_question=True, present_questions=True)
    same = TemplateConfig(min_turns=2, max_turns=2, evidence_first=True, echo_question=True, present_questions=True,
                          polarity_twins=0.0, drill_prob=0.0)
    for k, row in enumerate(rows[:10]):
        assert [t.text for t in make_dialogue(row, "properties", seed=k, config=plain).turns] == \
            [t.text for t in make_dialogue(row, "properties", seed=k, config=same).turns]
