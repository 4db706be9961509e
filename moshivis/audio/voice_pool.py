"""Which voice speaks each turn: Moshi always with one fixed voice, the user with one drawn from a pool.

Moshi is one character, so its voice never changes (the model learns to produce it). User voices vary so
that the model hears many speakers. The draw for a key (a dialogue id) is a hash of (seed, key), not a
running random state: the same dialogue gets the same voice whatever the order or sharding of the run.
A user voice never shares Moshi's speaker (same backend and base voice), whatever its speed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ..data.types import Speaker
from .tts import TTSVoice, get_backend, make_tts, parse_spec
from .tts_base import TTSError, VoiceOptions

DEFAULT_MOSHI_VOICE = "piper:joe"
DEFAULT_USER_VOICES: tuple[str, ...] = (
    "flite:slt", "flite:awb", "flite:rms", "flite:kal16",
    "espeak:en-us", "espeak:en-gb", "espeak:en-gb-scotland", "espeak:en-029", "espeak:en-us+f3",
    "espeak:en-gb-x-rp+m3",
)


def _identity(spec: str) -> tuple[str, str]:
    backend, voice = parse_spec(spec)
    return backend, VoiceOptions.parse(voice, backend).name


def voice_available(spec: str) -> bool:
    """Whether this machine can speak `spec` (engine installed, voice known)."""
    try:
        backend, voice = parse_spec(spec)
        get_backend(backend).resolve_voice(voice)
        return True
    except TTSError:
        return False


class VoicePool:
    def __init__(self, moshi: str = DEFAULT_MOSHI_VOICE, user: Sequence[str] = DEFAULT_USER_VOICES,
                 seed: int = 0, length_scale_jitter: float = 0.0, check_available: bool = True) -> None:
        """moshi: Moshi's voice spec. user: candidate user specs. length_scale_jitter j: each user draw also
        gets a length scale uniform in [1-j, 1+j] (unless its spec sets one). check_available: drop user
        voices this machine cannot speak (ValueError if none is left)."""
        parse_spec(moshi)
        self.moshi = moshi
        self.seed, self.length_scale_jitter = seed, length_scale_jitter
        moshi_id = _identity(moshi)
        self.dropped: list[str] = []
        self.user: list[str] = []
        for spec in user:
            if _identity(spec) == moshi_id or (check_available and not voice_available(spec)):
                self.dropped.append(spec)
            else:
                self.user.append(spec)
        if not self.user:
            raise ValueError(f"no usable user voice in {list(user)} (Moshi's own voice is excluded; "
                             "flite/espeak voices need `apt-get install flite espeak-ng`)")

    def _uniform(self, key: str, salt: str) -> float:
        """A number in [0, 1) fixed by (seed, key, salt)."""
        digest = hashlib.sha256(f"{self.seed}\x00{salt}\x00{key}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def user_voice(self, key: str | int) -> str:
        """The user's voice spec for `key` (e.g. a dialogue id): deterministic in (seed, key)."""
        key = str(key)
        spec = self.user[int(self._uniform(key, "voice") * len(self.user))]
        backend, voice = parse_spec(spec)
        opts = VoiceOptions.parse(voice, backend)
        if self.length_scale_jitter > 0 and opts.length_scale == 1.0:
            scale = 1 + self.length_scale_jitter * (2 * self._uniform(key, "speed") - 1)
            opts = VoiceOptions(opts.name, round(scale, 2), opts.pitch)
        return f"{backend}:{opts}"

    def voice_for(self, speaker: Speaker, key: str | int) -> str:
        """Moshi's fixed voice, or the user's voice for this key."""
        return self.moshi if speaker == "moshi" else self.user_voice(key)

    def tts_for(self, speaker: Speaker, key: str | int) -> TTSVoice:
        return make_tts(self.voice_for(speaker, key))
