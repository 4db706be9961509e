"""scripts/yes_no_anatomy.py: each kind of yes/no failure is told apart, other questions are skipped, and
the script runs on the shipped bundle's dev answers, reproducing stop 30's counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from testkit import load_script

REPO = Path(__file__).resolve().parents[2]
DEV = REPO / "tinyworld" / "results" / "dev"


def load():
    return load_script("scripts/yes_no_anatomy.py")


@pytest.mark.parametrize("answer, outcome, correct", [
    ("A red shape? The shape is green, so no, there isn't a red shape.", "right", True),
    ("Not a red shape? The shape is green, so that's right, there is no red shape.", "echo polarity wrong", False),
    ("A blue shape? The shape is green, so no, there isn't a blue shape.", "echo word wrong", True),
    ("No, there isn't a red shape.", "no echo", True),
    ("A red shape? The shape is red, so yes, there is a red shape.", "evidence wrong", False),
    ("A red shape? The shape is a circle, so no, there isn't a red shape.", "evidence wrong", True),
    ("A red shape? The shape is green, so yes, there is a red shape.", "verdict wrong", False),
])
def test_each_failure_is_told_apart(answer, outcome, correct):
    j = load().judge("is there a red shape?", answer, "no", "seen")  # the image holds a green shape
    assert (j.outcome, j.correct) == (outcome, correct)


def test_negated_questions_and_other_questions():
    m = load()
    j = m.judge("does the image not contain a triangle?", "Not a triangle? The shape is a triangle, so that's right, "
                "there is no triangle.", "no", "seen")  # a triangle is there: the verdict contradicts the evidence
    assert j.outcome == "verdict wrong" and j.polarity_right and not j.correct
    assert m.judge("what color is the shape?", "The shape is red.", "red", "seen") is None


def test_the_shipped_dev_answers(capsys):
    assert load().main(["--questions", str(DEV / "questions_1001_2000.jsonl"),
                        str(DEV / "shipped_audio_1001_2000.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "775 yes/no answers" in out and "| right | 227 | 131 |" in out and "| verdict wrong | 15 | 13 |" in out
    assert "| shipped_audio_1001_2000.jsonl | 775 | 57.4 | 68.2 | 46.8 | 68.0 |" in out
