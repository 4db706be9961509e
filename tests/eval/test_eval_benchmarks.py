"""Loaders on small files in each published format, incl. missing images and malformed rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_fixtures import TEN, touch_image

from moshivis.data.sources import SourceFormatError
from moshivis.eval.benchmarks import canonical_name, load_benchmark
from moshivis.eval.items import EvalLoadError
from moshivis.eval.resolve import resolve_dataset_path


def test_vqav2(vqav2_dir: Path, coco_images: Path) -> None:
    bench = load_benchmark("vqav2", vqav2_dir, image_root=coco_images)
    assert [i.id for i in bench] == ["1000", "1001"]
    first = bench.items[0]
    assert first.answers == TEN  # all ten, raw, in order
    assert (first.answer_type, first.question_type) == ("number", "how many")
    assert first.image is not None and first.image.path.endswith("val2014/COCO_val2014_000000000001.jpg")
    rep = bench.report
    assert rep.rows_read == 6 and rep.items == 2
    assert rep.errors == {"missing image": 1, "malformed row": 2, "no annotation": 2}
    assert rep.missing_image_count == 1 and rep.missing_images == {"99": ["99000"]}
    summary = rep.summary()
    assert "missing images: 1 distinct, ids 99" in summary and "malformed row: 2" in summary
    with pytest.raises(EvalLoadError, match="missing image"):
        load_benchmark("vqav2", vqav2_dir, image_root=coco_images, strict=True)


def test_vqav2_without_images_and_limit(vqav2_dir: Path) -> None:
    bench = load_benchmark("vqav2", vqav2_dir)  # scoring needs no images
    assert [i.id for i in bench] == ["1000", "1001", "99000"] and not bench.report.images_checked
    assert bench.items[0].image is not None and bench.items[0].image.path == ""
    one = load_benchmark("VQA-v2", vqav2_dir, limit=1)
    assert len(one) == 1 and one.report.rows_read == 1 and "limit=1" in one.report.notes[0]


def test_ocrvqa(tmp_path: Path) -> None:
    data = {
        "b1": {"imageURL": "http://x/b1.jpg", "title": "T", "authorName": "A", "genre": "G", "split": 3,
               "questions": ["Who wrote this book?", "What is the title of this book?", "Is this a comedy book?"],
               "answers": ["J.K. Rowling", "Harry Potter", ""]},
        "b2": {"split": 3, "questions": ["Who wrote this book?"], "answers": ["Someone"]},  # no image file
        "b3": {"split": 1, "questions": ["Who wrote this book?"], "answers": ["Train"]},  # train: not read
        "b4": {"split": 3, "questions": "not a list", "answers": []},
        "b5": {"split": 3, "questions": ["Q1?", "Q2?"], "answers": ["only one"]},
        "b6": {"split": "3", "questions": [], "answers": []},
    }
    (tmp_path / "dataset.json").write_text(json.dumps(data))
    images = tmp_path / "images"
    touch_image(images / "b1.png")  # any extension
    bench = load_benchmark("ocr-vqa", tmp_path, image_root=images)
    assert [i.id for i in bench] == ["b1_0", "b1_1"]
    assert [i.answers for i in bench] == [["J.K. Rowling"], ["Harry Potter"]]
    assert [i.question_type for i in bench] == ["author", "title"]
    rep = bench.report
    assert rep.errors == {"no answers": 1, "missing image": 1, "malformed row": 3}
    assert rep.missing_images == {"b2": ["b2_0"]}
    assert len(load_benchmark("ocrvqa", tmp_path / "dataset.json", split="train")) == 1


def test_coco_karpathy(tmp_path: Path) -> None:
    def entry(cocoid: int, split: str, captions: list[str], filepath: str = "val2014") -> dict:
        return {"filepath": filepath, "filename": f"COCO_val2014_{cocoid:012d}.jpg", "imgid": cocoid,
                "split": split, "cocoid": cocoid, "sentids": [],
                "sentences": [{"raw": c, "tokens": c.lower().split(), "sentid": k} for k, c in enumerate(captions)]}

    five = [f"caption number {k}." for k in range(5)]
    data = {"dataset": "coco", "images": [
        entry(1, "test", five), entry(2, "test", five), entry(3, "val", five), entry(4, "test", ["", " "]),
        {**entry(5, "test", five), "sentences": [{"tokens": []}]}, "not an object",
    ]}
    (tmp_path / "dataset_coco.json").write_text(json.dumps(data))
    images = tmp_path / "images"
    touch_image(images / "val2014" / "COCO_val2014_000000000001.jpg")
    bench = load_benchmark("coco", tmp_path, image_root=images)
    assert [i.id for i in bench] == ["1"]
    assert bench.items[0].references == five and bench.items[0].question == ""
    assert bench.report.errors == {"missing image": 1, "no answers": 1, "malformed row": 2}
    assert bench.report.rows_read == 5  # the val image is not a test row
    with pytest.raises(SourceFormatError):
        (tmp_path / "bad.json").write_text(json.dumps({"images": "nope"}))
        load_benchmark("coco", tmp_path / "bad.json")


def test_easy_vqa_counts() -> None:
    bench = load_benchmark("easy-vqa", split="test")
    assert len(bench) == 9673
    assert len({i.image.image_id for i in bench if i.image is not None}) == 1000
    assert bench.report.ok and {i.question_type for i in bench} == {"shape", "color", "yes/no"}


def test_names() -> None:
    assert canonical_name("Babillage:COCO") == ("babillage", "coco")
    assert canonical_name("ocr-vqa") == ("ocrvqa", None)
    with pytest.raises(ValueError, match="unknown benchmark"):
        canonical_name("imagenet")


def test_resolve_local_offline_and_online(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_dataset_path(tmp_path) == tmp_path
    with pytest.raises(FileNotFoundError, match="no such file"):
        resolve_dataset_path(tmp_path / "absent")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="offline"):
        resolve_dataset_path("someone-else/not-cached-here-xyz")

    calls = []

    def fake_snapshot_download(**kw):
        calls.append(kw)
        return str(tmp_path)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert resolve_dataset_path("kyutai/Babillage", allow_patterns=["*coco*"]) == tmp_path
    assert calls[0]["repo_id"] == "kyutai/Babillage" and calls[0]["repo_type"] == "dataset"
    assert calls[0]["allow_patterns"] == ["*coco*"] and calls[0]["local_files_only"] is False
