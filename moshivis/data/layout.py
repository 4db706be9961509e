"""Lay a dialogue out on Moshi's 17 token streams.

Full duplex (image-speech and audio-only samples): the user's speech and Moshi's speech are two separate
tracks on one timeline, each encoded by the codec (silence where that speaker is quiet, exactly what the
codec makes of silence); Moshi's text stream holds its words at the frame where each word starts
(inner monologue), padding (3) elsewhere and end-of-padding (0) on the frame before a word.
Speechless samples carry the dialogue in the text stream only.

Loss masks: text + Moshi's 8 codebooks are targets in spoken samples; only Moshi's text turns in
speechless ones; the user's streams are inputs, never targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tokenizer import TEXT_EPAD, TEXT_PAD, TextTokenizer
from .types import WordTiming

FRAME_RATE = 12.5  # Moshi / Mimi frames per second
NUM_STREAMS = 17
MOSHI_AUDIO = slice(1, 9)
USER_AUDIO = slice(9, 17)


@dataclass
class PlacedWord:
    word: str
    frame: int  # where its first token went
    target_frame: int  # where the word starts in the audio


def place_words(words: list[WordTiming], tokenizer: TextTokenizer, num_frames: int, offset_s: float = 0.0,
                text: np.ndarray | None = None) -> tuple[np.ndarray, list[PlacedWord]]:
    """Put each word's tokens on consecutive frames from the frame its audio starts.

    words: timings relative to `offset_s` (seconds on the sample's timeline). A word whose frames are
    still taken by the previous word's tokens starts on the next free frame (its displacement is returned
    so callers can measure it). Returns the text stream [num_frames] (PAD elsewhere, EPAD before words)
    and where each word went. Tokens running past the end are dropped.
    """
    stream = np.full(num_frames, TEXT_PAD, dtype=np.int64) if text is None else text
    placed: list[PlacedWord] = []
    next_free = 0
    for w in words:
        target = int(np.floor((offset_s + w.start) * FRAME_RATE + 1e-6))
        frame = max(target, next_free)
        tokens = tokenizer.encode_word(w.word)
        if not tokens or frame >= num_frames:
            continue
        if frame > 0 and stream[frame - 1] == TEXT_PAD:
            stream[frame - 1] = TEXT_EPAD
        for j, tok in enumerate(tokens):
            if frame + j < num_frames:
                stream[frame + j] = tok
        next_free = frame + len(tokens)
        placed.append(PlacedWord(w.word, frame, target))
    return stream, placed


def seconds_to_frames(seconds: float) -> int:
    return int(np.ceil(seconds * FRAME_RATE - 1e-9))


def spoken_layout(text: np.ndarray, moshi_codes: np.ndarray, user_codes: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Stack a spoken sample. text [T]; moshi_codes, user_codes [8, T] -> codes [17, T], loss_mask [17, T]."""
    T = text.shape[0]
    if moshi_codes.shape != (8, T) or user_codes.shape != (8, T):
        raise ValueError(f"codes must be [8, {T}], got moshi {moshi_codes.shape} user {user_codes.shape}")
    codes = np.concatenate([text[None], moshi_codes, user_codes], axis=0).astype(np.int64)
    mask = np.zeros((NUM_STREAMS, T), dtype=bool)
    mask[0] = True
    mask[MOSHI_AUDIO] = True
    return codes, mask


def speechless_layout(turns: list[tuple[str, str]], tokenizer: TextTokenizer, gap_frames: int = 2,
                      lead_frames: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The dialogue in the text stream only: each turn's tokens, one per frame, `gap_frames` of padding
    between turns (EPAD on the last). Audio streams are -1 (no audio at all, embedded as zeros).
    turns: (speaker, text) with speaker "user" or "moshi". Loss only on Moshi's turns (and the padding
    that follows them, so the model learns where its turn ends)."""
    pieces: list[np.ndarray] = []
    mask_pieces: list[np.ndarray] = []
    pieces.append(np.full(lead_frames, TEXT_PAD))
    mask_pieces.append(np.zeros(lead_frames, dtype=bool))
    for speaker, text in turns:
        toks = np.array(tokenizer.encode(text), dtype=np.int64)
        gap = np.full(gap_frames, TEXT_PAD)
        if gap_frames:
            gap[-1] = TEXT_EPAD
        is_moshi = speaker == "moshi"
        pieces += [toks, gap]
        mask_pieces += [np.full(len(toks), is_moshi), np.full(gap_frames, is_moshi)]
    text_stream = np.concatenate(pieces).astype(np.int64)
    T = text_stream.shape[0]
    codes = np.full((NUM_STREAMS, T), -1, dtype=np.int64)
    codes[0] = text_stream
    mask = np.zeros((NUM_STREAMS, T), dtype=bool)
    mask[0] = np.concatenate(mask_pieces)
    return codes, mask
