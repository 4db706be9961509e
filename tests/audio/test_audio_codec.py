"""MimiCodec behind the AudioCodec interface, with random weights (nothing is downloaded)."""

from __future__ import annotations

import os
import time

import pytest
import torch

os.environ.setdefault("NO_TORCH_COMPILE", "1")

from moshivis.audio.codec import AudioCodec  # noqa: E402
from moshivis.audio.mimi import MIMI_FILENAME, MimiCodec, resolve_mimi_weights  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Mimi's per-frame streaming calls are many tiny ops. With 2 OpenMP threads on a 2-core machine whose
    other core is busy (another process), every op waits at a barrier: 10 streaming frames took 14.7 s
    with 2 threads against 0.3 s with 1. One thread is also the faster choice for streaming on CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def codec() -> MimiCodec:
    return MimiCodec.load(None, device="cpu", seed=0)


def speechlike(seconds: float, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """[B, 1, S] tones with a moving pitch plus noise, different per item."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(24000 * seconds)) / 24000
    items = []
    for b in range(batch):
        f0 = 120 + 40 * b + 30 * torch.sin(2 * torch.pi * 2 * t)
        x = 0.3 * torch.sin(2 * torch.pi * torch.cumsum(f0, 0) / 24000) + 0.05 * torch.randn(t.shape, generator=g)
        items.append(x)
    return torch.stack(items)[:, None]


def test_facts(codec: MimiCodec) -> None:
    assert isinstance(codec, AudioCodec)
    assert (codec.sample_rate, codec.frame_size, codec.num_codebooks, codec.cardinality) == (24000, 1920, 8, 2048)
    assert codec.frame_rate == 12.5
    assert codec.num_frames(24000) == 13 and codec.num_frames(1920) == 1 and codec.num_frames(1921) == 2


def test_encode_decode_shapes(codec: MimiCodec) -> None:
    wav = speechlike(1.0)
    t0 = time.perf_counter()
    codes = codec.encode(wav)
    t1 = time.perf_counter()
    out = codec.decode(codes)
    t2 = time.perf_counter()
    print(f"\nMimi random weights, CPU, 1 s: encode RTF {t1 - t0:.3f}, decode RTF {t2 - t1:.3f}")
    assert codes.shape == (1, 8, 13) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < codec.cardinality
    # Seeded codebooks: the codes follow the input (a fresh Mimi would give code 0 everywhere).
    assert len(torch.unique(codes[0, 0])) > 3
    assert out.shape == (1, 1, 13 * 1920) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_batch_and_padding(codec: MimiCodec) -> None:
    wav = speechlike(0.5, batch=2)
    codes = codec.encode(wav[..., :1921])
    assert codes.shape == (2, 8, 2)
    assert not torch.equal(codes[0], codes[1])
    assert torch.equal(codec.encode(wav[:1, :, :1921]), codes[:1])  # items do not interact
    with pytest.raises(ValueError, match=r"\[B, 1, S>0\]"):
        codec.encode(wav[:, 0])
    with pytest.raises(ValueError, match="expected codes"):
        codec.decode(codes[:, :4])


def test_silence_codes_cached_and_steady(codec: MimiCodec) -> None:
    sil = codec.silence_codes(5)
    assert sil.shape == (8, 5) and sil.dtype == torch.long
    assert (sil == sil[:, :1]).all()
    frame = codec._silence_frame
    assert codec.silence_codes(2).shape == (8, 2) and codec._silence_frame is frame  # computed once
    # Steady state: past the warm-up, every frame of a longer silence encodes to the same codes.
    zeros = torch.zeros(1, 1, (codec.silence_warmup_frames + 8) * codec.frame_size)
    tail = codec.encode(zeros)[0, :, -8:]
    assert torch.equal(tail, codec.silence_codes(8))


def test_streaming_matches_batch(codec: MimiCodec) -> None:
    """Mimi is causal and frame-aligned: step-by-step encoding gives the batch codes exactly, and
    step-by-step decoding the batch audio (to float rounding), with encoder and decoder open together."""
    wav = speechlike(1.2, batch=2, seed=1)  # 15 frames
    codes = codec.encode(wav)
    audio = codec.decode(codes)
    with codec.streaming_encoder(2) as enc, codec.streaming_decoder(2) as dec:
        got_codes = torch.cat([enc.step(wav[..., i * 1920:(i + 1) * 1920]) for i in range(15)], dim=-1)
        got_audio = torch.cat([dec.step(codes[..., i:i + 1]) for i in range(15)], dim=-1)
    assert torch.equal(got_codes, codes)
    assert got_audio.shape == audio.shape
    assert torch.allclose(got_audio, audio, atol=1e-4)
    # Closed streams leave the batch calls working and a new stream starts fresh.
    assert torch.equal(codec.encode(wav), codes)
    with codec.streaming_encoder(2) as enc:
        assert torch.equal(enc.step(wav[..., :1920]), codes[..., :1])


def test_streaming_misuse(codec: MimiCodec) -> None:
    enc = codec.streaming_encoder(1)
    try:
        with pytest.raises(RuntimeError, match="already open"):
            codec.streaming_encoder(1)
        with pytest.raises(RuntimeError, match="streaming encoder is open"):
            codec.encode(torch.zeros(1, 1, 1920))
        with pytest.raises(ValueError, match="one frame"):
            enc.step(torch.zeros(1, 1, 960))
    finally:
        enc.close()
    with pytest.raises(RuntimeError, match="closed"):
        enc.step(torch.zeros(1, 1, 1920))
    dec = codec.streaming_decoder(1)
    with dec, pytest.raises(ValueError, match="expected codes"):
        dec.step(torch.zeros(1, 8, 2, dtype=torch.long))
    codec.encode(torch.zeros(1, 1, 1920))  # both closed again


def test_fewer_codebooks() -> None:
    small = MimiCodec.load(None, num_codebooks=4)
    assert small.num_codebooks == 4
    assert small.encode(speechlike(0.2)).shape == (1, 4, 3)


def test_weights_resolution_never_downloads(tmp_path, monkeypatch) -> None:
    from moshivis.models.loaders import CheckpointError

    local = tmp_path / MIMI_FILENAME
    local.write_bytes(b"not really weights")
    assert resolve_mimi_weights(local) == local
    assert resolve_mimi_weights(tmp_path) == local  # a folder holding the file
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError):
        resolve_mimi_weights("kyutai/no-such-repo-for-tests")


@pytest.mark.skipif(not os.environ.get("MOSHIVIS_MIMI_WEIGHTS"), reason="set MOSHIVIS_MIMI_WEIGHTS to a Mimi "
                    f"{MIMI_FILENAME} (or a hub id in the local cache) to test real weights")
def test_real_weights_round_trip() -> None:
    real = MimiCodec.load(os.environ["MOSHIVIS_MIMI_WEIGHTS"])
    wav = speechlike(1.0)
    out = real.decode(real.encode(wav))
    assert out.shape == (1, 1, 13 * 1920)
    assert torch.equal(real.silence_codes(3)[:, 0], real.silence_codes(3)[:, 2])
