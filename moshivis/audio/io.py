"""Reading and writing audio files (soundfile / libsndfile), mono float32, with one-line errors.

Every error is a `ValueError` whose message starts with the path, so a data pipeline can log one line per
bad file and go on.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from .resample import resample

__all__ = ["load_audio", "save_wav", "resample", "check_audio"]


def check_audio(audio: np.ndarray, where: str) -> np.ndarray:
    """`audio` as float32 [S]; ValueError naming `where` if it is empty, not 1-D, or has NaN/inf."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2 and 1 in audio.shape:  # [1, S] or [S, 1]
        audio = audio.reshape(-1)
    if audio.ndim != 1:
        raise ValueError(f"{where}: expected mono audio [S], got shape {audio.shape}")
    if audio.size == 0:
        raise ValueError(f"{where}: empty audio (0 samples)")
    bad = int(np.count_nonzero(~np.isfinite(audio)))
    if bad:
        raise ValueError(f"{where}: {bad} non-finite (NaN/inf) samples of {audio.size}")
    return audio


def load_audio(path: str | os.PathLike, target_sr: int | None = 24000) -> tuple[np.ndarray, int]:
    """(audio float32 [S], sample_rate). Channels are averaged to mono; resampled to `target_sr` unless
    it is None (then the file's own rate is returned)."""
    path = Path(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # [S, C]
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{path}: cannot read audio ({reason})") from None
    audio = check_audio(data.mean(axis=1), str(path))
    if target_sr is not None and sr != target_sr:
        audio, sr = resample(audio, sr, target_sr), target_sr
    return audio, int(sr)


def save_wav(path: str | os.PathLike, audio: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
    """Write mono `audio` [S] (float in [-1, 1]; clipped) as a WAV file, creating parent folders.
    subtype: "PCM_16" (default) or "FLOAT" for a lossless float copy."""
    path = Path(path)
    audio = check_audio(audio, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(audio, -1.0, 1.0), int(sr), subtype=subtype, format="WAV")
    return path
