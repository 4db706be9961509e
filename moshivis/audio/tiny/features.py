"""Causal spectral features of a 24 kHz stream, on the codec's grid of 8 feature frames per 80 ms frame.

Framing is END-ALIGNED: feature frame k covers samples [240 (k + 1) - n_fft, 240 (k + 1)), the stream
being preceded by zeros. So the 8 feature frames of codec frame t end exactly at its last sample
1920 (t + 1): the encoder needs no look-ahead, and a stream fed frame by frame sees the same windows as a
whole-signal pass (`FrameHistory` keeps the n_fft - 240 samples of history).

Two feature sets share the grid:
- acoustic log-mel: n_fft 1024, 80 Slaney mel bands 0-12 kHz, natural log of power (the RVQ/vocoder side);
- Whisper log-mel: the exact Whisper front end (25 ms Hann, 40 Hz bins, Whisper's 80-band filterbank to
  8 kHz) computed at 24 kHz with n_fft 600: 600 samples at 24 kHz span the same 25 ms and give the same
  40 Hz bins as Whisper's 400 at 16 kHz, and the filterbank is zero above 8 kHz, so no resampling is
  needed. Power is divided by (600/400)^2 to match Whisper's scale. Hop 240 = 10 ms = Whisper's hop.

Spectra are computed in float64 and rounded to float32 at the end: batch and streaming passes then agree
bit for bit in practice (different matrix shapes round differently only far below float32 precision).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

SAMPLE_RATE = 24000
FRAME_SIZE = 1920  # codec frame, 80 ms
HOP = 240  # feature hop, 10 ms
FRAMES_PER_CODEC_FRAME = FRAME_SIZE // HOP  # 8

ACOUSTIC_NFFT = 1024
ACOUSTIC_MELS = 80
WHISPER_NFFT = 600  # 25 ms at 24 kHz
WHISPER_MELS = 80
WHISPER_POWER_SCALE = (WHISPER_NFFT / 400) ** 2  # window-sum ratio squared vs Whisper's 16 kHz STFT


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))


@functools.lru_cache(maxsize=8)
def mel_filterbank(n_fft: int = ACOUSTIC_NFFT, n_mels: int = ACOUSTIC_MELS, sample_rate: int = SAMPLE_RATE,
                   fmin: float = 0.0, fmax: float | None = None) -> torch.Tensor:
    """[n_mels, n_fft // 2 + 1] float64 triangular Slaney filters, area-normalised (librosa's default)."""
    fmax = sample_rate / 2 if fmax is None else fmax
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    lower = (freqs[None] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    upper = (edges[2:, None] - freqs[None]) / np.diff(edges)[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return torch.from_numpy(weights)


@functools.lru_cache(maxsize=1)
def whisper_filterbank() -> torch.Tensor:
    """[80, 301] float64: Whisper's own filterbank (faster-whisper's formula) on a 40 Hz grid to 12 kHz."""
    from faster_whisper.feature_extractor import FeatureExtractor

    fb = FeatureExtractor.get_mel_filters(SAMPLE_RATE, WHISPER_NFFT, n_mels=WHISPER_MELS)
    return torch.from_numpy(np.asarray(fb, dtype=np.float64))


@functools.lru_cache(maxsize=4)
def hann(n: int) -> torch.Tensor:
    """[n] float64 periodic Hann window."""
    return torch.hann_window(n, periodic=True, dtype=torch.float64)


def frames(wav: torch.Tensor, n_fft: int, history: torch.Tensor | None = None) -> torch.Tensor:
    """wav [B, S] (S a multiple of HOP) -> [B, S // HOP, n_fft]: end-aligned windows (module docstring).
    history [B, n_fft - HOP]: the samples before `wav` (zeros at the stream start)."""
    b = wav.shape[0]
    if history is None:
        history = wav.new_zeros(b, n_fft - HOP)
    x = torch.cat([history.to(wav.dtype), wav], dim=-1)
    return x.unfold(-1, n_fft, HOP)


def power_spectrum(wav: torch.Tensor, n_fft: int, history: torch.Tensor | None = None) -> torch.Tensor:
    """wav [B, S] -> |STFT|^2 [B, S // HOP, n_fft // 2 + 1] float64 (Hann window, end-aligned frames)."""
    fr = frames(wav.to(torch.float64), n_fft, history)
    return torch.fft.rfft(fr * hann(n_fft), dim=-1).abs().square()


def acoustic_logmel(wav: torch.Tensor, log_floor: float, history: torch.Tensor | None = None) -> torch.Tensor:
    """wav [B, S] -> natural-log mel power [B, S // HOP, 80] float32, floored at `log_floor` (a fixed
    constant, not a per-clip one, so the feature of a frame never depends on later audio)."""
    mel = power_spectrum(wav, ACOUSTIC_NFFT, history) @ mel_filterbank().T
    return mel.clamp_min(math.exp(log_floor)).log().to(torch.float32)


def whisper_log10mel(wav: torch.Tensor, history: torch.Tensor | None = None) -> torch.Tensor:
    """wav [B, S] -> Whisper's raw log10 mel power [B, 80, S // HOP] float32, before its clip-level
    normalisation (`semantic.normalise_window`). Digital silence gives -10 (Whisper's 1e-10 clip)."""
    mel = (power_spectrum(wav, WHISPER_NFFT, history) / WHISPER_POWER_SCALE) @ whisper_filterbank().T
    return mel.clamp_min(1e-10).log10().to(torch.float32).transpose(1, 2)


def stack_frames(feat: torch.Tensor) -> torch.Tensor:
    """[B, 8 T, M] -> [B, T, 8 M]: the 8 feature frames of each codec frame side by side."""
    b, n, m = feat.shape
    return feat.reshape(b, n // FRAMES_PER_CODEC_FRAME, FRAMES_PER_CODEC_FRAME * m)


def pad_to_frames(wav: torch.Tensor) -> torch.Tensor:
    """[..., S] -> [..., ceil(S / 1920) * 1920], zero-padded at the end."""
    extra = (-wav.shape[-1]) % FRAME_SIZE
    return F.pad(wav, (0, extra)) if extra else wav
