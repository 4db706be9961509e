"""score(): predictions JSONL per prompt kind against loaded ground truth; the report files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from moshivis.eval.benchmarks import load_benchmark
from moshivis.eval.items import EvalItem
from moshivis.eval.report import build_report, markdown_table, write_report
from moshivis.eval.score import PredictionsError, score


def write_jsonl(path: Path, rows: list[dict | str]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_score_vqav2_text_and_audio(tmp_path: Path, vqav2_dir: Path) -> None:
    gt = load_benchmark("vqav2", vqav2_dir)  # 1000 (TEN), 1001 (brown x8), 99000 (no x10)
    preds = write_jsonl(tmp_path / "p.jsonl", [
        {"id": 1000, "answer": "2", "prompt": "text", "asr": "Two."},
        {"id": "1001", "answer": "brown", "prompt": "text"},
        {"id": "99000", "answer": "no", "prompt": "text"},
        {"id": "1000", "answer": "3", "prompt": "audio", "asr": "three"},
        {"id": "12345", "answer": "x", "prompt": "audio"},
    ])
    out = score("vqav2", preds, gt)
    text, audio = out["prompts"]["text"], out["prompts"]["audio"]
    assert out["headline_metric"] == "accuracy" and out["n_ground_truth"] == 3
    assert text["headline"] == pytest.approx(100.0) and text["coverage"] == pytest.approx(100.0)
    # "3" matches 1 of 10 answers: 0.3 on item 1000, the two unanswered items score 0.
    assert audio["headline"] == pytest.approx(100 * 0.3 / 3)
    assert audio["text_answer"]["missing"] == 2
    # ASR transcripts: scored as answers too ("Two." -> "2" as the answers differ), and vs the text.
    assert text["n_with_asr"] == 1 and text["asr_vs_text"]["agreement"] == pytest.approx(100.0)
    assert text["spoken_answer"]["accuracy"] == pytest.approx(100 / 3)
    assert out["unknown_ids"] == {"count": 1, "examples": ["12345"]}
    assert "per_item" not in text["text_answer"] and out["load_report"]["items"] == 3


def test_malformed_predictions_are_reported_together(tmp_path: Path) -> None:
    preds = write_jsonl(tmp_path / "bad.jsonl", [
        "{not json", {"id": "1", "prompt": "text"}, {"id": "1", "answer": "a", "prompt": "video"},
        {"id": "1", "answer": "a"}, {"id": "1", "answer": "b", "prompt": "text"}, {"id": True, "answer": "a"},
    ])
    items = [EvalItem("1", "ocrvqa", None, "q", ["a"])]
    with pytest.raises(PredictionsError, match="5 malformed prediction rows") as e:
        score("ocrvqa", preds, items)
    assert "line 1: invalid JSON" in str(e.value) and "already has a text-prompt prediction" in str(e.value)


def test_score_ocrvqa_reports_both_matches() -> None:
    items = [EvalItem("b_0", "ocrvqa", None, "Who wrote this book?", ["J.K. Rowling"]),
             EvalItem("b_1", "ocrvqa", None, "What is the title?", ["Harry Potter"])]
    out = score("ocrvqa", [{"id": "b_0", "answer": "J.K. Rowling"}, {"id": "b_1", "answer": "harry potter"}], items)
    block = out["prompts"]["text"]["text_answer"]
    assert (block["exact_match"], block["normalized_match"]) == (50.0, 100.0)


@pytest.mark.skipif(shutil.which("java") is None, reason="pycocoevalcap's tokenizer needs Java")
def test_score_coco_and_report_files(tmp_path: Path) -> None:
    refs = ["a dog runs on the grass", "a brown dog running", "dog playing on a lawn"]
    items = [EvalItem("1", "coco", None, "", refs), EvalItem("2", "coco", None, "", ["a red bus on a street"] * 3)]
    coco = score("coco", [{"id": "1", "answer": "a brown dog runs on the grass", "prompt": "audio"},
                          {"id": "2", "answer": "a red bus", "prompt": "text"}], items)
    assert coco["headline_metric"] == "cider" and coco["prompts"]["audio"]["headline"] > 0

    vqa = {"benchmark": "vqav2", "headline_metric": "accuracy",
           "prompts": {"text": {"headline": 80.5, "coverage": 100.0,
                                "asr_vs_text": {"wer": 4.0, "agreement": 91.0}}}}
    report = build_report([vqa, coco], run={"checkpoint": "test"})
    table = markdown_table(report)
    assert "| vqav2 | VQA accuracy | 80.5 | - | 83.2 | ~79 | ~71 |" in table
    assert "141.9" in table and "~126" in table and "| vqav2 | text | 4.0 | 91.0 |" in table
    paths = write_report(report, tmp_path / "out")
    assert json.loads(paths["json"].read_text())["rows"][0]["references"]["paligemma_224_stage3"] == 83.2
    assert paths["plot"].stat().st_size > 1000 and paths["plot"].read_bytes()[:4] == b"\x89PNG"
