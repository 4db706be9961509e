"""Shard format: round trip, manifest stats, streaming by row group, crash + resume, corruption errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from moshivis.data import shards as shards_mod
from moshivis.data.shards import (
    AUDIO_KINDS,
    FRAME_SECONDS,
    SCHEMA,
    ShardError,
    ShardReader,
    ShardWriter,
    encode_sample,
    read_manifest,
)
from moshivis.data.types import IMAGE_FREE_KINDS, SAMPLE_KINDS, ImageRef, Sample

REPO = Path(__file__).resolve().parents[2]


def make_sample(i: int, seed: int = 0, t_range: tuple[int, int] = (5, 60)) -> Sample:
    """A random valid sample; kind cycles through the kinds; T varies."""
    rng = np.random.default_rng([seed, i])
    kind = SAMPLE_KINDS[i % len(SAMPLE_KINDS)]
    t = int(rng.integers(*t_range))
    codes = rng.integers(0, 2048, (17, t))
    codes[0] = rng.choice([0, 3, 17, 31999, 32000, -1], size=t)
    codes[rng.random((17, t)) < 0.2] = -1
    mask = np.zeros((17, t), dtype=bool)
    mask[:9] = rng.random((9, t)) < 0.5
    image = None if kind in IMAGE_FREE_KINDS else ImageRef(f"img{i}", f"images/{i}.jpg")
    return Sample(f"s{i:05d}", kind, codes, mask, image, {"i": i, "nested": {"q": [1, 2.5, "x"]}, "src": "test"})


def assert_same(a: Sample, b: Sample) -> None:
    assert a.id == b.id and a.kind == b.kind
    np.testing.assert_array_equal(a.codes, b.codes)
    assert b.loss_mask.dtype == np.bool_
    np.testing.assert_array_equal(a.loss_mask, b.loss_mask)
    assert a.image == b.image
    assert a.meta == b.meta


def write_all(out: Path, samples: list[Sample], **kw) -> None:
    with ShardWriter(out, **kw) as w:
        for s in samples:
            w.write(s)


def test_round_trip_with_random_access_and_image_bytes(tmp_path: Path) -> None:
    samples = [make_sample(i) for i in range(70)]
    blobs = {s.id: os.urandom(50 + i) for i, s in enumerate(samples) if s.image is not None and i % 2 == 0}
    with ShardWriter(tmp_path, samples_per_shard=16, row_group_size=4, config={"run": "t"}) as w:
        for s in samples:
            w.write(s, image_bytes=blobs.get(s.id))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".writer.lock", "manifest.json"] + [f"shard-{i:05d}.parquet" for i in range(5)]
    reader = ShardReader(tmp_path)
    assert len(reader) == 70 and reader.num_shards == 5
    back = list(reader)
    assert len(back) == 70
    for a, b in zip(samples, back):
        assert_same(a, b)
        assert b.image_bytes == blobs.get(a.id)
    assert back[20].location.endswith("shard-00001.parquet#4")
    for shard, row in [(0, 0), (3, 5), (4, 5), (1, 15), (0, 3)]:
        assert_same(samples[shard * 16 + row], reader.get(shard, row))
    with pytest.raises(IndexError):
        reader.get(4, 6)
    # a file path, a list of files, and skipping the image column
    files = [tmp_path / f"shard-{i:05d}.parquet" for i in range(5)]
    assert [s.id for s in ShardReader(files[1])] == [s.id for s in samples[16:32]]
    assert all(s.image_bytes is None for s in ShardReader(files, load_images=False))


def test_manifest_counts_hours_tokens(tmp_path: Path) -> None:
    samples = [make_sample(i) for i in range(50)]
    write_all(tmp_path, samples, samples_per_shard=20, config={"p_concat": 0.3})
    m = read_manifest(tmp_path)
    assert m["complete"] is True and m["config"] == {"p_concat": 0.3}
    assert [s["num_samples"] for s in m["shards"]] == [20, 20, 10] and m["num_samples"] == 50
    for kind in SAMPLE_KINDS:
        ks = [s for s in samples if s.kind == kind]
        got = m["kinds"][kind]
        frames = sum(s.num_frames for s in ks)
        assert got["samples"] == len(ks) and got["frames"] == frames
        text = sum(int(np.isin(s.codes[0], (-1, 0, 3), invert=True).sum()) for s in ks)
        assert got["text_tokens"] == text
        assert got["audio_tokens"] == sum(int((s.codes[1:] != -1).sum()) for s in ks)
        assert got["target_tokens"] == sum(int(s.loss_mask.sum()) for s in ks)
        hours = frames * FRAME_SECONDS / 3600 if kind in AUDIO_KINDS else 0.0
        assert got["audio_hours"] == pytest.approx(hours)
    assert m["num_frames"] == sum(s.num_frames for s in samples)
    assert m["audio_hours"] == pytest.approx(sum(s.num_frames for s in samples if s.kind in AUDIO_KINDS) * 0.08 / 3600)
    first = m["shards"][0]
    assert sum(v["samples"] for v in first["kinds"].values()) == 20
    assert first["kinds"]["image_speech"]["samples"] == 5  # ids 0, 4, ..., 16


def test_reading_streams_row_group_by_row_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_all(tmp_path, [make_sample(i) for i in range(40)], samples_per_shard=25, row_group_size=5)

    def whole_file(*a, **k):
        raise AssertionError("read a whole file")

    monkeypatch.setattr(pq, "read_table", whole_file)
    monkeypatch.setattr(pq.ParquetFile, "read", whole_file)
    calls: list[int] = []
    original = pq.ParquetFile.read_row_group

    def counted(self, i, *a, **k):
        calls.append(i)
        return original(self, i, *a, **k)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", counted)
    it = iter(ShardReader(tmp_path))
    next(it)
    assert calls == [0]  # lazily: one row group decoded for the first sample
    assert sum(1 for _ in it) == 39
    assert calls == [0, 1, 2, 3, 4] + [0, 1, 2]  # 25 rows = 5 groups, then 15 rows = 3 groups


_CRASHING_PRODUCER = """
import os, sys
sys.path.insert(0, {tests!r}); sys.path.insert(0, {repo!r})
from test_shards import make_sample
from moshivis.data.shards import ShardWriter
w = ShardWriter({out!r}, samples_per_shard=16, row_group_size=4, config={{"v": 1}})
for i in range(70):
    w.write(make_sample(i))
