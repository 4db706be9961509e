"""Readers of the image-text sources that feed dialogue generation.

Every reader is a generator of `SourceRow | RowError`: one bad row becomes a `RowError` with a short,
stable reason ("missing image", "corrupt image", "empty caption", "malformed row", ...) and the reader
carries on, so a run over millions of rows ends with a table of counts by reason (`SourceReport`) instead
of a crash or a silent hole. Only a file that is not the format at all raises (`SourceFormatError`):
that is a configuration mistake, not a bad row.

Formats:
- COCO Karpathy `dataset_coco.json` (captions)          -> `read_coco_karpathy`
- DOCCI / PixMo-Cap style JSON Lines (captions)          -> `read_caption_jsonl`
- VQAv2 questions + annotations JSON (QA)               -> `read_vqav2`
- OCR-VQA `dataset.json` (QA about book covers)         -> `read_ocr_vqa`
- the installed `easy_vqa` package (QA, synthetic)       -> `read_easy_vqa`
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from moshivis.data.types import ImageRef, RowError

PathLike = str | os.PathLike[str]

# Stable reasons; later stages and dashboards group by these strings.
MISSING_IMAGE = "missing image"
CORRUPT_IMAGE = "corrupt image"
EMPTY_CAPTION = "empty caption"
EMPTY_ANSWER = "empty answer"
MALFORMED_ROW = "malformed row"
REMOTE_IMAGE = "remote image"


@dataclass
class SourceRow:
    """One image with its captions and/or question-answer pairs.

    `qa` holds (question, answers): all the annotators' answers, in order, so that a consumer can take
    the most common one (VQAv2 has ten per question) or score against all of them.
    """

    row: str  # index or id, enough to find the row again in its file
    image: ImageRef
    source: str
    captions: list[str] = field(default_factory=list)
    qa: list[tuple[str, list[str]]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


class SourceFormatError(ValueError):
    """The file as a whole is not in the expected format (not one bad row: those become RowErrors)."""


class _Malformed(Exception):
    """Internal: a row misses a field or has one of the wrong type; `detail` names the field."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


# --------------------------------------------------------------------------------------------- helpers


