"""The text-to-speech interface shared by all backends, and the voice-string grammar.

A voice string names a voice of one backend plus optional perturbations, separated by colons:
    "<name>[:<length_scale>][:p<pitch>]"     e.g. "joe", "joe:1.1", "en-gb+f3:0.9:p60", "slt:1.05"
length_scale is a duration factor (> 1 slower, < 1 faster), the same meaning for every backend; pitch
(0-99, espeak-ng only) sets the base pitch. A full spec adds the backend in front: "espeak:en-gb+f3:0.9".

Every backend returns mono float32 at 24 kHz (the codec's rate), peak-normalised to `PEAK`, so that
voices of different engines reach the codec at a similar level.
"""

from __future__ import annotations

import abc
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..data.types import WordTiming
from .resample import resample

SAMPLE_RATE = 24000
PEAK = 0.9  # below full scale: resampling overshoot must not clip


class TTSError(RuntimeError):
    """A synthesis that failed: names the backend, the voice and why, on one line."""

    def __init__(self, backend: str, voice: str, reason: str) -> None:
        super().__init__(f"{backend} voice {voice!r}: {reason}")
        self.backend, self.voice, self.reason = backend, voice, reason


@dataclass(frozen=True)
class VoiceOptions:
    """A parsed voice string (see the module docstring)."""

    name: str
    length_scale: float = 1.0
    pitch: int | None = None

    @classmethod
    def parse(cls, voice: str, backend: str = "tts") -> "VoiceOptions":
        name, *opts = voice.split(":")
        length_scale, pitch = 1.0, None
        for opt in opts:
            try:
                if opt[:1] in ("p", "P"):
                    pitch = int(opt[1:])
                    if not 0 <= pitch <= 99:
                        raise ValueError
                else:
                    length_scale = float(opt)
                    if not 0.25 <= length_scale <= 4.0:
                        raise ValueError
            except ValueError:
                raise TTSError(backend, voice, f"bad option {opt!r}: expected a length scale in [0.25, 4] "
                               "or p<pitch 0-99>") from None
        if not name:
            raise TTSError(backend, voice, "empty voice name")
        return cls(name, length_scale, pitch)

    def __str__(self) -> str:
        s = self.name
        if self.length_scale != 1.0:
            s += f":{self.length_scale:g}"
        if self.pitch is not None:
            s += f":p{self.pitch}"
        return s


class TTSBackend(abc.ABC):
    """One speech engine. `synthesize` returns (audio float32 [S] at 24 kHz, word timings or None)."""

    name: str = "tts"
    default_voice: str = ""

    @abc.abstractmethod
    def voices(self) -> list[str]:
        """Base voice names this backend can speak now (options such as ":1.1" may be added to any)."""

    @abc.abstractmethod
    def synthesize(self, text: str, voice: str | None = None) -> tuple[np.ndarray, list[WordTiming] | None]:
        """Speak `text` (in `voice`, default `default_voice`). Word timings are in seconds from the start
        of the returned audio, one per `split_words(text)` word, or None when the engine cannot tell."""

    def resolve_voice(self, voice: str | None) -> VoiceOptions:
        """The parsed voice string, or a TTSError if this backend cannot speak it here."""
        opts = VoiceOptions.parse(voice or self.default_voice, self.name)
        known = self.voices()
        if opts.name not in known and not Path(opts.name).is_file():
            raise TTSError(self.name, str(opts), f"unknown voice; available: {', '.join(known)}")
        return opts

    def _finish(self, audio: np.ndarray, sr: int, voice: str) -> np.ndarray:
        """float32 [S] at 24 kHz, peak `PEAK`; TTSError if the engine produced nothing audible."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if audio.size == 0 or not np.all(np.isfinite(audio)):
            raise TTSError(self.name, voice, "engine returned empty or non-finite audio")
        audio = resample(audio, sr, SAMPLE_RATE)
        peak = float(np.abs(audio).max())
        if peak < 1e-4:
            raise TTSError(self.name, voice, "engine returned silence")
        return (audio * (PEAK / peak)).astype(np.float32)


def require_binary(backend: str, binary: str) -> str:
    """Full path of `binary`, or a TTSError saying which Debian package provides it."""
    found = shutil.which(binary)
    if found is None:
        raise TTSError(backend, "-", f"`{binary}` not found on PATH (apt-get install {binary})")
    return found


def run_binary(backend: str, voice: str, args: list[str], timeout: float = 60.0) -> str:
    """Run an engine binary; its stdout, or a TTSError with the exit code and last line of stderr."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise TTSError(backend, voice, f"{Path(args[0]).name} failed to run: {e}") from None
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no stderr"])[-1]
        raise TTSError(backend, voice, f"{Path(args[0]).name} exited {done.returncode}: {tail}")
    return done.stdout


def read_engine_wav(backend: str, voice: str, path: Path, engine: str) -> tuple[np.ndarray, int]:
    """The mono float32 audio and rate of the WAV the binary `engine` wrote, or a TTSError."""
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise TTSError(backend, voice, f"{engine} wrote no readable WAV: {e}") from None
    return audio.mean(axis=1), sr
