"""The voices the tiny codec is trained on, the family held out of training, and cheap perturbations.

Training draws, per utterance, a voice spec (see `moshivis.audio.tts`) with a random speaking rate and,
for eSpeak, a random pitch; then, for a share of utterances, a resampling factor a (the waveform is
resampled by a and played at the nominal rate: pitch, formants and tempo all scale by a, a crude
vocal-tract-length perturbation that costs one resampling).

Held out entirely: the flite "slt" voice (a unit-selection recording of a real female speaker; no other
voice of the set is close to it), for the unseen-voice evaluation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from ..resample import resample
from ..tts import SAMPLE_RATE

HELD_OUT_FAMILY = "flite:slt"
FLITE_VOICES = ("kal", "kal16", "awb", "rms")  # all flite voices but the held-out slt
ESPEAK_BASES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan",
                "en-gb-x-gbcwmd", "en-us-nyc")
ESPEAK_VARIANTS = ("", "f1", "f2", "f3", "f4", "f5", "m1", "m2", "m3", "m4", "m5", "m6", "m7",
                   "klatt", "Andy", "steph", "quincy", "ed", "linda", "iven", "Michael", "max")
FAMILY_WEIGHTS = {"piper": 0.3, "flite": 0.25, "espeak": 0.45}  # piper joe is Moshi's own voice

# Evaluation voices at nominal settings (all families seen in training, plus the held-out one).
EVAL_TRAIN_VOICES = ("piper:joe", "flite:kal16", "flite:awb", "flite:rms", "flite:kal",
                     "espeak:en-us", "espeak:en-gb+f3", "espeak:en-gb-scotland+m3", "espeak:en-029+f2")
EVAL_HELD_OUT_VOICES = ("flite:slt",)


@dataclass(frozen=True)
class VoiceDraw:
    spec: str  # a `make_tts` spec
    resample_factor: float = 1.0  # 1: none

    def __str__(self) -> str:
        return self.spec if self.resample_factor == 1.0 else f"{self.spec}@x{self.resample_factor:.3f}"


def family(spec: str) -> str:
    """"espeak:en-gb+f3:0.9:p40" -> "espeak:en-gb+f3": backend and base voice, options dropped."""
    backend, _, voice = spec.partition(":")
    return f"{backend}:{voice.split(':')[0]}"


def draw_voice(rng: random.Random, resample_share: float = 0.35, rate: tuple[float, float] = (0.85, 1.15),
               resample_range: tuple[float, float] = (0.9, 1.1)) -> VoiceDraw:
    """One random training voice (never the held-out family)."""
    fam = rng.choices(list(FAMILY_WEIGHTS), weights=list(FAMILY_WEIGHTS.values()))[0]
    scale = round(rng.uniform(*rate), 2)
    if fam == "piper":
        spec = f"piper:joe:{scale}"
    elif fam == "flite":
        spec = f"flite:{rng.choice(FLITE_VOICES)}:{scale}"
    else:
        variant = rng.choice(ESPEAK_VARIANTS)
        name = rng.choice(ESPEAK_BASES) + (f"+{variant}" if variant else "")
        spec = f"espeak:{name}:{scale}:p{rng.randint(25, 75)}"
    assert family(spec) != HELD_OUT_FAMILY
    factor = round(rng.uniform(*resample_range), 3) if rng.random() < resample_share else 1.0
    return VoiceDraw(spec, factor)


def apply_resample(audio: np.ndarray, factor: float) -> np.ndarray:
    """Scale pitch, formants and tempo by `factor` (> 1: higher and faster): resample 24 kHz audio to
    24000 / factor Hz and play it at 24 kHz."""
    if factor == 1.0:
        return audio
    return resample(audio, SAMPLE_RATE, int(round(SAMPLE_RATE / factor)))
