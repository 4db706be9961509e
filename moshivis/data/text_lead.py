"""Moshi's text stream moved N frames earlier in spoken samples ("text leads audio").

Why: spoken samples lay a word's token at the frame where its audio starts. A TTS voice already shapes
the frames before a word for the word to come (coarticulation), so in teacher-forced training Moshi's text
can read its next word off Moshi's own recorded voice instead of inferring it from the user's question;
at inference its voice is its own and carries no such hint (README, stop 19: echo words 71% right with
Moshi's audio in view, 27% with it hidden). Moving the text N frames ahead of the audio takes those
frames out of view. Applied when samples are loaded, so shards stay as synthesised.
"""

from __future__ import annotations

import numpy as np

from .tokenizer import TEXT_PAD


def lead_text(codes: np.ndarray, loss_mask: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """codes [17, T], loss_mask [17, T] -> copies with row 0 (Moshi's text) and its mask moved `frames`
    earlier. The first `frames` text tokens drop off the front (spoken samples open with padding); the
    freed end is padding whose mask repeats the last frame's. Audio rows are untouched."""
    if frames < 0:
        raise ValueError(f"text lead must be >= 0 frames, got {frames}")
    out_codes, out_mask = np.array(codes, copy=True), np.array(loss_mask, copy=True)
    T = out_codes.shape[1]
    if frames == 0 or T == 0:
        return out_codes, out_mask
    n = min(frames, T)
    # Read from the inputs, which stay as they are; only row 0 of the copies changes.
    out_codes[0, :T - n], out_codes[0, T - n:] = codes[0, n:], TEXT_PAD
    out_mask[0, :T - n], out_mask[0, T - n:] = loss_mask[0, n:], loss_mask[0, -1]
    return out_codes, out_mask
