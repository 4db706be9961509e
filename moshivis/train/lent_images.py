"""Lend image-free spoken dialogues an image from their batch (adapter training).

Why (README, stop 22): at inference a user may ask about anything while an image is loaded. Audio-only
dialogues train with no image, so the adapters never see the case and nothing teaches them to leave the
base's answer alone: with an image the tinyworld model answered image-unrelated spoken questions 8 points
worse than its base. A lent image keeps the dialogue's own targets (the base's answer), so the loss pulls the
adapters toward adding nothing there. The whole dialogue is marked unrelated for the gate statistics.
"""

from __future__ import annotations

from typing import Any

from .hidden_voice import chosen

BORROWERS = ("audio_only",)  # spoken, no image; text_only samples stay as they are
WHOLE = 1 << 30  # an unrelated span covering any sample


def lend_images(batch: dict[str, Any], prob: float, seed: int, step: int) -> dict[str, Any]:
    """A copy of a collated batch in which each chosen image-free spoken sample carries the image of another
    sample of the batch (seeded by seed, step, id; lenders taken in turn) and meta `unrelated_spans`
    covering it. The batch itself is not changed; with no lender or prob 0 it is returned as is."""
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"lend-image probability must be in [0, 1], got {prob}")
    lenders = [j for j, ref in enumerate(batch["images"]) if ref is not None]
    borrowers = [j for j, (kind, ref, sid) in enumerate(zip(batch["kinds"], batch["images"], batch["ids"]))
                 if ref is None and kind in BORROWERS and chosen(seed, step, f"lend|{sid}", prob)]
    if not lenders or not borrowers:
        return batch
    images, image_bytes, meta = list(batch["images"]), list(batch["image_bytes"]), list(batch["meta"])
    for n, j in enumerate(borrowers):
        k = lenders[n % len(lenders)]
        images[j], image_bytes[j] = images[k], image_bytes[k]
        meta[j] = {**(meta[j] or {}), "unrelated_spans": [(0, WHOLE)], "lent_image_from": batch["ids"][k]}
    return {**batch, "images": images, "image_bytes": image_bytes, "meta": meta}
