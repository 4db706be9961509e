"""Helpers shared by the word aligners: where speech is in a clip, and filling in words with no timing.

A word with no timing of its own (the recogniser missed it, or its phonemes matched nothing) gets a share
of the gap between its timed neighbours, proportional to its length in characters: a word's duration
roughly follows its length, and the share keeps every start in transcript order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..data.types import WordTiming

Span = tuple[float, float]


def speech_bounds(audio: np.ndarray, sr: int, threshold_db: float = -35.0, hop_s: float = 0.01) -> Span:
    """(start, end) in seconds of the part of `audio` [S] louder than `threshold_db` below its loudest
    10 ms; (0, duration) when nothing is that loud."""
    hop = max(1, int(sr * hop_s))
    n = len(audio) // hop
    duration = len(audio) / sr
    if n == 0:
        return 0.0, duration
    rms = np.sqrt(np.mean(np.square(audio[: n * hop].reshape(n, hop).astype(np.float64)), axis=1) + 1e-20)
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > threshold_db)
    if loud.size == 0:
        return 0.0, duration
    return float(loud[0] * hop / sr), float(min(duration, (loud[-1] + 1) * hop / sr))


def spread(span: Span, weights: list[float]) -> list[Span]:
    """Split `span` into consecutive pieces proportional to `weights`."""
    lo, hi = span
    hi = max(hi, lo)
    total = float(sum(weights)) or 1.0
    edges = lo + (hi - lo) * np.concatenate([[0.0], np.cumsum(weights) / total])
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:])]


def none_runs(items: Sequence[object]) -> list[tuple[int, int]]:
    """[start, end) of every maximal run of None in `items` (runs are separated by known items, so
    filling one run never changes another's neighbours)."""
    runs, i = [], 0
    while i < len(items):
        if items[i] is None:
            j = i
            while j < len(items) and items[j] is None:
                j += 1
            runs.append((i, j))
            i = j
        else:
            i += 1
    return runs


def fill_missing(words: list[str], spans: list[Span | None], bounds: Span) -> list[WordTiming]:
    """One WordTiming per word: known spans kept (clamped to be ordered), each run of unknown ones spread
    over the gap between its neighbours (or `bounds` at the ends), by length in characters."""
    if len(words) != len(spans):
        raise ValueError(f"{len(words)} words but {len(spans)} spans")
    out: list[Span | None] = list(spans)
    for i, j in none_runs(out):
        lo = out[i - 1][1] if i > 0 else bounds[0]  # type: ignore[index]
        hi = out[j][0] if j < len(out) else bounds[1]  # type: ignore[index]
        out[i:j] = spread((lo, hi), [max(1, len(w)) for w in words[i:j]])
    timings: list[WordTiming] = []
    last = 0.0
    for word, span in zip(words, out):
        start = max(last, float(span[0]))  # type: ignore[index]
        end = max(start, float(span[1]))  # type: ignore[index]
        timings.append(WordTiming(word, start, end))
        last = start
    return timings
