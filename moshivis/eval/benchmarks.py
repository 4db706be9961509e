"""Benchmark loaders: published files -> `EvalItem`s, one per question (per image for COCO), keeping the
question ids and every ground-truth answer, plus an `EvalLoadReport` of what could not be used.

    load_benchmark(name, path, split=None, image_root=None, limit=None, strict=False, verify_images=False)

- `vqav2`: the folder holding `v2_OpenEnded_mscoco_{split}2014_questions.json` and
  `v2_mscoco_{split}2014_annotations.json` (or questions_file=, annotations_file=); default split val;
  one item per question, id = question_id.
- `ocrvqa`: `dataset.json` or its folder; default split test (code 3); one item per question,
  id = `{book id}_{question index}`.
- `coco`: Karpathy's `dataset_coco.json` or its folder; default split test; one item per image,
  id = cocoid, answers = all its captions.
- `easy-vqa`: path ignored (the installed `easy_vqa` package); default split test; one item per question,
  id = `{split}/{question index}`.
- `babillage`: a parquet folder/file or hub id (see `moshivis.eval.babillage`); one item per spoken question.

Why not `moshivis.data.sources`' readers: they group questions by image and strip/drop empty answers,
which is right for making training dialogues but not for scoring (VQA accuracy needs all 10 raw answers
per question id). The pieces that fit are reused (`check_image`, the OCR-VQA split codes, the format
error type).

Images: `image_root` None -> not looked up (enough for scoring, which needs only the ground truth); else
each item's image is looked up by id, and an item whose image is absent is left out and listed in the
report by image id, never skipped silently. `verify_images` also opens each image (PIL verify). A file that
is not the format at all raises `SourceFormatError`; a bad row is counted by reason. `strict=True` turns
any counted problem into an `EvalLoadError` carrying the summary.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from moshivis.data.sources import OCR_VQA_SPLITS, SourceFormatError, check_image, easy_vqa_split, load_json
from moshivis.data.types import ImageRef
from moshivis.eval.items import (
    DUPLICATE_ID, MALFORMED_ROW, MISSING_IMAGE, NO_ANNOTATION, NO_ANSWERS, Benchmark, EvalItem,
    EvalLoadError, EvalLoadReport,
)
from moshivis.eval.resolve import resolve_dataset_path

__all__ = ["BENCHMARKS", "DEFAULT_SPLITS", "METRIC_FAMILY", "canonical_name", "load_benchmark"]

PathLike = str | os.PathLike[str]

BENCHMARKS = ("vqav2", "ocrvqa", "coco", "easy-vqa", "babillage")
_ALIASES = {"vqa": "vqav2", "vqa2": "vqav2", "vqa-v2": "vqav2", "ocr-vqa": "ocrvqa", "ocr_vqa": "ocrvqa",
            "easy_vqa": "easy-vqa", "easyvqa": "easy-vqa", "coco-captions": "coco", "coco_karpathy": "coco"}
DEFAULT_SPLITS = {"vqav2": "val", "ocrvqa": "test", "coco": "test", "easy-vqa": "test", "babillage": "test"}
# Which metric scores a benchmark (babillage configs score as their base benchmark).
METRIC_FAMILY = {"vqav2": "vqa", "ocrvqa": "exact_match", "easy-vqa": "easy_vqa", "coco": "caption"}


def canonical_name(name: str) -> tuple[str, str | None]:
    """("babillage", "coco") for "babillage/coco" or "babillage:coco"; ("ocrvqa", None) for "OCR-VQA"."""
    base, _, config = name.strip().lower().replace(":", "/").partition("/")
    base = _ALIASES.get(base, base)
    if base not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    if config:
        if base != "babillage":
            raise ValueError(f"{name!r}: only babillage has configs (babillage/coco|ocrvqa|vqav2)")
        config = _ALIASES.get(config, config)
    return base, config or None


def load_benchmark(
    name: str,
    path: PathLike | None = None,
    split: str | None = None,
    image_root: PathLike | None = None,
    limit: int | None = None,
    strict: bool = False,
    verify_images: bool = False,
    **kwargs: Any,
) -> Benchmark:
    """Load benchmark `name` (see the module table). `limit`: keep at most this many items (a quick
    subset; note that CIDEr on a subset is not comparable with the full test set). Extra keyword
    arguments go to the loader (vqav2: questions_file, annotations_file; babillage: config, ground_truth,
    ground_truth_split, ground_truth_image_root)."""
    base, config = canonical_name(name)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    split = split if split is not None else DEFAULT_SPLITS[base]
    if base == "babillage":
        from moshivis.eval.babillage import load_babillage  # deferred: pyarrow and audio decoding

        if config is not None:
            kwargs.setdefault("config", config)
        bench = load_babillage(path, split=split, image_root=image_root, limit=limit, verify_images=verify_images,
                               **kwargs)
    else:
        if base != "easy-vqa" and path is None:
            raise ValueError(f"{base}: pass the path of the benchmark's files")
        if kwargs and base != "vqav2":
            raise TypeError(f"{base}: unexpected arguments {sorted(kwargs)}")
        loaders: dict[str, Callable[..., Benchmark]] = {
            "vqav2": _load_vqav2, "ocrvqa": _load_ocrvqa, "coco": _load_coco, "easy-vqa": _load_easy_vqa,
        }
        images = ImageFinder(image_root, verify_images)
        bench = loaders[base](path, split, images, limit, **kwargs)
    if strict and not bench.report.ok:
        raise EvalLoadError(bench.report.summary())
    return bench


# ------------------------------------------------------------------------------------------ helpers


class _Malformed(Exception):
    pass


class ImageFinder:
    """Looks images up under a root, once per path (many questions share an image). Shared with
    `moshivis.eval.babillage`, like `attach_image` and `collect_items`."""

    def __init__(self, root: PathLike | None, verify: bool) -> None:
        self.root = Path(root) if root is not None else None
        self.verify = verify
        self._seen: dict[Path, tuple[str, str] | None] = {}

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def first_existing(self, *relative: str | Path) -> Path:
        """The first candidate that exists under the root, else the first candidate (to report)."""
        assert self.root is not None
        paths = [self.root / r for r in relative]
        return next((p for p in paths if p.is_file()), paths[0])

    def check(self, path: Path) -> tuple[str, str] | None:
        if path not in self._seen:
            self._seen[path] = check_image(path, self.verify)
        return self._seen[path]


def attach_image(report: EvalLoadReport, images: ImageFinder, image_id: str, item_id: str,
                 locate: Callable[[], Path]) -> ImageRef | None:
    """ImageRef for the item (path "" when images are not looked up), or None after recording in the
    report why its image cannot be used."""
    if not images.enabled:
        return ImageRef(image_id, "")
    path = locate()
    bad = images.check(path)
    if bad is None:
        return ImageRef(image_id, str(path))
    reason, detail = bad
    if reason == MISSING_IMAGE:
        report.missing_image(image_id, item_id)
    else:
        report.error(reason, item_id, detail)
    return None


def _in_folder(path: PathLike, filename: str) -> Path:
    """`path` itself if it is a file, else `path/filename`."""
    p = resolve_dataset_path(path)
    if p.is_dir():
        p = p / filename
    if not p.is_file():
        raise FileNotFoundError(f"{p}: not found")
    return p


def _get(obj: Any, key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict):
        raise _Malformed(f"{where}: expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise _Malformed(f"{where}.{key}: missing")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, typ):  # a bool id is a typo, not an id
        raise _Malformed(f"{where}.{key}: expected {getattr(typ, '__name__', typ)}, got {type(value).__name__}")
    return value


def _optional_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) else None


def collect_items(name: str, items: Iterator[EvalItem], report: EvalLoadReport, limit: int | None) -> Benchmark:
    """Drain `items` into a `Benchmark`: at most `limit`, a repeated id counted as an error."""
    kept: list[EvalItem] = []
    seen: set[str] = set()
    if limit == 0:
        items = iter(())
    for item in items:
        if item.id in seen:
            report.error(DUPLICATE_ID, item.id, "a second item with this id")
            continue
        seen.add(item.id)
        kept.append(item)
        if limit is not None and len(kept) >= limit:
            break
    if limit is not None and len(kept) >= limit:
        report.notes.append(f"limit={limit}: stopped after {limit} items; later rows were not read")
    report.items = len(kept)
    return Benchmark(name, kept, report)


# ------------------------------------------------------------------------------------------- VQAv2


def _vqav2_files(path: PathLike, subtype: str) -> tuple[Path, Path]:
    folder = resolve_dataset_path(path)
    if not folder.is_dir():
        raise SourceFormatError(f"{folder}: vqav2 needs the folder holding the questions and annotations "
                                "files (or questions_file=..., annotations_file=...)")

    def find(kind: str) -> Path:
        found = sorted(folder.glob(f"*{subtype}*{kind}*.json")) or sorted(folder.rglob(f"*{subtype}*{kind}*.json"))
        # Prefer the open-ended questions over the multiple-choice ones (VQAv1 had both).
        found.sort(key=lambda p: "MultipleChoice" in p.name)
        if not found:
            raise FileNotFoundError(f"{folder}: no *{subtype}*{kind}*.json file")
        return found[0]

    return find("questions"), find("annotations")


def _load_vqav2(path: PathLike, split: str, images: ImageFinder, limit: int | None,
                questions_file: PathLike | None = None, annotations_file: PathLike | None = None) -> Benchmark:
    subtype = split if any(c.isdigit() for c in split) else f"{split}2014"
    if questions_file is None or annotations_file is None:
        qf, af = _vqav2_files(path, subtype)
        questions_file, annotations_file = questions_file or qf, annotations_file or af
    qdata, adata = load_json(Path(questions_file)), load_json(Path(annotations_file))
    if not isinstance(qdata, dict) or not isinstance(qdata.get("questions"), list):
        raise SourceFormatError(f"{questions_file}: expected an object with a 'questions' list")
    if not isinstance(adata, dict) or not isinstance(adata.get("annotations"), list):
        raise SourceFormatError(f"{annotations_file}: expected an object with an 'annotations' list")
    subtype = qdata.get("data_subtype") if isinstance(qdata.get("data_subtype"), str) else subtype
    report = EvalLoadReport("vqav2", str(questions_file), split, images_checked=images.enabled)

    annotations: dict[int, dict[str, Any]] = {}
    for i, ann in enumerate(adata["annotations"]):
        try:
            qid = _get(ann, "question_id", int, f"annotations[{i}]")
            raw = _get(ann, "answers", list, f"annotations[{i}]")
            answers = [a if isinstance(a, str) else _get(a, "answer", str, f"annotations[{i}].answers[{j}]")
                       for j, a in enumerate(raw)]
        except _Malformed as e:
            report.error(MALFORMED_ROW, f"annotation #{i}", str(e))
            continue
        annotations[qid] = {"answers": answers, "answer_type": _optional_str(ann, "answer_type"),
                            "question_type": _optional_str(ann, "question_type"),
                            "multiple_choice_answer": _optional_str(ann, "multiple_choice_answer")}

    def items() -> Iterator[EvalItem]:
        for i, q in enumerate(qdata["questions"]):
            report.rows_read += 1
            try:
                qid = _get(q, "question_id", int, f"questions[{i}]")
                image_id = _get(q, "image_id", int, f"questions[{i}]")
                question = _get(q, "question", str, f"questions[{i}]").strip()
                if not question:
                    raise _Malformed(f"questions[{i}].question: empty")
            except _Malformed as e:
                report.error(MALFORMED_ROW, f"question #{i}", str(e))
                continue
            item_id = str(qid)
            ann = annotations.get(qid)
            if ann is None:
                report.error(NO_ANNOTATION, item_id, "question_id not in the annotations file")
                continue
            if not any(a.strip() for a in ann["answers"]):
                report.error(NO_ANSWERS, item_id, f"{len(ann['answers'])} answers, all empty")
                continue
            name = f"COCO_{subtype}_{image_id:012d}.jpg"
            image = attach_image(report, images, str(image_id), item_id,
                                  lambda: images.first_existing(name, Path(subtype) / name))
            if image is None:
                continue
            yield EvalItem(item_id, "vqav2", image, question, ann["answers"], ann["answer_type"],
                           ann["question_type"],
                           meta={"image_id": image_id, "multiple_choice_answer": ann["multiple_choice_answer"]})

    return collect_items("vqav2", items(), report, limit)


# ----------------------------------------------------------------------------------------- OCR-VQA


def ocrvqa_question_type(question: str) -> str:
    """OCR-VQA's questions come from five templates; the type names which (for per-type accuracy)."""
    q = question.lower()
    if "wrote" in q or "author" in q:
        return "author"
    if "title" in q:
        return "title"
    if q.startswith(("is this", "is the", "is it")):
        return "yes/no"
    if "genre" in q or "type of book" in q or "kind of book" in q:
        return "genre"
    return "other"


