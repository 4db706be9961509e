"""New sentence frames (`easy_vqa_frames`): in no wording table, far from every held-out wording, each
parsing back to its own meaning only, with the polarity its negating words say."""

from __future__ import annotations

import re

from moshivis.data.easy_vqa_frames import EASY_FRAMES, frame_wordings, parse_frame
from moshivis.data.easy_vqa_wordings import (EASY_ORIGINALS, EASY_PARAPHRASES, easy_vqa_meanings, fill_wording,
                                             parse_easy_vqa_question, wording_split, wording_words)
from moshivis.eval.asr_metric import edit_distance

NEGATING = re.compile(r"\b(not|no|nothing|zero|missing|absent|anything but|other than)\b")


def test_frames_are_new_and_far_from_heldout() -> None:
    frames = frame_wordings()
    split = wording_split()
    tables = {t for i in EASY_ORIGINALS for t in EASY_ORIGINALS[i] + EASY_PARAPHRASES[i]}
    heldout = [t for i in split.heldout for t in split.heldout[i]]
    assert set(frames) == set(EASY_ORIGINALS)
    for intent, wordings in frames.items():
        assert len(wordings) >= 8, intent
        for t in wordings:
            assert t not in tables
            assert min(edit_distance(wording_words(t), wording_words(h)) for h in heldout) >= 2, t
            if intent.startswith(("has_", "not_")):
                assert bool(NEGATING.search(t)) == intent.startswith("not_"), (intent, t)
    # the filter is real: these were written, and each is one word from a held-out wording, so dropped
    assert "is it a {shape}?" in EASY_FRAMES["has_shape"]
    assert "is it a {shape}?" not in frames["has_shape"]  # held-out: "is that a {shape}?"
    assert "is it a {shape}?" in frame_wordings(min_edits=1)["has_shape"]


def test_every_frame_parses_back_to_its_own_meaning_only() -> None:
    frames = frame_wordings()
    for intent, value in easy_vqa_meanings():
        for t in frames[intent]:
            q = fill_wording(t, intent, value)
            assert parse_easy_vqa_question(q) is None, q  # no table wording matches a frame
            assert parse_frame(q)[:2] == (intent, value), q
            assert parse_frame(q.upper()) is not None  # case does not matter
    assert parse_frame("is there a red shape?") is None  # a table wording is not a frame
    assert parse_frame("what is the weather?") is None


def test_frame_dialogues_ask_in_frames_and_answer_their_meaning() -> None:
    from moshivis.data.sources import SourceRow, read_easy_vqa
    from moshivis.data.synth import SynthConfig
    from moshivis.data.templates import TemplateConfig, make_dialogue

    rows = [r for r in read_easy_vqa("train", limit=30) if isinstance(r, SourceRow)]
    cfg = TemplateConfig(min_turns=16, max_turns=16, frame_prob=1.0, evidence_first=True, echo_question=True,
                         present_questions=True)
    plain = TemplateConfig(min_turns=16, max_turns=16, evidence_first=True, echo_question=True, present_questions=True)
    asked: set[str] = set()
    for k, row in enumerate(rows):
        d, d0 = make_dialogue(row, "properties", seed=k, config=cfg), make_dialogue(row, "properties", seed=k, config=plain)
        framed = [(t.text, d.turns[i + 1].text) for i, t in enumerate(d.turns)
                  if t.speaker == "user" and parse_frame(t.text) is not None]
        for q, answer in framed:
            intent, value, _ = parse_frame(q)
            asked.add(intent)
            if intent.startswith(("has_", "not_")):  # echoed yes/no answers say the question's polarity
                assert answer.startswith("Not ") == intent.startswith("not_"), (q, answer)
        # every easy-vqa question of the plain dialogue is asked in a frame at frame_prob 1
        n_easy = sum(t.speaker == "user" and parse_easy_vqa_question(t.text) is not None for t in d0.turns)
        assert len(framed) == n_easy, (k, d.turns)
    assert asked >= {"color", "has_color", "not_color", "has_shape", "not_shape"}, asked
    # the option is validated and reaches the template config
    import pytest

    with pytest.raises(ValueError, match="frame_prob"):
        SynthConfig.from_dict({"dialogues": {"frame_prob": 1.5}}).validate()
    kept = SynthConfig.from_dict({"dialogues": {"frame_prob": 0.4}})
    assert kept.manifest_config("tiny:x", "t.model")["synth"]["dialogues"]["frame_prob"] == 0.4
    # at 0 the manifest leaves it out, so synth runs made before the option still resume
    assert "frame_prob" not in SynthConfig().manifest_config("tiny:x", "t.model")["synth"]["dialogues"]


def test_closed_negation_drops_only_negated_frames_with_new_negating_words() -> None:
    from moshivis.data.easy_vqa_frames import NEW_NEGATIONS

    every, closed = frame_wordings(), frame_wordings(closed_negation=True)
    for intent in every:
        dropped = set(every[intent]) - set(closed[intent])
        assert set(closed[intent]) <= set(every[intent])
        assert all(intent.startswith("not_") and any(w in t for w in NEW_NEGATIONS) for t in dropped), dropped
        assert not any(w in t for t in closed[intent] for w in NEW_NEGATIONS)
    assert sum(map(len, every.values())) - sum(map(len, closed.values())) == 9


def test_paired_frames_differ_by_the_negating_word_alone() -> None:
    from moshivis.data.easy_vqa_frames import PAIRED_FRAMES, paired_frame_wordings

    paired = paired_frame_wordings()
    for kind, pairs in PAIRED_FRAMES.items():
        has, neg = set(paired[f"has_{kind}"]), set(paired[f"not_{kind}"])
        assert len(has) == len(neg) >= 8
        for a, b in pairs:
            assert (a in has) == (b in neg)  # a pair is kept whole or not at all
            wa, wb = wording_words(a), wording_words(b)
            assert edit_distance(wa, wb) == 1 and set(wb) - set(wa) <= {"not", "no"}, (a, b)
            assert not NEGATING.search(a) and NEGATING.search(b), (a, b)
    assert paired["color"] == frame_wordings()["color"]  # the other intents keep their frames
    q = fill_wording("is the figure not {color}?", "not_color", "red")
    assert parse_frame(q)[:2] == ("not_color", "red")
