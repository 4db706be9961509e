"""Scoring a predictions file against a loaded benchmark (the library side of
`moshivis eval score --benchmark NAME --predictions P ...`).

Predictions: JSON Lines, one object per answered item:
    {"id": "262148000", "answer": "two", "prompt": "text", "asr": "Two."}
- id: the item id (`EvalItem.id`), string or integer;
- answer: the text-stream answer (the headline scores use it);
- prompt: "text" or "audio": how the question was put (default "text"); a file may hold both, each item
  at most once per prompt kind;
- asr: optional, an ASR transcript of the spoken answer. Where present, the benchmark metric is also
  computed on the transcripts ("spoken_answer") and the transcript is compared with the text answer
  (WER and agreement, `moshivis.eval.asr_metric`).

Per prompt kind, every ground-truth item counts: an item without a prediction scores 0 (`missing`), so a
partial file gives a lower number, never a flattering one; `coverage` says how much was answered. Ids that
are not in the ground truth are counted (`unknown_ids`) and otherwise ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from moshivis.eval.benchmarks import METRIC_FAMILY, canonical_name
from moshivis.eval.items import Benchmark, EvalItem

__all__ = ["HEADLINE", "Prediction", "PredictionsError", "read_predictions", "score"]

PROMPTS = ("text", "audio")
# The number each metric family reports in the paper's tables.
HEADLINE = {"vqa": "accuracy", "exact_match": "exact_match", "easy_vqa": "accuracy", "caption": "cider"}


class PredictionsError(ValueError):
    """The predictions file has malformed lines; the message counts them and shows the first few."""


@dataclass
class Prediction:
    id: str
    answer: str
    prompt: str = "text"
    asr: str | None = None


def _parse_row(obj: Any) -> Prediction:
    if not isinstance(obj, dict):
        raise ValueError(f"expected an object, got {type(obj).__name__}")
    item_id = obj.get("id")
    if isinstance(item_id, bool) or not isinstance(item_id, (str, int)) or str(item_id).strip() == "":
        raise ValueError(f"'id' must be a non-empty string or an integer, got {item_id!r}")
    answer = obj.get("answer")
    if not isinstance(answer, str):
        raise ValueError(f"'answer' must be a string, got {type(answer).__name__}")
    prompt = obj.get("prompt", "text")
    if prompt not in PROMPTS:
        raise ValueError(f"'prompt' must be one of {PROMPTS}, got {prompt!r}")
    asr = obj.get("asr")
    if asr is not None and not isinstance(asr, str):
        raise ValueError(f"'asr' must be a string or null, got {type(asr).__name__}")
    return Prediction(str(item_id).strip(), answer, prompt, asr)


def read_predictions(source: str | os.PathLike[str] | Iterable[Mapping[str, Any]]) -> list[Prediction]:
    """Parse a JSONL file (or rows already parsed). All problems are collected first and raised together
    as one `PredictionsError` (count + first lines), so a broken file is fixed in one go."""
    problems: list[str] = []
    out: list[Prediction] = []
    seen: set[tuple[str, str]] = set()

    def take(where: str, obj: Any) -> None:
        try:
            pred = _parse_row(obj)
        except ValueError as e:
            problems.append(f"{where}: {e}")
            return
        if (pred.id, pred.prompt) in seen:
            problems.append(f"{where}: id {pred.id!r} already has a {pred.prompt}-prompt prediction")
            return
        seen.add((pred.id, pred.prompt))
        out.append(pred)

    if isinstance(source, (str, os.PathLike)):
        with open(source, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    problems.append(f"line {lineno}: invalid JSON ({e.msg})")
                    continue
                take(f"line {lineno}", obj)
    else:
        for i, obj in enumerate(source):
            take(f"row {i}", obj)
    if problems:
        shown = "\n  ".join(problems[:10])
        raise PredictionsError(f"{len(problems)} malformed prediction rows:\n  {shown}"
                               + ("\n  ..." if len(problems) > 10 else ""))
    return out


def _family(benchmark: str, items: list[EvalItem]) -> str:
    base, config = canonical_name(benchmark)
    if base == "babillage" and config is None:
        configs = {canonical_name(i.benchmark)[1] for i in items}
        if len(configs) != 1 or None in configs:
            raise ValueError("babillage: name the config (babillage/coco|ocrvqa|vqav2) to choose the metric")
        config = configs.pop()
    return METRIC_FAMILY[config if base == "babillage" else base]  # type: ignore[index]


def _metric(family: str, answers: dict[str, str], items: list[EvalItem], always_normalize: bool) -> dict[str, Any]:
    if family == "vqa":
        from moshivis.eval.vqa_metric import vqa_scores

        return vqa_scores(answers, items, always_normalize=always_normalize)
    if family == "easy_vqa":
        from moshivis.eval.easy_vqa_metric import easy_vqa_scores

        return easy_vqa_scores(answers, items)
    if family == "exact_match":
        from moshivis.eval.ocrvqa_metric import ocrvqa_scores

        return ocrvqa_scores(answers, items)
    from moshivis.eval.caption_metric import caption_scores

    return caption_scores(answers, {i.id: i.answers for i in items})


def score(
    benchmark: str,
    predictions_jsonl: str | os.PathLike[str] | Iterable[Mapping[str, Any]],
    ground_truth: Benchmark | Iterable[EvalItem] | Mapping[str, EvalItem],
    always_normalize: bool = False,
    keep_per_item: bool = False,
) -> dict[str, Any]:
    """Scores of a predictions file per prompt kind (module docstring). `always_normalize` is passed to
    the VQA metric (off: the official rule). `keep_per_item` keeps each item's score in the output."""
    if isinstance(ground_truth, Mapping):
        items = list(ground_truth.values())
    else:
        items = list(ground_truth)
    if not items:
        raise ValueError("score: empty ground truth")
    family = _family(benchmark, items)
    headline = HEADLINE[family]
    known = {i.id for i in items}
    preds = read_predictions(predictions_jsonl)
    unknown = sorted({p.id for p in preds if p.id not in known})

    prompts: dict[str, Any] = {}
    for prompt in PROMPTS:
        rows = [p for p in preds if p.prompt == prompt and p.id in known]
        if not rows:
            continue
        block: dict[str, Any] = {
            "n_predictions": len(rows),
            "coverage": 100.0 * len(rows) / len(items),
            "text_answer": _metric(family, {p.id: p.answer for p in rows}, items, always_normalize),
        }
        block["headline"] = block["text_answer"][headline]
        with_asr = [p for p in rows if p.asr is not None]
        if with_asr:
            from moshivis.eval.asr_metric import asr_scores

            block["n_with_asr"] = len(with_asr)
            block["spoken_answer"] = _metric(family, {p.id: p.asr for p in with_asr if p.asr is not None}, items,
                                             always_normalize)
            block["asr_vs_text"] = asr_scores((p.id, p.answer, p.asr) for p in with_asr if p.asr is not None)
        if not keep_per_item:
            for key in ("text_answer", "spoken_answer", "asr_vs_text"):
                if key in block:
                    block[key].pop("per_item", None)
        prompts[prompt] = block

    out: dict[str, Any] = {
        "benchmark": benchmark,
        "family": family,
        "headline_metric": headline,
        "n_ground_truth": len(items),
        "prompts": prompts,
        "unknown_ids": {"count": len(unknown), "examples": unknown[:10]},
    }
    if isinstance(ground_truth, Benchmark):
        out["load_report"] = ground_truth.report.to_dict()
    return out
