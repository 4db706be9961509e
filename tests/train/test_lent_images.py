"""data.lend_images: image-free spoken samples borrow a batch neighbour's image (adapter training)."""

from __future__ import annotations

import pytest
import torch
from colors import make_colour_shards

from moshivis.data.types import ImageRef
from moshivis.train.lent_images import lend_images
from moshivis.train.trainer import Trainer
from test_trainer import SINGLE, config


def _batch() -> dict:
    kinds = ["image_speech", "audio_only", "text_only", "audio_only", "speechless"]
    images = [ImageRef("a", "a.png"), None, None, None, ImageRef("b", "b.png")]
    return {"kinds": kinds, "ids": [f"s{i}" for i in range(5)], "images": images,
            "image_bytes": [b"A", None, None, None, b"B"], "meta": [{"x": i} for i in range(5)]}


def test_audio_only_samples_borrow_images_and_are_marked_unrelated() -> None:
    b = _batch()
    out = lend_images(b, 1.0, seed=0, step=0)
    assert out["images"][1] == b["images"][0] and out["images"][3] == b["images"][4]  # lenders in turn
    assert out["image_bytes"][1] == b"A" and out["image_bytes"][3] == b"B"
    assert out["images"][2] is None  # text_only stays image-free
    assert out["meta"][1]["unrelated_spans"] == [(0, 1 << 30)] and out["meta"][1]["x"] == 1
    assert out["meta"][1]["lent_image_from"] == "s0"
    assert "unrelated_spans" not in out["meta"][0]
    assert b["images"][1] is None and "unrelated_spans" not in b["meta"][1]  # the batch itself is untouched


def test_off_without_lenders_or_at_zero_and_seeded() -> None:
    b = _batch()
    assert lend_images(b, 0.0, seed=0, step=0) is b
    no_lender = {**b, "images": [None] * 5, "image_bytes": [None] * 5}
    assert lend_images(no_lender, 1.0, seed=0, step=0) is no_lender
    many = {"kinds": ["image_speech"] + ["audio_only"] * 999, "ids": [f"i{k}" for k in range(1000)],
            "images": [ImageRef("a", "a.png")] + [None] * 999, "image_bytes": [None] * 1000, "meta": [{}] * 1000}
    lent = [r is not None for r in lend_images(many, 0.3, seed=1, step=2)["images"][1:]]
    assert 0.25 < sum(lent) / len(lent) < 0.35
    assert lent == [r is not None for r in lend_images(many, 0.3, seed=1, step=2)["images"][1:]]
    with pytest.raises(ValueError, match="lend-image probability"):
        lend_images(b, 2.0, seed=0, step=0)


def test_trainer_gives_audio_only_samples_an_image(tmp_path) -> None:
    shards = make_colour_shards(tmp_path, n=8, audio_only=8)
    cfg = config(tmp_path, shards, steps=2, **{"data.lend_images": 1.0, "data.audio_only": 1.0})
    trainer = Trainer(cfg, SINGLE)
    presents: list[tuple[list[str], torch.Tensor]] = []
    batch = trainer.images.batch

    def spy(refs):
        feats, present = batch(refs)
        presents.append(present)
        return feats, present

    trainer.images.batch = spy
    history = trainer.run(show_progress=False)
    assert len(history) == 2 and all(h.loss == h.loss for h in history)
    assert presents and all(bool(p.all()) for p in presents)  # every sample had an image
    assert history[-1].gate_unrelated is not None  # lent samples count as unrelated frames


def test_bad_value_is_named(tmp_path) -> None:
    shards = make_colour_shards(tmp_path, n=8)
    with pytest.raises(ValueError, match="data.lend_images"):
        Trainer(config(tmp_path, shards, **{"data.lend_images": 1.5}), SINGLE)