os._exit(3)  # killed: no close, the open shard stays a .tmp
"""


def test_resume_after_crash(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    code = _CRASHING_PRODUCER.format(tests=str(Path(__file__).parent), repo=str(REPO), out=str(out))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert (out / "shard-00004.parquet.tmp").exists()
    assert read_manifest(out)["num_samples"] == 64 and read_manifest(out)["complete"] is False
    with pytest.raises(FileExistsError):
        ShardWriter(out)
    with ShardWriter(out, samples_per_shard=16, row_group_size=4, resume=True) as w:
        assert w.done_ids == {f"s{i:05d}" for i in range(64)}
        assert not list(out.glob("*.tmp"))
        with pytest.raises(RuntimeError, match="another ShardWriter"):
            ShardWriter(out, resume=True)
        for i in range(100):
            s = make_sample(i)
            if s.id not in w.done_ids:
                w.write(s)
        with pytest.raises(ValueError, match="already written"):
            w.write(make_sample(5))
    ids = [s.id for s in ShardReader(out)]
    assert ids == [f"s{i:05d}" for i in range(100)]
    m = read_manifest(out)
    assert m["num_samples"] == 100 and m["complete"] and m["config"] == {"v": 1}
    assert [s["file"] for s in m["shards"]] == [f"shard-{i:05d}.parquet" for i in range(7)]
    with pytest.raises(ValueError, match="config"):
        ShardWriter(out, resume=True, config={"v": 2})


def test_resume_recovers_shard_renamed_before_manifest_update(tmp_path: Path) -> None:
    write_all(tmp_path, [make_sample(i) for i in range(30)], samples_per_shard=10)
    m = read_manifest(tmp_path)
    m["shards"] = m["shards"][:2]  # as if the crash came between the rename and the manifest rewrite
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with ShardWriter(tmp_path, samples_per_shard=10, resume=True) as w:
        assert len(w.done_ids) == 30
        w.write(make_sample(30))
    m = read_manifest(tmp_path)
    assert m["num_samples"] == 31 and len(m["shards"]) == 4
    assert m["kinds"]["image_speech"]["samples"] == sum(make_sample(i).kind == "image_speech" for i in range(31))
    assert [s.id for s in ShardReader(tmp_path)][-2:] == ["s00029", "s00030"]


def test_exception_in_with_block_keeps_written_rows(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        with ShardWriter(tmp_path, samples_per_shard=8) as w:
            for i in range(11):
                w.write(make_sample(i))
            raise KeyError("producer failed")
    m = read_manifest(tmp_path)
    assert m["num_samples"] == 11 and m["complete"] is False


def test_corrupt_shards_name_the_file(tmp_path: Path) -> None:
    write_all(tmp_path, [make_sample(i, t_range=(200, 300)) for i in range(20)], samples_per_shard=10)
    bad = tmp_path / "shard-00001.parquet"
    data = bytearray(bad.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = os.urandom(64)  # inside a data page: checksum fails
    bad.write_bytes(bytes(data))
    reader = ShardReader(tmp_path)
    assert len(list(reader.iter_shard(0))) == 10
    with pytest.raises(ShardError, match="shard-00001.parquet"):
        list(reader)
    bad.write_bytes(bytes(data[: len(data) // 2]))  # truncated: footer gone
    with pytest.raises(ShardError, match="shard-00001.parquet.*not a readable Parquet"):
        ShardReader(tmp_path).get(1, 0)
    bad.unlink()
    with pytest.raises(ShardError, match="shard-00001.parquet.*missing"):
        list(ShardReader(tmp_path))


def test_bad_row_names_file_and_row(tmp_path: Path) -> None:
    rows = [encode_sample(make_sample(i))[0] for i in range(6)]
    rows[4]["codes"] = rows[4]["codes"][:-2]  # one value short
    path = tmp_path / "shard-00000.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path, row_group_size=2)
    reader = ShardReader(path)
    with pytest.raises(ShardError, match=r"shard-00000.parquet#4: bad row: codes has"):
        list(reader)
    assert reader.get(0, 3).id == "s00003"
    pq.write_table(pa.table({"id": ["x"]}), tmp_path / "other.parquet")
    with pytest.raises(ShardError, match="other.parquet.*missing columns"):
        list(ShardReader(tmp_path / "other.parquet"))


def test_write_validation(tmp_path: Path) -> None:
    s = make_sample(0)
    with ShardWriter(tmp_path) as w:
        big = Sample("big", s.kind, s.codes.copy(), s.loss_mask, s.image)
        big.codes[3, 2] = 40000
        with pytest.raises(ValueError, match="int16"):
            w.write(big)
        user = Sample("user", s.kind, s.codes, s.loss_mask.copy(), s.image)
        user.loss_mask[12, 0] = True
        with pytest.raises(ValueError, match="user stream"):
            w.write(user)
        with pytest.raises(ValueError, match="JSON"):
            w.write(Sample("meta", s.kind, s.codes, s.loss_mask, s.image, {"x": object()}))
        with pytest.raises(ValueError, match=r"\[17, T>0\]"):
            w.write(Sample("shape", s.kind, s.codes[:16], s.loss_mask[:16], s.image))
        with pytest.raises(ValueError, match="only audio_only and text_only"):
            w.write(Sample("noimg", "image_speech", s.codes, s.loss_mask, None))
        with pytest.raises(ValueError, match="kind 'text_only' with image="):
            w.write(Sample("textimg", "text_only", s.codes, s.loss_mask, s.image))
        w.write(Sample("np-meta", s.kind, s.codes.astype(np.int16), s.loss_mask, s.image, {"n": np.int64(3)}))
    (back,) = list(ShardReader(tmp_path))
    assert back.id == "np-meta" and back.meta == {"n": 3} and back.codes.dtype == np.int64


def test_embed_images_from_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    samples = [make_sample(i) for i in range(6)]
    for s in samples:
        if s.image is not None:
            (root / s.image.path).write_bytes(f"jpeg-{s.id}".encode())
    write_all(tmp_path / "ds", samples, embed_images=True, image_root=root)
    got = {s.id: s.image_bytes for s in ShardReader(tmp_path / "ds")}
    assert got == {s.id: (None if s.image is None else f"jpeg-{s.id}".encode()) for s in samples}


def test_reader_pickles_without_open_files(tmp_path: Path) -> None:
    import pickle

    write_all(tmp_path, [make_sample(i) for i in range(5)])
    reader = ShardReader(tmp_path)
    first = reader.get(0, 2)
    clone = pickle.loads(pickle.dumps(reader))
    assert_same(first, clone.get(0, 2))
    assert shards_mod.shard_name(12) == "shard-00012.parquet"
