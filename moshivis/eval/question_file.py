"""A question file: which of a benchmark's questions to ask, and optionally in which words.

JSONL, one row per question: `{"id": ..., "question": ...}`. `id` is required and must name one of the
benchmark's items; `question` (optional) replaces the item's wording, which keeps its answers and image,
so a run can measure paraphrased questions (the embedded model's results table asks half of its questions
in held-out wordings and writes its sample as such a file). Other fields are kept in `item.meta`.

The items come back in the file's order. Every problem is an error naming the file and line: a line that
is not JSON, a row without an id, an id the benchmark does not have, an id given twice.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Sequence

from .items import EvalItem

__all__ = ["QuestionFileError", "read_question_file", "select_questions", "write_question_file"]


class QuestionFileError(ValueError):
    """A question file that cannot be used as it is (the message names the file, line and field)."""


def read_question_file(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a question file, checked for JSON, an `id` and a string `question` when present."""
    p = Path(path)
    if not p.is_file():
        raise QuestionFileError(f"{p}: no such question file")
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(p.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise QuestionFileError(f"{p}:{n}: not a JSON object ({e.msg})") from None
        if not isinstance(row, dict) or row.get("id") in (None, ""):
            raise QuestionFileError(f"{p}:{n}: a row needs an 'id' field")
        if "question" in row and not (isinstance(row["question"], str) and row["question"].strip()):
            raise QuestionFileError(f"{p}:{n}: 'question' must be a non-empty string, got {row['question']!r}")
        key = str(row["id"])
        if key in seen:
            raise QuestionFileError(f"{p}:{n}: id {key!r} already given on line {seen[key]}")
        seen[key] = n
        rows.append({**row, "id": key, "_line": n})
    if not rows:
        raise QuestionFileError(f"{p}: no questions in the file")
    return rows


def select_questions(items: Sequence[EvalItem], path: str | os.PathLike) -> list[EvalItem]:
    """The items the question file names, in its order, with its wordings applied."""
    by_id = {str(it.id): it for it in items}
    out: list[EvalItem] = []
    for row in read_question_file(path):
        it = by_id.get(row["id"])
        if it is None:
            raise QuestionFileError(f"{path}:{row['_line']}: id {row['id']!r} is not in the benchmark "
                                    f"({len(by_id)} items loaded)")
        extra = {k: v for k, v in row.items() if k not in ("id", "question", "_line")}
        question = row.get("question", it.question)
        meta = {**it.meta, **extra}
        if question != it.question:
            meta.setdefault("original", it.question)
        out.append(dataclasses.replace(it, question=question, meta=meta))
    return out


def write_question_file(items: Sequence[EvalItem], path: str | os.PathLike,
                        meta_keys: Sequence[str] = ()) -> Path:
    """Write `items` as a question file (id, question and the named meta fields)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w") as f:
        for it in items:
            row = {"id": str(it.id), "question": it.question, **{k: it.meta[k] for k in meta_keys if k in it.meta}}
            f.write(json.dumps(row) + "\n")
    return p
