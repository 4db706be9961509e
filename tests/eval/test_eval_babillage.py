"""Babillage parquet files with audio: decoding + resampling to 24 kHz, the ground-truth join, and the
rows that cannot be used (missing image, malformed, undecodable audio, no ground truth)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from eval_fixtures import TEN, wav_bytes

from moshivis.eval.babillage import decode_audio, find_parquet_files
from moshivis.eval.benchmarks import load_benchmark

AUDIO = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def write_babillage(root: Path, rows: list[dict], config: str = "vqav2", split: str = "test") -> Path:
    path = root / config / f"{split}-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("sample_id", pa.string()), ("image_id", pa.int64()), ("question_audio", AUDIO),
                        ("question_transcript", pa.string()),
                        ("question_alignment", pa.list_(pa.struct([("word", pa.string()), ("start", pa.float64()),
                                                                   ("end", pa.float64())]))),
                        ("answer_transcript", pa.string())])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def row(sample_id: str | None, image_id: int, transcript: str | None, audio: bytes | None,
        answer: str = "two") -> dict:
    return {"sample_id": sample_id, "image_id": image_id, "question_transcript": transcript,
            "question_audio": None if audio is None else {"bytes": audio, "path": None},
            "question_alignment": [{"word": "how", "start": 0.0, "end": 0.2}], "answer_transcript": answer}


@pytest.fixture
def babillage_root(tmp_path: Path) -> Path:
    root = tmp_path / "babillage"
    one_second = wav_bytes(1.0, 16_000)
    write_babillage(root, [
        row("1000", 1, "How many dogs are there?", one_second),  # joined by id
        row("s-colour", 1, "what color is the dog", wav_bytes(0.5, 16_000)),  # joined by image + question
        row("99000", 99, "Is it raining?", one_second),  # its image is absent
        row("s-no-text", 1, None, one_second),  # malformed: no transcript
        row(None, 1, "Who?", one_second),  # malformed: no sample id
        row("s-noise", 1, "How many dogs are there?", b"RIFF not really a wav"),  # undecodable audio
        row("s-none", 1, "How many dogs are there?", None),  # no audio at all
        row("s-orphan", 7, "Where is the cat?", one_second),  # nothing of VQAv2 matches
    ])
    write_babillage(root, [row("v1", 1, "x", one_second)], split="validation")  # another split: not read
    return root


def test_babillage_with_ground_truth(babillage_root: Path, vqav2_dir: Path, coco_images: Path) -> None:
    bench = load_benchmark("babillage/vqav2", babillage_root, split="test", image_root=coco_images,
                           ground_truth=vqav2_dir)
    assert [i.id for i in bench] == ["1000", "s-colour"]
    first, second = bench.items
    assert first.answers == TEN and first.answer_type == "number"  # the official 10 answers, joined by id
    assert first.meta["joined_by"] == "id" and second.meta["joined_by"] == "image+question"
    assert second.meta["gt_id"] == "1001" and second.question == "what color is the dog"
    # 16 kHz WAV bytes -> 24 kHz float32, same duration.
    assert first.question_audio is not None and first.question_audio.dtype == np.float32
    assert first.question_audio.shape == (24_000,) and first.audio_seconds == pytest.approx(1.0)
    assert second.question_audio is not None and second.question_audio.shape == (12_000,)
    spectrum = np.abs(np.fft.rfft(first.question_audio))
    assert np.argmax(spectrum) * 24_000 / len(first.question_audio) == pytest.approx(440, abs=2)
    assert first.meta["question_alignment"][0]["word"] == "how"
    assert first.image is not None and first.image.path.endswith("COCO_val2014_000000000001.jpg")

    rep = bench.report
    assert rep.rows_read == 8 and rep.items == 2
    assert rep.errors == {"missing image": 1, "malformed row": 2, "undecodable audio": 2, "no ground truth": 1}
    assert rep.missing_images == {"99": ["99000"]}
    assert "cannot decode" in " ".join(rep.examples["undecodable audio"])


def test_babillage_without_ground_truth(babillage_root: Path) -> None:
    bench = load_benchmark("babillage", babillage_root / "vqav2" / "test-00000-of-00001.parquet",
                           config="vqav2", limit=2)
    assert [i.answers for i in bench] == [["two"], ["two"]]  # Babillage's own answer column
    assert any("not the official annotations" in n for n in bench.report.notes)


def test_find_files_and_errors(babillage_root: Path) -> None:
    assert [f.name for f in find_parquet_files(babillage_root, "vqav2", "validation")] == [
        "validation-00000-of-00001.parquet"]
    with pytest.raises(FileNotFoundError, match="no parquet file for config 'coco'"):
        find_parquet_files(babillage_root, "coco", "test")
    with pytest.raises(ValueError, match="config"):
        load_benchmark("babillage", babillage_root)


def test_decode_audio_cell_kinds(tmp_path: Path) -> None:
    raw = wav_bytes(0.25, 16_000)
    assert decode_audio(raw).shape == (6_000,)  # raw file bytes
    arr = decode_audio({"array": np.zeros(8_000, np.float32).tolist(), "sampling_rate": 8_000})
    assert arr.shape == (24_000,)  # array + sampling_rate
    (tmp_path / "q.wav").write_bytes(raw)
    assert decode_audio({"bytes": None, "path": "q.wav"}, base_dir=tmp_path).shape == (6_000,)
    with pytest.raises(ValueError, match="sampling_rate"):
        decode_audio({"array": [0.0, 0.1]})
    with pytest.raises(ValueError, match="neither"):
        decode_audio({"bytes": None, "path": None})


def test_raw_wav_bytes_column(tmp_path: Path) -> None:
    """`question_audio` as the raw bytes of a WAV file (a binary column, not a struct)."""
    path = tmp_path / "coco" / "test.parquet"
    path.parent.mkdir()
    table = pa.table({"sample_id": ["c1"], "image_id": ["42"], "question_transcript": ["What do you see?"],
                      "question_audio": pa.array([wav_bytes(2.0, 16_000)], pa.binary()),
                      "answer_transcript": ["A dog on a lawn."]})
    pq.write_table(table, path)
    bench = load_benchmark("babillage/coco", tmp_path)
    assert len(bench) == 1 and bench.items[0].audio_seconds == pytest.approx(2.0)
    assert bench.items[0].answers == ["A dog on a lawn."] and bench.items[0].benchmark == "babillage/coco"
