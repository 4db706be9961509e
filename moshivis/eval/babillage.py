"""Babillage (`kyutai/Babillage`): COCO, OCR-VQA and VQAv2 questions spoken aloud, as parquet files.

Configs `coco`, `ocrvqa`, `vqav2`; splits `validation` and `test` where published. Columns read:
- `sample_id`, `image_id` (str or int) - required;
- `question_transcript` (str) - the spoken question's text, required;
- `question_audio` - a struct with `bytes` (an encoded WAV/FLAC/...) and/or `array` + `sampling_rate`
  (what `datasets`' Audio feature writes; a `path` next to the parquet file also works), or the raw bytes
  of an audio file. Decoded, averaged to mono and resampled to 24 kHz on load;
- `question_alignment` - kept as is in `meta` (word timings);
- `answer_*` - text columns kept in `meta["babillage_answers"]`.

Ground truth: scores must use the original annotations (VQAv2's 10 answers, COCO's 5 captions), so
`ground_truth=` (the original benchmark's path, or an already loaded `Benchmark`) is joined to each row:
first by id (`sample_id` == the original item id, with the same image), then by (image id, question text
after `normalize_spoken`), then by image id alone where the image has exactly one item (COCO). A row that
matches nothing is a "no ground truth" error. Without `ground_truth=`, the row's own text answer column is
the only answer (noted in the report: not the official score).

Ground-truth split: Babillage `validation` -> the original `val`, `test` -> `test`; VQAv2 always `val`
(its test answers are not public). `ground_truth_split=` overrides.

Files: `path` is a parquet file, or a folder searched recursively for parquet files whose folder names or
file-name parts (split on "-", "_", ".") name the config and the split (`coco/test-00000-of-00002.parquet`,
`data/ocrvqa/validation/0000.parquet`, ...); or a hub id (default `kyutai/Babillage`, fetched only when
online, see `moshivis.eval.resolve`).
"""

from __future__ import annotations

import io
import os
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from moshivis.data.sources import SourceFormatError
from moshivis.eval.benchmarks import ImageFinder, attach_image, collect_items, load_benchmark
from moshivis.eval.items import (
    AUDIO_SAMPLE_RATE, BAD_AUDIO, MALFORMED_ROW, NO_ANSWERS, NO_GROUND_TRUTH, Benchmark, EvalItem, EvalLoadReport,
)
from moshivis.eval.resolve import resolve_dataset_path
from moshivis.eval.text_norm import normalize_spoken

__all__ = ["BABILLAGE_HUB_ID", "CONFIGS", "decode_audio", "find_parquet_files", "load_babillage"]

BABILLAGE_HUB_ID = "kyutai/Babillage"
CONFIGS = ("coco", "ocrvqa", "vqav2")
REQUIRED_COLUMNS = ("sample_id", "image_id", "question_transcript", "question_audio")
_SPLIT_NAMES = {"test": {"test"}, "validation": {"validation", "val", "valid"}}
_GT_SPLIT = {"validation": "val", "test": "test"}
_TEXT_ANSWER_COLUMNS = ("answer_transcript", "answer", "answer_text")  # preferred order when no ground truth


def _split_key(split: str) -> str:
    for key, names in _SPLIT_NAMES.items():
        if split.lower() in names:
            return key
    raise ValueError(f"babillage split must be one of {sorted(n for v in _SPLIT_NAMES.values() for n in v)}, "
                     f"got {split!r}")


def find_parquet_files(root: Path, config: str, split: str) -> list[Path]:
    """The parquet files of (config, split) under `root` (module docstring), sorted by path."""
    if root.is_file():
        if root.suffix != ".parquet":
            raise SourceFormatError(f"{root}: not a parquet file")
        return [root]
    names = _SPLIT_NAMES[_split_key(split)]
    found = sorted(root.rglob("*.parquet"))
    chosen = []
    for f in found:
        rel = f.relative_to(root)
        tokens = {p.lower() for p in rel.parts[:-1]} | set(re.split(r"[-_.]", f.stem.lower()))
        has_config = config in tokens or root.name.lower() == config
        if has_config and tokens & names:
            chosen.append(f)
    if not chosen:
        listed = ", ".join(str(f.relative_to(root)) for f in found[:10]) or "none"
        raise FileNotFoundError(f"{root}: no parquet file for config {config!r}, split {split!r} "
                                f"(parquet files there: {listed})")
    return chosen


