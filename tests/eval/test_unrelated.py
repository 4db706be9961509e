"""Image-unrelated questions: generated deterministically, scored by their key word."""

from __future__ import annotations

from moshivis.eval.unrelated import key_answer, unrelated_items, unrelated_scores


def test_keys_of_hand_worked_answers() -> None:
    assert key_answer("Seventeen plus twelve is twenty-nine.") == "29"
    assert key_answer("Three, four, five, six.") == "6"
    assert key_answer("Tuesday comes after Monday.") == "tuesday"
    assert key_answer("No, cats can't fly.") == "no"
    assert key_answer("A banana is usually yellow.") == "yellow"
    assert key_answer("A triangle has three sides.") == "3"
    assert key_answer("") is None


def test_items_are_deterministic_cover_every_topic_and_have_keys() -> None:
    a, b = unrelated_items(80), unrelated_items(80)
    assert [(i.question, i.answers) for i in a] == [(i.question, i.answers) for i in b]
    assert len({i.question_type for i in a}) == 8
    assert all(key_answer(i.answers[0]) for i in a)
    assert len({i.question for i in a}) > 50  # the fixed-fact topics have only 6 to 19 questions
    assert not any(ch.isdigit() for i in a for ch in i.question + i.answers[0])  # numbers said as words


def test_scores() -> None:
    items = unrelated_items(16)
    right = {i.id: i.answers[0] for i in items}
    assert unrelated_scores(right, items)["accuracy"] == 100.0
    wrong = dict(right)
    wrong[items[0].id] = "I have no idea about that at all, sorry!"
    del wrong[items[1].id]
    s = unrelated_scores(wrong, items)
    assert s["missing"] == 1 and s["accuracy"] == 100.0 * 14 / 16
