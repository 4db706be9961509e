"""The audio codec interface: waveform <-> discrete codes, batch and streaming, at one fixed frame rate.

Shapes: B batch, S samples, K codebooks, T frames, F = `frame_size` samples per frame.
    encode: wav [B, 1, S] float  -> codes [B, K, ceil(S / F)] long (the tail is zero-padded to a whole frame)
    decode: codes [B, K, T] long -> wav [B, 1, T * F] float
Streaming works one frame at a time and must be fed whole frames; the objects hold the causal state.
"""

from __future__ import annotations

import abc
from types import TracebackType

import torch


class StreamingStep(abc.ABC):
    """A stateful one-frame-at-a-time codec half. Use as a context manager, or call `close()`:
    the state lives in the codec's modules, so an open stream blocks the batch calls of that half."""

    @abc.abstractmethod
    def step(self, x: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> "StreamingStep":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class AudioCodec(abc.ABC):
    """A neural (or any) audio codec. Subclasses set the four class facts and the five methods."""

    sample_rate: int = 24000
    frame_size: int = 1920  # 80 ms at 24 kHz: 12.5 frames per second
    num_codebooks: int = 8
    cardinality: int = 2048  # codes per codebook: values are in [0, cardinality)

    _silence_frame: torch.Tensor | None = None  # [K] cached by `silence_codes`

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.frame_size

    def num_frames(self, num_samples: int) -> int:
        """Frames `encode` returns for `num_samples` samples (whole frames, tail padded)."""
        return -(-num_samples // self.frame_size)

    @abc.abstractmethod
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, 1, S] float in [-1, 1] -> codes [B, K, ceil(S / frame_size)] long."""

    @abc.abstractmethod
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] long -> wav [B, 1, T * frame_size] float."""

    @abc.abstractmethod
    def streaming_encoder(self, batch_size: int = 1) -> StreamingStep:
        """An object whose `step(frame [B, 1, frame_size]) -> codes [B, K, 1]`."""

    @abc.abstractmethod
    def streaming_decoder(self, batch_size: int = 1) -> StreamingStep:
        """An object whose `step(codes [B, K, 1]) -> wav [B, 1, frame_size]`."""

    # Enough frames for the causal encoder's receptive field (and any attention context) to have seen
    # only silence, so the last frame is the steady state rather than a start-of-stream transient.
    silence_warmup_frames: int = 16

    def silence_codes(self, num_frames: int) -> torch.Tensor:
        """[K, num_frames] long: the codec's own encoding of digital silence, one steady-state frame tiled.
        Computed once per instance (the first call encodes `silence_warmup_frames` frames of zeros)."""
        if self._silence_frame is None:
            zeros = torch.zeros(1, 1, self.silence_warmup_frames * self.frame_size)
            self._silence_frame = self.encode(zeros)[0, :, -1].clone()
        return self._silence_frame[:, None].expand(-1, num_frames).clone()
