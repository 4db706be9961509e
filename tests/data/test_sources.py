"""Source readers: every published format, planted bad rows reported with their reason, good rows kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from moshivis.data.sources import (
    SourceFormatError,
    SourceReport,
    SourceRow,
    read_caption_jsonl,
    read_coco_karpathy,
    read_easy_vqa,
    read_ocr_vqa,
    read_vqav2,
)
from moshivis.data.types import RowError


def png(path: Path, color: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path)
    return path


def corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    return path


def split(items: list) -> tuple[list[SourceRow], dict[str, RowError]]:
    rows = [x for x in items if isinstance(x, SourceRow)]
    errors = {e.row: e for e in items if isinstance(e, RowError)}
    assert len(rows) + len(errors) == len(items)
    return rows, errors


def test_coco_karpathy(tmp_path: Path) -> None:
    png(tmp_path / "img/val2014/good.jpg")
    png(tmp_path / "img/train2014/other.jpg")
    corrupt(tmp_path / "img/val2014/bad.jpg")
    png(tmp_path / "img/val2014/empty.jpg")
    s = lambda *raws: [{"raw": r, "tokens": r.split()} for r in raws]  # noqa: E731
    images = [
        {"filepath": "val2014", "filename": "good.jpg", "split": "test", "cocoid": 1,
         "sentences": s("A red square on a table.", "  ", "A small red box.")},
        {"filepath": "train2014", "filename": "other.jpg", "split": "train", "cocoid": 2, "sentences": s("x")},
        {"filepath": "val2014", "filename": "gone.jpg", "split": "test", "cocoid": 3, "sentences": s("A cat.")},
        {"filepath": "val2014", "filename": "bad.jpg", "split": "test", "cocoid": 4, "sentences": s("A dog.")},
        {"filepath": "val2014", "filename": "empty.jpg", "split": "test", "cocoid": 5, "sentences": s("", " ")},
        {"filepath": "val2014", "split": "test", "cocoid": 6, "sentences": s("No file name.")},
        {"filepath": "val2014", "filename": "good.jpg", "split": "test", "cocoid": 7, "sentences": "A string."},
    ]
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": images, "dataset": "coco"}))
    rows, errors = split(list(read_coco_karpathy(tmp_path / "dataset_coco.json", tmp_path / "img", split="test")))
    assert [r.row for r in rows] == ["1"]
    assert rows[0].captions == ["A red square on a table.", "A small red box."]
    assert rows[0].meta["empty_captions"] == 1
    assert Path(rows[0].image.path) == tmp_path / "img/val2014/good.jpg"
    assert {k: e.reason for k, e in errors.items()} == {
        "3": "missing image", "4": "corrupt image", "5": "empty caption", "6": "malformed row", "7": "malformed row"}
    assert "filename" in errors["6"].detail and "sentences" in errors["7"].detail
    # split=None reads every split; check_images=False skips PIL but still sees a missing file.
    rows, errors = split(list(read_coco_karpathy(tmp_path / "dataset_coco.json", tmp_path / "img", split=None,
                                                 check_images=False)))
    assert sorted(r.row for r in rows) == ["1", "2", "4"]
    with pytest.raises(SourceFormatError):
        (tmp_path / "nope.json").write_text("[1, 2]")
        read_coco_karpathy(tmp_path / "nope.json", tmp_path)


def test_caption_jsonl(tmp_path: Path) -> None:
    png(tmp_path / "a.png")
    png(tmp_path / "b.jpg", (0, 0, 255))
    png(tmp_path / "c.png")
    corrupt(tmp_path / "bad.png")
    png(tmp_path / "cache/pixmo1.jpg")
    lines = [
        {"id": "a", "image": "a.png", "caption": "A red square."},
        {"example_id": "docci_1", "image_file": "b.jpg", "description": "A blue square. It is small.", "split": "train"},
        {"id": "c", "file_name": "c.png", "captions": ["One.", "", "Two."]},
        {"id": "missing", "image": "nothere.png", "caption": "Gone."},
        {"id": "corrupt", "image": "bad.png", "caption": "Broken."},
        {"id": "empty", "image": "a.png", "caption": "   "},
        {"id": "nocap", "image": "a.png"},
        {"id": "wrongtype", "image": "a.png", "caption": 5},
        {"id": "wrongimg", "image": ["a.png"], "caption": "x"},
        {"id": "remote", "image_url": "https://example.com/r.jpg", "caption": "Far away."},
        {"id": "pixmo", "image_url": "https://example.com/pixmo1.jpg", "caption": "Downloaded."},
    ]
    text = "\n".join(json.dumps(x) for x in lines) + "\n{not json\n[1, 2]\n\n"
    (tmp_path / "caps.jsonl").write_text(text)
    url_map = {"https://example.com/pixmo1.jpg": str(tmp_path / "cache/pixmo1.jpg")}
    items = list(read_caption_jsonl(tmp_path / "caps.jsonl", tmp_path, url_to_path=url_map.get, source="docci"))
    rows, errors = split(items)
    assert [r.row for r in rows] == ["a", "docci_1", "c", "pixmo"]
    assert rows[2].captions == ["One.", "Two."]
    assert rows[3].image.path == url_map["https://example.com/pixmo1.jpg"]
    assert rows[3].meta["url"] == "https://example.com/pixmo1.jpg"
    reasons = {k: e.reason for k, e in errors.items()}
    assert reasons == {
        "missing": "missing image", "corrupt": "corrupt image", "empty": "empty caption", "nocap": "malformed row",
        "wrongtype": "malformed row", "wrongimg": "malformed row", "remote": "remote image",
        "line 12": "malformed row", "line 13": "malformed row"}
    assert "caption" in errors["nocap"].detail and "caption" in errors["wrongtype"].detail
    assert "image" in errors["wrongimg"].detail and "JSON" in errors["line 12"].detail
    assert all(r.source == "docci" for r in rows) and all(e.source == "docci" for e in errors.values())
    # split filter and custom field names
    rows, _ = split(list(read_caption_jsonl(tmp_path / "caps.jsonl", tmp_path, split="train")))
    assert [r.row for r in rows] == ["docci_1"]
    (tmp_path / "custom.jsonl").write_text(json.dumps({"uid": 9, "img": "a.png", "alt": "Red."}) + "\n")
    rows, errors = split(list(read_caption_jsonl(tmp_path / "custom.jsonl", tmp_path, image_fields=["img"],
                                                 caption_fields=["alt"], id_fields=["uid"])))
    assert [(r.row, r.captions) for r in rows] == [("9", ["Red."])] and not errors


def test_vqav2(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    png(root / "COCO_val2014_000000000001.jpg")
    corrupt(root / "COCO_val2014_000000000003.jpg")
    png(root / "val2014/COCO_val2014_000000000004.jpg")  # the usual sub-folder layout works too
    questions = [
        {"image_id": 1, "question": "What color is the square?", "question_id": 10},
        {"image_id": 1, "question": "How many squares are there?", "question_id": 11},
        {"image_id": 2, "question": "Is there a cat?", "question_id": 20},  # image missing
        {"image_id": 3, "question": "What is this?", "question_id": 30},  # image corrupt
        {"image_id": 4, "question": "Is it red?", "question_id": 40},
        {"image_id": 4, "question_id": 41},  # no question text
        {"image_id": "4", "question": "Bad id type?", "question_id": 42},
        {"image_id": 4, "question": "No annotation?", "question_id": 43},
        {"image_id": 4, "question": "Empty answers?", "question_id": 44},
    ]

    def ann(qid: int, answers: list[str]) -> dict:
        return {"question_id": qid, "image_id": qid // 10, "answers": [{"answer": a, "answer_id": i + 1}
                for i, a in enumerate(answers)], "multiple_choice_answer": answers[0] if answers else "",
                "answer_type": "other", "question_type": "what"}

    annotations = [ann(10, ["red"] * 7 + ["maroon"] * 3), ann(11, ["1"] * 10), ann(20, ["no"] * 10),
                   ann(30, ["a square"] * 10), ann(40, ["yes"] * 9 + ["no"]), ann(41, ["x"]), ann(42, ["x"]),
                   ann(44, ["", " "]), {"question_id": 99, "answers": "red"}]
    (tmp_path / "q.json").write_text(json.dumps({"data_subtype": "val2014", "questions": questions}))
    (tmp_path / "a.json").write_text(json.dumps({"annotations": annotations}))
    rows, errors = split(list(read_vqav2(tmp_path / "q.json", tmp_path / "a.json", root)))
    assert [r.row for r in rows] == ["1", "4"]
    assert rows[0].qa == [("What color is the square?", ["red"] * 7 + ["maroon"] * 3),
                          ("How many squares are there?", ["1"] * 10)]
    assert rows[0].meta["question_ids"] == [10, 11] and rows[0].meta["multiple_choice_answers"] == ["red", "1"]
    assert Path(rows[1].image.path) == root / "val2014/COCO_val2014_000000000004.jpg"
    assert [q for q, _ in rows[1].qa] == ["Is it red?"]
    reasons = {k: e.reason for k, e in errors.items()}
    assert reasons == {"2": "missing image", "3": "corrupt image", "q41": "malformed row", "q42": "malformed row",
                       "q43": "malformed row", "q44": "empty answer", "annotation #8": "malformed row"}
    assert "question" in errors["q41"].detail and "image_id" in errors["q42"].detail
    assert "43" in errors["q43"].detail and "answers" in errors["annotation #8"].detail


def test_ocr_vqa(tmp_path: Path) -> None:
    root = tmp_path / "images"
    png(root / "111.jpg")
    png(root / "222.png")  # any extension
    png(root / "555.jpg")
    corrupt(root / "333.jpg")

    def book(split: int = 3, **kw) -> dict:
        d = {"imageURL": "http://x/y.jpg", "questions": ["Who wrote this book?", "Is this a comedy book?"],
             "answers": ["Jane Doe", "No"], "title": "A Title", "authorName": "Jane Doe", "genre": "Travel",
             "split": split}
        d.update(kw)
        return d

    data = {"111": book(), "222": book(), "333": book(), "444": book(), "555": book(split=1),
            "666": book(answers=["only one"]), "777": book(split="3"), "888": book(questions="Who?")}
    (tmp_path / "dataset.json").write_text(json.dumps(data))
    rows, errors = split(list(read_ocr_vqa(tmp_path / "dataset.json", root, split="test")))
    assert [r.row for r in rows] == ["111", "222"]
    assert rows[0].qa == [("Who wrote this book?", ["Jane Doe"]), ("Is this a comedy book?", ["No"])]
    assert rows[1].image.path.endswith("222.png") and rows[0].meta["genre"] == "Travel"
    assert {k: e.reason for k, e in errors.items()} == {
        "333": "corrupt image", "444": "missing image", "666": "malformed row", "777": "malformed row",
        "888": "malformed row"}
    assert "answers" in errors["666"].detail and "split" in errors["777"].detail and "questions" in errors["888"].detail
    rows, _ = split(list(read_ocr_vqa(tmp_path / "dataset.json", root, split="train")))
    assert [r.row for r in rows] == ["555"] and rows[0].meta["split"] == "train"


def test_easy_vqa_counts() -> None:
    train = list(read_easy_vqa("train"))  # no image reads: only stat calls
    test = list(read_easy_vqa("test"))
    assert all(isinstance(r, SourceRow) for r in train + test)
    assert len(train) == 4000 and len(test) == 1000
    assert sum(len(r.qa) for r in train) == 38575 and sum(len(r.qa) for r in test) == 9673
    assert train[0].row == "0" and train[0].image.image_id == "train/0" and train[0].source == "easy-vqa"
    assert all(len(a) == 1 for _, a in train[0].qa)
    few = list(read_easy_vqa("test", check_images=True, limit=3))  # verifies just three files
    assert [r.row for r in few] == ["0", "1", "2"]
    with pytest.raises(ValueError):
        read_easy_vqa("val")


def test_report_table(tmp_path: Path) -> None:
    png(tmp_path / "a.png")
    lines = [{"id": "a", "image": "a.png", "caption": "ok"}, {"id": "b", "image": "b.png", "caption": "x"},
             {"id": "c", "image": "a.png", "caption": ""}, {"id": "d", "image": "a.png"}]
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    report = SourceReport()
    kept = [x for x in report.track(read_caption_jsonl(tmp_path / "c.jsonl", tmp_path)) if isinstance(x, SourceRow)]
    assert len(kept) == 1
    assert (report.total_read, report.total_kept, report.total_errors) == (4, 1, 3)
    assert report.errors_by_reason() == {"missing image": 1, "empty caption": 1, "malformed row": 1}
    text = report.render()
    for word in ("captions", "missing image", "empty caption", "malformed row", "total"):
        assert word in text
