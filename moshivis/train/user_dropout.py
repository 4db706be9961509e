"""Drop random frames of the user's audio from the transformer's inputs in spoken training samples.

Why (README, stop 22): a small GRU reading only the user's semantic codes of a yes/no question tells its
polarity ("is there NOT a circle?") on new dialogues 95.5% of the time, yet the tinyworld base, which reads the
same codes, got 66% on new dialogues and 82% on the ones it trained on: it recalled whole code sequences
instead of the cue. Turning a share of the user's frames to ZERO_TOKEN (embedded as zeros), redrawn every
step, makes an exact sequence useless to recall. The user's streams are never targets, so only inputs change.
Measured in stop 22: at 0.2 the listening probe's fresh polarity was the same as without it, within the noise
of 80 questions (75.0 vs 73.8), so it stays off by default.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..data.layout import USER_AUDIO
from ..data.shards import AUDIO_KINDS
from ..models.lm import ZERO_TOKEN
from .hidden_voice import hash64


def _generator(seed: int, step: int, sample_id: str) -> torch.Generator:
    """A generator seeded by (seed, step, sample): the same frames drop on a resume and on any rank."""
    return torch.Generator().manual_seed(hash64(f"user-dropout|{seed}|{step}|{sample_id}") & (2**63 - 1))


def drop_user_frames(codes: torch.Tensor, inputs: torch.Tensor | None, kinds: Sequence[str], ids: Sequence[str],
                     prob: float, seed: int, step: int) -> torch.Tensor | None:
    """codes [B, 17, T] (targets) and inputs [B, 17, T] or None (= codes) -> inputs with, in each spoken
    sample, every user stream set to ZERO_TOKEN on a random `prob` share of its frames (all user codebooks
    of a frame together). None when nothing is dropped and inputs was None."""
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"user frame dropout must be in [0, 1], got {prob}")
    rows = [j for j, k in enumerate(kinds) if k in AUDIO_KINDS]
    if prob == 0.0 or not rows:
        return inputs
    out = (codes if inputs is None else inputs).clone()
    T = codes.shape[-1]
    for j in rows:
        drop = torch.rand(T, generator=_generator(seed, step, ids[j])) < prob
        out[j, USER_AUDIO][:, drop.to(codes.device)] = ZERO_TOKEN
    return out
