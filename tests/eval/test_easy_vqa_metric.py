"""easy-vqa accuracy for sentence answers: the answer word read back from Moshi's sentence."""

from __future__ import annotations

import random

import pytest

from moshivis.data.easy_vqa_answers import easy_vqa_attributes, easy_vqa_spoken_answer
from moshivis.data.easy_vqa_wordings import paraphrase, parse_easy_vqa_question
from moshivis.data.sources import easy_vqa_split
from moshivis.eval.easy_vqa_metric import easy_vqa_scores, extract_answer
from moshivis.eval.items import EvalItem


def test_hand_worked_sentences() -> None:
    assert extract_answer("What shape is in the image?", "It's a blue circle.") == "circle"
    assert extract_answer("What is the red shape?", "The red shape is a triangle.") == "triangle"
    assert extract_answer("What color is the circle?", "The circle is teal.") == "teal"
    assert extract_answer("What color is the shape?", "It's grey.") == "gray"
    # the colour named in the question is not the answer
    assert extract_answer("What color is the shape?", "The shape is green.") == "green"
    assert extract_answer("Is there a red shape?", "No, there isn't a red shape. The shape is blue.") == "no"
    assert extract_answer("Is there a circle?", "Yes, there is a circle.") == "yes"
    # negated questions: the fact decides, not the first word
    assert extract_answer("Is there not a red shape?", "Actually, there is a red shape.") == "no"
    assert extract_answer("Is there not a circle?", "That's right, there is no circle.") == "yes"
    # evidence first: the verdict follows the first "so", not the words before it
    assert extract_answer("Is there a red shape?", "The shape is blue, so no, there isn't a red shape.") == "no"
    assert extract_answer("Is there a red shape?", "The shape is red, so yes, there is a red shape.") == "yes"
    assert extract_answer("Is there no circle?", "The shape is a circle, so actually there is a circle.") == "no"
    assert extract_answer("Is there no circle?", "The shape is a triangle, so that's right, there is no circle.") == "yes"
    assert extract_answer("Is there a red shape?", "A red shape? The shape is red, so yes, there is a red shape.") == "yes"
    assert extract_answer("Is there no circle?", "Not a circle? The shape is a triangle, so that's right, there is no "
                          "circle.") == "yes"
    assert extract_answer("Is there a circle?", "The shape is a circle, so.") is None  # no verdict said
    assert extract_answer("What shape is present?", "I don't know.") is None
    assert extract_answer("Not an easy-vqa question", "Yes.") is None


@pytest.mark.parametrize("evidence_first,echo", [(False, False), (True, False), (True, True)])
def test_every_generated_answer_reads_back_to_its_ground_truth(evidence_first: bool, echo: bool) -> None:
    """The sentences the data pipeline makes Moshi say, for every test question in its own wording and in
    a paraphrase, give back exactly the ground-truth word (verdict first, evidence first, echoed)."""
    texts, answers, image_ids, _ = easy_vqa_split("test")
    by_image: dict[int, list[tuple[str, list[str]]]] = {}
    for q, a, i in zip(texts, answers, image_ids):
        by_image.setdefault(i, []).append((q, [a]))
    rng = random.Random(0)
    n = 0
    for q, a, i in zip(texts, answers, image_ids):
        attrs = easy_vqa_attributes(by_image[i])
        for wording in (q, paraphrase(q, rng)):
            parsed = parse_easy_vqa_question(wording)
            assert parsed is not None
            sentence = easy_vqa_spoken_answer(parsed, a, attrs, rng, evidence_first, echo)
            assert extract_answer(wording, sentence) == a, (wording, a, sentence)
            n += 1
    assert n > 5000


def test_scores_count_missing_and_unreadable() -> None:
    items = [EvalItem("a", "easy-vqa", None, "What shape is present?", ["circle"], "other", "shape"),
             EvalItem("b", "easy-vqa", None, "Is there a circle?", ["no"], "yes/no", "yes/no"),
             EvalItem("c", "easy-vqa", None, "What color is the shape?", ["red"], "other", "color"),
             EvalItem("d", "easy-vqa", None, "What color is the shape?", ["red"], "other", "color")]
    s = easy_vqa_scores({"a": "It's a circle.", "b": "Yes, there is a circle.", "c": "Hmm."}, items)
    assert s["n"] == 4 and s["missing"] == 1 and s["unreadable"] == 1
    assert s["accuracy"] == 25.0 and s["per_question_type"]["shape"]["accuracy"] == 100.0
