"""Word timings from a TTS engine's phoneme timings (exact, for the audio the engine produced).

The engine phonemises a whole sentence, which may merge words ("in the" -> "ɪnðə") or change them in
context, so sentence phonemes cannot simply be cut at spaces. Each transcript word is phonemised on its
own; the concatenation is matched to the sentence's phonemes with difflib, and a word starts where its
first matched phoneme starts (earlier stress marks of the same phoneme word included) and ends where its
last one ends. Words with nothing matched take the unmatched sounds between their neighbours, or else
share the gap around them (`timing.fill_missing`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher

from ..data.types import WordTiming
from .timing import Span, fill_missing, none_runs, spread


@dataclass
class TimedPhoneme:
    """One phoneme token of the synthesised audio, in seconds from its start."""

    phoneme: str
    start: float
    end: float


def is_segment(phoneme: str) -> bool:
    """A sound (an IPA letter), not a stress/length mark (modifier letters), space or punctuation."""
    return bool(phoneme) and all(unicodedata.category(ch) in ("Ll", "Lu", "Lo") for ch in phoneme)


def word_timings_from_phonemes(words: list[str], word_phonemes: list[list[str]],
                               timeline: list[TimedPhoneme]) -> list[WordTiming]:
    """words: transcript words; word_phonemes[i]: word i phonemised alone; timeline: the sentence tokens
    with their times (spaces, punctuation and marks included). One WordTiming per word."""
    if len(words) != len(word_phonemes):
        raise ValueError(f"{len(words)} words but {len(word_phonemes)} phoneme lists")
    seg_idx = [k for k, p in enumerate(timeline) if is_segment(p.phoneme)]  # timeline index of each segment
    spoken = [timeline[k].phoneme for k in seg_idx]
    owner: list[int] = []  # word of each segment of the per-word concatenation
    alone: list[str] = []
    for w, phonemes in enumerate(word_phonemes):
        for p in phonemes:
            if is_segment(p):
                alone.append(p)
                owner.append(w)

    first: dict[int, int] = {}  # word -> first/last timeline index of its matched segments
    last: dict[int, int] = {}
    matcher = SequenceMatcher(None, alone, spoken, autojunk=False)
    for a, b, size in matcher.get_matching_blocks():
        for off in range(size):
            w, k = owner[a + off], seg_idx[b + off]
            first.setdefault(w, k)
            last[w] = k

    spans: list[Span | None] = []
    for w in range(len(words)):
        if w not in first:
            spans.append(None)
            continue
        k0, k1 = first[w], last[w]
        while k0 > 0 and _is_mark(timeline[k0 - 1].phoneme):  # a stress mark before the first sound
            k0 -= 1
        while k1 + 1 < len(timeline) and _is_mark(timeline[k1 + 1].phoneme):  # length marks after the last
            k1 += 1
        spans.append((timeline[k0].start, timeline[k1].end))
    _claim_unmatched_sounds(words, spans, first, last, seg_idx, timeline)
    total = timeline[-1].end if timeline else 0.0
    return fill_missing(words, spans, (0.0, total))


def _claim_unmatched_sounds(words: list[str], spans: list[Span | None], first: dict[int, int],
                            last: dict[int, int], seg_idx: list[int], timeline: list[TimedPhoneme]) -> None:
    """A run of unmatched words takes the sounds between its matched neighbours, when there are any:
    "a" alone is "eɪ" but "ɐ" in a sentence, and the "ɐ" is where it was said (the pause before it is
    not). `spans` is updated in place; runs with no sound between their neighbours stay None."""
    for w, run_end in none_runs(spans):
        lo = last[w - 1] if w > 0 else -1
        hi = first[run_end] if run_end < len(words) else len(timeline)
        inside = [k for k in seg_idx if lo < k < hi]
        if inside:
            span = (timeline[inside[0]].start, timeline[inside[-1]].end)
            spans[w:run_end] = spread(span, [max(1, len(x)) for x in words[w:run_end]])


def _is_mark(phoneme: str) -> bool:
    return bool(phoneme) and all(unicodedata.category(ch) == "Lm" for ch in phoneme)