def decode_audio(value: Any, base_dir: Path | None = None) -> np.ndarray:
    """A `question_audio` cell -> mono float32 [S] at 24 kHz. ValueError saying why when it cannot."""
    import soundfile as sf

    from moshivis.audio.io import check_audio
    from moshivis.audio.resample import resample

    def read_bytes(raw: bytes) -> tuple[np.ndarray, int]:
        try:
            data, sr = sf.read(io.BytesIO(raw), dtype="float32", always_2d=True)  # [S, C]
        except Exception as e:  # libsndfile raises several types for unreadable data
            raise ValueError(f"cannot decode {len(raw)} audio bytes ({str(e).splitlines()[0] if str(e) else e!r})")
        return data.mean(axis=1), int(sr)

    if value is None:
        raise ValueError("no audio (null)")
    if isinstance(value, (bytes, bytearray, memoryview)):
        audio, sr = read_bytes(bytes(value))
    elif isinstance(value, dict):
        if value.get("bytes") is not None:
            audio, sr = read_bytes(bytes(value["bytes"]))
        elif value.get("array") is not None:
            audio = np.asarray(value["array"], dtype=np.float32)
            sr = value.get("sampling_rate")
            if not isinstance(sr, int) or isinstance(sr, bool) or sr <= 0:
                raise ValueError(f"audio array without a valid sampling_rate (got {sr!r})")
            if audio.ndim == 2:  # [C, S] from datasets when mono=False; channels are the short axis
                audio = audio.mean(axis=0 if audio.shape[0] <= audio.shape[1] else 1)
        elif isinstance(value.get("path"), str) and value["path"]:
            p = Path(value["path"])
            p = p if p.is_absolute() or base_dir is None else base_dir / p
            if not p.is_file():
                raise ValueError(f"audio path {p} not found")
            audio, sr = read_bytes(p.read_bytes())
        else:
            raise ValueError("audio struct has neither 'bytes', 'array' nor 'path'")
    else:
        raise ValueError(f"unsupported audio cell of type {type(value).__name__}")
    audio = check_audio(audio, "question_audio")
    if sr != AUDIO_SAMPLE_RATE:
        audio = resample(audio, sr, AUDIO_SAMPLE_RATE)
    return audio


class _GroundTruthIndex:
    """The original benchmark's items, findable by id, by (image, question) and by image."""

    def __init__(self, bench: Benchmark) -> None:
        self.by_id = bench.by_id()
        self.by_image_question: dict[tuple[str, str], EvalItem] = {}
        self.by_image: dict[str, list[EvalItem]] = defaultdict(list)
        for item in bench.items:
            image_id = item.image.image_id if item.image is not None else ""
            self.by_image[image_id].append(item)
            if item.question:
                self.by_image_question.setdefault((image_id, normalize_spoken(item.question)), item)

    def find(self, sample_id: str, image_id: str, question: str) -> tuple[EvalItem, str] | None:
        item = self.by_id.get(sample_id)
        if item is not None and (item.image is None or item.image.image_id == image_id):
            return item, "id"
        item = self.by_image_question.get((image_id, normalize_spoken(question)))
        if item is not None:
            return item, "image+question"
        candidates = self.by_image.get(image_id, [])
        if len(candidates) == 1:
            return candidates[0], "image"
        return None


def _image_candidates(config: str, image_id: str, gt: EvalItem | None) -> list[str]:
    """Where the original benchmark keeps this image, relative to its image root."""
    padded = f"{int(image_id):012d}" if image_id.isdigit() else image_id
    if config == "ocrvqa":
        return [f"{image_id}{ext}" for ext in (".jpg", ".png", ".gif", ".jpeg")]
    out = []
    if gt is not None and gt.meta.get("filename"):
        out += [os.path.join(gt.meta.get("filepath", ""), gt.meta["filename"]), gt.meta["filename"]]
    name = f"COCO_val2014_{padded}.jpg"
    return out + [name, f"val2014/{name}", f"{padded}.jpg", f"{image_id}.jpg"]


