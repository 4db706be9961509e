"""CMU Flite speech through its command-line binary (Debian package `flite`).

Voices are what `flite -lv` lists (kal and kal16 diphone, slt/awb/rms unit selection; kal is 8 kHz, the
others 16 kHz), less `awb_time`, a limited-domain voice that can only say clock times. Flite silently
falls back to its default voice for an unknown name, so names are checked against that list first.
length_scale maps to Flite's `duration_stretch`. No word timings (None): align with `WhisperAligner`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..data.types import WordTiming
from .tts_base import TTSBackend, TTSError, read_engine_wav, require_binary, run_binary
from .words import split_words

LIMITED_DOMAIN = {"awb_time"}


class FliteTTS(TTSBackend):
    name = "flite"
    default_voice = "slt"

    def __init__(self, binary: str = "flite") -> None:
        self.binary = binary
        self._voices: list[str] | None = None

    def voices(self) -> list[str]:
        if self._voices is None:
            out = run_binary(self.name, "-", [require_binary(self.name, self.binary), "-lv"])
            # "Voices available: kal awb_time kal16 awb rms slt "
            names = out.split(":", 1)[-1].split()
            self._voices = sorted(n for n in names if n not in LIMITED_DOMAIN)
        return list(self._voices)

    def synthesize(self, text: str, voice: str | None = None) -> tuple[np.ndarray, list[WordTiming] | None]:
        opts = self.resolve_voice(voice)
        if opts.pitch is not None:
            raise TTSError(self.name, str(opts), "pitch is not supported by flite voices")
        if not split_words(text):
            raise TTSError(self.name, str(opts), f"nothing to say in {text!r}")
        with tempfile.TemporaryDirectory(prefix="flite_") as tmp:
            text_file, wav = Path(tmp) / "in.txt", Path(tmp) / "out.wav"
            text_file.write_text(text, encoding="utf-8")  # a file, not -t: text may start with "-"
            args = [require_binary(self.name, self.binary), "-voice", opts.name, "-f", str(text_file),
                    "-o", str(wav)]
            if opts.length_scale != 1.0:
                args += ["--setf", f"duration_stretch={opts.length_scale:g}"]
            run_binary(self.name, str(opts), args)
            audio, sr = read_engine_wav(self.name, str(opts), wav, self.binary)
        return self._finish(audio, sr, str(opts)), None
