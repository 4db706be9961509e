"""The results table's Markdown: the per-question-type table shows each condition's split, and a condition
without a split (or not measured) leaves no row."""

from __future__ import annotations

from moshivis.tinyworld.results import markdown


def _block(acc: float, per_type: dict[str, float] | None) -> dict:
    split = {"n": 10, "accuracy": acc, "missing": 0, "unreadable": 0}
    if per_type is not None:
        split["per_type"] = per_type
    return {"all": split, "seen": split, "held-out": split, "gate_mean": 0.03}


def test_per_type_table_has_one_row_per_measured_condition():
    res = {"questions": 10, "held_out_voices": ["flite:slt"],
           "text": _block(60.0, {"color": 97.8, "shape": 57.6, "yes/no": 56.3}),
           "blind": _block(40.0, {"color": 14.5, "yes/no": 53.1}),
           "majority": _block(43.8, None)}
    md = markdown(res)
    assert "| by question type (all wordings) | color | shape | yes/no |" in md
    assert "| text prompt, image | 97.8 | 57.6 | 56.3 |" in md
    assert "| blind: frozen base, no image (text) | 14.5 | - | 53.1 |" in md  # shape not measured: a dash
    type_rows = md.split("| by question type")[1].split("\n\n")[0]
    assert "majority" not in type_rows and "audio prompt" not in type_rows


def test_no_per_type_table_without_splits():
    res = {"questions": 10, "held_out_voices": ["flite:slt"], "text": _block(60.0, None)}
    assert "by question type" not in markdown(res)


def test_spoken_answers_split_the_voice_from_the_hearing():
    """A wrong text answer the voice says faithfully must not count against the voice: the readable split
    scores the voice only on text answers that name an answer word."""
    from types import SimpleNamespace

    from moshivis.tinyworld.results import _spoken_answer_scores

    def item(i: str, question: str, answer: str) -> SimpleNamespace:
        return SimpleNamespace(id=i, question=question, answers=[answer])

    items = [item("a", "what color is the shape?", "red"), item("b", "what color is the shape?", "teal"),
             item("c", "what shape is in the image?", "circle"), item("d", "is there a red shape?", "no")]
    rows = {"a": {"answer": "The shape is red.", "asr": "The shape is red."},            # right, said right
            "b": {"answer": "The shape is teal.", "asr": "The shape is sealed."},        # the voice fails
            "c": {"answer": "The shape is a triangle.", "asr": "The shape is a triangle."},  # wrong, said faithfully
            "d": {"answer": "I like trains.", "asr": "I like trains."}}                  # no answer word at all
    s = _spoken_answer_scores(rows, items)
    assert s["n"] == 4 and s["text_readable"] == 3
    assert s["transcript_matches_text_answer"] == 50.0  # a and c of 4
    assert s["transcript_matches_readable"] == round(100 * 2 / 3, 2)  # a and c of the 3 readable
    assert s["transcript_right"] == 25.0  # a only
    md = markdown({"questions": 4, "held_out_voices": ["flite:slt"], "spoken_answers": s})
    assert f"| audio prompts, training voices | 4 | 50.0 | {round(200 / 3, 2)} (of 3) | 25.0 |" in md
    old = {k: v for k, v in s.items() if k not in ("text_readable", "transcript_matches_readable")}
    assert "| 4 | 50.0 | - | 25.0 |" in markdown({"questions": 4, "held_out_voices": [], "spoken_answers": old})
