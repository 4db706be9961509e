"""Question files (`eval run/score --questions`): selection, rewording, and errors naming file and line."""

from __future__ import annotations

import json

import pytest

from moshivis.eval.items import EvalItem
from moshivis.eval.question_file import QuestionFileError, select_questions, write_question_file


def _items() -> list[EvalItem]:
    return [EvalItem(id=str(i), benchmark="easy-vqa", image=None, question=f"what color is shape {i}?",
                     answers=["red"], meta={"k": i}) for i in range(5)]


def test_selects_in_file_order_and_rewords(tmp_path):
    p = tmp_path / "q.jsonl"
    p.write_text('{"id": "3", "question": "which colour has shape 3?", "wording": "held-out"}\n\n{"id": 1}\n')
    got = select_questions(_items(), p)
    assert [g.id for g in got] == ["3", "1"]
    assert got[0].question == "which colour has shape 3?" and got[0].answers == ["red"]
    assert got[0].meta == {"k": 3, "wording": "held-out", "original": "what color is shape 3?"}
    assert got[1].question == "what color is shape 1?" and "original" not in got[1].meta


def test_round_trip(tmp_path):
    items = _items()
    items[2].meta["wording"] = "seen"
    p = write_question_file(items, tmp_path / "sub" / "q.jsonl", meta_keys=("wording",))
    assert json.loads(p.read_text().splitlines()[2]) == {"id": "2", "question": items[2].question, "wording": "seen"}
    assert [i.question for i in select_questions(_items(), p)] == [i.question for i in items]


@pytest.mark.parametrize("text, message", [
    ('{"id": "1"}\nnot json\n', "q.jsonl:2: not a JSON object"),
    ('{"question": "hi"}\n', "q.jsonl:1: a row needs an 'id' field"),
    ('{"id": "1", "question": ""}\n', "q.jsonl:1: 'question' must be a non-empty string"),
    ('{"id": "1"}\n{"id": 1}\n', "q.jsonl:2: id '1' already given on line 1"),
    ('{"id": "9"}\n', "q.jsonl:1: id '9' is not in the benchmark (5 items loaded)"),
    ("\n", "no questions in the file"),
])
def test_errors_name_file_and_line(tmp_path, text, message):
    p = tmp_path / "q.jsonl"
    p.write_text(text)
    with pytest.raises(QuestionFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        select_questions(_items(), p)


def test_missing_file(tmp_path):
    with pytest.raises(QuestionFileError, match="no such question file"):
        select_questions(_items(), tmp_path / "nope.jsonl")

