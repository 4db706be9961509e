"""Text-to-speech entry point: `make_tts("piper:joe:1.1")` -> a `TTSVoice` that speaks at 24 kHz.

Spec grammar: "<backend>:<voice string>", backend one of `BACKENDS` (piper, flite, espeak); the voice
string is described in `tts_base` ("joe", "slt:1.1", "en-gb+f3:0.9:p60"). A bare backend ("flite") means
its default voice. Backends are created once per process and shared, so a Piper model loads once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ..data.types import WordTiming
from .espeak_tts import EspeakTTS
from .flite_tts import FliteTTS
from .piper_tts import PiperTTS
from .tts_base import SAMPLE_RATE, TTSBackend, TTSError, VoiceOptions

__all__ = ["BACKENDS", "SAMPLE_RATE", "EspeakTTS", "FliteTTS", "PiperTTS", "TTSBackend", "TTSError", "TTSVoice",
           "VoiceOptions", "VoicePool", "get_backend", "make_tts", "parse_spec"]

BACKENDS: dict[str, type[TTSBackend]] = {"piper": PiperTTS, "flite": FliteTTS, "espeak": EspeakTTS}
_shared: dict[str, TTSBackend] = {}
_lock = threading.Lock()


def get_backend(name: str) -> TTSBackend:
    """The process-wide instance of backend `name`."""
    if name not in BACKENDS:
        raise TTSError(name, "-", f"unknown TTS backend; expected one of {', '.join(BACKENDS)}")
    with _lock:
        if name not in _shared:
            _shared[name] = BACKENDS[name]()
        return _shared[name]


def parse_spec(spec: str) -> tuple[str, str]:
    """"espeak:en-gb+f3:0.9" -> ("espeak", "en-gb+f3:0.9"); "flite" -> ("flite", "slt")."""
    backend, _, voice = spec.strip().partition(":")
    if backend not in BACKENDS:
        raise TTSError(backend, voice or "-", f"unknown TTS backend in spec {spec!r}; "
                       f"expected <{'|'.join(BACKENDS)}>:<voice>")
    voice = voice or BACKENDS[backend].default_voice
    VoiceOptions.parse(voice, backend)  # malformed options fail here, before any engine runs
    return backend, voice


@dataclass(frozen=True)
class TTSVoice:
    """One voice of one backend, ready to speak."""

    backend: TTSBackend
    voice: str

    @property
    def spec(self) -> str:
        return f"{self.backend.name}:{self.voice}"

    def synthesize(self, text: str) -> tuple[np.ndarray, list[WordTiming] | None]:
        """(audio float32 [S] at 24 kHz, word timings or None); TTSError on failure."""
        return self.backend.synthesize(text, self.voice)


def make_tts(spec: str) -> TTSVoice:
    """A voice from a spec such as "piper:joe", "flite:slt", "espeak:en-gb+f3" (see module docstring)."""
    backend, voice = parse_spec(spec)
    return TTSVoice(get_backend(backend), voice)


def __getattr__(name: str):
    """`VoicePool` is served from here too, imported on first use: voice_pool.py imports this module."""
    if name == "VoicePool":
        from .voice_pool import VoicePool

        return VoicePool
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
