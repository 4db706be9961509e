"""Hide Moshi's own recorded voice from the transformer's inputs in some spoken training samples.

Why: in teacher-forced training Moshi's text can be predicted from Moshi's recorded voice (a TTS voice
anticipates its next word), so the text loss is met without listening to the user. At inference Moshi's
voice is its own and holds no such hint (README, stop 19). With Moshi's 8 audio streams turned to
ZERO_TOKEN (embedded as zeros) in the inputs of a chosen sample, its text must come from the user's audio
and the dialogue so far. Targets are unchanged: Moshi's audio is still predicted and trained.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

from ..data.layout import MOSHI_AUDIO
from ..data.shards import AUDIO_KINDS
from ..models.lm import ZERO_TOKEN


def hash64(key: str) -> int:
    """A stable 64-bit hash of `key` (not Python's salted hash()): seeded draws that agree across processes."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


def chosen(seed: int, step: int, sample_id: str, prob: float) -> bool:
    """Seeded draw: the same (seed, step, sample) always decides the same way (resumes, any rank)."""
    if prob <= 0.0:
        return False
    return hash64(f"{seed}|{step}|{sample_id}") / 2**64 < prob


def hide_moshi_voice(codes: torch.Tensor, kinds: Sequence[str], ids: Sequence[str], prob: float, seed: int,
                     step: int) -> torch.Tensor | None:
    """codes [B, 17, T] -> inputs [B, 17, T] with Moshi's audio rows ZERO_TOKEN in the chosen spoken
    samples, or None when no sample of the batch is chosen (the model then reads codes as they are)."""
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"hide probability must be in [0, 1], got {prob}")
    rows = [j for j, (k, i) in enumerate(zip(kinds, ids)) if k in AUDIO_KINDS and chosen(seed, step, i, prob)]
    if not rows:
        return None
    inputs = codes.clone()
    inputs[rows, MOSHI_AUDIO] = ZERO_TOKEN
    return inputs