def _load_ocrvqa(path: PathLike, split: str | None, images: ImageFinder, limit: int | None) -> Benchmark:
    file = _in_folder(path, "dataset.json")
    data = load_json(file)
    if not isinstance(data, dict):
        raise SourceFormatError(f"{file}: expected an object mapping book ids to entries")
    if split is not None and split not in OCR_VQA_SPLITS.values():
        raise ValueError(f"ocrvqa split must be one of {sorted(OCR_VQA_SPLITS.values())} or None, got {split!r}")
    report = EvalLoadReport("ocrvqa", str(file), split, images_checked=images.enabled)
    files: dict[str, Path] = {}
    if images.enabled and images.root is not None and images.root.is_dir():
        # One listing instead of a glob per book: the image keeps the URL's extension (mostly .jpg).
        with os.scandir(images.root) as it:
            for e in it:
                stem, ext = os.path.splitext(e.name)
                if ext and (stem not in files or ext.lower() == ".jpg"):
                    files[stem] = Path(e.path)

    def items() -> Iterator[EvalItem]:
        for book_id, entry in data.items():
            try:
                code = _get(entry, "split", int, book_id)
                if code not in OCR_VQA_SPLITS:
                    raise _Malformed(f"{book_id}.split: expected 1, 2 or 3, got {code}")
                if split is not None and OCR_VQA_SPLITS[code] != split:
                    continue
                questions = _get(entry, "questions", list, book_id)
                answers = _get(entry, "answers", list, book_id)
                if len(questions) != len(answers):
                    raise _Malformed(f"{book_id}: {len(questions)} questions but {len(answers)} answers")
            except _Malformed as e:
                report.rows_read += 1
                report.error(MALFORMED_ROW, book_id, str(e))
                continue
            for k, (q, a) in enumerate(zip(questions, answers)):
                report.rows_read += 1
                item_id = f"{book_id}_{k}"
                if not isinstance(q, str) or not q.strip() or not isinstance(a, str):
                    report.error(MALFORMED_ROW, item_id, "question must be a non-empty string, answer a string")
                    continue
                if not a.strip():
                    report.error(NO_ANSWERS, item_id, "empty answer")
                    continue
                # Every question of the book shares its image; the finder checks the file only once.
                image = attach_image(report, images, book_id, item_id,
                                      lambda: files.get(book_id) or images.first_existing(f"{book_id}.jpg"))
                if image is None:
                    continue
                yield EvalItem(item_id, "ocrvqa", image, q.strip(), [a],
                               "yes/no" if a.strip().lower() in ("yes", "no") else "other",
                               ocrvqa_question_type(q), meta={"book_id": book_id, "question_index": k})

    return collect_items("ocrvqa", items(), report, limit)


