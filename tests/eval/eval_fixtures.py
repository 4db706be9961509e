"""Helpers that write small benchmark files in each published format (imported by tests and conftest)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import soundfile as sf

TEN = ["2", "2", "2", "two", "2", "2", "3", "2", "2", "2"]  # VQAv2 answers are raw: "two" stays "two"


def touch_image(path: Path) -> Path:
    """An image file: existence is what the loaders check unless verify_images=True."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (200, 10, 10)).save(path, format="PNG")
    return path


def wav_bytes(seconds: float, sr: int, freq: float = 440.0) -> bytes:
    t = np.arange(int(round(seconds * sr))) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def vqa_answers(answers: list[str]) -> list[dict]:
    return [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1} for k, a in enumerate(answers)]


def write_vqav2(tmp_path: Path) -> Path:
    """VQAv2 val: 6 questions. 1-2 fine (image 1), 3 image 99 absent, 4 malformed id, 5 no annotation,
    6 whose annotation is malformed (answers not a list) -> also "no annotation"."""
    root = tmp_path / "vqav2"
    root.mkdir()
    questions = [
        {"image_id": 1, "question": "How many dogs are there?", "question_id": 1000},
        {"image_id": 1, "question": "What color is the dog?", "question_id": 1001},
        {"image_id": 99, "question": "Is it raining?", "question_id": 99000},
        {"image_id": 1, "question": "Bad id?", "question_id": "x"},
        {"image_id": 1, "question": "Orphan?", "question_id": 1002},
        {"image_id": 1, "question": "Broken annotation?", "question_id": 1003},
    ]
    annotations = [
        {"question_id": 1000, "image_id": 1, "question_type": "how many", "answer_type": "number",
         "multiple_choice_answer": "2", "answers": vqa_answers(TEN)},
        {"question_id": 1001, "image_id": 1, "question_type": "what color is the", "answer_type": "other",
         "multiple_choice_answer": "brown", "answers": vqa_answers(["brown"] * 8 + ["tan", "Brown"])},
        {"question_id": 99000, "image_id": 99, "question_type": "is it", "answer_type": "yes/no",
         "multiple_choice_answer": "no", "answers": vqa_answers(["no"] * 10)},
        {"question_id": 1003, "image_id": 1, "question_type": "is", "answer_type": "yes/no", "answers": "yes"},
    ]
    (root / "v2_OpenEnded_mscoco_val2014_questions.json").write_text(
        json.dumps({"data_subtype": "val2014", "task_type": "Open-Ended", "questions": questions}))
    (root / "v2_mscoco_val2014_annotations.json").write_text(
        json.dumps({"data_subtype": "val2014", "annotations": annotations}))
    return root
