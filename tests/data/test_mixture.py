"""Training mixture: proportions, determinism, rank/worker split, exact resume, collate."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from moshivis.data import mixture as mixture_mod
from moshivis.data.mixture import MixtureDataset, MixtureLoader, collate, crop_offset
from moshivis.data.shards import ShardWriter
from moshivis.data.types import ImageRef, Sample

SIZES = {"image_speech": 300, "speechless": 600, "audio_only": 100, "text_only": 0}
PAPER = {"image_speech": 0.25, "speechless": 0.75, "audio_only": 0.1}  # p_audio 0.25 + audio-only


def make(kind: str, i: int, t: int) -> Sample:
    rng = np.random.default_rng(i)
    codes = rng.integers(0, 2048, (17, t))
    mask = np.zeros((17, t), dtype=bool)
    mask[:9] = rng.random((9, t)) < 0.5
    image = None if kind == "audio_only" else ImageRef(f"img-{kind}-{i}", f"{i}.jpg")
    return Sample(f"{kind}-{i}", kind, codes, mask, image, {"i": i})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two shard folders (the mixture reads several): speech in one, the rest in the other."""
    root = tmp_path_factory.mktemp("mix")
    a, b = root / "speech", root / "other"
    with ShardWriter(a, samples_per_shard=64, row_group_size=16) as w:
        for i in range(SIZES["image_speech"]):
            w.write(make("image_speech", i, 4 + i % 9))
    with ShardWriter(b, samples_per_shard=64, row_group_size=16) as w:
        for i in range(SIZES["audio_only"] + SIZES["speechless"]):
            kind = "audio_only" if i % 7 == 0 and i // 7 < SIZES["audio_only"] else "speechless"
            w.write(make(kind, i, 4 + i % 9))
    return [a, b]


def test_fixture_sizes(data: list[Path]) -> None:
    assert MixtureDataset(data, PAPER).kind_sizes() == SIZES


def test_proportions_within_two_points(data: list[Path]) -> None:
    total = sum(PAPER.values())
    for spe in (2000, 5000):  # a whole epoch (exact quotas) and a 2,000-item window of a bigger one
        ds = MixtureDataset(data, PAPER, seed=3, samples_per_epoch=spe)
        kinds = Counter(s.kind for _, s in zip(range(2000), ds))
        for kind, w in PAPER.items():
            assert abs(kinds[kind] / 2000 - w / total) < 0.02, (spe, kind, kinds)
    zero = MixtureDataset(data, {"image_speech": 0.25, "speechless": 0.75}, samples_per_epoch=1000)
    assert {s.kind for s in zero} == {"image_speech", "speechless"}


def test_weight_errors(data: list[Path]) -> None:
    with pytest.raises(ValueError, match="'audio_only'.*no 'audio_only' samples"):
        MixtureDataset(data[0], {"image_speech": 1.0, "audio_only": 0.1})
    with pytest.raises(ValueError, match="unknown kinds"):
        MixtureDataset(data, {"speech": 1.0})
    with pytest.raises(ValueError, match="not all 0"):
        MixtureDataset(data, {"image_speech": 0.0})
    MixtureDataset(data[0], {"image_speech": 1.0, "audio_only": 0.0})  # weight 0: fine without samples


def test_within_kind_without_replacement(data: list[Path]) -> None:
    ds = MixtureDataset(data, PAPER, seed=1, samples_per_epoch=2000)  # ~455 image_speech > 300 in the pool
    ids = [s.id for s in ds if s.kind == "image_speech"]
    assert len(ids) == ds.quotas[0] > 300
    assert sorted(ids[:300]) == sorted(f"image_speech-{i}" for i in range(300))  # one full pass first
    assert len(set(ids[300:])) == len(ids) - 300  # then a new pass, again without repeats