# -------------------------------------------------------------------------------------- COCO (Karpathy)


def _load_coco(path: PathLike, split: str | None, images: ImageFinder, limit: int | None) -> Benchmark:
    file = _in_folder(path, "dataset_coco.json")
    data = load_json(file)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise SourceFormatError(f"{file}: expected an object with an 'images' list (Karpathy's format)")
    report = EvalLoadReport("coco", str(file), split, images_checked=images.enabled)

    def items() -> Iterator[EvalItem]:
        for i, entry in enumerate(data["images"]):
            where = f"images[{i}]"
            entry_split = entry.get("split") if isinstance(entry, dict) else None
            if split is not None and isinstance(entry_split, str) and entry_split != split:
                continue
            report.rows_read += 1  # a row of the split, or one whose split cannot be read
            try:
                entry_split = _get(entry, "split", str, where)
                cocoid = _get(entry, "cocoid", int, where)
                filename = _get(entry, "filename", str, where)
                filepath = entry.get("filepath", "")
                if not isinstance(filepath, str):
                    raise _Malformed(f"{where}.filepath: expected str, got {type(filepath).__name__}")
                sentences = _get(entry, "sentences", list, where)
                raws = [_get(s, "raw", str, f"{where}.sentences[{j}]") for j, s in enumerate(sentences)]
            except _Malformed as e:
                row = entry.get("cocoid", where) if isinstance(entry, dict) else where
                report.error(MALFORMED_ROW, str(row), str(e))
                continue
            item_id = str(cocoid)
            refs = [r.strip() for r in raws if r.strip()]
            if not refs:
                report.error(NO_ANSWERS, item_id, f"{len(raws)} captions, all empty")
                continue
            image = attach_image(report, images, item_id, item_id,
                                  lambda: images.first_existing(Path(filepath) / filename, filename))
            if image is None:
                continue
            yield EvalItem(item_id, "coco", image, "", refs,
                           meta={"split": entry_split, "filepath": filepath, "filename": filename})

    return collect_items("coco", items(), report, limit)


