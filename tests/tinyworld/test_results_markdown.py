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