def _cell_id(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def load_babillage(
    path: str | os.PathLike[str] | None = None,
    config: str | None = None,
    split: str = "test",
    image_root: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    verify_images: bool = False,
    ground_truth: str | os.PathLike[str] | Benchmark | None = None,
    ground_truth_split: str | None = None,
    batch_rows: int = 64,
) -> Benchmark:
    """Spoken questions of one Babillage config and split, joined to their ground truth (module
    docstring). Items: id = `sample_id`, question = the transcript, question_audio at 24 kHz."""
    if config is None or config not in CONFIGS:
        raise ValueError(f"babillage needs config= one of {', '.join(CONFIGS)} (or name 'babillage/<config>'), "
                         f"got {config!r}")
    split_key = _split_key(split)
    root = resolve_dataset_path(path if path is not None else BABILLAGE_HUB_ID,
                                allow_patterns=[f"*{config}*", "README.md"])
    files = find_parquet_files(root, config, split)
    name = f"babillage/{config}"
    report = EvalLoadReport(name, str(root), split, images_checked=image_root is not None)

    gt_index: _GroundTruthIndex | None = None
    if isinstance(ground_truth, Benchmark):
        gt_index = _GroundTruthIndex(ground_truth)
    elif ground_truth is not None:
        gt_split = ground_truth_split or ("val" if config == "vqav2" else _GT_SPLIT[split_key])
        # Images are looked up for the Babillage rows below, so the ground truth is loaded without them
        # (an item with a missing image must surface as "missing image", not as "no ground truth").
        gt_index = _GroundTruthIndex(load_benchmark(config, ground_truth, split=gt_split))
    else:
        report.notes.append("no ground_truth given: answers come from Babillage's own answer column, "
                            "not the official annotations (not comparable with published scores)")
    images = ImageFinder(image_root, verify_images)

    def items() -> Iterator[EvalItem]:
        import pyarrow.parquet as pq  # deferred: only this loader reads parquet

        for file in files:
            pf = pq.ParquetFile(file)
            columns = pf.schema_arrow.names
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise SourceFormatError(f"{file}: not a Babillage file, missing columns {missing} (has {columns})")
            answer_columns = [c for c in columns if c.startswith("answer_") or c == "answer"]
            index = 0
            for batch in pf.iter_batches(batch_size=batch_rows):
                for row in batch.to_pylist():
                    where = f"{file.name}#{index}"
                    index += 1
                    report.rows_read += 1
                    item = _row_item(row, where, file.parent, answer_columns)
                    if item is not None:
                        yield item

    def _row_item(row: dict[str, Any], where: str, base_dir: Path, answer_columns: list[str]) -> EvalItem | None:
        sample_id, image_id = _cell_id(row.get("sample_id")), _cell_id(row.get("image_id"))
        transcript = row.get("question_transcript")
        if sample_id is None or image_id is None or not isinstance(transcript, str) or not transcript.strip():
            bad = [k for k, ok in (("sample_id", sample_id), ("image_id", image_id),
                                   ("question_transcript", isinstance(transcript, str) and transcript.strip()))
                   if not ok]
            report.error(MALFORMED_ROW, where, f"missing or invalid {', '.join(bad)}")
            return None
        text_answers = {c: row[c] for c in answer_columns if isinstance(row.get(c), str)}
        gt: EvalItem | None = None
        if gt_index is not None:
            found = gt_index.find(sample_id, image_id, transcript)
            if found is None:
                report.error(NO_GROUND_TRUTH, sample_id, f"image {image_id}: no item of the original {config}")
                return None
            gt, joined_by = found
            answers, answer_type, question_type = gt.answers, gt.answer_type, gt.question_type
        else:
            joined_by = None
            first = next((text_answers[c] for c in _TEXT_ANSWER_COLUMNS if text_answers.get(c)), None)
            first = first or next((v for v in text_answers.values() if v.strip()), None)
            if first is None:
                report.error(NO_ANSWERS, sample_id, "no ground truth given and no text answer column")
                return None
            answers, answer_type, question_type = [first], None, None
        image = attach_image(report, images, image_id, sample_id,
                             lambda: images.first_existing(*_image_candidates(config, image_id, gt)))
        if image is None:
            return None
        try:
            audio = decode_audio(row.get("question_audio"), base_dir)
        except ValueError as e:
            report.error(BAD_AUDIO, sample_id, str(e))
            return None
        meta: dict[str, Any] = {"sample_id": sample_id, "image_id": image_id, "source_row": where,
                                "babillage_answers": text_answers}
        if gt is not None:
            meta.update(gt_id=gt.id, joined_by=joined_by, original_question=gt.question)
        if row.get("question_alignment") is not None:
            meta["question_alignment"] = row["question_alignment"]
        return EvalItem(sample_id, name, image, transcript.strip(), list(answers), answer_type, question_type,
                        question_audio=audio, meta=meta)

    return collect_items(name, items(), report, limit)
