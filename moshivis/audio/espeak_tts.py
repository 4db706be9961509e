"""eSpeak NG speech through its command-line binary (Debian package `espeak-ng`), 22050 Hz.

Voices: the English voices of `espeak-ng --voices=en` (en-us, en-gb, en-gb-scotland, en-029, ...), less
the MBROLA ones (they need separate `mbrola` voice packages), optionally with a variant from
`espeak-ng --voices=variant` ("en-us+f3", "en-gb-x-rp+m3"). length_scale sets the rate (175 words per
minute / length_scale) and "p<0-99>" the pitch. (`--voices=en` also lists a variant, `!v/Storm`: skipped.)
No word timings (None): align with `WhisperAligner`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..data.types import WordTiming
from .tts_base import TTSBackend, TTSError, VoiceOptions, read_engine_wav, require_binary, run_binary
from .words import split_words

DEFAULT_WPM = 175  # espeak-ng's default rate


class EspeakTTS(TTSBackend):
    name = "espeak"
    default_voice = "en-us"

    def __init__(self, binary: str = "espeak-ng", language: str = "en") -> None:
        self.binary, self.language = binary, language
        self._voices: list[str] | None = None
        self._variants: list[str] | None = None

    def _table(self, selector: str) -> list[tuple[str, str]]:
        """(language, file) rows of `espeak-ng --voices=<selector>`."""
        out = run_binary(self.name, "-", [require_binary(self.name, self.binary), f"--voices={selector}"])
        rows = []
        for line in out.splitlines()[1:]:  # first line is the header
            cols = line.split()
            if len(cols) >= 5:
                rows.append((cols[1], cols[4]))
        return rows

    def voices(self) -> list[str]:
        if self._voices is None:
            rows = self._table(self.language)
            self._voices = sorted({lang for lang, file in rows if not file.startswith(("mb/", "!v/"))})
        return list(self._voices)

    def variants(self) -> list[str]:
        """Names usable after "+" ("f3", "m3", "klatt", "whisper", ...)."""
        if self._variants is None:
            self._variants = sorted(file.split("/", 1)[1] for _, file in self._table("variant") if "/" in file)
        return list(self._variants)

    def resolve_voice(self, voice: str | None) -> VoiceOptions:
        opts = VoiceOptions.parse(voice or self.default_voice, self.name)
        base, _, variant = opts.name.partition("+")
        if base not in self.voices():
            raise TTSError(self.name, str(opts), f"unknown voice; available: {', '.join(self.voices())}")
        if variant and variant not in self.variants():
            raise TTSError(self.name, str(opts), f"unknown variant {variant!r}; e.g. f1-f5, m1-m8, klatt")
        return opts

    def synthesize(self, text: str, voice: str | None = None) -> tuple[np.ndarray, list[WordTiming] | None]:
        opts = self.resolve_voice(voice)
        if not split_words(text):
            raise TTSError(self.name, str(opts), f"nothing to say in {text!r}")
        with tempfile.TemporaryDirectory(prefix="espeak_") as tmp:
            text_file, wav = Path(tmp) / "in.txt", Path(tmp) / "out.wav"
            text_file.write_text(text, encoding="utf-8")
            args = [require_binary(self.name, self.binary), "-v", opts.name, "-s",
                    str(round(DEFAULT_WPM / opts.length_scale)), "-f", str(text_file), "-w", str(wav)]
            if opts.pitch is not None:
                args += ["-p", str(opts.pitch)]
            run_binary(self.name, str(opts), args)
            audio, sr = read_engine_wav(self.name, str(opts), wav, self.binary)
        return self._finish(audio, sr, str(opts)), None
