"""`MimiCodec`: Kyutai's Mimi (from the `moshi` package) behind the `AudioCodec` interface.

Mimi: 24 kHz mono, 1920-sample (80 ms) frames, up to 32 RVQ codebooks of 2048 codes; Moshi uses 8.
Set `NO_TORCH_COMPILE=1` before the first `moshi` import (it compiles on import otherwise).

Streaming. Mimi keeps its causal state inside its modules, entered with `module.streaming(batch)`.
Entering it on the whole model would tie encoder and decoder to one context, so a streaming encoder and a
streaming decoder (what a live conversation needs) could not be opened independently. Here each half
enters the streaming contexts of its own sub-modules only (encoder side: SEANet encoder, encoder
transformer, downsampling conv; decoder side: their mirrors). The top-level model then takes its
non-streaming code path, whose modules carry state from call to call: tests check that this gives the
same codes and audio as the batch calls.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
from torch import nn

from .codec import AudioCodec, StreamingStep

MIMI_FILENAME = "tokenizer-e351c8d8-checkpoint125.safetensors"
DEFAULT_REPO = "kyutai/moshika-vis-pytorch-bf16"


def resolve_mimi_weights(weights: str | os.PathLike) -> Path:
    """A local .safetensors file, a folder holding `MIMI_FILENAME`, or a hub id `org/name` (that file
    fetched through huggingface_hub, from its cache when offline). Errors are one-line `CheckpointError`s."""
    from ..models.loaders import resolve_checkpoint  # lazy: that module imports the whole model stack

    return resolve_checkpoint(weights, filename=MIMI_FILENAME)


def _probe_audio(seed: int, seconds: float = 2.0, sample_rate: int = 24000) -> torch.Tensor:
    """[1, 1, S] a varied test signal (chirp, noise bursts, silence) to seed random codebooks."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    chirp = 0.3 * torch.sin(2 * torch.pi * (100 + 1500 * t) * t)
    noise = 0.2 * torch.randn(t.shape, generator=g) * (torch.sin(2 * torch.pi * 1.5 * t) > 0)
    gate = (t % 0.5) < 0.35  # a silent gap every half second
    return ((chirp + noise) * gate)[None, None]


def _seed_codebooks_from_data(model: nn.Module, seed: int) -> None:
    """A fresh Mimi's codebooks are all zeros (training k-means-initialises them on its first batch), so
    every input encodes to code 0 and an untrained Mimi is useless even as a stand-in. Here each codebook
    is filled, on one encode pass of a probe signal, with jittered copies of the vectors it receives: the
    stages run in order, so stage k sees the true residual of stages < k. Codes then depend on the input."""
    g = torch.Generator().manual_seed(seed)
    books = [m for m in model.modules() if hasattr(m, "embedding_sum") and hasattr(m, "_quantize")]

    def seeding(book: nn.Module):
        original = book._quantize

        def quantize(x: torch.Tensor) -> torch.Tensor:  # x [N, D]: this stage's inputs
            size = book.embedding_sum.shape[0]
            pick = torch.randint(0, x.shape[0], (size,), generator=g)
            jitter = torch.randn(size, x.shape[1], generator=g) * x.std(0, keepdim=True).clamp(min=1e-4)
            book.embedding_sum.copy_(x[pick] + 0.5 * jitter)
            book.cluster_usage.fill_(1.0)
            book._initialized.fill_(1.0)
            book._embedding = None  # drop the cached embedding_sum / cluster_usage
            del book._quantize  # back to the class method
            return original(x)

        book._quantize = quantize

    for book in books:
        seeding(book)
    model.encode(_probe_audio(seed).to(next(model.parameters()).device))
    for book in books:  # codebooks past num_codebooks were not reached: leave them as they were
        book.__dict__.pop("_quantize", None)


def _streaming_parts(*modules: nn.Module | None) -> list[nn.Module]:
    """The outermost moshi StreamingModules inside `modules` (a plain nn.Module such as the downsampler
    is searched for the streaming convolutions it wraps)."""
    from moshi.modules.streaming import StreamingModule

    found: list[nn.Module] = []

    def visit(m: nn.Module) -> None:
        if isinstance(m, StreamingModule):
            found.append(m)
        else:
            for child in m.children():
                visit(child)

    for m in modules:
        if m is not None:
            visit(m)
    return found


