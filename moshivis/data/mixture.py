"""The training mixture: image-speech, speechless and audio-only samples drawn by configured proportions.

REFERENCE.md section 5: batches mix speechless samples (dialogue in the text stream only) with a share
p_audio of image-speech samples (25% in the paper), optionally plus audio-only dialogues:
``weights={"image_speech": p_audio, "speechless": 1 - p_audio, "audio_only": q}`` (normalised).

Epoch semantics (everything is a pure function of (seed, epoch), so any rank/worker can rebuild it):
- An epoch is a global sequence of `samples_per_epoch` items (default: the number of samples of the kinds
  with weight > 0). It is NOT a pass over every sample: kinds are drawn by weight, so a small kind repeats
  and a big kind may be only partly seen in one epoch (another part in the next epoch, shuffled anew).
- Kind quotas are exact per epoch (largest-remainder rounding of weight * samples_per_epoch), placed in a
  seeded random order; so proportions hold exactly over an epoch, and up to sampling noise in any window.
- Within a kind, samples are drawn without replacement in a seeded permutation; when the kind is exhausted
  a new permutation (a new "pass") starts. Passes restart every epoch.
- Item i of the epoch goes to rank i % world_size (drop_last=True first cuts the epoch to a multiple of
  world_size so every rank gets the same count, which DDP needs). On a rank, its items form a "rank
  stream"; DataLoader workers split the rank stream in consecutive chunks of `chunk_size`, chunk c to worker
  c % num_workers. With chunk_size = the DataLoader batch size each worker's batches are exactly its chunks,
  and the DataLoader's in-order round robin over workers gives back the rank stream in order: the batches
  do not depend on num_workers. With chunk_size=1, item i goes to (rank, worker) slot i % (world*workers).
- Position = (epoch, consumed items of the rank stream). `state_dict()` saves it; a resumed dataset yields
  exactly the remaining sequence. Iterating in the main process updates it per item; with workers the
  main-process copy only learns it from `mark_consumed(batch)` (MixtureLoader calls it for you).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, Literal, TypedDict

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from moshivis.data.shards import AUDIO_KINDS, NUM_STREAMS, ShardReader, StoredSample
from moshivis.data.text_lead import lead_text
from moshivis.data.types import SAMPLE_KINDS, ImageRef, Sample

CropMode = Literal["start", "random"]
Source = str | os.PathLike[str] | ShardReader


def _rng(seed: int, epoch: int, stream: int, index: int) -> np.random.Generator:
    # Fixed-length entropy: numpy's SeedSequence maps [s] and [s, 0] to the same state.
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, stream, index]))


def _quotas(probs: np.ndarray, total: int) -> np.ndarray:
    """Largest-remainder rounding: [K] ints summing to `total`, each within 1 of probs * total."""
    exact = probs * total
    counts = np.floor(exact).astype(np.int64)
    rest = total - int(counts.sum())
    order = np.argsort(-(exact - counts), kind="stable")  # ties -> lower kind index
    counts[order[:rest]] += 1
    return counts


class MixtureDataset(IterableDataset[StoredSample]):
    """Seeded weighted mixture of sample kinds over one or more shard folders, split across ranks/workers.

    sources: shard folder(s), shard file(s) or ShardReader(s). weights: kind -> weight (missing kinds = 0).
    rank/world_size default to torch.distributed's when it is initialised, else 0/1.
    infinite=True: iteration runs on through epochs (epoch, epoch+1, ...) and never stops.
    Yields `StoredSample`s with `position = (epoch, index in the rank stream)`.
    """

    def __init__(
        self,
        sources: Source | Sequence[Source],
        weights: Mapping[str, float],
        *,
        seed: int = 0,
        samples_per_epoch: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        chunk_size: int = 1,
        drop_last: bool = False,
        infinite: bool = False,
        load_images: bool = True,
        bucket_window: int = 0,
    ) -> None:
        """bucket_window: 0 keeps the mixed order; N > 0 sorts each window of N batches by length and
        shuffles the batches (seeded), so a batch pads little. Off by default: it changes the order."""
        super().__init__()
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if world_size is None or rank is None:
            dist = torch.distributed.is_available() and torch.distributed.is_initialized()
            world_size = world_size if world_size is not None else (torch.distributed.get_world_size() if dist else 1)
            rank = rank if rank is not None else (torch.distributed.get_rank() if dist else 0)
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.chunk_size, self.drop_last, self.infinite = chunk_size, drop_last, infinite

        srcs = [sources] if isinstance(sources, (str, os.PathLike, ShardReader)) else list(sources)
        self.readers = [s if isinstance(s, ShardReader) else ShardReader(s, load_images=load_images) for s in srcs]
        # Flat global index over every shard of every reader: g -> (reader, shard, row) by searchsorted.
        self._shards = [(r, i) for r, rd in enumerate(self.readers) for i in range(rd.num_shards)]
        lengths = [self.readers[r].shard_length(i) for r, i in self._shards]
        self._starts = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        kinds = [self.readers[r].kinds(i) for r, i in self._shards]
        if bucket_window < 0:
            raise ValueError(f"bucket_window must be >= 0, got {bucket_window}")
        self.bucket_window = bucket_window
        self._frames = (np.concatenate([self.readers[r].frames(i) for r, i in self._shards]) if bucket_window and
                        self._shards else None)
        all_kinds = np.concatenate(kinds) if kinds else np.zeros(0, dtype=np.int8)
        self._pools = [np.flatnonzero(all_kinds == k) for k in range(len(SAMPLE_KINDS))]  # [n_k] global ids
        for rd in self.readers:  # forked DataLoader workers must open their own file handles
            rd.close()

        unknown = sorted(set(weights) - set(SAMPLE_KINDS))
        if unknown:
            raise ValueError(f"unknown kinds in weights: {unknown} (known: {list(SAMPLE_KINDS)})")
        w = np.array([float(weights.get(k, 0.0)) for k in SAMPLE_KINDS])
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be finite, >= 0 and not all 0, got {dict(weights)}")
        for k, kind in enumerate(SAMPLE_KINDS):
            if w[k] > 0 and len(self._pools[k]) == 0:
                raise ValueError(f"kind {kind!r} has weight {w[k]} but the sources hold no {kind!r} samples")
        self.probs = w / w.sum()
        if samples_per_epoch is None:
            samples_per_epoch = int(sum(len(self._pools[k]) for k in range(len(SAMPLE_KINDS)) if w[k] > 0))
        if samples_per_epoch < 1:
            raise ValueError("samples_per_epoch must be >= 1")
        self.samples_per_epoch = samples_per_epoch
        self.quotas = _quotas(self.probs, samples_per_epoch)  # [K] items of each kind per epoch
        epoch_len = samples_per_epoch - (samples_per_epoch % world_size if drop_last else 0)
        self._epoch_len = epoch_len
        self.rank_len = len(range(rank, epoch_len, world_size))  # items of the rank stream per epoch
        if self.rank_len == 0:
            raise ValueError(f"an epoch of {samples_per_epoch} items leaves rank {rank} of {world_size} nothing")
        self.epoch, self.consumed = 0, 0
        self._cache: tuple[int, np.ndarray] | None = None

    # -- the epoch sequence

    def epoch_items(self, epoch: int) -> np.ndarray:
        """[samples_per_epoch] global sample indices of the whole epoch (all ranks), in order."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        labels = _rng(self.seed, epoch, 0, 0).permutation(np.repeat(np.arange(len(SAMPLE_KINDS)), self.quotas))
        items = np.empty(self.samples_per_epoch, dtype=np.int64)
        for k, q in enumerate(self.quotas):
            if q == 0:
                continue
            pool = self._pools[k]
            passes = math.ceil(q / len(pool))
            order = np.concatenate([_rng(self.seed, epoch, 1 + k, p).permutation(len(pool)) for p in range(passes)])
            items[labels == k] = pool[order[:q]]
        if self._frames is not None:
            items = self._bucket(items, epoch)
        self._cache = (epoch, items)
        return items

    def _bucket(self, items: np.ndarray, epoch: int) -> np.ndarray:
        """Within each window of `bucket_window` batches (of chunk_size per rank): sort by length, then put
        the batch-sized blocks in a seeded random order. The set of items per window is unchanged."""
        block = self.chunk_size * self.world_size  # one batch for every rank
        window = block * self.bucket_window
        out = items.copy()
        for w, start in enumerate(range(0, len(items), window)):
            part = items[start:start + window]
            part = part[np.argsort(self._frames[part], kind="stable")]
            n_blocks = len(part) // block
            if n_blocks > 1:
                order = _rng(self.seed, epoch, 1000 + w, 0).permutation(n_blocks)
                full = part[: n_blocks * block].reshape(n_blocks, block)[order].reshape(-1)
                part = np.concatenate([full, part[n_blocks * block:]])
            out[start:start + window] = part
        return out

    def rank_stream(self, epoch: int) -> np.ndarray:
        """[rank_len] global sample indices of this rank's share of the epoch, in order."""
        return self.epoch_items(epoch)[: self._epoch_len][self.rank :: self.world_size]

    def fetch(self, g: int) -> StoredSample:
        """Global sample index -> sample (random access: decodes one row group)."""
        s = int(np.searchsorted(self._starts, g, side="right")) - 1
        r, i = self._shards[s]
        return self.readers[r].get(i, int(g - self._starts[s]))

    def kind_sizes(self) -> dict[str, int]:
        return {kind: len(self._pools[k]) for k, kind in enumerate(SAMPLE_KINDS)}

    def __len__(self) -> int:
        return self.rank_len

    # -- iteration

    def __iter__(self) -> Iterator[StoredSample]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        track = info is None  # only the main-process copy's position is anyone's truth
        epoch, m = self.epoch, self.consumed
        r = 0  # items since the resume point: decides the worker, so a restarted DataLoader lines up
        while True:
            stream = self.rank_stream(epoch)
            while m < len(stream):
                if (r // self.chunk_size) % workers == worker:
                    sample = self.fetch(int(stream[m]))
                    sample.position = (epoch, m)
                    if track:
                        self._set_position(epoch, m + 1)
                    yield sample
                m += 1
                r += 1
            epoch, m = epoch + 1, 0
            if not track:  # persistent workers: the next iteration starts at the next epoch
                self.epoch, self.consumed = epoch, 0
            if not self.infinite:
                return

    # -- position

    def _set_position(self, epoch: int, consumed: int) -> None:
        epoch += consumed // self.rank_len  # a finished epoch is the start of the next one
        self.epoch, self.consumed = epoch, consumed % self.rank_len

    def set_epoch(self, epoch: int) -> None:
        """Start the next iteration at the beginning of `epoch` (like DistributedSampler.set_epoch)."""
        self._set_position(epoch, 0)

    def mark_consumed(self, consumed: Batch | Iterable[tuple[int, int] | None] | int) -> None:
        """Move the position past what the trainer received: a collated batch, sample positions, or a count."""
        if isinstance(consumed, int):
            self._set_position(self.epoch, self.consumed + consumed)
            return
        positions = consumed["positions"] if isinstance(consumed, dict) else consumed
        last = max((tuple(p) for p in positions if p is not None), default=None)
        if last is not None and last >= (self.epoch, self.consumed):
            self._set_position(int(last[0]), int(last[1]) + 1)

    def _fingerprint(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "samples_per_epoch": self.samples_per_epoch,
            "world_size": self.world_size,
            "drop_last": self.drop_last,
            "weights": {k: float(p) for k, p in zip(SAMPLE_KINDS, self.probs)},
            "kind_sizes": self.kind_sizes(),
        }

    def state_dict(self) -> dict[str, Any]:
        """Position + what it is relative to (checked on load)."""
        return {"epoch": self.epoch, "consumed": self.consumed, "rank": self.rank, **self._fingerprint()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume at a saved position. The rank may differ (positions agree across ranks when drop_last)."""
        mine = self._fingerprint()
        bad = []
        for key, value in mine.items():
            saved = state.get(key)
            if key == "weights":
                same = saved is not None and all(math.isclose(saved.get(k, 0.0), v) for k, v in value.items())
            else:
                same = saved == value
            if not same:
                bad.append(f"{key}: saved {saved!r}, now {value!r}")
        if bad:
            raise ValueError("mixture state does not match this dataset: " + "; ".join(bad))
        self._set_position(int(state["epoch"]), int(state["consumed"]))


# ----------------------------------------------------------------------------------------------- batch


class Batch(TypedDict):
    """A collated batch. A plain dict so DataLoader's pin_memory and device moves handle it."""

    codes: torch.Tensor  # [B, 17, T] int64, -1 in padding
    loss_mask: torch.Tensor  # [B, 17, T] bool, False in padding
    lengths: torch.Tensor  # [B] int64 valid frames
    offsets: torch.Tensor  # [B] int64 first frame taken from each sample (crop start)
    kinds: list[str]
    ids: list[str]
    images: list[ImageRef | None]
    image_bytes: list[bytes | None]
    positions: list[tuple[int, int] | None]
    meta: list[dict[str, Any]]


def crop_offset(sample: Sample, num_frames: int, max_frames: int, crop: CropMode, seed: int) -> int:
    """First frame of the crop. Random crops hash (seed, id, position): the same item crops the same way in
    any worker and after a resume, while a new epoch gives the same sample a new crop."""
    room = num_frames - max_frames
    if room <= 0 or crop == "start":
        return 0
    if crop != "random":
        raise ValueError(f"crop must be 'start' or 'random', got {crop!r}")
    key = f"{seed}|{sample.id}|{getattr(sample, 'position', None)}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") % (room + 1)


def collate(
    samples: Sequence[Sample],
    max_frames: int,
    *,
    crop: CropMode = "start",
    seed: int = 0,
    pad_to_max: bool = True,
    text_lead: int = 0,
) -> Batch:
    """Crop/pad samples to one batch of T frames: T = max_frames (pad_to_max) else min(max_frames, longest).
    text_lead > 0: spoken samples' text stream moves that many frames earlier first (`text_lead.lead_text`)."""
    if not samples:
        raise ValueError("collate of an empty list")
    if max_frames < 1:
        raise ValueError("max_frames must be >= 1")
    longest = max(s.num_frames for s in samples)
    t_out = max_frames if pad_to_max else min(max_frames, longest)
    b = len(samples)
    codes = torch.full((b, NUM_STREAMS, t_out), -1, dtype=torch.int64)
    mask = torch.zeros((b, NUM_STREAMS, t_out), dtype=torch.bool)
    lengths = torch.zeros(b, dtype=torch.int64)
    offsets = torch.zeros(b, dtype=torch.int64)
    for j, s in enumerate(samples):
        t = s.num_frames
        off = crop_offset(s, t, t_out, crop, seed)
        n = min(t - off, t_out)
        s_codes, s_mask = s.codes, s.loss_mask
        if text_lead and s.kind in AUDIO_KINDS:  # kinds with Moshi's audio
            s_codes, s_mask = lead_text(s_codes, s_mask, text_lead)
        codes[j, :, :n] = torch.from_numpy(np.asarray(s_codes[:, off : off + n], dtype=np.int64))
        mask[j, :, :n] = torch.from_numpy(np.asarray(s_mask[:, off : off + n], dtype=bool))
        lengths[j], offsets[j] = n, off
    return Batch(
        codes=codes,
        loss_mask=mask,
        lengths=lengths,
        offsets=offsets,
        kinds=[s.kind for s in samples],
        ids=[s.id for s in samples],
        images=[s.image for s in samples],
        image_bytes=[getattr(s, "image_bytes", None) for s in samples],
        positions=[getattr(s, "position", None) for s in samples],
        meta=[s.meta for s in samples],
    )


class MixtureLoader:
    """A DataLoader of collated batches over a `MixtureDataset` that keeps its position for checkpoints.

    Sets dataset.chunk_size = batch_size so the batch sequence is the same for any num_workers, and marks
    each batch consumed as it is handed out: `state_dict()` after step k resumes at batch k+1 exactly.
    """

    def __init__(
        self,
        dataset: MixtureDataset,
        batch_size: int,
        max_frames: int,
        *,
        num_workers: int = 0,
        crop: CropMode = "start",
        crop_seed: int = 0,
        pad_to_max: bool = True,
        text_lead: int = 0,
        pin_memory: bool = False,
        prefetch_factor: int | None = None,
    ) -> None:
        dataset.chunk_size = batch_size
        dataset._cache = None  # a bucketed epoch order depends on the batch size
        self.dataset = dataset
        self.batch_size = batch_size
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=num_workers,
            collate_fn=partial(collate, max_frames=max_frames, crop=crop, seed=crop_seed, pad_to_max=pad_to_max,
                               text_lead=text_lead),
            pin_memory=pin_memory,
            prefetch_factor=prefetch_factor,
            persistent_workers=False,  # workers must start from the main copy's position every time
        )

    def __iter__(self) -> Iterator[Batch]:
        for batch in self.loader:
            self.dataset.mark_consumed(batch)
            yield batch

    def __len__(self) -> int:
        """Batches left in the current epoch (finite datasets)."""
        return math.ceil((self.dataset.rank_len - self.dataset.consumed) / self.batch_size)

    def state_dict(self) -> dict[str, Any]:
        return self.dataset.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.dataset.load_state_dict(state)
