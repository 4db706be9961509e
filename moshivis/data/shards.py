"""Sharded on-disk storage of `Sample`s (Apache Parquet), written resumably and read as a stream.

A dataset is a folder::

    manifest.json            what is complete: shards, counts, hours, token counts, caller config
    shard-00000.parquet      one file per shard, `samples_per_shard` rows, row groups of `row_group_size`
    shard-00001.parquet
    shard-00002.parquet.tmp  (only while writing, or after a crash: never read, removed on resume)

Row schema (one row = one `Sample`)::

    id          string    not null   unique within the dataset
    kind        string    not null   "image_speech" | "speechless" | "audio_only" | "text_only"
    num_frames  int32     not null   T
    codes       binary    not null   int16 little-endian, [17, T] row-major (2 * 17 * T bytes)
    loss_mask   binary    not null   np.packbits(mask.reshape(-1), bitorder="little") of [17, T] bool
    image_id    string    nullable   ImageRef.image_id (null: no image)
    image_path  string    nullable   ImageRef.path
    image_bytes binary    nullable   the image file's bytes when embedded
    meta        string    not null   json.dumps(Sample.meta)

Why these choices: Parquet gives per-column compression (zstd), page checksums and cheap footer
metadata (row counts) without a custom container; codes are stored as one binary blob per row rather than
a list column because a blob decodes to a numpy view in one step; small row groups make both streaming and
random access (`ShardReader.get`) decode at most one small group.

Durability: a shard is written to `<name>.tmp`, fsynced and renamed, then the manifest is rewritten the
same way; so a crash loses at most the shard being written. `ShardWriter(..., resume=True)` keeps every
completed shard, deletes tmp files and exposes `done_ids` (read back from the completed shards' id column,
the source of truth) so the producer skips what is already stored.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from moshivis.data.types import IMAGE_FREE_KINDS, SAMPLE_KINDS, ImageRef, Sample

NUM_STREAMS = 17
NUM_TARGET_STREAMS = 9  # streams 0..8 (text + Moshi's audio) may carry targets; 9..16 are user inputs
FRAME_SECONDS = 0.08  # one frame = 80 ms (12.5 Hz)
TEXT_PAD_IDS = (3, 0)  # text padding and end-of-padding: not "words" for token counts
AUDIO_KINDS = ("image_speech", "audio_only")  # kinds whose frames count as hours of audio
FORMAT_NAME = "moshivis-shards"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOCK_FILE = ".writer.lock"
_SHARD_RE = re.compile(r"^shard-(\d{5,})\.parquet$")

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("num_frames", pa.int32(), nullable=False),
        pa.field("codes", pa.binary(), nullable=False),
        pa.field("loss_mask", pa.binary(), nullable=False),
        pa.field("image_id", pa.string()),
        pa.field("image_path", pa.string()),
        pa.field("image_bytes", pa.binary()),
        pa.field("meta", pa.string(), nullable=False),
    ],
    metadata={"format": FORMAT_NAME, "version": str(FORMAT_VERSION), "num_streams": str(NUM_STREAMS)},
)
_COLUMNS = tuple(SCHEMA.names)


class ShardError(RuntimeError):
    """A shard file (or one row of it) cannot be read; the message names the file and the row."""


@dataclass
class StoredSample(Sample):
    """A `Sample` read back from a shard, plus what the file adds.

    image_bytes: the embedded image file (None if not embedded or not loaded).
    location: "<file>#<row>" where it came from, for error messages and debugging.
    position: (epoch, index) set by `MixtureDataset` (index within the rank's epoch stream); None otherwise.
    """

    image_bytes: bytes | None = None
    location: str = ""
    position: tuple[int, int] | None = None


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


# --------------------------------------------------------------------------------------------- stats


@dataclass
class KindStats:
    """Counts for one kind (within one shard, or summed)."""

    samples: int = 0
    frames: int = 0
    text_tokens: int = 0  # stream 0 values other than -1, 0 (end of padding), 3 (padding)
    audio_tokens: int = 0  # streams 1..16 values >= 0
    target_tokens: int = 0  # loss_mask True

    def add(self, other: KindStats) -> None:
        self.samples += other.samples
        self.frames += other.frames
        self.text_tokens += other.text_tokens
        self.audio_tokens += other.audio_tokens
        self.target_tokens += other.target_tokens

    def to_json(self, kind: str) -> dict[str, Any]:
        d = dict(self.__dict__)
        # hours are derived from integer frames, never accumulated as floats
        d["audio_hours"] = self.frames * FRAME_SECONDS / 3600 if kind in AUDIO_KINDS else 0.0
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> KindStats:
        return cls(**{k: int(d[k]) for k in ("samples", "frames", "text_tokens", "audio_tokens", "target_tokens")})


def sample_stats(codes: np.ndarray, loss_mask: np.ndarray) -> KindStats:
    """Stats of one sample; codes [17, T] int, loss_mask [17, T] bool."""
    text = codes[0]
    return KindStats(
        samples=1,
        frames=int(codes.shape[1]),
        text_tokens=int(np.count_nonzero((text != -1) & (text != TEXT_PAD_IDS[0]) & (text != TEXT_PAD_IDS[1]))),
        audio_tokens=int(np.count_nonzero(codes[1:] >= 0)),
        target_tokens=int(np.count_nonzero(loss_mask)),
    )


def _summary(per_kind: dict[str, KindStats]) -> dict[str, Any]:
    """Totals + per-kind breakdown, the common part of a shard entry and of the manifest."""
    total = KindStats()
    for s in per_kind.values():
        total.add(s)
    return {
        "num_samples": total.samples,
        "num_frames": total.frames,
        "audio_hours": sum(s.to_json(k)["audio_hours"] for k, s in per_kind.items()),
        "text_tokens": total.text_tokens,
        "audio_tokens": total.audio_tokens,
        "target_tokens": total.target_tokens,
        "kinds": {k: per_kind[k].to_json(k) for k in SAMPLE_KINDS if k in per_kind},
    }


# ------------------------------------------------------------------------------------------ encoding


def _json_default(x: Any) -> Any:
    # numpy scalars/arrays show up in meta from upstream stages; store them as plain JSON values
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (set, frozenset, tuple)):
        return list(x)
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def encode_sample(sample: Sample, image_bytes: bytes | None = None) -> tuple[dict[str, Any], KindStats]:
    """Validate `sample` and turn it into one row of `SCHEMA` (+ its stats). Raises ValueError naming the id."""
    sid = sample.id
    if not isinstance(sid, str) or not sid:
        raise ValueError(f"sample id must be a non-empty string, got {sid!r}")
    if sample.kind not in SAMPLE_KINDS:
        raise ValueError(f"sample {sid!r}: kind {sample.kind!r} not in {SAMPLE_KINDS}")
    codes = np.asarray(sample.codes)
    mask = np.asarray(sample.loss_mask)
    if codes.ndim != 2 or codes.shape[0] != NUM_STREAMS or codes.shape[1] == 0:
        raise ValueError(f"sample {sid!r}: codes must be [{NUM_STREAMS}, T>0], got {list(codes.shape)}")
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"sample {sid!r}: codes must be integers, got {codes.dtype}")
    lo, hi = int(codes.min()), int(codes.max())
    info = np.iinfo(np.int16)
    if lo < info.min or hi > info.max:
        raise ValueError(f"sample {sid!r}: codes in [{lo}, {hi}] do not fit int16 (the storage type)")
    if lo < -1:
        raise ValueError(f"sample {sid!r}: code {lo} < -1 (-1 is the only negative id)")
    if mask.shape != codes.shape:
        raise ValueError(f"sample {sid!r}: loss_mask {list(mask.shape)} != codes {list(codes.shape)}")
    if mask.dtype != np.bool_:
        if not np.isin(mask, (0, 1)).all():
            raise ValueError(f"sample {sid!r}: loss_mask must be boolean")
        mask = mask.astype(bool)
    if mask[NUM_TARGET_STREAMS:].any():
        raise ValueError(f"sample {sid!r}: loss_mask is True on a user stream (9..16): those are inputs only")
    image = sample.image
    if (image is None) != (sample.kind in IMAGE_FREE_KINDS):
        raise ValueError(f"sample {sid!r}: kind {sample.kind!r} with image={image!r} (only "
                         f"{' and '.join(IMAGE_FREE_KINDS)} have none)")
    if image_bytes is not None and image is None:
        raise ValueError(f"sample {sid!r}: image_bytes given without an image reference")
    try:
        meta = json.dumps(sample.meta, default=_json_default, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"sample {sid!r}: meta is not JSON serialisable: {e}") from e
    row = {
        "id": sid,
        "kind": sample.kind,
        "num_frames": int(codes.shape[1]),
        "codes": np.ascontiguousarray(codes, dtype="<i2").tobytes(),
        "loss_mask": np.packbits(mask.reshape(-1), bitorder="little").tobytes(),
        "image_id": None if image is None else image.image_id,
        "image_path": None if image is None else image.path,
        "image_bytes": None if image_bytes is None else bytes(image_bytes),
        "meta": meta,
    }
    return row, sample_stats(codes, mask)


def decode_row(cols: dict[str, list[Any]], i: int, where: str) -> StoredSample:
    """Row i of a decoded row group (column name -> python list) -> StoredSample; `where` names file+row."""
    try:
        sid, kind, t = cols["id"][i], cols["kind"][i], cols["num_frames"][i]
        if kind not in SAMPLE_KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        if t is None or t <= 0:
            raise ValueError(f"bad num_frames {t!r}")
        n = NUM_STREAMS * t
        raw = cols["codes"][i]
        if raw is None or len(raw) != 2 * n:
            raise ValueError(f"codes has {None if raw is None else len(raw)} bytes, expected {2 * n} for T={t}")
        codes = np.frombuffer(raw, dtype="<i2").astype(np.int64).reshape(NUM_STREAMS, t)
        packed = cols["loss_mask"][i]
        if packed is None or len(packed) != (n + 7) // 8:
            raise ValueError(f"loss_mask has {None if packed is None else len(packed)} bytes, expected {(n + 7) // 8}")
        mask = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=n, bitorder="little")
        image_id, image_path = cols["image_id"][i], cols["image_path"][i]
        image = None if image_id is None else ImageRef(image_id=image_id, path=image_path or "")
        meta = json.loads(cols["meta"][i])
        if not isinstance(meta, dict):
            raise ValueError("meta is not a JSON object")
    except (ValueError, TypeError, KeyError) as e:
        raise ShardError(f"{where}: bad row: {e}") from e
    return StoredSample(
        id=sid,
        kind=kind,
        codes=codes,
        loss_mask=mask.astype(bool).reshape(NUM_STREAMS, t),
        image=image,
        meta=meta,
        image_bytes=cols["image_bytes"][i] if "image_bytes" in cols else None,
        location=where,
    )


# ------------------------------------------------------------------------------------------ manifest


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_path(path.parent)  # make the rename itself durable


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed `manifest.json` of a shard folder (FileNotFoundError if none; ShardError if unreadable)."""
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ShardError(f"{path}: manifest is not valid JSON: {e}") from e
    if manifest.get("format") != FORMAT_NAME:
        raise ShardError(f"{path}: not a {FORMAT_NAME} manifest (format={manifest.get('format')!r})")
    return manifest


def read_ids(path: str | os.PathLike[str]) -> list[str]:
    """The id column of one shard file, read row group by row group."""
    pf = _open_parquet(Path(path))
    try:
        return [x for b in pf.iter_batches(columns=["id"], batch_size=4096) for x in b.column(0).to_pylist()]
    except (OSError, pa.ArrowException) as e:
        raise ShardError(f"{path}: cannot read the id column: {e}") from e
    finally:
        pf.close()


def _open_parquet(path: Path, verify_checksums: bool = True) -> pq.ParquetFile:
    """Open a shard and check it has our schema; any failure is a ShardError naming the file."""
    try:
        pf = pq.ParquetFile(path, page_checksum_verification=verify_checksums)
    except FileNotFoundError as e:
        raise ShardError(f"{path}: shard file missing") from e
    except (OSError, pa.ArrowException) as e:
        raise ShardError(f"{path}: not a readable Parquet shard ({e})") from e
    missing = [c for c in _COLUMNS if c not in pf.schema_arrow.names]
    if missing:
        pf.close()
        raise ShardError(f"{path}: not a {FORMAT_NAME} shard (missing columns {missing})")
    return pf


# -------------------------------------------------------------------------------------------- writer


class ShardWriter:
    """Write `Sample`s into `out_dir` as numbered Parquet shards + `manifest.json`.

    Use as a context manager::

        with ShardWriter(out, samples_per_shard=256, config={...}, resume=True) as w:
            for s in samples:
                if s.id not in w.done_ids:
                    w.write(s)

    resume=False refuses a folder that already holds shards (FileExistsError). resume=True keeps completed
    shards (recovering one that was renamed but not yet listed in the manifest), deletes `*.tmp` files,
    continues numbering after the highest shard, and fills `done_ids`; on an empty folder it just starts.
    `config` (any JSON dict) is stored in the manifest; on resume it must equal the stored one (a dataset
    is one config) or be None to keep it.
    Leaving the `with` block by an exception still closes the partial shard (every row in it was validated),
    but the manifest keeps complete=False. Only a crash loses the open shard.
    embed_images=True reads `image_root / sample.image.path` into `image_bytes` when `write` gets none;
    explicit `image_bytes` are always stored.
    A lock file (flock, released by the OS if the process dies) stops two writers sharing a folder.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        samples_per_shard: int = 256,
        embed_images: bool = False,
        *,
        config: dict[str, Any] | None = None,
        resume: bool = False,
        row_group_size: int = 32,
        image_root: str | os.PathLike[str] | None = None,
        compression: str = "zstd",
    ) -> None:
        if samples_per_shard < 1 or row_group_size < 1:
            raise ValueError("samples_per_shard and row_group_size must be >= 1")
        self.out_dir = Path(out_dir)
        self.samples_per_shard = samples_per_shard
        self.row_group_size = row_group_size
        self.embed_images = embed_images
        self.image_root = Path(image_root) if image_root is not None else None
        self.compression = compression
        self.done_ids: set[str] = set()
        self._shards: list[dict[str, Any]] = []
        self._closed = False
        self._writer: pq.ParquetWriter | None = None
        self._rows: list[dict[str, Any]] = []  # rows of the current row group, not yet handed to Parquet
        self._shard_rows = 0
        self._shard_stats: dict[str, KindStats] = {}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._lock: IO[str] | None = self._take_lock()
        try:
            self._open_existing(config, resume)
        except BaseException:
            self._release_lock()
            raise

    # -- setup

    def _take_lock(self) -> IO[str]:
        f = open(self.out_dir / LOCK_FILE, "a")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise RuntimeError(f"{self.out_dir}: another ShardWriter is writing this folder") from None
        return f

    def _release_lock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _open_existing(self, config: dict[str, Any] | None, resume: bool) -> None:
        finals = sorted(p for p in self.out_dir.iterdir() if _SHARD_RE.match(p.name))
        has_manifest = (self.out_dir / MANIFEST).exists()
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._created, self._config = now, dict(config or {})
        if not resume:
            if finals or has_manifest:
                raise FileExistsError(f"{self.out_dir} already holds shards; pass resume=True to continue it")
            self._next_index = 0
            self._write_manifest(complete=False)
            return
        for tmp in self.out_dir.glob("*.tmp"):  # an interrupted shard or manifest: never trusted
            tmp.unlink()
        if has_manifest:
            manifest = read_manifest(self.out_dir)
            self._created = manifest.get("created", now)
            stored = manifest.get("config", {})
            if config is not None and json.loads(json.dumps(config, default=_json_default)) != stored:
                raise ValueError(f"{self.out_dir}: resume with config {config!r} != stored config {stored!r}")
            self._config = stored
            self._shards = list(manifest["shards"])
        listed = {s["file"] for s in self._shards}
        for s in self._shards:
            if not (self.out_dir / s["file"]).exists():
                raise ShardError(f"{self.out_dir / s['file']}: listed in the manifest but missing")
        # A shard renamed into place just before a crash (manifest not yet rewritten) is complete: keep it.
        for p in finals:
            if p.name not in listed:
                self._shards.append(self._entry_from_file(p))
        self._shards.sort(key=lambda s: s["file"])
        for s in self._shards:
            self.done_ids.update(read_ids(self.out_dir / s["file"]))
        indices = [int(_SHARD_RE.match(s["file"]).group(1)) for s in self._shards]  # type: ignore[union-attr]
        self._next_index = max(indices) + 1 if indices else 0
        self._write_manifest(complete=False)

    def _entry_from_file(self, path: Path) -> dict[str, Any]:
        stats: dict[str, KindStats] = {}
        for s in ShardReader([path], load_images=False):
            stats.setdefault(s.kind, KindStats()).add(sample_stats(s.codes, s.loss_mask))
        return {"file": path.name, "bytes": path.stat().st_size, **_summary(stats)}

    # -- writing

    def write(self, sample: Sample, image_bytes: bytes | None = None) -> None:
        """Append one sample (validated first: a bad sample raises ValueError and writes nothing)."""
        if self._closed:
            raise RuntimeError("ShardWriter is closed")
        if sample.id in self.done_ids:
            raise ValueError(f"sample {sample.id!r} already written (check `done_ids` before writing)")
        if image_bytes is None and self.embed_images and sample.image is not None:
            path = Path(sample.image.path)
            if self.image_root is not None and not path.is_absolute():
                path = self.image_root / path
            image_bytes = path.read_bytes()
        row, stats = encode_sample(sample, image_bytes)
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self._tmp_path(),
                SCHEMA,
                compression=self.compression,
                use_dictionary=["kind", "image_path"],
                write_page_checksum=True,  # so readers detect flipped bytes instead of decoding garbage
            )
        self._rows.append(row)
        self.done_ids.add(sample.id)
        self._shard_stats.setdefault(sample.kind, KindStats()).add(stats)
        self._shard_rows += 1
        if len(self._rows) >= self.row_group_size:
            self._flush_row_group()
        if self._shard_rows >= self.samples_per_shard:
            self._finish_shard()

    def _tmp_path(self) -> Path:
        return self.out_dir / (shard_name(self._next_index) + ".tmp")

    def _flush_row_group(self) -> None:
        if self._rows and self._writer is not None:
            table = pa.Table.from_pylist(self._rows, schema=SCHEMA)
            self._writer.write_table(table, row_group_size=self.row_group_size)
            self._rows = []

    def _finish_shard(self) -> None:
        if self._writer is None:
            return
        self._flush_row_group()
        self._writer.close()
        self._writer = None
        tmp, final = self._tmp_path(), self.out_dir / shard_name(self._next_index)
        _fsync_path(tmp)
        os.replace(tmp, final)
        _fsync_path(self.out_dir)
        self._shards.append({"file": final.name, "bytes": final.stat().st_size, **_summary(self._shard_stats)})
        self._next_index += 1
        self._shard_rows, self._shard_stats = 0, {}
        self._write_manifest(complete=False)

    def _write_manifest(self, complete: bool) -> None:
        per_kind: dict[str, KindStats] = {}
        for s in self._shards:
            for kind, d in s["kinds"].items():
                per_kind.setdefault(kind, KindStats()).add(KindStats.from_json(d))
        manifest = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "created": self._created,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "complete": complete,
            "config": self._config,
            "num_streams": NUM_STREAMS,
            "frame_seconds": FRAME_SECONDS,
            "samples_per_shard": self.samples_per_shard,
            "row_group_size": self.row_group_size,
            "num_shards": len(self._shards),
            **_summary(per_kind),
            "shards": self._shards,
        }
        _atomic_write_text(self.out_dir / MANIFEST, json.dumps(manifest, indent=1, default=_json_default))

    def close(self, complete: bool = True) -> None:
        """Close the partial shard (if any) and write the final manifest. Idempotent."""
        if self._closed:
            return
        try:
            self._finish_shard()
            self._write_manifest(complete=complete)
        finally:
            self._closed = True
            self._release_lock()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(complete=exc_type is None)


# -------------------------------------------------------------------------------------------- reader


@dataclass
class ShardInfo:
    path: Path
    num_rows: int | None  # from the manifest; None: read from the file footer when first needed


@dataclass
class _OpenShard:
    pf: pq.ParquetFile
    rg_starts: np.ndarray  # [num_row_groups + 1] first row of each row group, then the total


class ShardReader:
    """Read `StoredSample`s from shard files, one row group at a time.

    source: a shard folder (shards listed by its manifest, else every `shard-*.parquet` in it), one shard
    file, or a sequence of folders/files. load_images=False skips the `image_bytes` column.
    Memory: iteration holds one decoded row group; `get` keeps up to `cache_row_groups` decoded row groups
    and `max_open_files` open files (LRU), so random access over many shards stays bounded.
    Pickles without its open files (for DataLoader workers).
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        load_images: bool = True,
        verify_checksums: bool = True,
        cache_row_groups: int = 4,
        max_open_files: int = 16,
    ) -> None:
        sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
        self.shards: list[ShardInfo] = []
        for src in sources:
            self.shards.extend(_list_shards(Path(src)))
        self.load_images = load_images
        self.verify_checksums = verify_checksums
        self.cache_row_groups = cache_row_groups
        self.max_open_files = max_open_files
        self._columns = [c for c in _COLUMNS if load_images or c != "image_bytes"]
        self._files: OrderedDict[int, _OpenShard] = OrderedDict()
        self._groups: OrderedDict[tuple[int, int], dict[str, list[Any]]] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_files"], state["_groups"] = OrderedDict(), OrderedDict()
        return state

    @property
    def num_shards(self) -> int:
        return len(self.shards)

    def shard_length(self, i: int) -> int:
        info = self.shards[i]
        if info.num_rows is None:
            info.num_rows = int(self._open(i).rg_starts[-1])
        return info.num_rows

    def __len__(self) -> int:
        return sum(self.shard_length(i) for i in range(len(self.shards)))

    def _open(self, i: int) -> _OpenShard:
        if i in self._files:
            self._files.move_to_end(i)
            return self._files[i]
        info = self.shards[i]
        pf = _open_parquet(info.path, self.verify_checksums)
        md = pf.metadata
        sizes = [md.row_group(g).num_rows for g in range(md.num_row_groups)]
        starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        if info.num_rows is not None and int(starts[-1]) != info.num_rows:
            pf.close()
            raise ShardError(f"{info.path}: has {int(starts[-1])} rows but the manifest says {info.num_rows}")
        opened = _OpenShard(pf, starts)
        self._files[i] = opened
        while len(self._files) > self.max_open_files:
            _, old = self._files.popitem(last=False)
            old.pf.close()
        return opened

    def _read_group(self, i: int, g: int) -> dict[str, list[Any]]:
        """Row group g of shard i as column name -> python list (the only place data pages are read)."""
        sh = self._open(i)
        lo, hi = int(sh.rg_starts[g]), int(sh.rg_starts[g + 1])
        try:
            table = sh.pf.read_row_group(g, columns=self._columns)
            cols = {name: table.column(name).to_pylist() for name in self._columns}
        except (OSError, pa.ArrowException) as e:
            raise ShardError(f"{self.shards[i].path}: rows {lo}..{hi - 1} (row group {g}) unreadable: {e}") from e
        if any(len(v) != hi - lo for v in cols.values()):
            raise ShardError(f"{self.shards[i].path}: row group {g} has inconsistent column lengths")
        return cols

    def iter_shard(self, i: int) -> Iterator[StoredSample]:
        sh = self._open(i)
        path = self.shards[i].path
        for g in range(len(sh.rg_starts) - 1):
            cols = self._read_group(i, g)
            start = int(sh.rg_starts[g])
            for r in range(len(cols["id"])):
                yield decode_row(cols, r, f"{path}#{start + r}")

    def __iter__(self) -> Iterator[StoredSample]:
        for i in range(len(self.shards)):
            yield from self.iter_shard(i)

    def get(self, shard_index: int, row: int) -> StoredSample:
        """Random access: row `row` of shard `shard_index` (decodes at most its row group)."""
        if not 0 <= shard_index < len(self.shards):
            raise IndexError(f"shard index {shard_index} out of range [0, {len(self.shards)})")
        sh = self._open(shard_index)
        n = int(sh.rg_starts[-1])
        if not 0 <= row < n:
            raise IndexError(f"row {row} out of range for {self.shards[shard_index].path} ({n} rows)")
        g = int(np.searchsorted(sh.rg_starts, row, side="right")) - 1
        key = (shard_index, g)
        if key in self._groups:
            self._groups.move_to_end(key)
            cols = self._groups[key]
        else:
            cols = self._read_group(shard_index, g)
            self._groups[key] = cols
            while len(self._groups) > self.cache_row_groups:
                self._groups.popitem(last=False)
        return decode_row(cols, row - int(sh.rg_starts[g]), f"{self.shards[shard_index].path}#{row}")

    def _column(self, i: int, name: str, convert: Callable[[pa.Array], np.ndarray], dtype: type) -> np.ndarray:
        """[rows of shard i] one small column, read alone and converted batch by batch; named errors."""
        sh = self._open(i)
        path = self.shards[i].path
        try:
            out = [convert(b.column(0)) for b in sh.pf.iter_batches(columns=[name], batch_size=4096)]
        except (OSError, pa.ArrowException) as e:
            raise ShardError(f"{path}: cannot read the {name} column: {e}") from e
        values = np.concatenate(out) if out else np.zeros(0, dtype=dtype)
        if len(values) != self.shard_length(i):
            raise ShardError(f"{path}: {name} column has {len(values)} rows, expected {self.shard_length(i)}")
        return values

    def frames(self, i: int) -> np.ndarray:
        """[rows of shard i] int64 num_frames, reading only that small column."""
        return self._column(i, "num_frames", lambda c: np.asarray(c.to_numpy(), dtype=np.int64), np.int64)

    def kinds(self, i: int) -> np.ndarray:
        """[rows of shard i] int8 index into SAMPLE_KINDS, reading only the small `kind` column."""
        path = self.shards[i].path

        def convert(column: pa.Array) -> np.ndarray:
            names = column.to_pylist()
            bad = [k for k in names if k not in SAMPLE_KINDS]
            if bad:
                raise ShardError(f"{path}: unknown kind {bad[0]!r}")
            return np.array([SAMPLE_KINDS.index(k) for k in names], dtype=np.int8)
        return self._column(i, "kind", convert, np.int8)

    def close(self) -> None:
        for sh in self._files.values():
            sh.pf.close()
        self._files.clear()
        self._groups.clear()

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _list_shards(path: Path) -> list[ShardInfo]:
    if path.is_file():
        return [ShardInfo(path, None)]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such shard file or folder")
    if (path / MANIFEST).exists():
        manifest = read_manifest(path)
        return [ShardInfo(path / s["file"], int(s["num_samples"])) for s in manifest["shards"]]
    return [ShardInfo(p, None) for p in sorted(path.iterdir()) if _SHARD_RE.match(p.name)]