# ---------------------------------------------------------------------------------------- easy-vqa

_EASY_SHAPES = {"circle", "rectangle", "triangle"}


def _load_easy_vqa(path: PathLike | None, split: str, images: ImageFinder, limit: int | None) -> Benchmark:
    texts, answers, image_ids, paths = easy_vqa_split(split)
    report = EvalLoadReport("easy-vqa", "easy_vqa package", split, images_checked=True)
    if path is not None:
        report.notes.append(f"path {path} ignored: easy-vqa is read from the installed package")
    # The package knows its own image files; a root given by the caller is not needed.
    finder = ImageFinder(Path("/"), images.verify)

    def items() -> Iterator[EvalItem]:
        for k, (q, a, image_id) in enumerate(zip(texts, answers, image_ids)):
            report.rows_read += 1
            item_id = f"{split}/{k}"
            ref = f"{split}/{image_id}"
            if image_id not in paths:
                report.missing_image(ref, item_id)
                continue
            image = attach_image(report, finder, ref, item_id, lambda: Path(paths[image_id]))
            if image is None:
                continue
            kind = "yes/no" if a in ("yes", "no") else ("shape" if a in _EASY_SHAPES else "color")
            yield EvalItem(item_id, "easy-vqa", image, q, [a], "yes/no" if kind == "yes/no" else "other", kind,
                           meta={"image_id": image_id})

    return collect_items("easy-vqa", items(), report, limit)