class _MimiStream(StreamingStep):
    """Holds the streaming contexts of one half of Mimi (its sub-modules' causal state) until closed."""

    def __init__(self, codec: "MimiCodec", side: str, parts: list[nn.Module], batch_size: int) -> None:
        if codec._open[side]:
            raise RuntimeError(f"a streaming {side} is already open on this MimiCodec; close it first")
        self._codec, self._side, self._stack = codec, side, contextlib.ExitStack()
        try:
            for part in parts:
                self._stack.enter_context(part.streaming(batch_size))
        except BaseException:  # e.g. the model is already streaming through `model.streaming()`
            self._stack.close()
            raise
        codec._open[side] = True
        self.batch_size = batch_size

    def close(self) -> None:
        if self._codec._open[self._side]:
            self._stack.close()
            self._codec._open[self._side] = False

    def _check_open(self) -> None:
        if not self._codec._open[self._side]:
            raise RuntimeError(f"this streaming {self._side} is closed")


class MimiStreamingEncoder(_MimiStream):
    def step(self, x: torch.Tensor) -> torch.Tensor:
        """frame [B, 1, frame_size] float -> codes [B, K, 1] long."""
        self._check_open()
        c = self._codec
        if x.dim() != 3 or x.shape[1] != 1 or x.shape[2] != c.frame_size:
            raise ValueError(f"expected one frame [B, 1, {c.frame_size}], got {tuple(x.shape)}")
        with torch.no_grad():
            return c.model.encode(x.to(c.device, torch.float32))


class MimiStreamingDecoder(_MimiStream):
    def step(self, x: torch.Tensor) -> torch.Tensor:
        """codes [B, K, 1] long -> wav [B, 1, frame_size] float."""
        self._check_open()
        c = self._codec
        if x.dim() != 3 or x.shape[1] != c.num_codebooks or x.shape[2] != 1:
            raise ValueError(f"expected codes [B, {c.num_codebooks}, 1], got {tuple(x.shape)}")
        with torch.no_grad():
            return c.model.decode(x.to(c.device, torch.long))


class MimiCodec(AudioCodec):
    """Wraps a `moshi.models.compression.MimiModel` (eval mode, no grad)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()
        self.sample_rate = int(model.sample_rate)
        self.frame_size = int(model.frame_size)
        self.num_codebooks = int(model.num_codebooks)
        self.cardinality = int(model.cardinality)
        self._open = {"encoder": False, "decoder": False}
        # The encoder transformer attends to its last 250 steps at 25 Hz (10 s = 125 frames): only past that
        # has the start-of-stream transient left its view, so that every further silent frame encodes the
        # same (with random weights the codes still change at frame 45).
        self.silence_warmup_frames = 128

    @classmethod
    def load(cls, weights: str | os.PathLike | None, device: str | torch.device = "cpu",
             num_codebooks: int = 8, seed: int = 0) -> "MimiCodec":
        """Real weights (see `resolve_mimi_weights`), or None for random weights with random codebooks
        (`seed`), which is what the tests use: nothing is downloaded then."""
        from moshi.models.loaders import get_mimi

        path = None if weights is None else str(resolve_mimi_weights(weights))
        with torch.random.fork_rng(devices=[]):  # get_mimi initialises from the global generator: seed it,
            torch.manual_seed(seed)  # and leave the caller's random state as it was
            model = get_mimi(path, device=device, num_codebooks=num_codebooks)
        if path is None:
            with torch.no_grad():
                _seed_codebooks_from_data(model, seed)
        return cls(model)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _check_batch(self, side: str) -> None:
        if self._open[side]:
            raise RuntimeError(f"a streaming {side} is open: its state would corrupt a batch call; close it")

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, 1, S] -> codes [B, K, ceil(S / 1920)] long (Mimi zero-pads the last frame itself)."""
        if wav.dim() != 3 or wav.shape[1] != 1 or wav.shape[2] == 0:
            raise ValueError(f"expected wav [B, 1, S>0], got {tuple(wav.shape)}")
        self._check_batch("encoder")
        with torch.no_grad():
            return self.model.encode(wav.to(self.device, torch.float32))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] -> wav [B, 1, T * 1920] float."""
        if codes.dim() != 3 or codes.shape[1] != self.num_codebooks:
            raise ValueError(f"expected codes [B, {self.num_codebooks}, T], got {tuple(codes.shape)}")
        self._check_batch("decoder")
        with torch.no_grad():
            return self.model.decode(codes.to(self.device, torch.long))

    def streaming_encoder(self, batch_size: int = 1) -> MimiStreamingEncoder:
        m = self.model
        return MimiStreamingEncoder(self, "encoder", _streaming_parts(
            m.encoder, m.encoder_transformer, getattr(m, "downsample", None)), batch_size)

    def streaming_decoder(self, batch_size: int = 1) -> MimiStreamingDecoder:
        m = self.model
        return MimiStreamingDecoder(self, "decoder", _streaming_parts(
            getattr(m, "upsample", None), m.decoder_transformer, m.decoder), batch_size)