def test_seeded_and_per_epoch(data: list[Path]) -> None:
    def ids(seed: int, epoch: int) -> list[int]:
        return MixtureDataset(data, PAPER, seed=seed).epoch_items(epoch).tolist()

    assert ids(0, 0) == ids(0, 0)
    assert ids(0, 0) != ids(1, 0) and ids(0, 0) != ids(0, 1)
    ds = MixtureDataset(data, PAPER, seed=0, samples_per_epoch=50)
    first = [s.id for s in ds]
    assert ds.state_dict()["epoch"] == 1 and ds.state_dict()["consumed"] == 0  # a finished epoch moves on
    second = [s.id for s in ds]
    assert first != second and len(first) == len(second) == 50
    ds.set_epoch(0)
    assert [s.id for s in ds] == first


@pytest.mark.parametrize("chunk_size", [1, 4])
def test_ranks_and_workers_partition_the_epoch(
    data: list[Path], monkeypatch: pytest.MonkeyPatch, chunk_size: int
) -> None:
    world, workers, spe = 2, 2, 999  # odd: ranks get 500/499 items, all of them still seen once
    epoch = MixtureDataset(data, PAPER, seed=5, samples_per_epoch=spe).epoch_items(0)
    seen: dict[int, tuple[int, int]] = {}
    for rank in range(world):
        for worker in range(workers):
            info = SimpleNamespace(num_workers=workers, id=worker)
            monkeypatch.setattr(mixture_mod, "get_worker_info", lambda info=info: info)
            ds = MixtureDataset(data, PAPER, seed=5, samples_per_epoch=spe, rank=rank, world_size=world,
                                chunk_size=chunk_size)
            for s in ds:
                e, m = s.position
                i = m * world + rank  # global position in the epoch
                assert e == 0 and i not in seen, "duplicate"
                assert ds.fetch(int(epoch[i])).id == s.id
                if chunk_size == 1:
                    assert i % (world * workers) == rank + world * worker
                seen[i] = (rank, worker)
    assert sorted(seen) == list(range(spe))
    assert len(set(seen.values())) == 4


def test_real_dataloader_workers_give_the_same_batches(data: list[Path]) -> None:
    def batches(num_workers: int, rank: int) -> list[list[str]]:
        ds = MixtureDataset(data, PAPER, seed=2, samples_per_epoch=203, rank=rank, world_size=2)
        return [b["ids"] for b in MixtureLoader(ds, batch_size=8, max_frames=6, num_workers=num_workers)]

    r0, r1 = batches(0, 0), batches(2, 1)
    assert batches(2, 0) == r0 and batches(0, 1) == r1  # order does not depend on num_workers
    flat0, flat1 = sum(r0, []), sum(r1, [])
    assert len(flat0) == 102 and len(flat1) == 101
    ds = MixtureDataset(data, PAPER, seed=2, samples_per_epoch=203)
    assert Counter(flat0 + flat1) == Counter(ds.fetch(int(g)).id for g in ds.epoch_items(0))


def test_state_dict_resume_is_exact(data: list[Path]) -> None:
    kw = dict(seed=7, samples_per_epoch=120, rank=1, world_size=2, infinite=True)
    ds = MixtureDataset(data, PAPER, **kw)
    it = iter(ds)
    head = [next(it).id for _ in range(37)]
    state = ds.state_dict()
    assert (state["epoch"], state["consumed"]) == (0, 37)
    rest = [next(it).id for _ in range(100)]  # runs into epoch 1
    again = MixtureDataset(data, PAPER, **kw)
    again.load_state_dict(state)
    it2 = iter(again)
    assert [next(it2).id for _ in range(100)] == rest
    fresh = iter(MixtureDataset(data, PAPER, **kw))
    assert [next(fresh).id for _ in range(137)] == head + rest
    with pytest.raises(ValueError, match="seed"):
        MixtureDataset(data, PAPER, **{**kw, "seed": 8}).load_state_dict(state)