def _field(obj: Any, key: str, typ: type | tuple[type, ...], where: str = "") -> Any:
    """`obj[key]`, checked to be of `typ`, else `_Malformed` naming the field."""
    name = f"{where}{key}"
    if not isinstance(obj, dict):
        raise _Malformed(f"{where or 'row'}: expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise _Malformed(f"{name}: missing field")
    value = obj[key]
    # bool is an int subclass; an id of `true` is a typo, not an id.
    if isinstance(value, bool) and bool not in (typ if isinstance(typ, tuple) else (typ,)):
        raise _Malformed(f"{name}: expected {_type_names(typ)}, got bool")
    if not isinstance(value, typ):
        raise _Malformed(f"{name}: expected {_type_names(typ)}, got {type(value).__name__}")
    return value


def _type_names(typ: type | tuple[type, ...]) -> str:
    types = typ if isinstance(typ, tuple) else (typ,)
    return " or ".join(t.__name__ for t in types)


def _string_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list):
        raise _Malformed(f"{name}: expected list, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _Malformed(f"{name}[{i}]: expected str, got {type(item).__name__}")
    return value


def check_image(path: Path, verify: bool = True) -> tuple[str, str] | None:
    """(reason, detail) when the image at `path` cannot be used, else None.

    `verify` opens the file with PIL and runs `Image.verify()`: it reads the header and, for PNG, the
    chunk checksums, without decoding pixels, so it is cheap enough for a whole data set. It does not
    catch every truncated JPEG; the decode at training time is the final check.
    """
    if not path.is_file():
        return MISSING_IMAGE, str(path)
    if verify:
        from PIL import Image  # deferred: keeps `import moshivis.data.sources` light

        try:
            with Image.open(path) as im:
                im.verify()
        except Exception as e:  # PIL raises many types (UnidentifiedImageError, SyntaxError, OSError...)
            return CORRUPT_IMAGE, f"{path}: {type(e).__name__}: {e}"
    return None


def _is_url(s: str) -> bool:
    return s.startswith(("http://", "https://"))


def _nonempty(texts: Iterable[str]) -> list[str]:
    return [t.strip() for t in texts if t.strip()]


def load_json(path: PathLike) -> Any:
    """A JSON file, or a one-line SourceFormatError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise SourceFormatError(f"{path}: not valid JSON ({e})") from e


T = TypeVar("T")


def _limited(items: Iterator[T], limit: int | None) -> Iterator[T]:
    """At most `limit` items (None: all). Counts kept rows and errors alike."""
    for i, item in enumerate(items):
        if limit is not None and i >= limit:
            return
        yield item


# --------------------------------------------------------------------------------------- caption sets


def read_coco_karpathy(
    path: PathLike,
    image_root: PathLike,
    split: str | Sequence[str] | None = "test",
    check_images: bool = True,
    limit: int | None = None,
    source: str = "coco",
) -> Iterator[SourceRow | RowError]:
    """Rows of Karpathy's `dataset_coco.json`: `images[]` with filepath, filename, split, cocoid and
    `sentences[].raw`. `split`: one of train/restval/val/test, several, or None for all. Image path:
    `image_root/filepath/filename`. A row with some empty sentences keeps the others (their count goes to
    `meta["empty_captions"]`); one whose sentences are all empty is an "empty caption" error."""
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise SourceFormatError(f"{path}: expected an object with an 'images' list")
    splits = {split} if isinstance(split, str) else (set(split) if split is not None else None)
    root = Path(image_root)

    def rows() -> Iterator[SourceRow | RowError]:
        for i, entry in enumerate(data["images"]):
            row_id = str(entry.get("cocoid", f"#{i}")) if isinstance(entry, dict) else f"#{i}"
            try:
                entry_split = _field(entry, "split", str, f"images[{i}].")
                if splits is not None and entry_split not in splits:
                    continue
                filename = _field(entry, "filename", str, f"images[{i}].")
                filepath = entry.get("filepath", "")
                if not isinstance(filepath, str):
                    raise _Malformed(f"images[{i}].filepath: expected str, got {type(filepath).__name__}")
                sentences = _field(entry, "sentences", list, f"images[{i}].")
                raws = [_field(s, "raw", str, f"images[{i}].sentences[{j}].") for j, s in enumerate(sentences)]
            except _Malformed as e:
                yield RowError(source, row_id, MALFORMED_ROW, e.detail)
                continue
            captions = _nonempty(raws)
            if not captions:
                yield RowError(source, row_id, EMPTY_CAPTION, f"images[{i}]: {len(raws)} sentences, all empty")
                continue
            image_path = root / filepath / filename
            if bad := check_image(image_path, check_images):
                yield RowError(source, row_id, *bad)
                continue
            meta: dict[str, Any] = {"split": entry_split}
            if len(captions) < len(raws):
                meta["empty_captions"] = len(raws) - len(captions)
            yield SourceRow(row_id, ImageRef(row_id, str(image_path)), source, captions=captions, meta=meta)

    return _limited(rows(), limit)


DEFAULT_IMAGE_FIELDS = ("image", "image_path", "image_file", "file_name", "filename", "image_url", "url", "path")
DEFAULT_CAPTION_FIELDS = ("caption", "description", "captions", "text")
DEFAULT_ID_FIELDS = ("id", "example_id", "image_id", "key")


def read_caption_jsonl(
    path: PathLike,
    image_root: PathLike | None = None,
    image_fields: Sequence[str] = DEFAULT_IMAGE_FIELDS,
    caption_fields: Sequence[str] = DEFAULT_CAPTION_FIELDS,
    id_fields: Sequence[str] = DEFAULT_ID_FIELDS,
    split: str | None = None,
    check_images: bool = True,
    url_to_path: Callable[[str], str | None] | None = None,
    limit: int | None = None,
    source: str = "captions",
) -> Iterator[SourceRow | RowError]:
    """Rows of a JSON Lines caption set (DOCCI's `image_file`/`description`, PixMo-Cap's `image_url`/
    `caption`, ...). The first present field of `image_fields` / `caption_fields` / `id_fields` is used
    (id default: the 1-based line number). A caption may be a string or a list of strings. `split`: keep
    only lines whose "split" field equals it. Image URLs need `url_to_path` (e.g. a download cache's
    lookup, None when not downloaded) and are otherwise a "remote image" error: later stages need a file."""
    root = Path(image_root) if image_root is not None else None

    def rows() -> Iterator[SourceRow | RowError]:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue  # blank lines are not rows (a trailing newline is common)
                row_id = f"line {lineno}"
                try:
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise _Malformed(f"line {lineno}: invalid JSON ({e.msg})") from e
                    if not isinstance(obj, dict):
                        raise _Malformed(f"line {lineno}: expected an object, got {type(obj).__name__}")
                    id_key = next((k for k in id_fields if k in obj), None)
                    if id_key is not None:
                        row_id = str(_field(obj, id_key, (str, int)))
                    if split is not None and obj.get("split") != split:
                        continue
                    image_key = next((k for k in image_fields if k in obj), None)
                    if image_key is None:
                        raise _Malformed(f"image: missing field (looked for {', '.join(image_fields)})")
                    image_value = _field(obj, image_key, str)
                    caption_key = next((k for k in caption_fields if k in obj), None)
                    if caption_key is None:
                        raise _Malformed(f"caption: missing field (looked for {', '.join(caption_fields)})")
                    raw = obj[caption_key]
                    raws = [raw] if isinstance(raw, str) else _string_list(raw, caption_key)
                except _Malformed as e:
                    yield RowError(source, row_id, MALFORMED_ROW, e.detail)
                    continue
                captions = _nonempty(raws)
                if not captions:
                    yield RowError(source, row_id, EMPTY_CAPTION, f"field {caption_key!r} is empty")
                    continue
                meta: dict[str, Any] = {"line": lineno}
                if _is_url(image_value):
                    meta["url"] = image_value
                    local = url_to_path(image_value) if url_to_path is not None else None
                    if local is None:
                        yield RowError(source, row_id, REMOTE_IMAGE, image_value)
                        continue
                    image_value = local
                image_path = root / image_value if root is not None else Path(image_value)
                if bad := check_image(image_path, check_images):
                    yield RowError(source, row_id, *bad)
                    continue
                yield SourceRow(row_id, ImageRef(row_id, str(image_path)), source, captions=captions, meta=meta)

    return _limited(rows(), limit)


# ------------------------------------------------------------------------------------------- VQA sets


def read_vqav2(
    questions_path: PathLike,
    annotations_path: PathLike,
    image_root: PathLike,
    split: str | None = None,
    check_images: bool = True,
    limit: int | None = None,
    source: str = "vqav2",
) -> Iterator[SourceRow | RowError]:
    """One row per image of VQAv2 with all its questions: `qa` = (question, the 10 answers); parallel
    lists in meta: question_ids, multiple_choice_answers, answer_types, question_types.

    Image file `COCO_{split}2014_{image_id:012d}.jpg`, looked up in `image_root` and in
    `image_root/{split}2014/`. `split` ("val" or "val2014"): default from the questions file's
    `data_subtype`. A bad question or annotation is an error of its own (row = "q{question_id}") and the
    image keeps its other questions."""
    qdata = load_json(questions_path)
    adata = load_json(annotations_path)
    if not isinstance(qdata, dict) or not isinstance(qdata.get("questions"), list):
        raise SourceFormatError(f"{questions_path}: expected an object with a 'questions' list")
    if not isinstance(adata, dict) or not isinstance(adata.get("annotations"), list):
        raise SourceFormatError(f"{annotations_path}: expected an object with an 'annotations' list")
    subtype = split if split is not None else qdata.get("data_subtype")
    if not isinstance(subtype, str) or not subtype:
        raise SourceFormatError(f"{questions_path}: no 'data_subtype'; pass split='train'|'val'|'test'")
    if not any(c.isdigit() for c in subtype):
        subtype = f"{subtype}2014"
    root = Path(image_root)

    def rows() -> Iterator[SourceRow | RowError]:
        errors: list[RowError] = []
        annotations: dict[int, dict[str, Any]] = {}
        for i, ann in enumerate(adata["annotations"]):
            try:
                qid = _field(ann, "question_id", int, f"annotations[{i}].")
                answers = [
                    _field(a, "answer", str, f"annotations[{i}].answers[{j}].")
                    for j, a in enumerate(_field(ann, "answers", list, f"annotations[{i}]."))
                ]
                annotations[qid] = {
                    "answers": answers,
                    "multiple_choice_answer": ann.get("multiple_choice_answer"),
                    "answer_type": ann.get("answer_type"),
                    "question_type": ann.get("question_type"),
                }
            except _Malformed as e:
                errors.append(RowError(source, f"annotation #{i}", MALFORMED_ROW, e.detail))
        # Group questions by image, keeping the file's order of first appearance.
        by_image: dict[int, list[tuple[int, str, dict[str, Any]]]] = {}
        for i, q in enumerate(qdata["questions"]):
            row_id = f"q{q['question_id']}" if isinstance(q, dict) and "question_id" in q else f"question #{i}"
            try:
                qid = _field(q, "question_id", int, f"questions[{i}].")
                image_id = _field(q, "image_id", int, f"questions[{i}].")
                question = _field(q, "question", str, f"questions[{i}].").strip()
                if not question:
                    raise _Malformed(f"questions[{i}].question: empty")
                if qid not in annotations:
                    raise _Malformed(f"annotations: no entry for question_id {qid}")
            except _Malformed as e:
                errors.append(RowError(source, row_id, MALFORMED_ROW, e.detail))
                continue
            ann = annotations[qid]
            if not _nonempty(ann["answers"]):
                errors.append(RowError(source, row_id, EMPTY_ANSWER, f"question_id {qid}: all answers empty"))
                continue
            by_image.setdefault(image_id, []).append((qid, question, ann))
        yield from errors
        for image_id, questions in by_image.items():
            row_id = str(image_id)
            name = f"COCO_{subtype}_{image_id:012d}.jpg"
            image_path = root / name
            if not image_path.is_file() and (root / subtype / name).is_file():
                image_path = root / subtype / name
            if bad := check_image(image_path, check_images):
                yield RowError(source, row_id, *bad)
                continue
            yield SourceRow(
                row_id,
                ImageRef(row_id, str(image_path)),
                source,
                qa=[(question, _nonempty(ann["answers"])) for _, question, ann in questions],
                meta={
                    "split": subtype,
                    "question_ids": [qid for qid, _, _ in questions],
                    "multiple_choice_answers": [ann["multiple_choice_answer"] for _, _, ann in questions],
                    "answer_types": [ann["answer_type"] for _, _, ann in questions],
                    "question_types": [ann["question_type"] for _, _, ann in questions],
                },
            )

    return _limited(rows(), limit)


OCR_VQA_SPLITS = {1: "train", 2: "val", 3: "test"}


def read_ocr_vqa(
    path: PathLike,
    image_root: PathLike,
    split: str | None = "test",
    check_images: bool = True,
    limit: int | None = None,
    source: str = "ocr-vqa",
) -> Iterator[SourceRow | RowError]:
    """Rows of OCR-VQA's `dataset.json` (id -> {imageURL, questions, answers, title, authorName, genre,
    split: 1 train / 2 val / 3 test}). The image is `{id}.<any extension>` directly under `image_root`
    (the download script keeps the URL's extension, mostly .jpg); the folder is listed once up front
    rather than globbed per row. `split`: "train" | "val" | "test" | None for all."""
    data = load_json(path)
    if not isinstance(data, dict):
        raise SourceFormatError(f"{path}: expected an object mapping ids to entries")
    if split is not None and split not in OCR_VQA_SPLITS.values():
        raise ValueError(f"split must be one of {sorted(OCR_VQA_SPLITS.values())} or None, got {split!r}")
    root = Path(image_root)

    def rows() -> Iterator[SourceRow | RowError]:
        files: dict[str, Path] = {}
        if root.is_dir():
            with os.scandir(root) as it:
                for e in it:
                    stem, ext = os.path.splitext(e.name)
                    # Prefer .jpg when two extensions share a stem (a re-download in another format).
                    if ext and (stem not in files or ext.lower() == ".jpg"):
                        files[stem] = Path(e.path)
        for book_id, entry in data.items():
            try:
                split_code = _field(entry, "split", int, "")
                if split_code not in OCR_VQA_SPLITS:
                    raise _Malformed(f"split: expected 1, 2 or 3, got {split_code}")
                if split is not None and OCR_VQA_SPLITS[split_code] != split:
                    continue
                questions = _string_list(_field(entry, "questions", list), "questions")
                answers = _string_list(_field(entry, "answers", list), "answers")
                if len(questions) != len(answers):
                    raise _Malformed(f"questions/answers: {len(questions)} questions but {len(answers)} answers")
                if not questions:
                    raise _Malformed("questions: empty list")
            except _Malformed as e:
                yield RowError(source, book_id, MALFORMED_ROW, e.detail)
                continue
            qa = [(q.strip(), [a.strip()]) for q, a in zip(questions, answers)]
            if any(not q for q, _ in qa):
                yield RowError(source, book_id, MALFORMED_ROW, "questions: an empty question")
                continue
            if any(not a[0] for _, a in qa):
                yield RowError(source, book_id, EMPTY_ANSWER, "answers: an empty answer")
                continue
            image_path = files.get(book_id, root / f"{book_id}.jpg")
            if bad := check_image(image_path, check_images):
                yield RowError(source, book_id, *bad)
                continue
            meta = {k: entry.get(k) for k in ("title", "authorName", "genre", "imageURL")}
            meta["split"] = OCR_VQA_SPLITS[split_code]
            yield SourceRow(book_id, ImageRef(book_id, str(image_path)), source, qa=qa, meta=meta)

    return _limited(rows(), limit)


def easy_vqa_split(split: str) -> tuple[list[str], list[str], list[int], dict[int, str]]:
    """The installed `easy_vqa` package's (questions, answers, image ids, image id -> path) of a split."""
    import easy_vqa  # deferred: only easy-vqa readers need the package

    if split == "train":
        texts, answers, image_ids = easy_vqa.get_train_questions()
        return list(texts), list(answers), list(image_ids), easy_vqa.get_train_image_paths()
    if split == "test":
        texts, answers, image_ids = easy_vqa.get_test_questions()
        return list(texts), list(answers), list(image_ids), easy_vqa.get_test_image_paths()
    raise ValueError(f"easy-vqa split must be 'train' or 'test', got {split!r}")


def read_easy_vqa(
    split: str = "train",
    check_images: bool = False,
    limit: int | None = None,
    source: str = "easy-vqa",
) -> Iterator[SourceRow | RowError]:
    """Rows of the installed `easy_vqa` package (4,000 train / 1,000 test 64x64 PNGs, one coloured shape
    each), one per image in id order, with all its questions; each answer is a one-element list. Image
    verification is off by default: the package's files are known good and checking 5,000 of them costs
    more than the rest of the read."""
    texts, answers, image_ids, paths = easy_vqa_split(split)
    by_image: dict[int, list[tuple[str, list[str]]]] = {image_id: [] for image_id in paths}
    stray: list[RowError] = []
    for i, (q, a, image_id) in enumerate(zip(texts, answers, image_ids)):
        if image_id in by_image:
            by_image[image_id].append((q, [a]))
        else:
            stray.append(RowError(source, f"question #{i}", MISSING_IMAGE, f"no image {image_id} in {split}"))

    def rows() -> Iterator[SourceRow | RowError]:
        yield from stray
        for image_id in sorted(by_image):
            row_id = str(image_id)
            image_path = Path(paths[image_id])
            if bad := check_image(image_path, check_images):
                yield RowError(source, row_id, *bad)
                continue
            yield SourceRow(
                row_id, ImageRef(f"{split}/{image_id}", str(image_path)), source, qa=by_image[image_id],
                meta={"split": split},
            )

    return _limited(rows(), limit)


# ------------------------------------------------------------------------------------------ reporting


@dataclass
class SourceReport:
    """Tally of a run: rows read, kept, and errors by (source, reason), with a few examples each.

    Counts any item that is not a `RowError` as kept, so the same report serves later stages too
    (dialogues, spoken turns), as long as items have a `source` attribute. read = kept + errors.
    """

    max_examples: int = 3
    read: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[tuple[str, str], list[RowError]] = field(default_factory=dict)

    def add(self, item: Any) -> None:
        src = str(getattr(item, "source", "?"))
        self.read[src] += 1
        if isinstance(item, RowError):
            key = (src, item.reason)
            self.errors[key] += 1
            shown = self.examples.setdefault(key, [])
            if len(shown) < self.max_examples:
                shown.append(item)
        else:
            self.kept[src] += 1

    def track(self, items: Iterable[T]) -> Iterator[T]:
        """Pass `items` through unchanged, counting each one."""
        for item in items:
            self.add(item)
            yield item

    def errors_by_reason(self, source: str | None = None) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (src, reason), n in self.errors.items():
            if source is None or src == source:
                out[reason] += n
        return dict(out)

    @property
    def total_read(self) -> int:
        return sum(self.read.values())

    @property
    def total_kept(self) -> int:
        return sum(self.kept.values())

    @property
    def total_errors(self) -> int:
        return sum(self.errors.values())

    def table(self) -> Any:
        """A `rich.table.Table`: one line per source with read/kept, then one line per error reason."""
        from rich.table import Table

        table = Table(title="source rows")
        for col in ("source", "read", "kept", "error", "count", "example"):
            table.add_column(col, justify="right" if col in ("read", "kept", "count") else "left")
        for src in sorted(self.read):
            table.add_row(src, str(self.read[src]), str(self.kept[src]), "", "", "")
            for (s, reason), n in sorted(self.errors.items()):
                if s == src:
                    ex = self.examples[(s, reason)][0]
                    table.add_row("", "", "", reason, str(n), f"{ex.row}: {ex.detail}"[:80])
        table.add_row("total", str(self.total_read), str(self.total_kept), "", str(self.total_errors), "")
        return table

    def render(self, width: int = 120) -> str:
        """The table as plain text (for logs)."""
        from rich.console import Console

        console = Console(file=io.StringIO(), width=width, color_system=None)
        console.print(self.table())
        out = console.file
        assert isinstance(out, io.StringIO)
        return out.getvalue()
