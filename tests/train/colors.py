"""A tiny image task for trainer tests: each image is one flat colour; the answer frames of every sample
(text token and Moshi's semantic audio code) say which colour. A model that cannot see the image can do
no better than guessing among the colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from moshivis.data.shards import ShardWriter
from moshivis.data.types import ImageRef, Sample

COLOURS = [(220, 30, 30), (30, 200, 40), (30, 60, 220), (240, 220, 20)]
ANSWER_FRAMES = (6, 7, 8, 9)
T = 12


def answer_token(colour: int) -> int:
    return 10 + colour


def make_colour_shards(root: Path, n: int = 64, seed: int = 0, audio_only: int = 0) -> Path:
    """Write `n` image samples (half image_speech, half speechless) + `audio_only` samples; returns the
    shard folder. Everything but the colour is predictable (fixed question, fixed audio codes), so the
    loss left after training is the part that needs the image."""
    rng = np.random.default_rng(seed)
    img_dir = root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    for c, rgb in enumerate(COLOURS):
        Image.new("RGB", (56, 56), rgb).save(img_dir / f"c{c}.png")
    out = root / "shards"
    with ShardWriter(out, samples_per_shard=32) as w:
        for i in range(n + audio_only):
            colour = int(rng.integers(len(COLOURS)))
            codes = np.full((17, T), 3, dtype=np.int64)
            codes[0, 1:4] = (40, 41, 42)  # a "question" that does not tell the colour
            codes[1:] = 5 + np.arange(16)[:, None] % 7
            for f in ANSWER_FRAMES:
                codes[0, f] = answer_token(colour)
                codes[1, f] = 20 + colour
            mask = np.zeros((17, T), dtype=bool)
            mask[:9] = True
            kind = "audio_only" if i >= n else ("image_speech" if i % 2 == 0 else "speechless")
            if kind == "speechless":
                codes[1:] = -1
                mask[1:] = False
            image = None if kind == "audio_only" else ImageRef(f"c{colour}", str(img_dir / f"c{colour}.png"))
            w.write(Sample(id=f"s{i:05d}", kind=kind, codes=codes, loss_mask=mask, image=image,
                           meta={"colour": colour}))
    return out