def test_loader_resume_with_workers(data: list[Path]) -> None:
    def loader() -> MixtureLoader:
        ds = MixtureDataset(data, PAPER, seed=4, samples_per_epoch=150)
        return MixtureLoader(ds, batch_size=10, max_frames=8, num_workers=2, crop="random")

    full = [(b["ids"], b["codes"]) for b in loader()]
    ld = loader()
    got = []
    for b in ld:
        got.append(b["ids"])
        if len(got) == 6:
            break
    state = ld.state_dict()
    assert (state["epoch"], state["consumed"]) == (0, 60)
    resumed = loader()
    resumed.load_state_dict(state)
    assert len(resumed) == 9
    rest = [(b["ids"], b["codes"]) for b in resumed]
    assert got == [ids for ids, _ in full[:6]]
    assert [ids for ids, _ in rest] == [ids for ids, _ in full[6:]]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(rest, full[6:]))  # same random crops too
    assert resumed.state_dict()["epoch"] == 1 and resumed.state_dict()["consumed"] == 0


def test_collate_shapes_padding_and_crops() -> None:
    samples = [make("image_speech", 0, 5), make("audio_only", 1, 12), make("speechless", 2, 8)]
    b = collate(samples, max_frames=8)
    assert b["codes"].shape == (3, 17, 8) and b["codes"].dtype == torch.int64
    assert b["loss_mask"].shape == (3, 17, 8) and b["loss_mask"].dtype == torch.bool
    assert b["lengths"].tolist() == [5, 8, 8] and b["offsets"].tolist() == [0, 0, 0]
    assert (b["codes"][0, :, 5:] == -1).all() and not b["loss_mask"][0, :, 5:].any()
    assert torch.equal(b["codes"][1], torch.from_numpy(samples[1].codes[:, :8]))
    assert torch.equal(b["loss_mask"][0, :, :5], torch.from_numpy(samples[0].loss_mask))
    assert b["kinds"] == ["image_speech", "audio_only", "speechless"]
    assert b["ids"] == [s.id for s in samples] and b["images"][1] is None
    assert b["images"][0] == ImageRef("img-image_speech-0", "0.jpg")

    r = collate(samples, max_frames=8, crop="random", seed=1)
    off = int(r["offsets"][1])
    assert 0 <= off <= 4 and r["offsets"][0] == 0 and r["offsets"][2] == 0
    assert torch.equal(r["codes"][1], torch.from_numpy(samples[1].codes[:, off : off + 8]))
    assert torch.equal(collate(samples, 8, crop="random", seed=1)["codes"], r["codes"])  # deterministic
    offsets = {crop_offset(samples[1], 12, 8, "random", seed) for seed in range(40)}
    assert offsets == {0, 1, 2, 3, 4}  # every start is reachable

    short = collate(samples[:1], max_frames=8, pad_to_max=False)
    assert short["codes"].shape == (1, 17, 5)


def test_bucketing_groups_similar_lengths_and_keeps_the_epoch(data: list[Path]) -> None:
    """bucket_window: each window holds the same items as without it, batches pad far less, the order is
    seeded (same twice), and a resumed iteration continues it exactly."""
    plain = MixtureDataset(data, PAPER, seed=1, chunk_size=8)
    bucketed = MixtureDataset(data, PAPER, seed=1, chunk_size=8, bucket_window=10)
    a, b = plain.epoch_items(0), bucketed.epoch_items(0)
    for start in range(0, len(a), 80):
        assert sorted(a[start:start + 80]) == sorted(b[start:start + 80])
    assert np.array_equal(b, MixtureDataset(data, PAPER, seed=1, chunk_size=8, bucket_window=10).epoch_items(0))
    frames = bucketed._frames

    def padding(items: np.ndarray) -> int:
        batches = items[: len(items) // 8 * 8].reshape(-1, 8)
        return int(sum((frames[x].max() - frames[x]).sum() for x in batches))
    assert padding(b) < 0.5 * padding(a)
    with pytest.raises(ValueError, match="bucket_window"):
        MixtureDataset(data, PAPER, bucket_window=-1)
